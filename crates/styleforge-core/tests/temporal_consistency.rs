//! Temporal consistency on clips with known motion, through the whole animation pipeline
//! (`sequence::stylize_animation`: decode, stylise, make consistent, encode): a slow pan, a zoom
//! and a static shot with sensor-like noise cut from a shared photo, stylised by the built-in
//! MicroAST (a painting) and the built-in CartoonGAN filter, each with frames on their own and
//! in the consistent mode. The warping error is the mean absolute difference (0..255) between
//! an output frame and the previous output moved by the known motion, over the pixels the
//! motion keeps inside the frame; on the static shot it is the flicker. The consistent mode
//! must at most halve it, with each frame staying near its own stylisation.


use crate::common::device;
use styleforge_core::animation::{AnimationFormat, Frames, Limits, Writer};
use styleforge_core::image_io::Picture;
use styleforge_core::library::{ModelKind, builtin};
use styleforge_core::methods::{self, Input, Params};
use styleforge_core::sequence::stylize_animation;
use styleforge_core::shared;
use styleforge_core::temporal::{ConsistencySettings, Flow, warping_error};

const W: u32 = 160;
const H: u32 = 112;
const FRAMES: usize = 8;

/// Bilinear sample of a planar picture's channel `c` at `(x, y)` (borders clamped).
fn sample(p: &Picture, c: usize, x: f32, y: f32) -> f32 {
    let (w, h) = (p.width as usize, p.height as usize);
    let x = x.clamp(0.0, (w - 1) as f32);
    let y = y.clamp(0.0, (h - 1) as f32);
    let (x0, y0) = (x.floor() as usize, y.floor() as usize);
    let (x1, y1) = ((x0 + 1).min(w - 1), (y0 + 1).min(h - 1));
    let (fx, fy) = (x - x0 as f32, y - y0 as f32);
    let v = |x: usize, y: usize| p.rgb[c * w * h + y * w + x];
    (v(x0, y0) * (1.0 - fx) + v(x1, y0) * fx) * (1.0 - fy) + (v(x0, y1) * (1.0 - fx) + v(x1, y1) * fx) * fy
}

/// A `W`×`H` frame whose pixel `(x, y)` shows the photo at `at(x, y)`, plus `noise`.
fn frame(photo: &Picture, at: &dyn Fn(f32, f32) -> (f32, f32), noise: &mut dyn FnMut() -> f32) -> Picture {
    let n = (W * H) as usize;
    let mut rgb = vec![0.0; 3 * n];
    for i in 0..n {
        let (x, y) = at((i % W as usize) as f32, (i / W as usize) as f32);
        let e = noise();
        for c in 0..3 {
            rgb[c * n + i] = (sample(photo, c, x, y) + e).clamp(0.0, 255.0);
        }
    }
    Picture::from_planes(W, H, rgb)
}

/// A clip, and for each frame after the first the known flow to the previous frame.
struct Clip {
    name: &'static str,
    frames: Vec<Picture>,
    flow: Flow,
}

fn clips() -> Vec<Clip> {
    let photo = styleforge_core::image_io::read(&shared::path("data/content/chicago.jpg"), u64::MAX).unwrap().fit_within(480);
    let mut seed = 7u64;
    let mut gauss = move || {
        // Sum of uniforms: close enough to a Gaussian of σ = 3 levels for sensor noise.
        (0..4)
            .map(|_| {
                seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                (seed >> 40) as f32 / (1u64 << 24) as f32 - 0.5
            })
            .sum::<f32>()
            * 3.0
            * 1.732
    };
    let (cx, cy) = (W as f32 / 2.0, H as f32 / 2.0);
    let n = (W * H) as usize;
    let (ox, oy) = (120.0, 90.0);
    // Pan: 2 pixels a frame to the right.
    let pan = (0..FRAMES).map(|t| frame(&photo, &|x, y| (ox + x + 2.0 * t as f32, oy + y), &mut || 0.0)).collect();
    // Zoom in by 2 % a frame about the centre: a pixel at x was at c + (x - c) / 1.02 before.
    let z = 1.02f32;
    let zoom = (0..FRAMES)
        .map(|t| {
            let s = z.powi(t as i32);
            frame(&photo, &|x, y| (ox + cx + (x - cx) / s, oy + cy + (y - cy) / s), &mut || 0.0)
        })
        .collect();
    let zoom_flow = Flow {
        width: W as usize,
        height: H as usize,
        dx: (0..n).map(|i| ((i % W as usize) as f32 - cx) * (1.0 / z - 1.0)).collect(),
        dy: (0..n).map(|i| ((i / W as usize) as f32 - cy) * (1.0 / z - 1.0)).collect(),
    };
    let still: Vec<Picture> = (0..FRAMES).map(|_| frame(&photo, &|x, y| (ox + x, oy + y), &mut gauss)).collect();
    vec![
        Clip { name: "pan 2 px/frame", frames: pan, flow: Flow { width: W as usize, height: H as usize, dx: vec![2.0; n], dy: vec![0.0; n] } },
        Clip { name: "zoom 2 %/frame", frames: zoom, flow: zoom_flow },
        Clip { name: "static + noise σ 3", frames: still, flow: Flow::zero(W as usize, H as usize) },
    ]
}

