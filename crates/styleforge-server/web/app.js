// The styleforge page: upload a photo, pick (or upload, or blend) a style, stylise, compare,
// download, rate, and browse the history. Talks to the API under /v1 only. The gallery shows each
// style's rating and can list the best rated first. The A/B view (compare.js) hears of the photo
// through a `styleforge:photo` event and of reloaded styles through `styleforge:styles`, and
// tells the page of its results through `styleforge:results`.

import { ApiError, api, fetchBlob, followEvents, getJson, getKey, sendJson, setKey } from "./api.js";
import { url as apiUrl } from "./client.js";
import { el } from "./dom.js";

const $ = (id) => document.getElementById(id);

// The server's methods (GET /v1/methods): names, titles, where their style comes from (a
// library model, or style images run by a network the library holds), options.
let METHODS = [];

function methodInfo(name) {
  return METHODS.find((m) => m.name === name);
}

function methodTitle(name) {
  return methodInfo(name)?.title || name;
}

// Library models that are styles of their own: kinds run by a method whose style is the model.
function isStyleModel(s) {
  if (s.kind !== "model") return true;
  return METHODS.some((m) => m.style === "model" && m.model_kinds.includes(s.method));
}

function takesOption(method, option) {
  return !!methodInfo(method)?.options.some((o) => o.name === option);
}

const state = {
  styles: [],
  shown: [],
  selected: null,
  method: null,
  photo: null,
  uploading: false,
  busy: false,
  job: null,
  current: null,
  thumbs: new Map(),
  previews: new Map(),
  blendPick: null,
  history: { cursor: null, urls: [] },
  searchSeq: 0,
};

// ---------------------------------------------------------------------------------------------
// Small helpers

