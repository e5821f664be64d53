//! Face-aware avatars: find the face in a photo, take a square crop around it, resize it to
//! N×N and stylise it with any method of the registry.
//!
//! **Crop rule.** The face box (the largest face found by the built-in detector,
//! [`crate::library::builtin::face_detector`], or a box the caller gives) is enlarged
//! [`MARGIN`]× (1.8) around its centre along its longer side, giving a square; the square is
//! shrunk to the image's shorter side when larger, then shifted (not shrunk further) so it lies
//! inside the image. With no face found (no box given and no detection above the reference's
//! 0.6 threshold), the crop is the centre square of side `min(W, H)`, and
//! [`Avatar::found`] says so. The crop is resized to N×N (Lanczos3) before stylisation.

use burn::tensor::Device;

use crate::error::{Error, Result};
use crate::image_io::Picture;
use crate::library::Loaded;
use crate::methods::{Control, Input, Method, Outcome, Params};
use crate::networks::face_detector::{Face, FaceDetector};

/// The default avatar side, in pixels.
pub const DEFAULT_SIZE: u32 = 512;
/// The largest avatar side accepted, in pixels.
pub const MAX_SIZE: u32 = 4096;
/// How much the face box is enlarged around its centre (along its longer side) to make the
/// square crop.
pub const MARGIN: f32 = 1.8;

/// A rectangle in pixels of the photo: top-left corner and size (may be fractional).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FaceBox {
    /// Left edge, pixels.
    pub x: f32,
    /// Top edge, pixels.
    pub y: f32,
    /// Width, pixels (> 0).
    pub w: f32,
    /// Height, pixels (> 0).
    pub h: f32,
}

impl FaceBox {
    /// A detection's box (corners to corner + size).
    pub fn from_face(f: &Face) -> Self {
        Self { x: f.x1, y: f.y1, w: f.x2 - f.x1, h: f.y2 - f.y1 }
    }

    /// Parses `x,y,w,h` (pixels; commas, optional spaces). Errors: [`Error::Param`] for anything
    /// else, or a width or height that is not positive.
    pub fn parse(text: &str) -> Result<Self> {
        let bad = || Error::Param(format!("a face box is `x,y,w,h` in pixels with w, h > 0, got `{text}`"));
        let v: Vec<f32> = text.split(',').map(|p| p.trim().parse::<f32>()).collect::<std::result::Result<_, _>>().map_err(|_| bad())?;
        match v.as_slice() {
            &[x, y, w, h] if [x, y, w, h].iter().all(|v| v.is_finite()) && w > 0.0 && h > 0.0 => Ok(Self { x, y, w, h }),
            _ => Err(bad()),
        }
    }

    /// Whether `self` lies inside `outer` (edges included, within `tol` pixels).
    pub fn within(&self, outer: &Crop, tol: f32) -> bool {
        self.x + tol >= outer.x as f32
            && self.y + tol >= outer.y as f32
            && self.x + self.w <= (outer.x + outer.side) as f32 + tol
            && self.y + self.h <= (outer.y + outer.side) as f32 + tol
    }
}

/// A square region of the photo in whole pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Crop {
    /// Left edge, pixels.
    pub x: u32,
    /// Top edge, pixels.
    pub y: u32,
    /// Side, pixels (≥ 1).
    pub side: u32,
}

impl Crop {
    /// The square around `face` by the crop rule (see the module): side `margin·max(w, h)`
    /// (at most `min(width, height)`, at least 1), centred on the face, moved inside the image.
    pub fn around(face: &FaceBox, width: u32, height: u32, margin: f32) -> Self {
        let short = width.min(height).max(1);
        let side = ((margin * face.w.max(face.h)).round() as i64).clamp(1, short as i64) as u32;
        let (cx, cy) = (face.x + face.w / 2.0, face.y + face.h / 2.0);
        let place = |c: f32, len: u32| ((c - side as f32 / 2.0).round() as i64).clamp(0, (len - side) as i64) as u32;
        Self { x: place(cx, width), y: place(cy, height), side }
    }

    /// The centre square of side `min(width, height)`.
    pub fn centre(width: u32, height: u32) -> Self {
        let side = width.min(height).max(1);
        Self { x: (width - side) / 2, y: (height - side) / 2, side }
    }

