//! Video files in and out through the FFmpeg programs (`ffprobe`, `ffmpeg`) over pipes.
//!
//! [`probe`] reads the container (size, rotation, frame rate, duration, frame count, audio)
//! without decoding a frame, so limits are checked first. [`stylize_video`] then streams: one
//! `ffmpeg` decodes the video stream to raw RGB frames on a pipe, each frame goes through a
//! [`FrameStylizer`], and a second `ffmpeg` encodes the stylised frames from a pipe (H.264 in MP4
//! or VP9 in WebM). A last, cheap `ffmpeg` run muxes that video with the source's audio (copied
//! when the container takes it, else re-encoded), its metadata and its rotation. Memory holds
//! a few frames whatever the clip's length. Everything is written to temporary files beside the
//! output and renamed into place at the end: an error or a cancel leaves nothing half-written.
//!
//! Why the programs and not bindings: the FFmpeg bindings crates build against the system's
//! libav* headers of one major version (and bindgen, so libclang), which ties the build to the
//! machine's FFmpeg; the programs are one package on every system, their command-line interface
//! is stable across versions, a crash in a decoder cannot take the service down, and FFmpeg's
//! licence stays out of our binary. The cost, copying raw frames through a pipe, is small beside
//! stylising them (about 1 ms per 1280×720 frame).
//!
//! Frames are stylised upright (as the clip is displayed: FFmpeg applies the rotation when
//! decoding) and turned back to the stored orientation before encoding, so the output carries
//! the source's rotation metadata and stored size.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::{Error, Result};
use crate::image_io::Picture;
use crate::sequence::FrameStylizer;

/// The FFmpeg programs: `STYLEFORGE_FFMPEG` / `STYLEFORGE_FFPROBE`, else `ffmpeg` / `ffprobe` on
/// `PATH` (`scripts/install-ffmpeg.sh` installs them).
#[derive(Debug, Clone)]
pub struct Tools {
    /// The `ffmpeg` program.
    pub ffmpeg: PathBuf,
    /// The `ffprobe` program.
    pub ffprobe: PathBuf,
}

impl Tools {
    /// The programs named by the environment (or the defaults), checked to run.
    ///
    /// # Errors
    /// [`Error::Tool`] when either does not run, with how to install them.
    pub fn find() -> Result<Self> {
        let pick = |var: &str, default: &str| std::env::var_os(var).map(PathBuf::from).unwrap_or_else(|| PathBuf::from(default));
        let tools = Self { ffmpeg: pick("STYLEFORGE_FFMPEG", "ffmpeg"), ffprobe: pick("STYLEFORGE_FFPROBE", "ffprobe") };
        for (program, var) in [(&tools.ffmpeg, "STYLEFORGE_FFMPEG"), (&tools.ffprobe, "STYLEFORGE_FFPROBE")] {
            let ok = Command::new(program).arg("-version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success());
            if !ok {
                return Err(Error::Tool(format!(
                    "video files need FFmpeg, and `{}` does not run: install FFmpeg (scripts/install-ffmpeg.sh, or your package manager) or set {var}",
                    program.display()
                )));
            }
        }
        Ok(tools)
    }
}

/// The video containers styleforge writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoFormat {
    /// MP4 with H.264 video (yuv420p, CRF 18) and AAC audio.
    Mp4,
    /// WebM with VP9 video (CRF 31) and Opus audio.
    WebM,
}

impl VideoFormat {
    /// `mp4` (also `m4v`, `mov`) or `webm` (also `mkv`: written as WebM), case-insensitive.
    pub fn from_extension(ext: &str) -> Option<Self> {
        match ext.to_ascii_lowercase().as_str() {
            "mp4" | "m4v" | "mov" => Some(Self::Mp4),
            "webm" | "mkv" => Some(Self::WebM),
            _ => None,
        }
    }

    /// The usual extension.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Mp4 => "mp4",
            Self::WebM => "webm",
        }
    }

    /// The MIME type.
    pub fn mime(self) -> &'static str {
        match self {
            Self::Mp4 => "video/mp4",
            Self::WebM => "video/webm",
        }
    }

    fn muxer(self) -> &'static str {
        match self {
            Self::Mp4 => "mp4",
            Self::WebM => "webm",
        }
    }
}

