// The live camera: the camera (getUserMedia, 320×240) streams JPEG frames to the server over a
// WebSocket (GET /v1/live) and the stylised frames come back and are drawn as they arrive, with
// a frames-per-second counter. At most two frames are in flight, so the browser never floods the
// socket; the server stylises the newest frame it has and drops the others.

import { getJson, getKey } from "./api.js";
import { url as apiUrl } from "./client.js";

const $ = (id) => document.getElementById(id);

const WIDTH = 320;
const HEIGHT = 240;
const QUALITY = 0.7;
const MAX_IN_FLIGHT = 2;
// Frames per second are counted over this many milliseconds.
const FPS_WINDOW = 2000;
// A frame unanswered for this long is given up (the server may have dropped it).
const STALL_MS = 4000;

const live = {
  stream: null, // the camera's MediaStream
  ws: null,
  running: false,
  ready: false,
  encoding: false,
  sent: 0,
  received: 0,
  inFlight: 0,
  lastReply: 0,
  arrivals: [],
  stats: null,
  timer: 0,
  seq: 0,
};

function setStatus(text, error = false) {
  const s = $("live-status");
  s.textContent = text;
  s.className = `hint live-status${error ? " error" : ""}`;
}

// The styles a live stream takes: models that are styles of their own (filters, fast styles),
// and style images (paintings, your own) when a one-pass method for them is available.
async function loadStyles() {
  const select = $("live-style");
  try {
    const [{ styles }, methods] = await Promise.all([getJson(apiUrl("list_styles")), getJson(apiUrl("list_methods"))]);
    const oneShot = methods.filter((m) => m.execution === "sync");
    const modelKinds = new Set(oneShot.filter((m) => m.style === "model").flatMap((m) => m.model_kinds));
    const filterKinds = new Set(methods.filter((m) => m.name === "cartoon").flatMap((m) => m.model_kinds));
    const images = oneShot.some((m) => m.style === "images" && m.available);
    const groups = [
      ["Filters", styles.filter((s) => s.kind === "model" && filterKinds.has(s.method))],
      ["Styles", styles.filter((s) => s.kind === "model" && modelKinds.has(s.method) && !filterKinds.has(s.method))],
      ["Paintings", images ? styles.filter((s) => s.kind === "builtin") : []],
      ["Your styles", images ? styles.filter((s) => s.kind === "custom") : []],
    ].filter(([, list]) => list.length);
    const previous = select.value;
    select.replaceChildren(
      ...groups.map(([label, list]) => {
        const g = document.createElement("optgroup");
        g.label = label;
        for (const s of list) g.append(new Option(s.title, s.name));
        return g;
      }),
    );
    if (previous && Array.from(select.options).some((o) => o.value === previous)) select.value = previous;
    $("live-start").disabled = select.options.length === 0;
    if (!select.options.length) setStatus("No style can run live on this server.");
  } catch (e) {
    setStatus(`The styles could not be loaded: ${e.message}`, true);
  }
}

function showFps() {
  const now = performance.now();
  while (live.arrivals.length && now - live.arrivals[0] > FPS_WINDOW) live.arrivals.shift();
  const span = Math.min(FPS_WINDOW, now - (live.startedAt || now)) || FPS_WINDOW;
  const fps = live.running ? (live.arrivals.length * 1000) / Math.max(span, 500) : 0;
  const el = $("live-fps");
  el.textContent = live.running ? `${fps.toFixed(1)} fps` : "– fps";
  el.dataset.fps = fps.toFixed(2);
  const panel = $("live-panel");
  panel.dataset.sent = live.sent;
  panel.dataset.received = live.received;
  const st = live.stats;
  $("live-stats").textContent =
    live.running && st
      ? `${st.ms !== null && st.ms !== undefined ? `${Math.round(st.ms)} ms a frame · ` : ""}${st.dropped} dropped`
      : "";
}

// Sends the camera's current picture when fewer than MAX_IN_FLIGHT frames await an answer.
function pump() {
  const ws = live.ws;
  if (!live.running || !ws || ws.readyState !== WebSocket.OPEN || live.encoding) return;
  const now = performance.now();
  if (live.inFlight > 0 && now - live.lastReply > STALL_MS) live.inFlight = 0;
  if (live.inFlight >= MAX_IN_FLIGHT) return;
  const video = $("live-camera");
  if (video.readyState < 2 || !video.videoWidth) return;
  const canvas = $("live-source");
  const ctx = canvas.getContext("2d");
  // Cover: the camera's picture cropped to 4:3.
  const s = Math.max(WIDTH / video.videoWidth, HEIGHT / video.videoHeight);
  const w = video.videoWidth * s;
  const h = video.videoHeight * s;
  ctx.drawImage(video, (WIDTH - w) / 2, (HEIGHT - h) / 2, w, h);
  live.encoding = true;
  const seq = live.seq;
  canvas.toBlob(
    (blob) => {
      live.encoding = false;
      if (!blob || seq !== live.seq || live.ws !== ws || ws.readyState !== WebSocket.OPEN) return;
      ws.send(blob);
      live.sent++;
      live.inFlight++;
      if (live.inFlight === 1) live.lastReply = performance.now();
      pump();
    },
    "image/jpeg",
    QUALITY,
  );
}