    /// Cuts the square out of `p` (alpha included).
    pub fn cut(&self, p: &Picture) -> Picture {
        let (w, n, s) = (p.width as usize, p.pixels(), self.side as usize);
        let (x0, y0) = (self.x as usize, self.y as usize);
        let mut rgb = Vec::with_capacity(3 * s * s);
        for c in 0..3 {
            for y in y0..y0 + s {
                rgb.extend_from_slice(&p.rgb[c * n + y * w + x0..c * n + y * w + x0 + s]);
            }
        }
        let alpha = p.alpha.as_ref().map(|a| (y0..y0 + s).flat_map(|y| a[y * w + x0..y * w + x0 + s].iter().copied()).collect());
        Picture { width: self.side, height: self.side, rgb, alpha }
    }
}

/// Where the face box came from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FaceSource {
    /// The detector found it, with this face probability (0..1).
    Detected(f32),
    /// The caller gave it.
    Given,
    /// No face was found: the centre square was used.
    NotFound,
}

/// How to make an avatar.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Options {
    /// The avatar's side N (pixels, 1..=[`MAX_SIZE`]); default [`DEFAULT_SIZE`].
    pub size: u32,
    /// A face box to use instead of detecting one.
    pub face: Option<FaceBox>,
    /// The enlargement of the face box; default [`MARGIN`].
    pub margin: f32,
}

impl Default for Options {
    fn default() -> Self {
        Self { size: DEFAULT_SIZE, face: None, margin: MARGIN }
    }
}

/// The face and crop chosen for a photo, before stylisation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Framing {
    /// The face box used, in the photo's pixels (`None` when none was found).
    pub face: Option<FaceBox>,
    /// Where it came from.
    pub source: FaceSource,
    /// The square crop, in the photo's pixels.
    pub crop: Crop,
}

impl Framing {
    /// Whether a face framed the crop (found or given); `false` means the centre was used.
    pub fn found(&self) -> bool {
        self.source != FaceSource::NotFound
    }

    /// The framing of a `width`×`height` photo whose detected faces are `faces`: the largest
    /// face by the crop rule, or the centre square when there is none.
    pub fn of_faces(faces: &[Face], width: u32, height: u32, margin: f32) -> Self {
        let largest = faces.iter().filter(|f| f.area() > 0.0).max_by(|a, b| a.area().total_cmp(&b.area()));
        match largest {
            Some(f) => {
                let b = FaceBox::from_face(f);
                Framing { face: Some(b), source: FaceSource::Detected(f.score), crop: Crop::around(&b, width, height, margin) }
            }
            None => Framing { face: None, source: FaceSource::NotFound, crop: Crop::centre(width, height) },
        }
    }

    /// One line for people: the face box and its source, or that none was found.
    pub fn describe(&self) -> String {
        let c = self.crop;
        let crop = format!("crop {}x{} at {},{}", c.side, c.side, c.x, c.y);
        match (self.face, self.source) {
            (Some(f), FaceSource::Detected(score)) => {
                format!("face at {:.0},{:.0} size {:.0}x{:.0} (score {score:.2}); {crop}", f.x, f.y, f.w, f.h)
            }
            (Some(f), _) => format!("face box given: {:.0},{:.0} size {:.0}x{:.0}; {crop}", f.x, f.y, f.w, f.h),
            (None, _) => format!("no face found; used the centre square, {crop}"),
        }
    }
}

/// An avatar and how it was framed.
#[derive(Debug, Clone)]
pub struct Avatar {
    /// The stylised N×N picture (RGB 0..255).
    pub picture: Picture,
    /// The face and crop used.
    pub framing: Framing,
}

impl Avatar {
    /// Whether a face framed the crop ([`Framing::found`]).
    pub fn found(&self) -> bool {
        self.framing.found()
    }
}

/// Chooses the face (`given`, else the largest detection of `detector`) and the crop for a
/// `picture` by the crop rule. Errors: `given` outside the image; backend errors.
pub fn frame(picture: &Picture, given: Option<FaceBox>, margin: f32, detector: &FaceDetector, device: &Device) -> Result<Framing> {
    let (w, h) = (picture.width, picture.height);
    if let Some(b) = given {
        if b.x + b.w <= 0.0 || b.y + b.h <= 0.0 || b.x >= w as f32 || b.y >= h as f32 {
            return Err(Error::Param(format!("the face box {},{},{},{} lies outside the {w}x{h} image", b.x, b.y, b.w, b.h)));
        }
        return Ok(Framing { face: Some(b), source: FaceSource::Given, crop: Crop::around(&b, w, h, margin) });
    }
    Ok(Framing::of_faces(&detector.detect_faces(picture, device)?, w, h, margin))
}

