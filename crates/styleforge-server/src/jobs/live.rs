//! Live stylisation of a camera stream (`GET /v1/live`, a WebSocket; the transport is in
//! [`crate::api::live`]): frames (JPEG, PNG or WebP) come in, stylised JPEG frames go out, one
//! frame at a time through the engine's per-frame pipeline
//! ([`styleforge_core::sequence::FrameStylizer`]) in the consistent mode, so each output follows
//! the previous one along the optical flow where the camera only moved.
//!
//! The stream never queues: the receiving side puts each frame in a one-frame slot, replacing
//! (and counting as dropped) a frame the stylizer has not taken yet; the stylizer, on a blocking
//! thread of its own, takes the newest frame whenever it is free, and runs it under one of the
//! server's inference slots, so live streams share the compute with the other stylisations. A
//! client that sends faster than the server stylises gets fewer frames back, always the latest,
//! with a delay of at most one frame's work.
//!
//! The style resolves like a stylisation request's ([`crate::jobs::request::resolve_style`]): a
//! model that is a style of its own (`cartoon-paprika`, a fast style), or a built-in painting or
//! one of the caller's style images for a method whose style is images (`microast`).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use styleforge_core::image_io::{self, Format};
use styleforge_core::library::Loaded;
use styleforge_core::methods::{self, Execution, Input, Method, Params};
use styleforge_core::sequence::FrameStylizer;
use styleforge_core::temporal::{ConsistencySettings, FlowSettings};
use tokio::sync::{Notify, mpsc};
use utoipa::{IntoParams, ToSchema};

use crate::jobs::request::{self, MethodName, StylizeRequest};
use crate::jobs::{ErrorKind, JobError, JobResult};
use crate::state::AppState;

/// Widest frame accepted, in pixels (the longer side; a portrait frame may be 720×1280).
pub const MAX_FRAME_LONG_SIDE: u32 = 1280;

/// Tallest frame accepted, in pixels (the shorter side).
pub const MAX_FRAME_SHORT_SIDE: u32 = 720;

/// Largest encoded frame accepted, in bytes (a WebSocket message).
pub const MAX_FRAME_BYTES: usize = 4 << 20;

/// Live streams a server runs at once, per inference slot.
pub const SESSIONS_PER_SLOT: usize = 4;

/// The optical flow of the live consistent mode: 3 pyramid levels of 3 Gauss–Newton steps
/// instead of the default 4 × 6. At 320×240 on two busy cores this cuts the temporal blend from
/// 65–110 to 40–55 ms a frame with the same warping error on a panning clip (a quarter of the
/// independent frames', for the cartoon filter and MicroAST alike); 3 levels still follow
/// motions of a dozen pixels and more between the frames the stream keeps.
pub const LIVE_FLOW: FlowSettings = FlowSettings { levels: 3, iterations: 3, window_sigma: 3.0 };

/// The span over which [`LiveStats::fps`] counts the frames sent.
const FPS_WINDOW: Duration = Duration::from_secs(2);

/// The query of `GET /v1/live`.
#[derive(Debug, Clone, PartialEq, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LiveQuery {
    /// The style, as in `POST /v1/stylize`: a model that is a style of its own
    /// (`cartoon-paprika`, a fast style; see `GET /v1/styles`), or a built-in painting
    /// (`starry-night`), custom style id or image id for the methods whose style is images
    /// (`microast`, `adain`).
    #[param(min_length = 1, max_length = 200)]
    pub style: String,
    /// A method from `GET /v1/methods` that runs in one pass (default: the one the style calls
    /// for). Methods that optimise one image at a time (`gatys`) cannot run live.
    #[serde(default)]
    #[param(value_type = Option<String>, example = "cartoon")]
    pub method: Option<MethodName>,
    /// The network for methods whose style is images (default: the method's own, e.g. the
    /// built-in `microast`).
    #[serde(default)]
    #[param(max_length = 200)]
    pub model: Option<String>,
    /// 0 keeps the camera frame, 1 (default) the full style.
    #[serde(default)]
    #[param(minimum = 0.0, maximum = 1.0)]
    pub strength: Option<f32>,
    /// Keep the camera's colours.
    #[serde(default)]
    pub preserve_color: Option<bool>,
    /// Weight of the previous output, warped along the optical flow, where the camera only moved:
    /// 0 stylises every frame on its own (it flickers), 1 holds the previous output. Default 0.7.
    #[serde(default)]
    #[param(minimum = 0.0, maximum = 1.0)]
    pub temporal_weight: Option<f32>,
}

