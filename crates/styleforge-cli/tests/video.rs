//! Video files through `styleforge stylize`: clips generated with FFmpeg from the shared photos
//! (a known pan, an audio track, rotation metadata) go in; the tests check what comes out with
//! `ffprobe` and by decoding frames: frame count, frame rate, duration, audio, rotation and size
//! kept, frames really stylised (each one matches the still stylisation of its input frame),
//! the consistent mode's warping error bounded against independent frames, Ctrl-C and bad input
//! leaving no output. FFmpeg comes from `scripts/install-ffmpeg.sh`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use styleforge_core::video::{self, Tools, VideoInfo};

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_styleforge"));
    c.env("STYLEFORGE_HOME", std::env::temp_dir().join("styleforge-video-test-home"));
    c
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn tools() -> Tools {
    Tools::find().expect("FFmpeg is installed (scripts/install-ffmpeg.sh)")
}

fn ffmpeg(args: &[&str]) {
    let out = Command::new(&tools().ffmpeg).args(["-v", "error", "-nostdin", "-y"]).args(args).output().unwrap();
    assert!(out.status.success(), "ffmpeg {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A clip panning right over a shared photo by `step` pixels a frame: `frames` frames of
/// `w`×`h` at 25 fps with a 440 Hz AAC track, H.264 in MP4; with `rotation` metadata when not 0.
fn pan_clip(dir: &Path, name: &str, w: u32, h: u32, frames: u32, step: u32, rotation: u32) -> PathBuf {
    let photo = styleforge_core::shared::path("data/content/lighthouse_kodim21.jpg");
    let plain = dir.join(format!("{name}.plain.mp4"));
    let secs = format!("{}", frames as f64 / 25.0);
    ffmpeg(&[
        "-loop", "1", "-framerate", "25", "-i", s(&photo),
        "-f", "lavfi", "-i", &format!("sine=frequency=440:sample_rate=44100:duration={secs}"),
        "-vf", &format!("crop={w}:{h}:x='{step}*n':y=60,format=yuv420p"),
        "-frames:v", &frames.to_string(), "-c:v", "libx264", "-preset", "fast", "-crf", "12",
        "-c:a", "aac", "-t", &secs, s(&plain),
    ]);
    if rotation == 0 {
        return plain;
    }
    let rotated = dir.join(format!("{name}.mp4"));
    ffmpeg(&["-i", s(&plain), "-c", "copy", "-metadata:s:v:0", &format!("rotate={rotation}"), s(&rotated)]);
    rotated
}

fn probe(p: &Path) -> VideoInfo {
    video::probe(&tools(), p).unwrap()
}

/// Every frame of a clip, decoded upright as 8-bit RGB.
fn frames(p: &Path) -> Vec<image::RgbImage> {
    let info = probe(p);
    let (w, h) = info.display_size();
    let out = Command::new(&tools().ffmpeg)
        .args(["-v", "error", "-nostdin", "-i", s(p), "-vsync", "passthrough", "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"])
        .output()
        .unwrap();
    assert!(out.status.success());
    out.stdout.chunks_exact((w * h * 3) as usize).map(|c| image::RgbImage::from_raw(w, h, c.to_vec()).unwrap()).collect()
}

fn mean_abs_diff(a: &image::RgbImage, b: &image::RgbImage) -> f64 {
    assert_eq!(a.dimensions(), b.dimensions());
    a.as_raw().iter().zip(b.as_raw()).map(|(x, y)| (*x as f64 - *y as f64).abs()).sum::<f64>() / a.as_raw().len() as f64
}

fn stylize(args: &[&str]) -> Output {
    bin().arg("stylize").args(args).output().unwrap()
}

fn ok(out: &Output) {
    assert!(out.status.success(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
}

fn leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with(".styleforge-"))
        .collect()
}

#[test]
fn a_clip_keeps_its_frames_rate_duration_audio_and_rotation() {
    let dir = tempfile::tempdir().unwrap();
    // Stored 192×108, rotated: displayed 108×192.
    let clip = pan_clip(dir.path(), "pan", 192, 108, 30, 2, 90);
    let source = probe(&clip);
    assert_eq!((source.rotation, source.display_size()), (90, (108, 192)));

    let out = dir.path().join("out.mp4");
    let run = stylize(&[s(&clip), "-o", s(&out), "--model", "cartoon-paprika"]);
    ok(&run);
    let made = probe(&out);
    assert_eq!((made.width, made.height, made.rotation), (source.width, source.height, source.rotation), "stored size and rotation");
    assert_eq!(made.frames, source.frames, "frame count");
    assert_eq!(made.frame_rate, source.frame_rate, "frame rate");
    assert!((made.duration - source.duration).abs() < 0.05, "duration {} vs {}", made.duration, source.duration);
    assert_eq!(made.video_codec, "h264");
    assert_eq!(made.audio_codec.as_deref(), Some("aac"), "audio copied");
    assert_eq!(made.audio_sample_rate, source.audio_sample_rate);
    assert!(leftovers(dir.path()).is_empty(), "no temporary files: {:?}", leftovers(dir.path()));

    // Each frame is its input frame stylised, upright: the first frame (nothing to follow yet)
    // matches the still stylisation of the decoded first input frame up to H.264's loss.
    let inputs = frames(&clip);
    let outputs = frames(&out);
    assert_eq!((inputs.len(), outputs.len()), (30, 30));
    let first = dir.path().join("first.png");
    inputs[0].save(&first).unwrap();
    let still = dir.path().join("first.styled.png");
    ok(&stylize(&[s(&first), "-o", s(&still), "--model", "cartoon-paprika"]));
    let still = image::open(&still).unwrap().to_rgb8();
    let same = mean_abs_diff(&outputs[0], &still);
    let changed = mean_abs_diff(&outputs[0], &inputs[0]);
    // Turned the wrong way (upside down), the frame would not match.
    let flipped = mean_abs_diff(&image::imageops::rotate180(&outputs[0]), &still);
    eprintln!("first frame: {same:.2}/255 from its still stylisation, {changed:.2} from the input, {flipped:.2} upside down");
    assert!(same < 5.0, "first frame vs its still stylisation: {same:.2}/255");
    assert!(changed > 3.0 * same && flipped > 3.0 * same, "the frame is stylised and upright: {changed:.2} from the input, {flipped:.2} upside down, {same:.2} from the still");
}

#[test]
fn webm_out_has_vp9_and_opus_and_the_consistent_mode_halves_the_warping_error() {
    let dir = tempfile::tempdir().unwrap();
    let (w, h, step, n) = (160u32, 96u32, 2u32, 16u32);
    let clip = pan_clip(dir.path(), "pan", w, h, n, step, 0);
    let consistent = dir.path().join("consistent.webm");
    let independent = dir.path().join("independent.webm");
    ok(&stylize(&[s(&clip), "-o", s(&consistent), "--model", "cartoon-paprika"]));
    ok(&stylize(&[s(&clip), "-o", s(&independent), "--model", "cartoon-paprika", "--temporal-weight", "0"]));
    let made = probe(&consistent);
    assert_eq!((made.video_codec.as_str(), made.audio_codec.as_deref()), ("vp9", Some("opus")));
    assert_eq!((made.width, made.height, made.frames), (w, h, n as u64));

    // The camera pans right by `step` px a frame, so frame k at x equals frame k-1 at x + step;
    // the last `step` columns are newly revealed (occluded in the previous frame).
    let warping_error = |p: &Path| {
        let f = frames(p);
        let mut sum = 0.0;
        let mut count = 0.0;
        for k in 1..f.len() {
            for y in 0..h {
                for x in 0..w - step {
                    let (a, b) = (f[k].get_pixel(x, y), f[k - 1].get_pixel(x + step, y));
                    sum += (0..3).map(|c| (a[c] as f64 - b[c] as f64).abs()).sum::<f64>() / 3.0;
                    count += 1.0;
                }
            }
        }
        sum / count
    };
    let (e_consistent, e_independent) = (warping_error(&consistent), warping_error(&independent));
    eprintln!("warping error on a {step} px/frame pan: consistent {e_consistent:.2}, independent {e_independent:.2}");
    assert!(e_consistent <= 0.5 * e_independent, "consistent {e_consistent:.2} vs independent {e_independent:.2}");
    // The look is unchanged: frame by frame, the consistent output stays near the independent one.
    let look: f64 = frames(&consistent).iter().zip(frames(&independent)).map(|(a, b)| mean_abs_diff(a, &b)).sum::<f64>() / n as f64;
    assert!(look < 12.0, "mean difference to the independent frames: {look:.2}/255");
}

#[test]
fn ctrl_c_and_bad_input_leave_no_output() {
    let dir = tempfile::tempdir().unwrap();
    let clip = pan_clip(dir.path(), "long", 320, 180, 250, 1, 0);
    let out = dir.path().join("out.mp4");
    let child = bin()
        .args(["stylize", s(&clip), "-o", s(&out), "--model", "cartoon-paprika"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_secs(4));
    let killed = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(killed.success());
    let done = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&done.stderr);
    assert!(!done.status.success() && stderr.contains("interrupted"), "stderr: {stderr}");
    assert!(!out.exists(), "no output after Ctrl-C");
    assert!(leftovers(dir.path()).is_empty(), "no temporary files: {:?}", leftovers(dir.path()));

    let one_line_error = |o: &Output, needle: &str| {
        let e = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "stderr: {e}");
        assert_eq!(e.trim_end().lines().count(), 1, "one line: {e}");
        assert!(e.contains(needle), "`{needle}` in: {e}");
        assert!(!e.contains("panicked"));
    };
    let small = pan_clip(dir.path(), "small", 64, 48, 5, 1, 0);
    // A corrupt container.
    let corrupt = dir.path().join("corrupt.mp4");
    let mut bytes = std::fs::read(&small).unwrap();
    bytes.truncate(bytes.len() / 3);
    bytes[40..200].fill(0xAB);
    std::fs::write(&corrupt, &bytes).unwrap();
    one_line_error(&stylize(&[s(&corrupt), "-o", s(&out), "--model", "cartoon-paprika"]), "corrupt.mp4");
    // An image format for a video, a video for an image format.
    one_line_error(&stylize(&[s(&small), "-o", s(&dir.path().join("x.png")), "--model", "cartoon-paprika"]), "MP4");
    // Over the frame limit, checked from the container.
    one_line_error(&stylize(&[s(&small), "-o", s(&out), "--model", "cartoon-paprika", "--max-frames", "3"]), "over the limit of 3");
    // The optimisation method does not run on sequences.
    one_line_error(&stylize(&[s(&small), "-o", s(&out), "--method", "gatys", "--style", "starry-night"]), "one image at a time");
    // No FFmpeg.
    let no_ffmpeg = bin()
        .env("STYLEFORGE_FFMPEG", dir.path().join("no-such-ffmpeg"))
        .args(["stylize", s(&small), "-o", s(&out), "--model", "cartoon-paprika"])
        .output()
        .unwrap();
    one_line_error(&no_ffmpeg, "install-ffmpeg.sh");
    assert!(!out.exists());
    assert!(leftovers(dir.path()).is_empty(), "no temporary files: {:?}", leftovers(dir.path()));
}

#[test]
fn an_animated_webp_keeps_its_frames_timing_loop_count_and_size() {
    use styleforge_core::animation::{AnimationFormat, Frames, Writer, probe};
    let dir = tempfile::tempdir().unwrap();
    let photo = styleforge_core::image_io::read(&styleforge_core::shared::path("data/content/small/cat_chelsea_256.jpg"), 1 << 24).unwrap();
    let delays = [(80, 1), (120, 1), (200, 1), (40, 1)];
    let mut w = Writer::new(AnimationFormat::WebP, 96, 72, 3, None).unwrap();
    for (k, d) in delays.iter().enumerate() {
        w.push(&photo.crop(20 + 4 * k as u32, 30, 96, 72), *d).unwrap();
    }
    let input = dir.path().join("sticker.webp");
    std::fs::write(&input, w.finish().unwrap()).unwrap();
    let out = dir.path().join("sticker_out.webp");
    ok(&stylize(&[s(&input), "-o", s(&out), "--style", "great-wave"]));
    let bytes = std::fs::read(&out).unwrap();
    let info = probe(&bytes).unwrap().expect("an animation");
    assert_eq!((info.format, info.width, info.height, info.frames, info.loop_count), (AnimationFormat::WebP, 96, 72, Some(4), 3));
    let frames: Vec<_> = Frames::open(&bytes, Default::default()).unwrap().map(|f| f.unwrap()).collect();
    let got: Vec<u32> = frames.iter().map(|f| f.delay_ms()).collect();
    assert_eq!(got, vec![80, 120, 200, 40], "frame delays");
    // Stylised: far from the input frames.
    let first = Frames::open(&std::fs::read(&input).unwrap(), Default::default()).unwrap().next().unwrap().unwrap().picture;
    let diff: f32 = first.rgb.iter().zip(&frames[0].picture.rgb).map(|(a, b)| (a - b).abs()).sum::<f32>() / first.rgb.len() as f32;
    assert!(diff > 15.0, "the frames are stylised: {diff:.1}");
}

#[test]
fn odd_sizes_folder_batches_and_file_modes() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let photo = styleforge_core::shared::path("data/content/lighthouse_kodim21.jpg");
    // 161×97: VP9 keeps any size; H.264 (4:2:0) repeats the edge pixels to 162×98.
    let odd = dir.path().join("odd.webm");
    ffmpeg(&["-loop", "1", "-framerate", "10", "-i", s(&photo), "-vf", "crop=322:194:0:0,scale=161:97", "-frames:v", "4", "-c:v", "libvpx-vp9", s(&odd)]);
    let (webm, mp4) = (dir.path().join("odd_out.webm"), dir.path().join("odd_out.mp4"));
    ok(&stylize(&[s(&odd), "-o", s(&webm), "--model", "cartoon-paprika"]));
    ok(&stylize(&[s(&odd), "-o", s(&mp4), "--model", "cartoon-paprika"]));
    assert_eq!((probe(&webm).width, probe(&webm).height), (161, 97));
    assert_eq!((probe(&mp4).width, probe(&mp4).height), (162, 98));
    let f = &frames(&mp4)[0];
    let edge: f64 = (0..97).map(|y| (0..3).map(|c| (f.get_pixel(161, y)[c] as f64 - f.get_pixel(160, y)[c] as f64).abs()).sum::<f64>()).sum::<f64>() / (97.0 * 3.0);
    assert!(edge < 6.0, "the added column repeats its neighbour (no black stripe): {edge:.1}");
    // Outputs take the usual mode, like images.
    let mode = std::fs::metadata(&mp4).unwrap().permissions().mode() & 0o777;
    let png_mode = {
        let png = dir.path().join("still.png");
        ok(&stylize(&[s(&photo), "-o", s(&png), "--model", "cartoon-paprika", "--max-size", "64"]));
        std::fs::metadata(&png).unwrap().permissions().mode() & 0o777
    };
    assert_eq!(mode, png_mode, "a video is written with the same mode as an image");

    // A folder of videos: each stays a video (AVI and MOV become MP4, Matroska WebM).
    let folder = dir.path().join("clips");
    std::fs::create_dir(&folder).unwrap();
    for (name, codec) in [("a.avi", "mpeg4"), ("b.mkv", "libvpx-vp9"), ("c.mov", "libx264")] {
        ffmpeg(&["-loop", "1", "-framerate", "10", "-i", s(&photo), "-vf", "crop=64:48:0:0", "-frames:v", "3", "-c:v", codec, "-pix_fmt", "yuv420p", s(&folder.join(name))]);
    }
    let outs = dir.path().join("styled");
    ok(&stylize(&[s(&folder), "-o", s(&outs), "--model", "cartoon-paprika"]));
    let mut names: Vec<String> = std::fs::read_dir(&outs).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    names.sort();
    assert_eq!(names, ["a.mp4", "b.webm", "c.mp4"]);

    // An output under a file: the error names the output and says why, never a temporary file.
    let blocker = dir.path().join("file.mp4");
    std::fs::write(&blocker, b"x").unwrap();
    let o = stylize(&[s(&odd), "-o", s(&blocker.join("x.mp4")), "--model", "cartoon-paprika"]);
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && e.contains("is a file, not a folder") && !e.contains(".styleforge-"), "{e}");
}
