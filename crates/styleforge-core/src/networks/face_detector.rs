//! The Ultra-Light-Fast-Generic-Face-Detector-1MB, version RFB-320 (Linzaer, MIT licence;
//! `vision/nn/mb_tiny_RFB.py` and `vision/ssd/mb_tiny_RFB_fd.py`): an SSD-style face detector of
//! about 281k parameters on a 320×240 input.
//!
//! - **Backbone** (`base_net.0`–`12`): a 3×3 stride-2 convolution 3→16, then depthwise-separable
//!   blocks (depthwise 3×3 + BN + ReLU, pointwise 1×1 + BN + ReLU) down to 256 channels at 1/32,
//!   with a receptive-field block (`base_net.7`, BasicRFB 64→64: three branches with dilations 2, 3
//!   and 5, a linear 1×1 fusion plus a 1×1 shortcut, then a ReLU) at 1/8.
//! - **Extras** (`extras.0`): 1×1 256→64 + ReLU, a separable stride-2 3×3 64→256, ReLU.
//! - **Heads** on four levels (1/8, 1/16, 1/32, 1/64; 3, 2, 2 and 3 anchors per cell): separable
//!   3×3 convolutions (the last level a plain 3×3) giving two class logits (background, face) and
//!   four box offsets per anchor, flattened row, column, anchor and concatenated: 4420 anchors.
//!
//! Every BatchNorm (eval mode, eps 1e-5) is folded into the convolution before it on load. The
//! dilated convolutions run as dense ones with zero-dilated kernels (`2d + 1` wide, padding `d`).
//!
//! Input: `(rgb - 127) / 128` of the photo resized (without keeping its aspect) to 320×240,
//! `[1, 3, 240, 320]` ([`preprocess`]). Output: logits `[1, 4420, 2]` and box offsets
//! `[1, 4420, 4]`; [`decode`] turns them into face probabilities and corner boxes normalised to
//! 0..1 (centre variance 0.1, size variance 0.2, against [`priors`]); [`post_process`] keeps
//! scores above a threshold, runs hard NMS and scales the boxes to the photo's pixels.
//!
//! Weights: the published `version-RFB-320.pth` state dict with its key names
//! (`base_net.*`, `extras.*`, `classification_headers.*`, `regression_headers.*`).

use burn::module::{Module, Param};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor, TensorData};

use crate::error::{Error, Result};
use crate::image_io::Picture;
use crate::networks::layers::{Conv, Padding};
use crate::weights::{HostTensor, Weights};

/// The network's input width, in pixels.
pub const INPUT_W: usize = 320;
/// The network's input height, in pixels.
pub const INPUT_H: usize = 240;
/// The number of anchors (prior boxes) for a 320×240 input.
pub const ANCHORS: usize = 4420;
/// The BatchNorm offset of the reference.
pub const BN_EPS: f64 = 1e-5;
/// The centre variance of the box encoding.
pub const CENTER_VARIANCE: f32 = 0.1;
/// The size variance of the box encoding.
pub const SIZE_VARIANCE: f32 = 0.2;
/// The reference's face-probability threshold (`detect_imgs.py --threshold`); kept strictly above.
pub const SCORE_THRESHOLD: f32 = 0.6;
/// The reference's NMS overlap: boxes overlapping a kept one by more than this IoU are dropped.
pub const IOU_THRESHOLD: f32 = 0.3;
/// The reference's `candidate_size`: the best-scoring boxes that enter NMS.
pub const CANDIDATES: usize = 1500;

/// Feature-map sizes (W, H) of the four levels for 320×240.
const LEVELS: [(usize, usize); 4] = [(40, 30), (20, 15), (10, 8), (5, 4)];
/// The prior box sides of each level, in input pixels.
const MIN_BOXES: [&[f32]; 4] = [&[10.0, 16.0, 24.0], &[32.0, 48.0], &[64.0, 96.0], &[128.0, 192.0, 256.0]];