/// Makes an avatar: frames the face ([`frame`]), cuts the square, resizes it to
/// `options.size`² and passes it to `stylise`, which returns the styled picture (resized back to
/// N×N when it is not). Errors: a size out of range, [`frame`]'s, and `stylise`'s.
pub fn make(
    picture: &Picture,
    options: &Options,
    detector: &FaceDetector,
    device: &Device,
    stylise: impl FnOnce(Picture) -> Result<Picture>,
) -> Result<Avatar> {
    if !(1..=MAX_SIZE).contains(&options.size) {
        return Err(Error::Param(format!("the avatar size must be within 1..{MAX_SIZE}, got {}", options.size)));
    }
    if !(options.margin.is_finite() && options.margin > 0.0) {
        return Err(Error::Param(format!("the face margin must be positive, got {}", options.margin)));
    }
    let framing = frame(picture, options.face, options.margin, detector, device)?;
    let n = options.size;
    let square = framing.crop.cut(picture).resize(n, n);
    let styled = stylise(square)?;
    let picture = if (styled.width, styled.height) != (n, n) { styled.resize(n, n) } else { styled };
    Ok(Avatar { picture, framing })
}

/// [`make`] with a registry method: `method.run(model, input, params)` on the N×N crop of
/// `input.content` (the photo), the crop taking the content's place (the styles and anything
/// else the method reads come from `input`). Returns the method's outcome, its picture the N×N
/// avatar, and how the photo was framed. Errors: as [`make`] and the method's.
#[allow(clippy::too_many_arguments)]
pub fn make_with_method(
    input: &Input,
    options: &Options,
    detector: &FaceDetector,
    method: &dyn Method,
    model: &Loaded,
    params: &Params,
    device: &Device,
    control: &mut Control<'_>,
) -> Result<(Outcome, Framing)> {
    // What the run said besides its picture (`make` runs the closure once).
    let mut rest = Outcome::done(Picture::from_planes(1, 1, vec![0.0; 3]));
    let made = make(&input.content, options, detector, device, |square| {
        rest = method.run(model, &Input { content: square, ..input.clone() }, params, device, control)?;
        Ok(std::mem::replace(&mut rest.picture, Picture::from_planes(1, 1, vec![0.0; 3])))
    })?;
    Ok((Outcome { picture: made.picture, ..rest }, made.framing))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crops_are_square_inside_and_centred_when_they_can_be() {
        let f = FaceBox { x: 100.0, y: 100.0, w: 50.0, h: 80.0 };
        let c = Crop::around(&f, 400, 300, 1.8);
        assert_eq!(c, Crop { x: 53, y: 68, side: 144 });
        assert!(f.within(&c, 0.0));
        // Near the edge: moved inside, same side.
        let c = Crop::around(&FaceBox { x: 0.0, y: 250.0, w: 40.0, h: 40.0 }, 400, 300, 1.8);
        assert_eq!(c, Crop { x: 0, y: 228, side: 72 });
        // Larger than the image: the shorter side.
        let c = Crop::around(&FaceBox { x: 10.0, y: 10.0, w: 380.0, h: 280.0 }, 400, 300, 1.8);
        assert_eq!(c, Crop { x: 50, y: 0, side: 300 });
        assert_eq!(Crop::centre(400, 300), Crop { x: 50, y: 0, side: 300 });
        assert_eq!(Crop::centre(300, 400), Crop { x: 0, y: 50, side: 300 });
    }

    #[test]
    fn boxes_parse() {
        assert_eq!(FaceBox::parse("1, 2,3.5,4").unwrap(), FaceBox { x: 1.0, y: 2.0, w: 3.5, h: 4.0 });
        for bad in ["1,2,3", "1,2,0,4", "a,b,c,d", "1,2,3,4,5"] {
            assert!(FaceBox::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cut_takes_the_square() {
        let rgb: Vec<f32> = (0..3 * 4 * 3).map(|v| v as f32).collect();
        let p = Picture::from_planes(4, 3, rgb);
        let c = Crop { x: 1, y: 1, side: 2 }.cut(&p);
        assert_eq!((c.width, c.height), (2, 2));
        assert_eq!(&c.rgb[..4], &[5.0, 6.0, 9.0, 10.0]);
        assert_eq!(&c.rgb[4..8], &[17.0, 18.0, 21.0, 22.0]);
    }
}
