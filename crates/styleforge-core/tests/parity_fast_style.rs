//! Fast-style networks reproduce the PyTorch / TensorFlow references to float precision.


use crate::common::{assert_close, device, reference};
use styleforge_core::methods::fast::{Family, FastStyleNet};
use styleforge_core::networks::layers::NormContext;
use styleforge_core::networks::transformer_net::TransformerNet;
use styleforge_core::shared;
use styleforge_core::weights::Weights;

const TOL: f64 = 1e-4;

#[test]
fn stock_transformer_net_from_legacy_pth() {
    let dev = device();
    let w = Weights::load(&shared::path("parity/transformer_net_stock_legacy.pth")).unwrap();
    assert!(
        w.has("in1.running_mean"),
        "the file carries legacy keys the loader must drop"
    );
    let net = TransformerNet::load(&w, &dev).unwrap();
    assert_eq!(TransformerNet::width(&w).unwrap(), 32);
    let r = reference("parity/transformer_net_stock.safetensors");
    let x = r.get("x").unwrap().to_tensor::<4>(&dev).unwrap();
    let y = net.forward(x, &mut NormContext::Local);
    assert_close("stock y", y, r.get("y").unwrap(), TOL);
}

fn pytorch_family(name: &str) {
    let dev = device();
    let net = FastStyleNet::load(
        &shared::path(&format!("models/fast_style_pytorch/{name}.safetensors")),
        &dev,
    )
    .unwrap();
    assert_eq!(net.family(), Family::TransformerNet);
    let r = reference(&format!(
        "models/fast_style_pytorch/reference/{name}_ref.safetensors"
    ));
    let x = r.get("input").unwrap().to_tensor::<4>(&dev).unwrap();
    if let FastStyleNet::TransformerNet(n) = &net {
        assert_close(
            &format!("{name} after_res5"),
            n.forward_to_res5(x.clone(), &mut NormContext::Local),
            r.get("after_res5").unwrap(),
            TOL,
        );
    }
    assert_close(
        &format!("{name} output"),
        net.forward(x, &mut NormContext::Local),
        r.get("output_raw").unwrap(),
        TOL,
    );
}

#[test]
fn pytorch_candy_nc16() {
    pytorch_family("candy_nc16")
}
#[test]
fn pytorch_candy_nc8() {
    pytorch_family("candy_nc8")
}
#[test]
fn pytorch_mosaic_nc16() {
    pytorch_family("mosaic_nc16")
}
#[test]
fn pytorch_mosaic_nc8() {
    pytorch_family("mosaic_nc8")
}
#[test]
fn pytorch_rain_princess_nc16() {
    pytorch_family("rain_princess_nc16")
}
#[test]
fn pytorch_udnie_nc16() {
    pytorch_family("udnie_nc16")
}

fn engstrom(name: &str) {
    let dev = device();
    let net = FastStyleNet::load(
        &shared::path(&format!("models/fast_style_engstrom/{name}.safetensors")),
        &dev,
    )
    .unwrap();
    assert_eq!(net.family(), Family::Engstrom);
    let r = reference(&format!(
        "models/fast_style_engstrom/reference/{name}_ref.safetensors"
    ));
    let x = r.get("input").unwrap().to_tensor::<4>(&dev).unwrap();
    let y = net.forward(x, &mut NormContext::Local).clamp(0.0, 255.0);
    assert_close(&format!("{name} output"), y, r.get("output").unwrap(), TOL);
}

#[test]
fn engstrom_wave() {
    engstrom("wave")
}
#[test]
fn engstrom_scream() {
    engstrom("scream")
}
#[test]
fn engstrom_udnie() {
    engstrom("udnie")
}
#[test]
fn engstrom_mathura() {
    engstrom("mathura")
}
#[test]
fn engstrom_matta() {
    engstrom("matta")
}