/// Loads `{conv}weight` `[o, i, k, k]` (with `{conv}bias` when `bias`) and folds BatchNorm
/// `{bn}{weight,bias,running_mean,running_var}` into it when `bn` is given; a kernel with
/// `dilation > 1` is spread out with zeros (side `dilation·(k-1)+1`).
fn load_conv(
    w: &Weights,
    conv: &str,
    bn: Option<&str>,
    shape: [usize; 4],
    bias: bool,
    (stride, pad, dilation): (usize, usize, usize),
    device: &Device,
) -> Result<Conv> {
    let weight = w.get(&format!("{conv}weight"))?;
    if weight.shape != shape {
        return Err(Error::Weights(format!("tensor `{conv}weight` has shape {:?}, expected {shape:?}", weight.shape)));
    }
    let [o, i, k, _] = shape;
    let vec = |name: String| -> Result<Vec<f32>> {
        let t = w.get(&name)?;
        if t.shape != [o] {
            return Err(Error::Weights(format!("tensor `{name}` has shape {:?}, expected [{o}]", t.shape)));
        }
        Ok(t.data.clone())
    };
    let mut b = if bias { vec(format!("{conv}bias"))? } else { vec![0.0; o] };
    let mut kernel = weight.data.clone();
    if let Some(bn) = bn {
        let (g, beta) = (vec(format!("{bn}weight"))?, vec(format!("{bn}bias"))?);
        let (mean, var) = (vec(format!("{bn}running_mean"))?, vec(format!("{bn}running_var"))?);
        let per = i * k * k;
        for c in 0..o {
            let s = g[c] as f64 / (var[c] as f64 + BN_EPS).sqrt();
            for v in &mut kernel[c * per..(c + 1) * per] {
                *v = (*v as f64 * s) as f32;
            }
            b[c] = ((b[c] as f64 - mean[c] as f64) * s + beta[c] as f64) as f32;
        }
    }
    let (kernel, k) = if dilation > 1 {
        let kd = dilation * (k - 1) + 1;
        let mut spread = vec![0f32; o * i * kd * kd];
        for oi in 0..o * i {
            for y in 0..k {
                for x in 0..k {
                    spread[(oi * kd + y * dilation) * kd + x * dilation] = kernel[(oi * k + y) * k + x];
                }
            }
        }
        (spread, kd)
    } else {
        (kernel, k)
    };
    let weight = HostTensor::new(vec![o, i, k, k], kernel).to_tensor::<4>(device)?;
    let bias = HostTensor::new(vec![o], b).to_tensor::<1>(device)?;
    let padding = if pad == 0 { Padding::Valid } else { Padding::Explicit(pad) };
    Ok(Conv { weight: Param::from_tensor(weight), bias: Some(Param::from_tensor(bias)), stride, padding })
}

/// A depthwise-separable block (`conv_dw`): depthwise 3×3 + BN + ReLU, pointwise + BN + ReLU.
#[derive(Module, Debug)]
pub struct ConvDw {
    dw: Conv,
    pw: Conv,
}

impl ConvDw {
    fn load(w: &Weights, p: &str, cin: usize, cout: usize, stride: usize, device: &Device) -> Result<Self> {
        Ok(Self {
            dw: load_conv(w, &format!("{p}0."), Some(&format!("{p}1.")), [cin, 1, 3, 3], false, (stride, 1, 1), device)?,
            pw: load_conv(w, &format!("{p}3."), Some(&format!("{p}4.")), [cout, cin, 1, 1], false, (1, 0, 1), device)?,
        })
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.pw.forward_relu(self.dw.forward_relu(x))
    }
}

/// One `BasicConv` of the RFB block (convolution + BN, ReLU where marked).
#[derive(Module, Debug)]
struct BasicConv {
    conv: Conv,
    #[module(skip)]
    relu: bool,
}

impl BasicConv {
    #[allow(clippy::too_many_arguments)]
    fn load(w: &Weights, p: &str, cin: usize, cout: usize, k: usize, (pad, dilation): (usize, usize), relu: bool, device: &Device) -> Result<Self> {
        let conv = load_conv(w, &format!("{p}conv."), Some(&format!("{p}bn.")), [cout, cin, k, k], false, (1, pad, dilation), device)?;
        Ok(Self { conv, relu })
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        if self.relu { self.conv.forward_relu(x) } else { self.conv.forward(x) }
    }
}