function formatBytes(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${Math.round(n / 1024)} kB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

function formatSeconds(s) {
  if (s < 1) return "under a second";
  if (s < 90) return `${Math.round(s)} s`;
  return `${Math.round(s / 60)} min`;
}

function ago(ms) {
  const s = Math.max(0, (Date.now() - ms) / 1000);
  if (s < 45) return "just now";
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return new Date(ms).toLocaleDateString();
}

function styleByName(name) {
  return state.styles.find((s) => s.name === name);
}

function styleTitle(label) {
  return label
    .split("+")
    .map((n) => styleByName(n)?.title || n)
    .join(" + ");
}

function methodsFor(style) {
  if (!style) return [];
  if (style.method === "image") {
    return METHODS.filter((m) => m.style === "images" && m.available).map((m) => m.name);
  }
  return METHODS.filter((m) => m.style === "model" && m.model_kinds.includes(style.method)).map((m) => m.name);
}

function badgeFor(style) {
  if (style.kind === "builtin") return "Painting";
  if (style.method === "image") return "Your image";
  if (style.method === "fast") return "Fast";
  if (style.method === "cyclegan") return "GAN";
  if (style.method === "onnx") return "ONNX";
  return style.method;
}

// ---------------------------------------------------------------------------------------------
// Messages

function notice(message, action) {
  const n = $("notice");
  n.replaceChildren(el("span", { text: message }));
  n.classList.toggle("info", !!(action && action.info));
  if (action) n.append(el("button", { type: "button", class: "secondary small", text: action.label, onclick: action.run }));
  n.hidden = false;
}

function clearNotice() {
  $("notice").hidden = true;
}

function setStatus(text, kind = "") {
  const s = $("status");
  s.textContent = text;
  s.className = `status ${kind}`;
}

function handleError(e, what) {
  if (e.name === "AbortError") return;
  if (e instanceof ApiError && e.status === 401) {
    keyNeeded(e);
    return;
  }
  const message = e instanceof ApiError ? e.message : String(e.message || e);
  setStatus(`${what}: ${message}`, "error");
}

function keyNeeded(e) {
  const bad = e && (e.code === "invalid_key" || e.code === "key_revoked");
  notice(
    bad ? "The saved API key is not accepted by this server (unknown or revoked)." : "This server needs an API key.",
    { label: bad ? "Change key" : "Enter key", run: openKeyDialog },
  );
  if (!$("key-dialog").open && !bad) openKeyDialog();
}

// ---------------------------------------------------------------------------------------------
// API key

function updateKeyButton() {
  const key = getKey();
  const b = $("key-button");
  b.textContent = key ? `Key ${key.slice(0, 7)}…` : "API key";
  b.classList.toggle("has-key", !!key);
  b.setAttribute("aria-label", key ? "API key saved: change or forget it" : "Add an API key");
}

function openKeyDialog() {
  const d = $("key-dialog");
  $("key-input").value = getKey();
  $("key-show").checked = false;
  $("key-input").type = "password";
  if (!d.open) d.showModal();
  $("key-input").focus();
}

function keyChanged() {
  updateKeyButton();
  clearNotice();
  state.thumbs.clear();
  state.previews.clear();
  loadStyles().then(() => loadHistory(true));
}

// ---------------------------------------------------------------------------------------------
// Styles

async function loadStyles() {
  const g = $("gallery");
  g.setAttribute("aria-busy", "true");
  try {
    const [{ styles }, methods] = await Promise.all([getJson(apiUrl("list_styles")), getJson(apiUrl("list_methods"))]);
    METHODS = methods;
    state.styles = styles;
    clearNotice();
    renderFilters();
    await search($("search").value);
    document.dispatchEvent(new CustomEvent("styleforge:styles"));
  } catch (e) {
    g.replaceChildren();
    if (e instanceof ApiError && e.status === 401) keyNeeded(e);
    else notice(`The styles could not be loaded: ${e.message}`, { label: "Retry", run: loadStyles });
  } finally {
    g.setAttribute("aria-busy", "false");
  }
}

async function search(query) {
  const seq = ++state.searchSeq;
  const q = query.trim();
  const sort = $("sort").value;
  let list = state.styles;
  if (q || sort === "rating") {
    try {
      list = (await getJson(apiUrl("list_styles", { q, sort: sort === "rating" ? "rating" : "" }))).styles;
    } catch (e) {
      handleError(e, "Search failed");
      return;
    }
  }
  if (seq !== state.searchSeq) return;
  state.shown = list.filter(isStyleModel);
  renderGallery(q);
}

function renderGallery(query) {
  const g = $("gallery");
  g.replaceChildren(...state.shown.map(styleCard));
  const empty = $("gallery-empty");
  if (state.shown.length) {
    empty.hidden = true;
  } else {
    empty.hidden = false;
    empty.textContent = query
      ? `No style matches “${query}”. Try another word, or upload your own style image.`
      : "No styles yet: add models with `styleforge models`, or upload a style image.";
  }
}

// "rated 4.3 of 5 from 12 ratings", or "" when the style has none (for the card's label).
function ratingText(r) {
  if (!r) return "";
  return `rated ${r.mean.toFixed(1)} of 5 from ${r.count} ${r.count === 1 ? "rating" : "ratings"}`;
}

// Five stars filled to the mean, the mean and the count.
function ratingBadge(r) {
  if (!r) return null;
  const stars = el("span", { class: "stars-meter", "aria-hidden": "true" });
  stars.style.setProperty("--fill", `${Math.round((r.mean / 5) * 100)}%`);
  return el(
    "span",
    { class: "style-rating", title: `${r.mean.toFixed(2)} of 5 from ${r.count} (95% interval ${r.ci_low.toFixed(1)}–${r.ci_high.toFixed(1)})` },
    stars,
    el("span", { class: "rating-mean", text: r.mean.toFixed(1) }),
    el("span", { class: "rating-count", text: `(${r.count})` }),
  );
}

function styleCard(s) {
  const selected = s.name === state.selected;
  const thumb = el("span", { class: "thumb none", "aria-hidden": "true", text: s.title.slice(0, 1).toUpperCase() });
  const card = el(
    "button",
    {
      type: "button",
      class: "style-card",
      "data-name": s.name,
      "aria-pressed": selected ? "true" : "false",
      "aria-label": [s.title, badgeFor(s), ratingText(s.rating), ...s.tags.slice(0, 3)].filter(Boolean).join(", "),
      title: s.description || s.title,
      onclick: () => selectStyle(s.name),
    },
    thumb,
    el("span", { class: "badge", text: badgeFor(s) }),
    el(
      "span",
      { class: "style-info" },
      el("span", { class: "style-title", text: s.title }),
      ratingBadge(s.rating),
      el("span", { class: "tags" }, ...s.tags.slice(0, 3).map((t) => el("span", { text: t }))),
    ),
  );
  if (s.thumbnail_url) loadThumb(s, thumb);
  return card;
}

// The style's own preview (an object URL), fetched once.
function thumbUrl(s) {
  let url = state.thumbs.get(s.name);
  if (!url) {
    url = fetchBlob(`${s.thumbnail_url}?size=320`).then((b) => URL.createObjectURL(b));
    state.thumbs.set(s.name, url);
    url.catch(() => state.thumbs.delete(s.name));
  }
  return url;
}

async function loadThumb(s, placeholder) {
  try {
    const src = await thumbUrl(s);
    const img = el("img", { class: "thumb", alt: "", src, loading: "lazy", decoding: "async" });
    placeholder.replaceWith(img);
  } catch {
    // No preview: the placeholder stays.
  }
}

// ---------------------------------------------------------------------------------------------
// Filters: the model styles the cartoon method runs (the built-in cartoon filters, installed
// anime generators), in a row of their own; once there is a photo, each card shows the filter
// applied to it (a small preview, fetched when the card comes into view, kept per photo).

const PREVIEW_SIZE = 256;
let filterObserver = null;

function isFilter(s) {
  const cartoon = methodInfo("cartoon");
  return s.kind === "model" && !!cartoon && cartoon.model_kinds.includes(s.method);
}

function renderFilters() {
  const filters = state.styles.filter(isFilter);
  $("filters-block").hidden = filters.length === 0;
  $("filters").replaceChildren(...filters.map(filterCard));
  refreshFilters();
}

function filterCard(s) {
  return el(
    "button",
    {
      type: "button",
      class: "filter-card",
      "data-name": s.name,
      "aria-pressed": s.name === state.selected ? "true" : "false",
      "aria-label": `${s.title}, filter`,
      title: s.description || s.title,
      onclick: () => selectStyle(s.name),
    },
    el("span", { class: "thumb none", "aria-hidden": "true", text: s.title.slice(0, 1).toUpperCase() }),
    el("span", { class: "style-title", text: s.title }),
  );
}

// Shows `src` on a filter card: the filter on the user's photo, or its usual thumbnail.
function setFilterImage(card, s, src, onPhoto) {
  card.querySelector(".thumb").replaceWith(el("img", { class: "thumb", alt: "", src, decoding: "async" }));
  card.querySelector(".on-photo")?.remove();
  if (onPhoto) card.append(el("span", { class: "on-photo", "aria-hidden": "true", text: "Your photo" }));
  card.dataset.preview = onPhoto ? "photo" : "style";
  card.setAttribute("aria-label", `${s.title}, filter${onPhoto ? ", previewed on your photo" : ""}`);
}

// The filter `s` on the photo `photoId` (an object URL, or null when it failed), fetched once.
function previewUrl(s, photoId) {
  let byStyle = state.previews.get(photoId);
  if (!byStyle) {
    byStyle = new Map();
    state.previews.set(photoId, byStyle);
  }
  let url = byStyle.get(s.name);
  if (!url) {
    const q = `size=${PREVIEW_SIZE}&image=${encodeURIComponent(photoId)}`;
    url = fetchBlob(`${s.thumbnail_url}?${q}`).then(
      (b) => URL.createObjectURL(b),
      () => {
        byStyle.delete(s.name);
        return null;
      },
    );
    byStyle.set(s.name, url);
  }
  return url;
}

async function showFilterImage(card) {
  const s = styleByName(card.dataset.name);
  if (!s || !s.thumbnail_url) return;
  const photoId = state.photo && state.photo.id;
  if (photoId) {
    card.classList.add("loading");
    const url = await previewUrl(s, photoId);
    card.classList.remove("loading");
    if (!state.photo || state.photo.id !== photoId) return;
    if (url) {
      setFilterImage(card, s, url, true);
      updateFilterHint();
      return;
    }
  }
  if (card.dataset.preview === "style") return;
  try {
    const url = await thumbUrl(s);
    if ((state.photo && state.photo.id) === photoId) setFilterImage(card, s, url, false);
  } catch {
    // No thumbnail: the letter stays.
  }
}

// (Re)loads every filter card's picture for the current photo, as the cards come into view.
function refreshFilters() {
  const cards = Array.from($("filters").children);
  updateFilterHint();
  if (!("IntersectionObserver" in window)) {
    for (const c of cards) showFilterImage(c);
    return;
  }
  if (!filterObserver) {
    filterObserver = new IntersectionObserver(
      (entries) => {
        for (const e of entries) {
          if (!e.isIntersecting) continue;
          filterObserver.unobserve(e.target);
          showFilterImage(e.target);
        }
      },
      { rootMargin: "120px" },
    );
  }
  for (const c of cards) {
    filterObserver.unobserve(c);
    filterObserver.observe(c);
  }
}

function updateFilterHint() {
  const shown = document.querySelectorAll('.filter-card[data-preview="photo"]').length;
  let hint;
  if (state.photo && state.photo.id) hint = shown ? "Previewed on your photo" : "Previewing on your photo…";
  else if (state.photo) hint = "Previewing on your photo…";
  else hint = "Add a photo to preview them on it";
  $("filters-hint").textContent = hint;
}

function selectStyle(name) {
  state.selected = name;
  for (const c of document.querySelectorAll(".style-card, .filter-card")) {
    c.setAttribute("aria-pressed", c.dataset.name === name ? "true" : "false");
  }
  renderMethods();
  updateGo();
}

function renderMethods() {
  const style = styleByName(state.selected);
  const field = $("method-field");
  const list = $("methods");
  const methods = methodsFor(style);
  if (!style) {
    field.hidden = true;
    renderBlend();
    return;
  }
  if (!methods.includes(state.method)) state.method = methods[0] || null;
  field.hidden = false;
  if (!methods.length) {
    list.replaceChildren(
      el("p", { class: "hint", text: "This server has no network for style images, so they cannot be used here." }),
    );
  } else {
    list.replaceChildren(
      ...methods.map((m) => {
        const { title, summary: note } = methodInfo(m) || { title: m, summary: "" };
        const input = el("input", {
          type: "radio",
          name: "method",
          value: m,
          id: `method-${m}`,
          checked: m === state.method,
          onchange: () => {
            state.method = m;
            renderBlend();
            updateOptions();
            updateGo();
          },
        });
        return el("label", { class: "method", for: `method-${m}` }, input, el("span", {}, el("strong", { text: title }), el("small", { text: note })));
      }),
    );
  }
  renderBlend();
  updateOptions();
}

function renderBlend() {
  const style = styleByName(state.selected);
  // The other style images: your own first, then the built-in paintings.
  const own = (s) => (s.kind === "custom" ? 0 : 1);
  const others = state.styles.filter((s) => s.method === "image" && s.name !== state.selected).sort((a, b) => own(a) - own(b));
  const show = !!style && style.method === "image" && methodInfo(state.method)?.style === "images" && others.length > 0;
  $("blend").hidden = !show;
  if (!show) return;
  const select = $("blend-style");
  select.replaceChildren(...others.map((s) => el("option", { value: s.name, text: s.title })));
  // A second style picked by hand stays picked.
  if (others.some((s) => s.name === state.blendPick)) select.value = state.blendPick;
  $("blend-controls").hidden = !$("blend-on").checked;
  updateBlendLabels();
}

function updateBlendLabels() {
  const a = styleByName(state.selected);
  const b = styleByName($("blend-style").value);
  const mix = Number($("blend-mix").value);
  $("blend-a").textContent = `${100 - mix}% ${a ? a.title : ""}`;
  $("blend-b").textContent = `${mix}% ${b ? b.title : ""}`;
  $("blend-mix").setAttribute("aria-valuetext", `${100 - mix}% ${a ? a.title : "first style"}, ${mix}% ${b ? b.title : "second style"}`);
}

async function uploadStyle(file) {
  if (!file) return;
  const base = file.name.replace(/\.[^.]+$/, "").replace(/[_-]+/g, " ").trim().slice(0, 80);
  const title = base ? base.charAt(0).toUpperCase() + base.slice(1) : "My style";
  setStatus("Adding your style image…");
  $("style-upload").disabled = true;
  try {
    const r = await api(apiUrl("upload_style", { title }), {
      method: "POST",
      body: file,
      headers: { "Content-Type": file.type || "application/octet-stream" },
    });
    const style = await r.json();
    state.styles = [style, ...state.styles.filter((s) => s.name !== style.name)];
    $("search").value = "";
    await search("");
    selectStyle(style.name);
    setStatus(`Style image “${style.title}” added.`, "ok");
  } catch (e) {
    handleError(e, "The style image could not be added");
  } finally {
    $("style-upload").disabled = false;
    $("style-input").value = "";
  }
}

// ---------------------------------------------------------------------------------------------
// Photo

// Tells the other views (the A/B view) which photo is current: {id, media}, or null.
function announcePhoto() {
  const p = state.photo;
  document.dispatchEvent(new CustomEvent("styleforge:photo", { detail: p ? { id: p.id, media: p.media || null } : null }));
}

function isMediaFile(f) {
  return !f.type || f.type.startsWith("image/") || f.type.startsWith("video/");
}

async function usePhoto(file) {
  if (!file) return;
  if (!isMediaFile(file)) {
    setStatus("That is not an image or a video: choose a JPEG, PNG, WebP or GIF, or an MP4 or WebM video.", "error");
    return;
  }
  const url = URL.createObjectURL(file);
  const isVideo = (file.type || "").startsWith("video/");
  const preview = $("photo-preview");
  const video = $("photo-video");
  if (state.photo && state.photo.local) URL.revokeObjectURL(state.photo.local);
  preview.hidden = isVideo;
  video.hidden = !isVideo;
  if (isVideo) {
    preview.removeAttribute("src");
    video.src = url;
  } else {
    video.removeAttribute("src");
    preview.src = url;
  }
  $("drop").classList.add("has-photo");
  $("photo-change").hidden = false;
  state.photo = { id: null, local: url };
  announcePhoto();
  refreshFilters();
  state.uploading = true;
  $("photo-meta").textContent = "Uploading…";
  updateGo();
  try {
    const r = await api(apiUrl("upload_image"), {
      method: "POST",
      body: file,
      headers: { "Content-Type": file.type || "application/octet-stream" },
    });
    const info = await r.json();
    if (state.photo && state.photo.local === url) {
      state.photo.id = info.id;
      state.photo.media = info.media || "image";
      announcePhoto();
      const frames = info.frames ? ` · ${info.frames} frames` : "";
      const secs = info.duration_ms ? ` · ${formatSeconds(info.duration_ms / 1000)}` : "";
      $("photo-meta").textContent = `${info.width} × ${info.height} · ${info.format.toUpperCase()}${frames}${secs} · ${formatBytes(info.bytes)}`;
      refreshFilters();
    }
  } catch (e) {
    state.photo = null;
    announcePhoto();
    preview.hidden = true;
    video.hidden = true;
    video.removeAttribute("src");
    $("drop").classList.remove("has-photo");
    $("photo-change").hidden = true;
    $("photo-meta").textContent = "JPEG, PNG or WebP; GIF or a video (MP4, WebM).";
    refreshFilters();
    handleError(e, "The photo could not be uploaded");
  } finally {
    state.uploading = false;
    updateGo();
  }
}

function imageFrom(list) {
  for (const f of list || []) if (f && isMediaFile(f)) return f;
  return null;
}

// ---------------------------------------------------------------------------------------------
// Options and the Stylise button

function updateOptions() {
  $("iterations-field").hidden = !takesOption(state.method, "iterations");
  $("strength-out").textContent = `${$("strength").value}%`;
}

function updateGo() {
  const style = styleByName(state.selected);
  const ready = !!(state.photo && state.photo.id && style && state.method);
  $("go").disabled = !ready || state.busy;
  let hint;
  if (state.busy) hint = "Working…";
  else if (state.uploading) hint = "Uploading your photo…";
  else if (!state.photo && !style) hint = "Choose a photo and a style.";
  else if (!state.photo) hint = "Now choose a photo.";
  else if (!style) hint = "Now choose a style.";
  else if (!state.method) hint = "This style cannot be used on this server.";
  else hint = `${style.title} · ${methodTitle(state.method)}`;
  $("go-hint").textContent = hint;
}

function request() {
  const body = {
    image: state.photo.id,
    method: state.method,
    strength: Number($("strength").value) / 100,
    preserve_color: $("preserve").checked,
  };
  // Videos and animations keep their kind (the server's default); stills come back as PNG.
  if (!state.photo.media || state.photo.media === "image") body.format = "png";
  const size = $("size").value;
  if (size) body.max_size = Number(size);
  if (takesOption(state.method, "iterations")) body.iterations = Number($("iterations").value);
  const second = $("blend-style").value;
  if (!$("blend").hidden && $("blend-on").checked && second) {
    const mix = Number($("blend-mix").value) / 100;
    body.styles = [
      { style: state.selected, weight: Math.max(0, 1 - mix) },
      { style: second, weight: mix },
    ];
  } else {
    body.style = state.selected;
  }
  return body;
}

function setBusy(busy) {
  state.busy = busy;
  $("compare").classList.toggle("stale", busy);
  if (busy) $("result-actions").hidden = true;
  $("result-panel").setAttribute("aria-busy", busy ? "true" : "false");
  updateGo();
}

function showProgress(stage, fraction, eta, cancellable) {
  $("progress").hidden = false;
  $("placeholder").hidden = true;
  $("stage").textContent = stage;
  $("eta").textContent = eta || "";
  const bar = $("progress-bar");
  if (fraction === null) bar.removeAttribute("value");
  else bar.value = Math.round(fraction * 1000) / 10;
  $("cancel").hidden = !cancellable;
}

function hideProgress() {
  $("progress").hidden = true;
}

async function go() {
  if ($("go").disabled) return;
  const body = request();
  const before = state.photo.local;
  setBusy(true);
  setStatus("");
  showProgress(methodInfo(body.method)?.execution === "job" ? "Sending the job…" : "Stylising…", null, "", false);
  if (matchMedia("(max-width: 900px)").matches) {
    $("result-panel").scrollIntoView({ behavior: "smooth", block: "start" });
  }
  try {
    const { status, body: r } = await sendJson(apiUrl("stylize"), "POST", body);
    if (status === 202) {
      await runJob(r.job, before);
    } else {
      hideProgress();
      await showResult(r.result, before);
    }
  } catch (e) {
    hideProgress();
    handleError(e, "Stylisation failed");
  } finally {
    setBusy(false);
    loadHistory(true);
  }
}

function stageText(job) {
  if (job.state === "queued") return "Waiting in the queue";
  const p = job.progress || {};
  let s = p.stage ? p.stage.charAt(0).toUpperCase() + p.stage.slice(1) : "Working";
  if (p.iteration && p.iterations) s += ` · step ${p.iteration} of ${p.iterations}`;
  return s;
}

function etaText(job) {
  const eta = job.progress && job.progress.eta_seconds;
  if (job.state !== "running" || eta === null || eta === undefined) return "";
  return eta < 1 ? "almost done" : `about ${formatSeconds(eta)} left`;
}

async function runJob(id, before) {
  const abort = new AbortController();
  state.job = { id, abort };
  showProgress("Waiting in the queue", 0, "", true);
  const update = (job) => {
    if (!state.job || state.job.id !== id) return;
    showProgress(stageText(job), job.progress ? job.progress.fraction : 0, etaText(job), !job.cancel_requested);
    if (job.cancel_requested && job.state === "running") $("stage").textContent = "Cancelling…";
  };
  let last = null;
  try {
    last = await followEvents(apiUrl("job_events", { id }), (_, job) => update(job), abort.signal);
  } catch (e) {
    if (e.name === "AbortError") return;
  }
  // The stream ended without a final event (the server restarted): poll until the job ends.
  while (!last || !["succeeded", "failed", "cancelled"].includes(last.state)) {
    await new Promise((r) => setTimeout(r, 1000));
    if (!state.job || state.job.id !== id) return;
    last = await getJson(apiUrl("get_job", { id }));
    update(last);
  }
  state.job = null;
  hideProgress();
  if (last.state === "succeeded") {
    await showResult(last.result, before || null, last.image);
  } else if (last.state === "cancelled") {
    setStatus("Cancelled. Nothing was kept.");
  } else {
    setStatus(`The job failed: ${last.error ? last.error.message : "unknown error"}`, "error");
  }
}

async function cancelJob() {
  if (!state.job) return;
  $("cancel").hidden = true;
  $("stage").textContent = "Cancelling…";
  try {
    await api(apiUrl("cancel_job", { id: state.job.id }), { method: "POST" });
  } catch (e) {
    handleError(e, "Could not cancel");
  }
}

// ---------------------------------------------------------------------------------------------
// Result

async function showResult(resultId, beforeUrl, imageId) {
  const blob = await fetchBlob(apiUrl("get_result", { id: resultId }));
  const afterUrl = URL.createObjectURL(blob);
  if (state.current) URL.revokeObjectURL(state.current.url);
  let before = beforeUrl;
  const info = await getJson(apiUrl("get_result_info", { id: resultId }));
  if (!before) {
    try {
      before = URL.createObjectURL(await fetchBlob(apiUrl("get_image", { id: imageId || info.image })));
    } catch {
      before = afterUrl;
    }
  }
  state.current = { id: resultId, url: afterUrl, info };
  const video = $("result-video");
  const isVideo = info.format === "mp4" || info.format === "webm";
  video.hidden = !isVideo;
  if (isVideo) {
    // A stylised video plays in place; there is no before/after slider for it.
    $("compare").hidden = true;
    await new Promise((resolve) => {
      video.onloadeddata = resolve;
      video.onerror = resolve;
      video.src = afterUrl;
    });
  } else {
    video.removeAttribute("src");
    const after = $("after");
    await new Promise((resolve) => {
      after.onload = resolve;
      after.onerror = resolve;
      after.src = afterUrl;
    });
    $("before").src = before;
    $("compare-range").value = 50;
    $("compare").style.setProperty("--pos", "50%");
    $("compare").hidden = false;
  }
  $("placeholder").hidden = true;
  const ext = info.format === "jpeg" ? "jpg" : info.format;
  const name = styleTitle(info.style).toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-|-$/g, "");
  const a = $("download");
  a.href = afterUrl;
  a.download = `styleforge-${name || "result"}.${ext}`;
  for (const r of document.querySelectorAll('input[name="rating"]')) r.checked = Number(r.value) === info.rating;
  $("rating-note").textContent = info.rating ? `You rated it ${info.rating} of 5.` : "";
  const t = info.timings || {};
  const secs = t.total_ms ? ` · ${formatSeconds(t.total_ms / 1000)}` : "";
  $("result-meta").textContent = `${styleTitle(info.style)} · ${methodTitle(info.method)} · ${info.width} × ${info.height}${secs}`;
  $("result-actions").hidden = false;
  setStatus("");
}