/// File-name extensions read as video: mp4, m4v, mov, webm, mkv, avi (case-insensitive).
pub fn is_video_name(path: &Path) -> bool {
    path.extension().and_then(|e| e.to_str()).is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "mp4" | "m4v" | "mov" | "webm" | "mkv" | "avi"))
}

/// Whether the first bytes of a file look like a video container: ISO media (MP4, MOV: an
/// `ftyp` box), Matroska / WebM (EBML), AVI (RIFF…AVI).
pub fn sniff(head: &[u8]) -> bool {
    let at = |i: usize, s: &[u8]| head.get(i..i + s.len()) == Some(s);
    (at(4, b"ftyp") && !at(8, b"avif") && !at(8, b"heic") && !at(8, b"mif1")) || at(0, &[0x1A, 0x45, 0xDF, 0xA3]) || (at(0, b"RIFF") && at(8, b"AVI "))
}

/// What [`probe`] read from a container.
#[derive(Debug, Clone, PartialEq)]
pub struct VideoInfo {
    /// Stored frame width in pixels (before rotation).
    pub width: u32,
    /// Stored frame height in pixels.
    pub height: u32,
    /// Rotation metadata: 0, 90, 180 or 270, in the sense of the MP4 `rotate` tag.
    pub rotation: u32,
    /// Frame rate as a fraction (numerator, denominator): the average rate, else the stream's
    /// base rate.
    pub frame_rate: (u32, u32),
    /// Duration in seconds (the container's, else the video stream's).
    pub duration: f64,
    /// Frames the container declares, else duration × frame rate rounded.
    pub frames: u64,
    /// Video codec name (FFmpeg's: `h264`, `vp9`, …).
    pub video_codec: String,
    /// Audio codec name of the first audio stream, if there is one.
    pub audio_codec: Option<String>,
    /// Audio sample rate (Hz) of that stream.
    pub audio_sample_rate: Option<u32>,
}

impl VideoInfo {
    /// Size as displayed (width and height swapped for 90° and 270°).
    pub fn display_size(&self) -> (u32, u32) {
        if self.rotation % 180 == 90 { (self.height, self.width) } else { (self.width, self.height) }
    }

    /// Frames per second.
    pub fn fps(&self) -> f64 {
        self.frame_rate.0 as f64 / self.frame_rate.1.max(1) as f64
    }
}

/// Limits checked from the container before anything is decoded.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VideoLimits {
    /// Most pixels per frame.
    pub max_pixels: u64,
    /// Most frames.
    pub max_frames: u64,
    /// Longest duration in seconds.
    pub max_duration: f64,
}

impl Default for VideoLimits {
    /// 8.3 megapixels (4K UHD) per frame, 36 000 frames, one hour.
    fn default() -> Self {
        Self { max_pixels: 3840 * 2160, max_frames: 36_000, max_duration: 3600.0 }
    }
}

impl VideoLimits {
    /// Checks a probed clip.
    ///
    /// # Errors
    /// [`Error::TooLarge`] for frames over `max_pixels`, [`Error::Video`] for too many frames or
    /// too long a clip.
    pub fn check(&self, info: &VideoInfo) -> Result<()> {
        let pixels = info.width as u64 * info.height as u64;
        if pixels > self.max_pixels {
            return Err(Error::TooLarge { width: info.width, height: info.height, pixels, limit: self.max_pixels });
        }
        if info.frames > self.max_frames {
            return Err(Error::Video(format!("the video has {} frames, over the limit of {}", info.frames, self.max_frames)));
        }
        if info.duration > self.max_duration {
            return Err(Error::Video(format!("the video lasts {:.2} s, over the limit of {} s", info.duration, self.max_duration)));
        }
        Ok(())
    }
}

/// `file:` URL for a path, so that names starting with `-` or holding `:` stay file names.
fn file_arg(path: &Path) -> std::ffi::OsString {
    let mut s = std::ffi::OsString::from("file:");
    s.push(path.as_os_str());
    s
}