impl LiveQuery {
    /// Checks the numbers and the style's name. Errors: `invalid_parameter`.
    pub fn check(&self) -> JobResult<()> {
        let invalid = |m: String| JobError::invalid("invalid_parameter", m);
        if self.style.trim().is_empty() || self.style.len() > 200 {
            return Err(invalid("name a style of 1-200 characters (see GET /v1/styles)".into()));
        }
        if let Some(m) = &self.model
            && (m.trim().is_empty() || m.len() > 200)
        {
            return Err(invalid("`model` is a model name of 1-200 characters".into()));
        }
        for (name, v) in [("strength", self.strength), ("temporal_weight", self.temporal_weight)] {
            if let Some(v) = v
                && !(0.0..=1.0).contains(&v)
            {
                return Err(invalid(format!("{name} is a number from 0 to 1, got {v}")));
            }
        }
        Ok(())
    }
}

/// A text message from the server. Frames themselves travel as binary messages: the client's
/// camera frames in, the stylised JPEG frames out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    /// The style is loaded: frames sent from now on are stylised (frames sent before are kept,
    /// the newest one).
    Ready {
        /// The method that runs.
        method: String,
        /// The style (model name, painting or style image ids).
        style: String,
        /// The network.
        model: String,
        /// The weight of the previous output (0: frames on their own).
        temporal_weight: f32,
        /// Most pixels on the frame's longer side.
        max_long_side: u32,
        /// Most pixels on the frame's shorter side.
        max_short_side: u32,
        /// Most bytes per frame.
        max_bytes: usize,
    },
    /// How the stream goes, about once a second.
    Stats(LiveStats),
    /// Why the stream ends: the server closes the connection after it.
    Error {
        /// Stable code, as in the HTTP API's errors (`invalid_image`, `frame_too_large`,
        /// `style_not_found`, `missing_key`, ...).
        code: String,
        /// What went wrong and what to do about it.
        message: String,
    },
}

impl ServerMessage {
    /// The message as JSON text.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{}".into())
    }
}

impl From<&JobError> for ServerMessage {
    fn from(e: &JobError) -> Self {
        ServerMessage::Error { code: e.code.clone(), message: e.message.clone() }
    }
}

/// A text message from the client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientMessage {
    /// The API key, for clients that cannot set headers on a WebSocket (browsers): only as the
    /// first message. Without a key, the server's anonymous access applies.
    Auth {
        /// A secret (`sf_…`) or publishable (`pk_…`) key.
        #[serde(default)]
        key: Option<String>,
    },
}

/// The counters of a stream, sent as [`ServerMessage::Stats`].
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize, ToSchema)]
pub struct LiveStats {
    /// Stylised frames sent per second, over the last two seconds.
    pub fps: f64,
    /// Frames received.
    pub received: u64,
    /// Frames stylised and sent back.
    pub processed: u64,
    /// Frames replaced by a newer one before the stylizer took them (never stylised). Once the
    /// stream is idle, `received = processed + dropped`.
    pub dropped: u64,
    /// Mean milliseconds per stylised frame since the previous stats message (decoding, waiting
    /// for an inference slot, stylising with the temporal blend, encoding); `null` when no frame
    /// was stylised meanwhile.
    pub ms: Option<f64>,
    /// Of which decoding the frame.
    pub decode_ms: Option<f64>,
    /// Of which waiting for an inference slot (other stylisations running).
    pub wait_ms: Option<f64>,
    /// Of which the method and the temporal blend (optical flow, warps).
    pub stylize_ms: Option<f64>,
    /// Of which encoding the JPEG.
    pub encode_ms: Option<f64>,
}