/// The receptive-field block `BasicRFB(64, 64, scale = 1.0)` (`base_net.7`).
#[derive(Module, Debug)]
pub struct BasicRfb {
    branches: Vec<Vec<BasicConv>>,
    linear: BasicConv,
    shortcut: BasicConv,
}

impl BasicRfb {
    fn load(w: &Weights, p: &str, device: &Device) -> Result<Self> {
        let c = |name: &str, cin, cout, k, pd, relu| BasicConv::load(w, &format!("{p}{name}."), cin, cout, k, pd, relu, device);
        Ok(Self {
            branches: vec![
                vec![c("branch0.0", 64, 8, 1, (0, 1), false)?, c("branch0.1", 8, 16, 3, (1, 1), true)?, c("branch0.2", 16, 16, 3, (2, 2), false)?],
                vec![c("branch1.0", 64, 8, 1, (0, 1), false)?, c("branch1.1", 8, 16, 3, (1, 1), true)?, c("branch1.2", 16, 16, 3, (3, 3), false)?],
                vec![
                    c("branch2.0", 64, 8, 1, (0, 1), false)?,
                    c("branch2.1", 8, 12, 3, (1, 1), true)?,
                    c("branch2.2", 12, 16, 3, (1, 1), true)?,
                    c("branch2.3", 16, 16, 3, (5, 5), false)?,
                ],
            ],
            linear: c("ConvLinear", 48, 64, 1, (0, 1), false)?,
            shortcut: c("shortcut", 64, 64, 1, (0, 1), false)?,
        })
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let outs = self.branches.iter().map(|b| b.iter().fold(x.clone(), |y, c| c.forward(y))).collect();
        relu(self.linear.forward(Tensor::cat(outs, 1)) + self.shortcut.forward(x))
    }
}

/// A detection head: a separable 3×3 (depthwise + ReLU + pointwise, biases) or a plain 3×3.
#[derive(Module, Debug)]
pub struct Head {
    dw: Option<Conv>,
    out: Conv,
}

impl Head {
    fn load(w: &Weights, p: &str, cin: usize, cout: usize, separable: bool, device: &Device) -> Result<Self> {
        if separable {
            Ok(Self {
                dw: Some(load_conv(w, &format!("{p}0."), None, [cin, 1, 3, 3], true, (1, 1, 1), device)?),
                out: load_conv(w, &format!("{p}2."), None, [cout, cin, 1, 1], true, (1, 0, 1), device)?,
            })
        } else {
            Ok(Self { dw: None, out: load_conv(w, p, None, [cout, cin, 3, 3], true, (1, 1, 1), device)? })
        }
    }

    /// `[N, C, H, W]` to `[N, H·W·A, k]` (row, column, anchor order) for `k` values per anchor.
    fn forward(&self, x: Tensor<4>, k: usize) -> Tensor<3> {
        let x = match &self.dw {
            Some(dw) => dw.forward_relu(x),
            None => x,
        };
        let y = self.out.forward(x);
        let [n, c, h, w] = y.dims();
        y.permute([0, 2, 3, 1]).reshape([n, h * w * c / k, k])
    }
}

/// The RFB-320 detector.
#[derive(Module, Debug)]
pub struct FaceDetector {
    stem: Conv,
    blocks: Vec<ConvDw>,
    rfb: BasicRfb,
    extra_in: Conv,
    extra_dw: Conv,
    extra_pw: Conv,
    classification: Vec<Head>,
    regression: Vec<Head>,
}

/// The raw outputs of one pass (the reference's `is_test=False` outputs).
#[derive(Debug, Clone)]
pub struct Raw {
    /// Class logits `[N, 4420, 2]` (background, face).
    pub logits: Tensor<3>,
    /// Box offsets `[N, 4420, 4]` (centre x, y, log width, height, before the variances).
    pub locations: Tensor<3>,
}

impl FaceDetector {
    /// Whether the weights look like this detector's state dict.
    pub fn detect(w: &Weights) -> bool {
        w.has("base_net.7.ConvLinear.conv.weight") && w.has("classification_headers.3.weight")
    }