async function drawReply(data) {
  const bitmap = await createImageBitmap(new Blob([data], { type: "image/jpeg" }));
  const out = $("live-output");
  if (out.width !== bitmap.width || out.height !== bitmap.height) {
    out.width = bitmap.width;
    out.height = bitmap.height;
  }
  out.getContext("2d").drawImage(bitmap, 0, 0);
  bitmap.close();
}

function connect() {
  const style = $("live-style").value;
  const seq = ++live.seq;
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const ws = new WebSocket(`${scheme}//${location.host}${apiUrl("live", { style })}`);
  ws.binaryType = "arraybuffer";
  live.ws = ws;
  live.ready = false;
  live.sent = 0;
  live.received = 0;
  live.inFlight = 0;
  live.stats = null;
  live.arrivals = [];
  live.startedAt = performance.now();
  $("live-panel").dataset.style = style;
  showFps();
  const title = $("live-style").selectedOptions[0]?.textContent || style;
  setStatus(`Connecting: ${title}…`);
  ws.onopen = () => {
    // Browsers cannot set headers on a WebSocket: the key goes in the first message.
    ws.send(JSON.stringify({ type: "auth", key: getKey() || null }));
    pump();
  };
  ws.onmessage = (e) => {
    if (seq !== live.seq) return;
    if (typeof e.data === "string") {
      let m;
      try {
        m = JSON.parse(e.data);
      } catch {
        return;
      }
      if (m.type === "ready") {
        live.ready = true;
        live.startedAt = performance.now();
        setStatus(`Live: ${title}`);
      } else if (m.type === "stats") {
        live.stats = m;
        // Frames the server dropped are never answered.
        live.inFlight = Math.max(0, Math.min(live.inFlight, live.sent - live.received - m.dropped));
        const panel = $("live-panel");
        panel.dataset.serverReceived = m.received;
        panel.dataset.serverProcessed = m.processed;
        panel.dataset.serverDropped = m.dropped;
        panel.dataset.serverFps = m.fps;
        panel.dataset.serverMs = [m.ms, m.decode_ms, m.wait_ms, m.stylize_ms, m.encode_ms].map((v) => (v === null ? "-" : v)).join("/");
        panel.dataset.receivedAtStats = live.received;
        panel.dataset.sentAtStats = live.sent;
        showFps();
      } else if (m.type === "error") {
        setStatus(`Live camera stopped: ${m.message}`, true);
      }
      return;
    }
    live.received++;
    live.inFlight = Math.max(0, live.inFlight - 1);
    live.lastReply = performance.now();
    live.arrivals.push(live.lastReply);
    drawReply(e.data).catch(() => {});
    showFps();
    pump();
  };
  ws.onclose = (e) => {
    if (seq !== live.seq) return;
    live.ws = null;
    if (live.running) {
      if (!$("live-status").classList.contains("error")) {
        setStatus(e.code === 1000 ? "The stream ended." : `The connection closed (${e.reason || e.code}).`, true);
      }
      stop(false);
    }
  };
}

async function start() {
  if (live.running) return;
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    setStatus("This browser cannot share a camera with the page.", true);
    return;
  }
  setStatus("Asking for the camera…");
  try {
    live.stream = await navigator.mediaDevices.getUserMedia({
      video: { width: { ideal: WIDTH }, height: { ideal: HEIGHT }, frameRate: { ideal: 30 } },
      audio: false,
    });
  } catch (e) {
    setStatus(e.name === "NotAllowedError" ? "The camera was not allowed." : `No camera: ${e.message}`, true);
    return;
  }
  const video = $("live-camera");
  video.srcObject = live.stream;
  await video.play().catch(() => {});
  live.running = true;
  $("live-start").textContent = "Stop camera";
  $("live-start").setAttribute("aria-pressed", "true");
  $("live-view").hidden = false;
  connect();
  live.timer = setInterval(() => {
    pump();
    showFps();
  }, 40);
}

function stop(closeSocket = true) {
  live.running = false;
  live.seq++;
  clearInterval(live.timer);
  if (closeSocket && live.ws) live.ws.close(1000, "stopped");
  live.ws = null;
  if (live.stream) for (const t of live.stream.getTracks()) t.stop();
  live.stream = null;
  $("live-camera").srcObject = null;
  $("live-start").textContent = "Start camera";
  $("live-start").setAttribute("aria-pressed", "false");
  showFps();
  if (closeSocket) setStatus("Stopped.");
}

function wire() {
  if (!$("live-panel")) return;
  $("live-start").addEventListener("click", () => (live.running ? stop() : start()));
  $("live-style").addEventListener("change", () => {
    if (!live.running) return;
    if (live.ws) live.ws.close(1000, "style changed");
    connect();
  });
  $("live-source").width = WIDTH;
  $("live-source").height = HEIGHT;
  loadStyles();
  // The gallery reloads when the key changes; so do the styles here.
  $("key-save")?.addEventListener("click", () => setTimeout(loadStyles, 0));
  $("key-forget")?.addEventListener("click", () => setTimeout(loadStyles, 0));
}

wire();