async function rate(score) {
  if (!state.current) return;
  try {
    await sendJson(apiUrl("rate_result", { id: state.current.id }), "PUT", { score });
    $("rating-note").textContent = `Thanks! You rated it ${score} of 5.`;
    refreshRatings();
  } catch (e) {
    handleError(e, "The rating was not saved");
  }
}

// The gallery's ratings after a rating: the styles again, the thumbnails kept.
async function refreshRatings() {
  try {
    state.styles = (await getJson(apiUrl("list_styles"))).styles;
    await search($("search").value);
  } catch {
    // The old numbers stay.
  }
}

// ---------------------------------------------------------------------------------------------
// History

async function loadHistory(reset) {
  // A newer load (a reset while this one waits) wins: its page is the one shown.
  const seq = (state.history.seq = (state.history.seq || 0) + 1);
  if (reset) {
    state.history.cursor = null;
    for (const u of state.history.urls) URL.revokeObjectURL(u);
    state.history.urls = [];
    $("history").replaceChildren();
  }
  const list = $("history");
  list.setAttribute("aria-busy", "true");
  try {
    const page = await getJson(apiUrl("list_history", { limit: 12, cursor: state.history.cursor }));
    if (seq !== state.history.seq) return;
    state.history.cursor = page.next_cursor || null;
    for (const job of page.items) list.append(historyItem(job));
    $("history-more").hidden = !state.history.cursor;
    $("history-empty").hidden = list.children.length > 0;
  } catch (e) {
    if (!(e instanceof ApiError && e.status === 401)) $("history-empty").hidden = false;
  } finally {
    list.setAttribute("aria-busy", "false");
  }
}