    /// Builds the detector from the published state dict, checking every shape and refusing
    /// unknown tensors. Errors: [`Error::Weights`] naming a missing or misshapen tensor.
    pub fn from_weights(w: &Weights, device: &Device) -> Result<Self> {
        let roots = ["base_net.", "extras.", "classification_headers.", "regression_headers."];
        w.reject_unexpected(|k| roots.iter().any(|r| k.starts_with(r)))?;
        // (input, output, stride) of base_net.1–6 and 8–12.
        let dw: [(usize, usize, usize, usize); 11] = [
            (1, 16, 32, 1),
            (2, 32, 32, 2),
            (3, 32, 32, 1),
            (4, 32, 64, 2),
            (5, 64, 64, 1),
            (6, 64, 64, 1),
            (8, 64, 128, 2),
            (9, 128, 128, 1),
            (10, 128, 128, 1),
            (11, 128, 256, 2),
            (12, 256, 256, 1),
        ];
        let head_in = [64, 128, 256, 256];
        let anchors = MIN_BOXES.map(|m| m.len());
        let heads = |root: &str, k: usize| -> Result<Vec<Head>> {
            (0..4).map(|l| Head::load(w, &format!("{root}.{l}."), head_in[l], anchors[l] * k, l < 3, device)).collect()
        };
        Ok(Self {
            stem: load_conv(w, "base_net.0.0.", Some("base_net.0.1."), [16, 3, 3, 3], false, (2, 1, 1), device)?,
            blocks: dw.iter().map(|&(i, cin, cout, s)| ConvDw::load(w, &format!("base_net.{i}."), cin, cout, s, device)).collect::<Result<_>>()?,
            rfb: BasicRfb::load(w, "base_net.7.", device)?,
            extra_in: load_conv(w, "extras.0.0.", None, [64, 256, 1, 1], true, (1, 0, 1), device)?,
            extra_dw: load_conv(w, "extras.0.2.0.", None, [64, 1, 3, 3], true, (2, 1, 1), device)?,
            extra_pw: load_conv(w, "extras.0.2.2.", None, [256, 64, 1, 1], true, (1, 0, 1), device)?,
            classification: heads("classification_headers", 2)?,
            regression: heads("regression_headers", 4)?,
        })
    }

    /// `[N, 3, 240, 320]` (from [`preprocess`]) to the raw logits and box offsets.
    pub fn forward(&self, x: Tensor<4>) -> Raw {
        let mut y = self.stem.forward_relu(x);
        let mut features = Vec::with_capacity(4);
        for (i, b) in self.blocks.iter().enumerate() {
            y = b.forward(y);
            if i == 5 {
                y = self.rfb.forward(y);
                features.push(y.clone());
            } else if i == 8 || i == 10 {
                features.push(y.clone());
            }
        }
        let e = relu(self.extra_pw.forward(self.extra_dw.forward_relu(self.extra_in.forward_relu(y))));
        features.push(e);
        let (mut logits, mut locations) = (Vec::new(), Vec::new());
        for (l, f) in features.into_iter().enumerate() {
            logits.push(self.classification[l].forward(f.clone(), 2));
            locations.push(self.regression[l].forward(f, 4));
        }
        Raw { logits: Tensor::cat(logits, 1), locations: Tensor::cat(locations, 1) }
    }

    /// Detects faces in `picture` (RGB 0..255, any size) with the reference's defaults
    /// ([`SCORE_THRESHOLD`], [`IOU_THRESHOLD`], [`CANDIDATES`]): boxes in the picture's pixels,
    /// best first. Errors: backend errors reading the outputs back.
    pub fn detect_faces(&self, picture: &Picture, device: &Device) -> Result<Vec<Face>> {
        let raw = self.forward(preprocess(picture, device));
        let (scores, boxes) = decode(&HostTensor::from_tensor(raw.logits)?.data, &HostTensor::from_tensor(raw.locations)?.data);
        Ok(post_process(&scores, &boxes, picture.width as f32, picture.height as f32, SCORE_THRESHOLD, IOU_THRESHOLD, CANDIDATES))
    }
}

/// A detected face: corners in pixels of the photo (neither clipped nor rounded, as the
/// reference leaves them) and the face probability 0..1.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Face {
    /// Left edge, pixels.
    pub x1: f32,
    /// Top edge, pixels.
    pub y1: f32,
    /// Right edge, pixels.
    pub x2: f32,
    /// Bottom edge, pixels.
    pub y2: f32,
    /// Face probability, 0..1.
    pub score: f32,
}