/// The clip as a lossless animated WebP.
fn encode(frames: &[Picture]) -> Vec<u8> {
    let mut w = Writer::new(AnimationFormat::WebP, W, H, 0, None).unwrap();
    for f in frames {
        w.push(f, (40, 1)).unwrap();
    }
    w.finish().unwrap()
}

fn decode(bytes: &[u8]) -> Vec<Picture> {
    Frames::open(bytes, Limits::default()).unwrap().map(|f| f.unwrap().picture).collect()
}

/// Mean warping error over consecutive output pairs, on pixels whose source lies inside.
fn mean_warping_error(out: &[Picture], flow: &Flow) -> f64 {
    let valid: Vec<bool> = (0..flow.dx.len())
        .map(|i| {
            let (x, y) = ((i % flow.width) as f32 + flow.dx[i], (i / flow.width) as f32 + flow.dy[i]);
            x >= 0.0 && y >= 0.0 && x <= (flow.width - 1) as f32 && y <= (flow.height - 1) as f32
        })
        .collect();
    out.windows(2).map(|p| warping_error(&p[1], &p[0], flow, &valid)).sum::<f64>() / (out.len() - 1) as f64
}

fn mean_abs(a: &[Picture], b: &[Picture]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x.rgb.iter().zip(&y.rgb).map(|(p, q)| (p - q).abs() as f64).sum::<f64>() / x.rgb.len() as f64).sum::<f64>() / a.len() as f64
}

#[test]
fn the_consistent_mode_halves_the_warping_error_and_keeps_the_look() {
    let dev = device();
    let painting = builtin::painting("starry-night").unwrap().picture().unwrap().fit_within(256);
    let cases = [
        ("microast", ModelKind::MicroAst, builtin::MICROAST, vec![(methods::adain::Style::Picture(painting), 1.0)]),
        ("cartoon", ModelKind::Cartoon, "cartoon-paprika", vec![]),
    ];
    let clips = clips();
    eprintln!("| method | clip | warping error, frames on their own | shared statistics only | flow only | consistent (both) | ratio | mean change of a frame |\n|---|---|---|---|---|---|---|---|");
    for (method_name, kind, model_name, styles) in cases {
        let method = methods::get(method_name).unwrap();
        let model = kind.load_weights(&builtin::weights(model_name).unwrap(), &dev).unwrap();
        let template = Input { content: Picture::from_planes(1, 1, vec![0.0; 3]), styles, mask: None, mask_styles: vec![] };
        for clip in &clips {
            let bytes = encode(&clip.frames);
            let run = |consistency: Option<ConsistencySettings>| {
                let out = stylize_animation(method, &model, &template, &Params::default(), &dev, &bytes, Limits::default(), AnimationFormat::WebP, consistency, None, &mut |_, _| {})
                    .unwrap()
                    .unwrap();
                assert_eq!(out.frames as usize, FRAMES);
                decode(&out.bytes)
            };
            let alone = run(None);
            let stats_only = run(Some(ConsistencySettings { weight: 0.0, ..Default::default() }));
            let flow_only = run(Some(ConsistencySettings { shared_statistics: 0.0, ..Default::default() }));
            let consistent = run(Some(ConsistencySettings::default()));
            let (e0, e1) = (mean_warping_error(&alone, &clip.flow), mean_warping_error(&consistent, &clip.flow));
            let (es, ef) = (mean_warping_error(&stats_only, &clip.flow), mean_warping_error(&flow_only, &clip.flow));
            let change = mean_abs(&consistent, &alone);
            eprintln!("| {method_name} | {} | {e0:.2} | {es:.2} | {ef:.2} | {e1:.2} | {:.2} | {change:.2} |", clip.name, e1 / e0);
            // Shared statistics never make it worse than frames on their own.
            assert!(es <= e0 * 1.02, "{method_name}, {}: shared statistics {es:.2} against {e0:.2}", clip.name);
            assert!(e1 <= 0.5 * e0, "{method_name}, {}: warping error {e1:.2} against {e0:.2} for frames on their own", clip.name);
            assert!(change < 0.6 * e0 + 2.0, "{method_name}, {}: frames moved {change:.2} from their own stylisation", clip.name);
        }
    }
}