function historyItem(job) {
  const title = styleTitle(job.style);
  const img = el("span", { class: "h-img", "aria-hidden": "true", text: job.state === "succeeded" ? "" : job.state });
  const when = ago(job.created_at);
  const button = el(
    "button",
    {
      type: "button",
      "aria-label": `${title}, ${job.method}, ${job.state}, ${when}`,
      onclick: () => openHistory(job),
    },
    img,
    el(
      "span",
      { class: "h-text" },
      el("strong", { text: title }),
      el("span", { class: "state", text: `${job.method} · ${when}` }),
    ),
  );
  const li = el("li", { class: job.state }, button);
  if (job.state === "succeeded" && job.result) {
    fetchBlob(apiUrl("get_result", { id: job.result }))
      .then((b) => {
        const url = URL.createObjectURL(b);
        state.history.urls.push(url);
        const video = (b.type || "").startsWith("video/");
        img.replaceWith(video ? el("video", { class: "h-img", src: url, muted: "", preload: "metadata" }) : el("img", { class: "h-img", alt: "", src: url }));
      })
      .catch(() => {});
  }
  return li;
}

async function openHistory(job) {
  if (job.state === "succeeded" && job.result) {
    try {
      await showResult(job.result, null, job.image);
      $("result-panel").scrollIntoView({ behavior: "smooth", block: "start" });
    } catch (e) {
      handleError(e, "Could not open it");
    }
  } else if (job.state === "queued" || job.state === "running") {
    if (state.job) return;
    setBusy(true);
    try {
      await runJob(job.id);
    } finally {
      setBusy(false);
    }
  } else if (job.error) {
    setStatus(`That job failed: ${job.error.message}`, "error");
  } else {
    setStatus(`That job was ${job.state}.`);
  }
}