impl Face {
    /// Width × height in pixels² (0 for an empty box).
    pub fn area(&self) -> f32 {
        (self.x2 - self.x1).max(0.0) * (self.y2 - self.y1).max(0.0)
    }
}

/// The 4420 prior boxes `[cx, cy, w, h]`, normalised to 0..1 and clamped into it, in the heads'
/// order (level, row, column, box size), as the reference's `generate_priors` makes them.
pub fn priors() -> Vec<[f32; 4]> {
    let mut out = Vec::with_capacity(ANCHORS);
    for (l, &(fw, fh)) in LEVELS.iter().enumerate() {
        for j in 0..fh {
            for i in 0..fw {
                for &m in MIN_BOXES[l] {
                    let p = [(i as f32 + 0.5) / fw as f32, (j as f32 + 0.5) / fh as f32, m / INPUT_W as f32, m / INPUT_H as f32];
                    out.push(p.map(|v| v.clamp(0.0, 1.0)));
                }
            }
        }
    }
    out
}

/// The network input for a photo: resized to 320×240 without keeping the aspect (OpenCV's
/// fixed-point `INTER_LINEAR` on `uint8`, as the reference does), then
/// `(v - 127) / 128`; `[1, 3, 240, 320]` on `device`.
pub fn preprocess(picture: &Picture, device: &Device) -> Tensor<4> {
    let small = resize_like_opencv(picture, INPUT_W, INPUT_H);
    input_tensor(&small, device)
}

/// `(v - 127) / 128` of planar RGB 0..255 values of a 320×240 picture, as `[1, 3, 240, 320]`.
pub fn input_tensor(rgb: &[f32], device: &Device) -> Tensor<4> {
    let data: Vec<f32> = rgb.iter().map(|v| (v - 127.0) / 128.0).collect();
    Tensor::from_data(TensorData::new(data, [1, 3, INPUT_H, INPUT_W]), device)
}

/// OpenCV's `resize(…, INTER_LINEAR)` on 8-bit images, bit for bit: half-pixel centres, taps
/// clamped at the borders (keeping their weights), 11-bit fixed-point weights (`INTER_RESIZE_COEF_BITS`), the horizontal
/// pass in integers and the vertical pass with OpenCV's rounding shifts. Values of `p` are taken
/// as whole grey levels (as decoded from an 8-bit file); planar RGB 0..255 out, `3·w·h` values;
/// `w`, `h` ≥ 1 and a non-empty `p`.
/// Source: OpenCV `modules/imgproc/src/resize.cpp` (`resizeGeneric_`, `HResizeLinear`,
/// `VResizeLinear<uchar, int, short, FixedPtCast<…, 22>>`), the resize the reference's
/// `detect_imgs.py` uses.
pub fn resize_like_opencv(p: &Picture, w: usize, h: usize) -> Vec<f32> {
    const ONE: f32 = 2048.0;
    // Per output coordinate: the two source taps and their 11-bit weights.
    let taps = |dst: usize, src: usize| -> Vec<(usize, usize, i32, i32)> {
        let scale = 1.0 / (dst as f64 / src as f64);
        (0..dst)
            .map(|d| {
                let f = ((d as f64 + 0.5) * scale - 0.5) as f32;
                let i = f.floor();
                let f = f - i;
                // Out-of-range taps are clamped to the border but keep their weights, as
                // OpenCV does for rows (both taps are then the same source line; the split
                // weights change the fixed-point rounding).
                let at = |k: f32| (k.max(0.0) as usize).min(src - 1);
                let (i, next) = (at(i), at(i + 1.0));
                let round = |v: f32| v.round_ties_even() as i32;
                (i, next, round((1.0 - f) * ONE), round(f * ONE))
            })
            .collect()
    };
    let (sw, sh) = (p.width as usize, p.height as usize);
    let (tx, ty) = (taps(w, sw), taps(h, sh));
    let n = sw * sh;
    let mut out = vec![0f32; 3 * w * h];
    let mut rows = vec![0i32; 2 * w];
    for c in 0..3 {
        let plane = &p.rgb[c * n..(c + 1) * n];
        let level = |v: f32| v.round().clamp(0.0, 255.0) as i32;
        for (y, &(y0, y1, b0, b1)) in ty.iter().enumerate() {
            for (r, sy) in [y0, y1].into_iter().enumerate() {
                let line = &plane[sy * sw..(sy + 1) * sw];
                for (x, &(x0, x1, a0, a1)) in tx.iter().enumerate() {
                    rows[r * w + x] = level(line[x0]) * a0 + level(line[x1]) * a1;
                }
            }
            for x in 0..w {
                let v = (((b0 * (rows[x] >> 4)) >> 16) + ((b1 * (rows[w + x] >> 4)) >> 16) + 2) >> 2;
                out[c * w * h + y * w + x] = v.clamp(0, 255) as f32;
            }
        }
    }
    out
}