/// A child process killed and reaped when dropped (an error or a cancel on our side), started
/// in its own process group so that Ctrl-C in a terminal reaches us, not it.
struct Running {
    child: Child,
    stderr: Option<std::thread::JoinHandle<String>>,
    what: &'static str,
}

impl Running {
    fn spawn(mut cmd: Command, what: &'static str) -> Result<Self> {
        #[cfg(unix)]
        {
            use std::os::unix::process::CommandExt;
            cmd.process_group(0);
        }
        cmd.stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(|e| Error::Tool(format!("starting {what}: {e}")))?;
        let stderr = child.stderr.take().map(|s| std::thread::spawn(move || tail_of(s)));
        Ok(Self { child, stderr, what })
    }

    /// Waits for a clean exit.
    fn finish(mut self) -> Result<()> {
        let status = self.child.wait().map_err(|e| Error::Tool(format!("{}: {e}", self.what)))?;
        let log = self.stderr.take().and_then(|h| h.join().ok()).unwrap_or_default();
        if status.success() { Ok(()) } else { Err(self.failure(&log)) }
    }

    fn failure(&self, log: &str) -> Error {
        Error::Video(format!("{} failed: {}", self.what, last_line(log)))
    }

    /// The error to report after a pipe broke: the program's own message when it has exited.
    fn broken(&mut self) -> Error {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let log = self.stderr.take().and_then(|h| h.join().ok()).unwrap_or_default();
        self.failure(&log)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// The last non-empty line of a program's error output, without the `file:PATH: ` FFmpeg puts
/// before messages about an input (the caller names the file).
fn last_line(log: &str) -> &str {
    let line = log
        .lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty() && !l.starts_with("Last message repeated"))
        .unwrap_or("no message");
    match line.strip_prefix("file:").and_then(|rest| rest.split_once(": ")) {
        Some((_, message)) => message,
        None => line,
    }
}

/// The last 8 KiB of a program's error output.
fn tail_of(mut s: ChildStderr) -> String {
    let mut all = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = s.read(&mut buf) {
        if n == 0 {
            break;
        }
        all.extend_from_slice(&buf[..n]);
        if all.len() > 16384 {
            all.drain(..all.len() - 8192);
        }
    }
    String::from_utf8_lossy(&all).into_owned()
}

/// Reads a video file's container information with `ffprobe` (no frame is decoded).
///
/// # Errors
/// [`Error::Video`] for a file FFmpeg cannot read or one without a video stream,
/// [`Error::Io`] for a missing file, [`Error::Tool`] when `ffprobe` does not run.
pub fn probe(tools: &Tools, path: &Path) -> Result<VideoInfo> {
    std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    let out = Command::new(&tools.ffprobe)
        .args(["-v", "error", "-print_format", "json", "-show_format", "-show_streams", "-i"])
        .arg(file_arg(path))
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Error::Tool(format!("starting ffprobe: {e}")))?;
    if !out.status.success() {
        let msg = String::from_utf8_lossy(&out.stderr);
        return Err(Error::Video(format!("not a video FFmpeg can read ({})", last_line(&msg))));
    }
    parse_probe(&out.stdout)
}