/// A stream's settings, resolved from its query: the method, the loaded network, the style
/// images and the method's parameters.
pub struct LiveSettings {
    method: &'static dyn Method,
    model: Arc<Loaded>,
    template: Input,
    params: Params,
    consistency: Option<ConsistencySettings>,
    /// The `ready` message for the client.
    pub ready: ServerMessage,
}

impl std::fmt::Debug for LiveSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveSettings").field("ready", &self.ready).finish()
    }
}

/// Resolves a stream's query for `owner` and loads what it needs (the network, decoded style
/// images). Errors: the request's (unknown style or method, a method that does not run in one
/// pass, parameters), a missing model, storage failures.
pub async fn prepare(state: &AppState, owner: &str, q: &LiveQuery) -> JobResult<LiveSettings> {
    q.check()?;
    // The same resolution as a stylisation request's, built through serde so that the request's
    // other fields keep their defaults.
    let mut req = serde_json::json!({ "image": "", "style": q.style.trim() });
    if let Some(m) = q.method {
        req["method"] = m.name().into();
    }
    if let Some(m) = &q.model {
        req["model"] = m.trim().into();
    }
    let req: StylizeRequest = serde_json::from_value(req).map_err(JobError::internal)?;
    let one_pass = |info: &methods::MethodInfo| {
        if info.execution == Execution::Sync {
            return Ok(());
        }
        let names: Vec<&str> = methods::all().filter(|m| m.info().execution == Execution::Sync).map(|m| m.info().name).collect();
        Err(JobError::invalid(
            "wrong_method",
            format!("method {} optimises one image at a time; live streams use {}", info.name, names.join(", ")),
        ))
    };
    // Before the style: such a method's network may not even be installed.
    if let Some(m) = q.method {
        one_pass(m.method().info())?;
    }
    let resolved = request::resolve_style(state, owner, &req).await?;
    let info = resolved.method;
    one_pass(info)?;
    let method = methods::get(info.name)?;
    let mut params = Params::new();
    params.set_number("strength", q.strength.map(f64::from))?;
    params.set_flag("preserve_color", q.preserve_color.unwrap_or(false))?;
    methods::validate(method, &params, &|o| format!("`{}`", o.name))?;
    let mut template = Input::content(image_io::Picture::from_planes(1, 1, vec![0.0; 3]));
    for s in &resolved.styles {
        let bytes = crate::jobs::fetch_blob(state, &s.image).await?;
        let max_pixels = state.config.max_pixels;
        let mut picture = state.run_decode(move || image_io::decode(&bytes, max_pixels)).await??;
        if info.name == "microast" {
            // MicroAST scales style images to this size itself (the same picture either way);
            // scaled once here, each frame's copy of the template and the network's per-frame
            // cache lookup (a hash of the style's pixels) cost under half a painting's.
            picture = picture.fit_within(styleforge_core::methods::microast::STYLE_SIZE);
        }
        template.styles.push((picture.into(), s.weight));
    }
    let model = state.models.get(&resolved.model).await?;
    let weight = q.temporal_weight.unwrap_or(ConsistencySettings::default().weight);
    let consistency = (weight > 0.0).then(|| ConsistencySettings { weight, flow: LIVE_FLOW, ..ConsistencySettings::default() });
    Ok(LiveSettings {
        method,
        template,
        params,
        consistency,
        ready: ServerMessage::Ready {
            method: info.name.to_string(),
            style: resolved.label,
            model: resolved.model.name.clone(),
            temporal_weight: weight,
            max_long_side: MAX_FRAME_LONG_SIDE,
            max_short_side: MAX_FRAME_SHORT_SIDE,
            max_bytes: MAX_FRAME_BYTES,
        },
        model,
    })
}