/// The test-mode outputs from the raw ones (host values of one image, `[4420·2]` logits and
/// `[4420·4]` offsets): per anchor, the softmax of the two logits (background, face) and the
/// decoded corner box (`x1, y1, x2, y2`, normalised, not clamped).
pub fn decode(logits: &[f32], locations: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let priors = priors();
    let mut scores = Vec::with_capacity(2 * priors.len());
    let mut boxes = Vec::with_capacity(4 * priors.len());
    for (a, p) in priors.iter().enumerate() {
        let (l0, l1) = (logits[2 * a], logits[2 * a + 1]);
        let m = l0.max(l1);
        let (e0, e1) = ((l0 - m).exp(), (l1 - m).exp());
        scores.extend([e0 / (e0 + e1), e1 / (e0 + e1)]);
        let l = &locations[4 * a..4 * a + 4];
        let (cx, cy) = (l[0] * CENTER_VARIANCE * p[2] + p[0], l[1] * CENTER_VARIANCE * p[3] + p[1]);
        let (w, h) = ((l[2] * SIZE_VARIANCE).exp() * p[2], (l[3] * SIZE_VARIANCE).exp() * p[3]);
        boxes.extend([cx - w / 2.0, cy - h / 2.0, cx + w / 2.0, cy + h / 2.0]);
    }
    (scores, boxes)
}

/// The reference's post-processing of one image: anchors whose face probability (`scores`,
/// `[A·2]`) is above `threshold`, the `candidates` best of them through hard NMS (drop boxes
/// whose IoU with a kept one exceeds `iou`; at most `candidates / 2` kept), corners (`boxes`,
/// normalised, `[A·4]`) scaled to `width`×`height` pixels. Best first.
pub fn post_process(scores: &[f32], boxes: &[f32], width: f32, height: f32, threshold: f32, iou: f32, candidates: usize) -> Vec<Face> {
    let mut keep: Vec<usize> = (0..scores.len() / 2).filter(|&a| scores[2 * a + 1] > threshold).collect();
    keep.sort_by(|&a, &b| scores[2 * b + 1].total_cmp(&scores[2 * a + 1]));
    keep.truncate(candidates);
    let corner = |a: usize| [boxes[4 * a], boxes[4 * a + 1], boxes[4 * a + 2], boxes[4 * a + 3]];
    let area = |b: [f32; 4]| (b[2] - b[0]).max(0.0) * (b[3] - b[1]).max(0.0);
    let top_k = candidates / 2;
    let mut picked = Vec::new();
    while let Some((&best, rest)) = keep.split_first() {
        picked.push(best);
        if top_k > 0 && picked.len() == top_k {
            break;
        }
        let b = corner(best);
        keep = rest
            .iter()
            .copied()
            .filter(|&o| {
                let c = corner(o);
                let inter = area([b[0].max(c[0]), b[1].max(c[1]), b[2].min(c[2]), b[3].min(c[3])]);
                inter / (area(b) + area(c) - inter + 1e-5) <= iou
            })
            .collect();
    }
    picked
        .into_iter()
        .map(|a| {
            let b = corner(a);
            Face { x1: b[0] * width, y1: b[1] * height, x2: b[2] * width, y2: b[3] * height, score: scores[2 * a + 1] }
        })
        .collect()
}