/// [`probe`]'s reading of `ffprobe -print_format json -show_format -show_streams` output.
fn parse_probe(json: &[u8]) -> Result<VideoInfo> {
    use serde_json::Value;
    let v: Value = serde_json::from_slice(json).map_err(|e| Error::Video(format!("ffprobe output: {e}")))?;
    let streams = v["streams"].as_array().cloned().unwrap_or_default();
    let is = |s: &Value, kind: &str| s["codec_type"].as_str() == Some(kind);
    let video = streams
        .iter()
        .find(|s| is(s, "video") && s["disposition"]["attached_pic"].as_i64() != Some(1))
        .ok_or_else(|| Error::Video("the file has no video stream".into()))?;
    let audio = streams.iter().find(|s| is(s, "audio"));
    let num = |x: &Value| x.as_str().and_then(|s| s.parse::<f64>().ok()).or_else(|| x.as_f64());
    let ratio = |x: &Value| {
        let (n, d) = x.as_str()?.split_once('/')?;
        let (n, d) = (n.parse::<u32>().ok()?, d.parse::<u32>().ok()?);
        (n > 0 && d > 0).then_some((n, d))
    };
    let width = video["width"].as_u64().unwrap_or(0) as u32;
    let height = video["height"].as_u64().unwrap_or(0) as u32;
    if width == 0 || height == 0 {
        return Err(Error::Video("the video stream has no frame size".into()));
    }
    let frame_rate = ratio(&video["avg_frame_rate"])
        .or_else(|| ratio(&video["r_frame_rate"]))
        .filter(|&(n, d)| n as f64 / d as f64 <= 1000.0)
        .ok_or_else(|| Error::Video("the video stream has no frame rate".into()))?;
    let duration = num(&v["format"]["duration"]).or_else(|| num(&video["duration"])).filter(|d| d.is_finite() && *d >= 0.0).unwrap_or(0.0);
    let frames = video["nb_frames"]
        .as_str()
        .and_then(|s| s.parse::<u64>().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(|| (duration * frame_rate.0 as f64 / frame_rate.1 as f64).round() as u64);
    let side_rotation = video["side_data_list"].as_array().and_then(|l| l.iter().find_map(|d| d["rotation"].as_f64()));
    let tag_rotation = num(&video["tags"]["rotate"]);
    let rotation = side_rotation.or(tag_rotation).map(|r| ((r / 90.0).round() as i64 * 90).rem_euclid(360) as u32).unwrap_or(0);
    Ok(VideoInfo {
        width,
        height,
        rotation,
        frame_rate,
        duration,
        frames,
        video_codec: video["codec_name"].as_str().unwrap_or("unknown").to_string(),
        audio_codec: audio.map(|a| a["codec_name"].as_str().unwrap_or("unknown").to_string()),
        audio_sample_rate: audio.and_then(|a| num(&a["sample_rate"])).map(|r| r as u32),
    })
}

/// Turns an upright (displayed) frame back to the stored orientation of a clip with rotation
/// `rotation` (the inverse of what FFmpeg applies when decoding).
pub fn to_stored(upright: &Picture, rotation: u32) -> Picture {
    let (uw, uh) = (upright.width as usize, upright.height as usize);
    // Stored size and, for each stored (x, y), the upright pixel it came from.
    let (sw, sh) = if rotation % 180 == 90 { (uh, uw) } else { (uw, uh) };
    let src = |x: usize, y: usize| -> usize {
        match rotation {
            90 => y + (sw - 1 - x) * uw,
            180 => (sw - 1 - x) + (sh - 1 - y) * uw,
            270 => (sh - 1 - y) + x * uw,
            _ => x + y * uw,
        }
    };
    if rotation == 0 {
        return upright.clone();
    }
    let n = uw * uh;
    let mut rgb = vec![0f32; 3 * n];
    for y in 0..sh {
        for x in 0..sw {
            let s = src(x, y);
            for c in 0..3 {
                rgb[c * n + y * sw + x] = upright.rgb[c * n + s];
            }
        }
    }
    Picture::from_planes(sw as u32, sh as u32, rgb)
}

/// Streams raw RGB frames out of `ffmpeg`.
struct Decoder {
    proc: Running,
    stdout: std::process::ChildStdout,
    width: u32,
    height: u32,
    buf: Vec<u8>,
}

impl Decoder {
    /// `width`×`height`: the displayed size.
    fn open(tools: &Tools, path: &Path, width: u32, height: u32) -> Result<Self> {
        let mut cmd = Command::new(&tools.ffmpeg);
        cmd.args(["-v", "error", "-nostdin", "-i"])
            .arg(file_arg(path))
            .args(["-map", "0:v:0", "-vsync", "passthrough", "-sws_flags", "bicubic+accurate_rnd+full_chroma_int"])
            .args(["-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped());
        let mut proc = Running::spawn(cmd, "the FFmpeg decoder")?;
        let stdout = proc.child.stdout.take().expect("piped");
        Ok(Self { proc, stdout, width, height, buf: vec![0; width as usize * height as usize * 3] })
    }

    /// The next frame, `None` at the end of the stream.
    fn next(&mut self) -> Result<Option<Picture>> {
        let mut filled = 0;
        while filled < self.buf.len() {
            match self.stdout.read(&mut self.buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::Video(format!("reading decoded frames: {e}"))),
            }
        }
        if filled == 0 {
            return Ok(None);
        }
        if filled < self.buf.len() {
            return Err(Error::Video(format!("the decoder gave a partial frame ({filled} of {} bytes)", self.buf.len())));
        }
        let n = self.width as usize * self.height as usize;
        let mut rgb = vec![0f32; 3 * n];
        for (i, p) in self.buf.chunks_exact(3).enumerate() {
            rgb[i] = p[0] as f32;
            rgb[n + i] = p[1] as f32;
            rgb[2 * n + i] = p[2] as f32;
        }
        Ok(Some(Picture::from_planes(self.width, self.height, rgb)))
    }
}

/// Streams raw RGB frames into `ffmpeg`, which encodes them into a video-only file.
struct Encoder {
    proc: Running,
    stdin: Option<std::process::ChildStdin>,
    width: u32,
    height: u32,
    buf: Vec<u8>,
}

impl Encoder {
    fn open(tools: &Tools, out: &Path, format: VideoFormat, width: u32, height: u32, rate: (u32, u32)) -> Result<Self> {
        let mut cmd = Command::new(&tools.ffmpeg);
        cmd.args(["-v", "error", "-nostdin", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24"])
            .args(["-s", &format!("{width}x{height}"), "-framerate", &format!("{}/{}", rate.0, rate.1), "-i", "pipe:0"])
            .args(["-vf", "scale=out_color_matrix=bt709:out_range=tv:flags=bicubic+accurate_rnd+full_chroma_int,format=yuv420p"])
            .args(["-colorspace", "bt709", "-color_primaries", "bt709", "-color_trc", "bt709", "-color_range", "tv"]);
        match format {
            VideoFormat::Mp4 => cmd.args(["-c:v", "libx264", "-preset", "fast", "-crf", "18"]),
            VideoFormat::WebM => cmd.args(["-c:v", "libvpx-vp9", "-crf", "31", "-b:v", "0", "-row-mt", "1", "-deadline", "good", "-cpu-used", "4"]),
        };
        cmd.args(["-an", "-f", format.muxer()]).arg(file_arg(out)).stdin(Stdio::piped()).stdout(Stdio::null());
        let mut proc = Running::spawn(cmd, "the FFmpeg encoder")?;
        let stdin = proc.child.stdin.take();
        Ok(Self { proc, stdin, width, height, buf: Vec::with_capacity(width as usize * height as usize * 3) })
    }

    fn push(&mut self, picture: &Picture) -> Result<()> {
        if (picture.width, picture.height) != (self.width, self.height) {
            return Err(Error::Video(format!(
                "frame of {}×{} in a {}×{} video",
                picture.width, picture.height, self.width, self.height
            )));
        }
        let n = picture.pixels();
        self.buf.clear();
        let q = |v: f32| v.round().clamp(0.0, 255.0) as u8;
        for i in 0..n {
            self.buf.extend_from_slice(&[q(picture.rgb[i]), q(picture.rgb[n + i]), q(picture.rgb[2 * n + i])]);
        }
        match self.stdin.as_mut().expect("open until finished").write_all(&self.buf) {
            Ok(()) => Ok(()),
            Err(_) => Err(self.proc.broken()),
        }
    }

    fn finish(mut self) -> Result<()> {
        drop(self.stdin.take());
        self.proc.finish()
    }
}

/// The audio codec to write for a source codec: `copy` when the container takes it.
fn audio_codec(format: VideoFormat, source: &str) -> &'static [&'static str] {
    match (format, source) {
        (VideoFormat::Mp4, "aac" | "mp3" | "ac3" | "eac3" | "alac") => &["-c:a", "copy"],
        (VideoFormat::Mp4, _) => &["-c:a", "aac", "-b:a", "192k"],
        (VideoFormat::WebM, "opus" | "vorbis") => &["-c:a", "copy"],
        (VideoFormat::WebM, _) => &["-c:a", "libopus", "-b:a", "128k"],
    }
}

/// The first frame of a video file, upright (a thumbnail, a poster).
///
/// # Errors
/// As [`probe`]; [`Error::Video`] for a clip without a decodable frame.
pub fn first_frame(tools: &Tools, path: &Path) -> Result<Picture> {
    let info = probe(tools, path)?;
    let (w, h) = info.display_size();
    let mut decoder = Decoder::open(tools, path, w, h)?;
    decoder.next()?.ok_or_else(|| Error::Video("the video has no frames".into()))
}

/// A temporary file beside the output (`.styleforge-PID-N.WHAT.tmp`), created with the
/// process's umask like any output, removed when dropped unless renamed onto the output.
struct TempFile {
    path: PathBuf,
    output: PathBuf,
    kept: bool,
}

impl TempFile {
    fn create(dir: &Path, output: &Path, what: &str) -> Result<Self> {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = dir.join(format!(".styleforge-{}-{n}.{what}.tmp", std::process::id()));
        std::fs::OpenOptions::new().write(true).create_new(true).open(&path).map_err(|e| Error::io(output, e))?;
        Ok(Self { path, output: output.to_path_buf(), kept: false })
    }

    fn path(&self) -> &Path {
        &self.path
    }

    /// Renames the file onto `output` (atomic on one file system).
    fn persist(mut self, output: &Path) -> Result<()> {
        std::fs::rename(&self.path, output).map_err(|e| Error::io(&self.output, e))?;
        self.kept = true;
        Ok(())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.kept {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// What [`stylize_video`] made.
#[derive(Debug, Clone, PartialEq)]
pub struct VideoOutcome {
    /// The source's container information.
    pub info: VideoInfo,
    /// Frames stylised: fewer than `info.frames` declares when the file is truncated.
    pub frames: u64,
    /// Output size as displayed (the frames' size; for MP4, odd sides rounded up to even).
    pub size: (u32, u32),
    /// Bytes written.
    pub bytes: u64,
}

/// Stylises every frame of the video file `input` with `stylizer` and writes `output` as
/// `format`, keeping the frame rate, duration, rotation, metadata and audio. `progress` is told
/// `(frames done, frames declared)` after each frame. A set `cancel` flag stops between frames
/// and gives `Ok(None)`; then, as on any error, `output` is untouched (nothing half-written).
///
/// # Errors
/// [`Error::Tool`] without FFmpeg; [`Error::Video`] for unreadable or over-limit clips;
/// [`Error::TooLarge`] for frames over the pixel limit; [`Error::Io`] for the output's folder;
/// the method's errors.
#[allow(clippy::too_many_arguments)]
pub fn stylize_video(
    stylizer: &mut FrameStylizer<'_>,
    tools: &Tools,
    input: &Path,
    output: &Path,
    format: VideoFormat,
    limits: VideoLimits,
    cancel: Option<&AtomicBool>,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Option<VideoOutcome>> {
    let info = probe(tools, input)?;
    limits.check(&info)?;
    let dir = match output.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    // Missing folders are created, as for images; errors name the output, never a temporary file.
    if dir.exists() && !dir.is_dir() {
        return Err(Error::io(output, std::io::Error::other(format!("{} is a file, not a folder", dir.display()))));
    }
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(output, e))?;
    let temp = |what: &str| TempFile::create(&dir, output, what);
    let video_only = temp("video")?;
    let (w, h) = info.display_size();
    let mut decoder = Decoder::open(tools, input, w, h)?;
    let mut encoder: Option<Encoder> = None;
    let mut done = 0u64;
    let mut size = (0, 0);
    loop {
        if cancel.is_some_and(|c| c.load(Ordering::Relaxed)) {
            return Ok(None);
        }
        let Some(frame) = decoder.next()? else { break };
        done += 1;
        if done > limits.max_frames {
            return Err(Error::Video(format!("the video has more than {} frames, the limit", limits.max_frames)));
        }
        let styled = stylizer.next(frame)?;
        let mut stored = to_stored(&styled, info.rotation);
        // H.264 in 4:2:0 needs even sides: an odd side gets its edge pixels once more (VP9
        // keeps any size).
        if format == VideoFormat::Mp4 && (stored.width % 2 == 1 || stored.height % 2 == 1) {
            stored = stored.pad_edges(stored.width.next_multiple_of(2), stored.height.next_multiple_of(2), 0, 0);
        }
        size = if info.rotation % 180 == 90 { (stored.height, stored.width) } else { (stored.width, stored.height) };
        let enc = match &mut encoder {
            Some(e) => e,
            None => encoder.insert(Encoder::open(tools, video_only.path(), format, stored.width, stored.height, info.frame_rate)?),
        };
        enc.push(&stored)?;
        progress(done, info.frames.max(done));
    }
    decoder.proc.finish()?;
    let encoder = encoder.ok_or_else(|| Error::Video("the video has no frames".into()))?;
    encoder.finish()?;
    if cancel.is_some_and(|c| c.load(Ordering::Relaxed)) {
        return Ok(None);
    }

    // Mux: the new video stream, the source's audio and metadata, the source's rotation.
    let muxed = temp("muxed")?;
    let mut cmd = Command::new(&tools.ffmpeg);
    cmd.args(["-v", "error", "-nostdin", "-y", "-i"]).arg(file_arg(video_only.path())).arg("-i").arg(file_arg(input));
    cmd.args(["-map", "0:v:0", "-map", "1:a:0?", "-map_metadata", "1", "-c:v", "copy"]);
    cmd.args(audio_codec(format, info.audio_codec.as_deref().unwrap_or("")));
    if info.rotation != 0 {
        cmd.args(["-metadata:s:v:0", &format!("rotate={}", info.rotation)]);
    }
    if format == VideoFormat::Mp4 {
        cmd.args(["-movflags", "+faststart"]);
    }
    cmd.args(["-f", format.muxer()]).arg(file_arg(muxed.path())).stdin(Stdio::null()).stdout(Stdio::null());
    Running::spawn(cmd, "the FFmpeg muxer")?.finish()?;
    let bytes = std::fs::metadata(muxed.path()).map_err(|e| Error::io(output, e))?.len();
    muxed.persist(output)?;
    Ok(Some(VideoOutcome { info, frames: done, size, bytes }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_ffprobe_output() {
        let json = br#"{"streams":[
            {"codec_type":"video","codec_name":"mjpeg","width":10,"height":10,"avg_frame_rate":"0/0","r_frame_rate":"90000/1","disposition":{"attached_pic":1}},
            {"codec_type":"video","codec_name":"h264","width":1920,"height":1080,"avg_frame_rate":"30000/1001","r_frame_rate":"30000/1001","nb_frames":"300",
             "side_data_list":[{"side_data_type":"Display Matrix","rotation":-90}]},
            {"codec_type":"audio","codec_name":"aac","sample_rate":"48000"}],
            "format":{"duration":"10.010000"}}"#;
        let info = parse_probe(json).unwrap();
        assert_eq!((info.width, info.height, info.rotation), (1920, 1080, 270));
        assert_eq!(info.display_size(), (1080, 1920));
        assert_eq!(info.frame_rate, (30000, 1001));
        assert_eq!(info.frames, 300);
        assert_eq!(info.video_codec, "h264");
        assert_eq!(info.audio_codec.as_deref(), Some("aac"));
        assert_eq!(info.audio_sample_rate, Some(48000));
        assert!((info.duration - 10.01).abs() < 1e-9);

        let no_count = br#"{"streams":[{"codec_type":"video","codec_name":"vp9","width":64,"height":48,"avg_frame_rate":"25/1","tags":{"rotate":"90"}}],"format":{"duration":"2.0"}}"#;
        let info = parse_probe(no_count).unwrap();
        assert_eq!((info.frames, info.rotation, info.audio_codec.clone()), (50, 90, None));

        let audio_only = br#"{"streams":[{"codec_type":"audio","codec_name":"mp3"}],"format":{"duration":"2.0"}}"#;
        assert!(matches!(parse_probe(audio_only), Err(Error::Video(m)) if m.contains("no video stream")));
        assert!(matches!(parse_probe(b"not json"), Err(Error::Video(_))));
    }

    #[test]
    fn ffmpeg_messages_lose_the_file_url() {
        assert_eq!(last_line("x\nfile:/tmp/a b.mp4: Invalid data found when processing input\n\n"), "Invalid data found when processing input");
        assert_eq!(last_line("Conversion failed!"), "Conversion failed!");
        assert_eq!(last_line(""), "no message");
        assert_eq!(last_line("[h264 @ 0x1] error while decoding MB 3 4\n    Last message repeated 2 times\n"), "[h264 @ 0x1] error while decoding MB 3 4");
    }

    #[test]
    fn limits_are_checked_from_the_container() {
        let info = VideoInfo {
            width: 1280,
            height: 720,
            rotation: 0,
            frame_rate: (25, 1),
            duration: 12.0,
            frames: 300,
            video_codec: "h264".into(),
            audio_codec: None,
            audio_sample_rate: None,
        };
        let ok = VideoLimits { max_pixels: 1280 * 720, max_frames: 300, max_duration: 12.0 };
        ok.check(&info).unwrap();
        assert!(matches!(VideoLimits { max_pixels: 1280 * 720 - 1, ..ok }.check(&info), Err(Error::TooLarge { .. })));
        assert!(matches!(VideoLimits { max_frames: 299, ..ok }.check(&info), Err(Error::Video(m)) if m.contains("300 frames")));
        assert!(matches!(VideoLimits { max_duration: 10.0, ..ok }.check(&info), Err(Error::Video(m)) if m.contains("12.00 s, over the limit of 10 s")));
        assert!(matches!(VideoLimits { max_duration: 1.5, ..ok }.check(&info), Err(Error::Video(m)) if m.contains("limit of 1.5 s")));
    }

    #[test]
    fn turning_back_inverts_each_rotation() {
        // Stored 3×2 picture with distinct values; upright versions as FFmpeg makes them.
        let stored = Picture::from_planes(3, 2, (0..18).map(|v| v as f32).collect());
        let n = 6;
        let at = |p: &Picture, x: usize, y: usize| p.rgb[y * p.width as usize + x];
        for rotation in [0, 90, 180, 270] {
            let (uw, uh) = if rotation % 180 == 90 { (2, 3) } else { (3, 2) };
            // Upright pixel (u, v) shows stored pixel: 90: x = W-1-v, y = u; 270: x = v, y = H-1-u.
            let mut rgb = vec![0f32; 18];
            for v in 0..uh {
                for u in 0..uw {
                    let (x, y) = match rotation {
                        90 => (2 - v, u),
                        180 => (2 - u, 1 - v),
                        270 => (v, 1 - u),
                        _ => (u, v),
                    };
                    for c in 0..3 {
                        rgb[c * n + v * uw + u] = stored.rgb[c * n + y * 3 + x];
                    }
                }
            }
            let upright = Picture::from_planes(uw as u32, uh as u32, rgb);
            let back = to_stored(&upright, rotation);
            assert_eq!((back.width, back.height), (3, 2), "rotation {rotation}");
            for y in 0..2 {
                for x in 0..3 {
                    assert_eq!(at(&back, x, y), at(&stored, x, y), "rotation {rotation} at {x},{y}");
                }
            }
            assert_eq!(back.rgb, stored.rgb, "rotation {rotation}");
        }
    }

    #[test]
    fn sniffs_containers() {
        assert!(sniff(b"\0\0\0\x20ftypisom\0\0\x02\0"));
        assert!(sniff(&[0x1A, 0x45, 0xDF, 0xA3, 1, 2]));
        assert!(sniff(b"RIFF\0\0\0\0AVI LIST"));
        assert!(!sniff(b"RIFF\0\0\0\0WEBPVP8 "));
        assert!(!sniff(b"\0\0\0\x1cftypavif"));
        assert!(!sniff(b"\x89PNG\r\n"));
    }
}