/// Checks a frame from its header: JPEG, PNG or WebP, within [`MAX_FRAME_LONG_SIDE`] ×
/// [`MAX_FRAME_SHORT_SIDE`] and [`MAX_FRAME_BYTES`]. Errors: `empty_body`, `unsupported_format`,
/// `invalid_image` (not an image, a corrupt header), `frame_too_large`.
pub fn check_frame(bytes: &[u8]) -> JobResult<(u32, u32)> {
    if bytes.len() > MAX_FRAME_BYTES {
        return Err(JobError::new(
            ErrorKind::TooLarge,
            "frame_too_large",
            format!("a frame of {} bytes is over the limit of {MAX_FRAME_BYTES}", bytes.len()),
        ));
    }
    let (_, w, h) = image_io::probe(bytes)?;
    if w.max(h) > MAX_FRAME_LONG_SIDE || w.min(h) > MAX_FRAME_SHORT_SIDE {
        return Err(JobError::new(
            ErrorKind::TooLarge,
            "frame_too_large",
            format!(
                "a {w}×{h} frame is over the live limit of {MAX_FRAME_LONG_SIDE}×{MAX_FRAME_SHORT_SIDE}: send camera frames of at most that size (320×240 is plenty)"
            ),
        ));
    }
    if w == 0 || h == 0 {
        return Err(JobError::invalid("invalid_image", "the frame has no pixels"));
    }
    Ok((w, h))
}

/// The newest frame not yet taken by the stylizer.
#[derive(Debug, Default)]
struct Slot {
    frame: Mutex<Option<Bytes>>,
    ready: Notify,
    closed: AtomicBool,
}

impl Slot {
    /// Stores `frame`; true when it replaced one the stylizer had not taken (a dropped frame).
    fn put(&self, frame: Bytes) -> bool {
        let old = self.frame.lock().expect("live slot").replace(frame);
        self.ready.notify_one();
        old.is_some()
    }

    /// The newest frame, waiting for one; `None` once the stream is closed.
    async fn take(&self) -> Option<Bytes> {
        loop {
            if self.closed.load(Ordering::Acquire) {
                return None;
            }
            if let Some(f) = self.frame.lock().expect("live slot").take() {
                return Some(f);
            }
            self.ready.notified().await;
        }
    }

    fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.ready.notify_one();
    }
}

/// Sums of the per-frame timings since the last [`Stream::stats`].
#[derive(Debug, Default)]
struct Window {
    sent: VecDeque<Instant>,
    frames: u32,
    decode: f64,
    wait: f64,
    stylize: f64,
    encode: f64,
}

#[derive(Debug, Default)]
struct Counters {
    received: AtomicU64,
    processed: AtomicU64,
    dropped: AtomicU64,
    window: Mutex<Window>,
}

/// What the stylizer hands back.
#[derive(Debug)]
pub enum Output {
    /// A stylised frame, JPEG.
    Frame(Vec<u8>),
    /// The stream cannot go on (a frame that does not decode, a failure of the method).
    Failed(JobError),
}

/// The receiving side of a live stream: hands camera frames to the stylizer. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Feed {
    slot: Arc<Slot>,
    counters: Arc<Counters>,
}

impl Feed {
    /// Hands a camera frame to the stylizer after checking its header ([`check_frame`]),
    /// replacing the frame waiting there, if any (counted as dropped). Errors: those of
    /// [`check_frame`]; the stream should end.
    pub fn offer(&self, frame: Bytes) -> JobResult<()> {
        self.counters.received.fetch_add(1, Ordering::Relaxed);
        check_frame(&frame)?;
        if self.slot.put(frame) {
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Stops the stylizer after the frame in progress (the client went away).
    pub fn close(&self) {
        self.slot.close();
    }

    /// Whether [`Feed::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.slot.closed.load(Ordering::Acquire)
    }
}

/// A running live stream: [`Feed::offer`] the frames as they arrive (see [`Stream::feed`]), read
/// the stylised ones from [`Stream::next`]. Dropping it stops the stylizer after the frame in
/// progress.
#[derive(Debug)]
pub struct Stream {
    feed: Feed,
    out: mpsc::Receiver<Output>,
}

impl Stream {
    /// Starts the stylizer for `settings` on a blocking thread of its own (it holds an inference
    /// slot only while it stylises a frame).
    pub fn start(state: &AppState, settings: LiveSettings) -> Self {
        let feed = Feed { slot: Arc::new(Slot::default()), counters: Arc::new(Counters::default()) };
        // One finished frame may wait for the socket; the next blocks the stylizer, so a slow
        // reader also makes the server drop frames instead of queueing them.
        let (tx, out) = mpsc::channel(1);
        let (st, f) = (state.clone(), feed.clone());
        tokio::task::spawn_blocking(move || stylize_loop(st, settings, f, tx));
        Self { feed, out }
    }