// ---------------------------------------------------------------------------------------------
// Wiring

function wire() {
  const drop = $("drop");
  const fileInput = $("file-input");
  $("file-button").addEventListener("click", () => fileInput.click());
  $("photo-change").addEventListener("click", () => fileInput.click());
  fileInput.addEventListener("change", () => {
    usePhoto(fileInput.files[0]);
    fileInput.value = "";
  });
  $("camera-button").addEventListener("click", () => $("camera-input").click());
  $("camera-input").addEventListener("change", (e) => {
    usePhoto(e.target.files[0]);
    e.target.value = "";
  });
  if (matchMedia("(pointer: coarse)").matches) {
    $("camera-button").hidden = false;
    document.querySelector(".drop-title").textContent = "Add a photo";
    document.querySelector(".drop .hint").hidden = true;
  }
  else if (navigator.mediaDevices && navigator.mediaDevices.enumerateDevices) {
    navigator.mediaDevices
      .enumerateDevices()
      .then((ds) => {
        if (ds.some((d) => d.kind === "videoinput")) $("camera-button").hidden = false;
      })
      .catch(() => {});
  }

  let depth = 0;
  document.addEventListener("dragenter", (e) => {
    if (!e.dataTransfer || !Array.from(e.dataTransfer.types).includes("Files")) return;
    depth++;
    drop.classList.add("over");
  });
  document.addEventListener("dragleave", () => {
    depth = Math.max(0, depth - 1);
    if (!depth) drop.classList.remove("over");
  });
  document.addEventListener("dragover", (e) => e.preventDefault());
  document.addEventListener("drop", (e) => {
    e.preventDefault();
    depth = 0;
    drop.classList.remove("over");
    const f = imageFrom(e.dataTransfer && e.dataTransfer.files);
    if (f) usePhoto(f);
  });
  document.addEventListener("paste", (e) => {
    const cd = e.clipboardData;
    if (!cd) return;
    const f = imageFrom(cd.files) || imageFrom(Array.from(cd.items || []).filter((i) => i.kind === "file").map((i) => i.getAsFile()));
    if (f) {
      e.preventDefault();
      usePhoto(f);
    }
  });

  let timer = 0;
  $("search").addEventListener("input", (e) => {
    clearTimeout(timer);
    timer = setTimeout(() => search(e.target.value), 200);
  });
  $("sort").addEventListener("change", () => search($("search").value));
  $("style-upload").addEventListener("click", () => $("style-input").click());
  $("style-input").addEventListener("change", (e) => uploadStyle(e.target.files[0]));

  $("blend-on").addEventListener("change", () => {
    $("blend-controls").hidden = !$("blend-on").checked;
    updateBlendLabels();
  });
  $("blend-style").addEventListener("change", () => {
    state.blendPick = $("blend-style").value;
    updateBlendLabels();
  });
  $("blend-mix").addEventListener("input", updateBlendLabels);
  $("strength").addEventListener("input", updateOptions);

  $("go").addEventListener("click", go);
  $("cancel").addEventListener("click", cancelJob);
  $("compare-range").addEventListener("input", (e) => {
    $("compare").style.setProperty("--pos", `${e.target.value}%`);
  });
  for (const r of document.querySelectorAll('input[name="rating"]')) {
    r.addEventListener("change", () => rate(Number(r.value)));
  }
  $("history-more").addEventListener("click", () => loadHistory(false));
  // The A/B view's stylisations are in the history too.
  document.addEventListener("styleforge:results", () => loadHistory(true));
  $("history-refresh").addEventListener("click", () => loadHistory(true));

  const d = $("key-dialog");
  $("key-button").addEventListener("click", openKeyDialog);
  $("key-show").addEventListener("change", (e) => {
    $("key-input").type = e.target.checked ? "text" : "password";
  });
  $("key-cancel").addEventListener("click", () => d.close());
  $("key-forget").addEventListener("click", () => {
    setKey("");
    d.close();
    keyChanged();
  });
  $("key-save").addEventListener("click", () => {
    setKey($("key-input").value.trim());
    d.close();
    keyChanged();
  });
  $("key-input").addEventListener("keydown", (e) => {
    if (e.key === "Enter") $("key-save").click();
  });
}

wire();
updateKeyButton();
updateOptions();
updateGo();
// History titles name styles, so the gallery comes first.
loadStyles().then(() => loadHistory(true));