    /// The receiving side, for the task that reads the client's messages.
    pub fn feed(&self) -> Feed {
        self.feed.clone()
    }

    /// The next stylised frame or failure; `None` once the stylizer has stopped (the feed was
    /// closed, or the stylizer failed without a word: a panic).
    pub async fn next(&mut self) -> Option<Output> {
        self.out.recv().await
    }

    /// The counters, with the mean timings since the previous call.
    pub fn stats(&self) -> LiveStats {
        let c = &self.feed.counters;
        let mut w = c.window.lock().expect("live stats");
        let now = Instant::now();
        while w.sent.front().is_some_and(|t| now.duration_since(*t) > FPS_WINDOW) {
            w.sent.pop_front();
        }
        let fps = w.sent.len() as f64 / FPS_WINDOW.as_secs_f64();
        let n = w.frames as f64;
        let mean = |v: f64| (w.frames > 0).then(|| round(v / n));
        let stats = LiveStats {
            fps: round(fps),
            received: c.received.load(Ordering::Relaxed),
            processed: c.processed.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
            ms: mean(w.decode + w.wait + w.stylize + w.encode),
            decode_ms: mean(w.decode),
            wait_ms: mean(w.wait),
            stylize_ms: mean(w.stylize),
            encode_ms: mean(w.encode),
        };
        *w = Window { sent: std::mem::take(&mut w.sent), ..Window::default() };
        stats
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        self.feed.close();
    }
}

fn round(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0
}

/// The stylizer: takes the newest frame, decodes, stylises (under an inference slot), encodes,
/// sends; until the stream closes or a frame fails.
fn stylize_loop(state: AppState, s: LiveSettings, feed: Feed, tx: mpsc::Sender<Output>) {
    let Feed { slot, counters } = feed;
    let handle = tokio::runtime::Handle::current();
    let device = state.device.clone();
    let mut stylizer = match FrameStylizer::new(s.method, &s.model, &s.template, &s.params, &device, s.consistency) {
        Ok(f) => f,
        Err(e) => {
            let _ = tx.blocking_send(Output::Failed(e.into()));
            return;
        }
    };
    let max_pixels = state.config.max_pixels;
    while let Some(bytes) = handle.block_on(slot.take()) {
        let t = Instant::now();
        let frame = match image_io::decode(&bytes, max_pixels) {
            Ok(f) => f,
            Err(e) => {
                let _ = tx.blocking_send(Output::Failed(e.into()));
                return;
            }
        };
        let decode = ms(t);
        let t = Instant::now();
        let stylised = state.run_inference_blocking(&handle, || stylizer.next(frame));
        let (picture, waited) = match stylised {
            Ok((Ok(p), waited)) => (p, waited),
            Ok((Err(e), _)) => {
                let _ = tx.blocking_send(Output::Failed(e.into()));
                return;
            }
            Err(e) => {
                let _ = tx.blocking_send(Output::Failed(e));
                return;
            }
        };
        let wait = waited.as_secs_f64() * 1000.0;
        let stylize = ms(t) - wait;
        let t = Instant::now();
        let jpeg = match picture.encode(Format::Jpeg) {
            Ok(j) => j,
            Err(e) => {
                let _ = tx.blocking_send(Output::Failed(e.into()));
                return;
            }
        };
        let encode = ms(t);
        state
            .metrics
            .inference_seconds
            .with_label_values(&[s.method.info().name, "live"])
            .observe((decode + stylize + encode) / 1000.0);
        if tx.blocking_send(Output::Frame(jpeg)).is_err() {
            return;
        }
        counters.processed.fetch_add(1, Ordering::Relaxed);
        let mut w = counters.window.lock().expect("live stats");
        w.sent.push_back(Instant::now());
        w.frames += 1;
        w.decode += decode;
        w.wait += wait;
        w.stylize += stylize;
        w.encode += encode;
    }
}
