// The A/B view: the user's photo stylised two ways side by side — two styles, or two methods for
// one style — through POST /v1/stylize; the user picks the one they prefer (a click, Enter or
// Space on a picture, or the keys ← / 1 and → / 2), the choice is sent to POST /v1/preferences,
// and the next pair is offered. The names stay hidden until the choice is made, so that they do
// not sway it. The standings under the pictures come from GET /v1/stats/preferences.
//
// The page (app.js) announces the current photo with a `styleforge:photo` event on `document`
// ({id, media} once uploaded, or null); this view announces new results (which are in the
// history) with `styleforge:results`.

import { ApiError, fetchBlob, followEvents, getJson, sendJson } from "./api.js";
import { url as apiUrl } from "./client.js";
import { el } from "./dom.js";

const $ = (id) => document.getElementById(id);

// The pictures are made at most this many pixels on their longer side.
const SIZE = 512;
const SIDES = ["a", "b"];

const ab = {
  photo: null, // {id, media}
  styles: [],
  methods: [],
  mode: "styles",
  queue: [], // pairs of arms still to show, for the current photo and mode
  pair: null, // {a: {style, method, result, url}, b: {...}, chosen}
  seq: 0,
  judged: 0,
};

function setStatus(text, kind = "") {
  const s = $("ab-status");
  s.textContent = text;
  s.className = `hint ab-status ${kind}`;
}

function styleTitle(name) {
  return ab.styles.find((s) => s.name === name)?.title || name;
}

function methodTitle(name) {
  return ab.methods.find((m) => m.name === name)?.title || name;
}

function armTitle(arm) {
  return ab.mode === "methods" ? methodTitle(arm.method) : `${styleTitle(arm.style)} · ${methodTitle(arm.method)}`;
}

// ---------------------------------------------------------------------------------------------
// Which arms can be compared: only methods that answer at once (two jobs per pair would be slow).

function quickMethods() {
  return ab.methods.filter((m) => m.execution === "sync" && m.available);
}

// The one-pass methods that can run `style`.
function methodsFor(style) {
  const quick = quickMethods();
  if (style.method === "image") return quick.filter((m) => m.style === "images").map((m) => m.name);
  if (style.kind !== "model") return [];
  return quick.filter((m) => m.style === "model" && m.model_kinds.includes(style.method)).map((m) => m.name);
}

// Styles with their usual method (the first one-pass method that runs them).
function styleArms() {
  return ab.styles.flatMap((s) => {
    const ms = methodsFor(s);
    return ms.length ? [{ style: s.name, method: ms[0] }] : [];
  });
}

// Styles that at least two one-pass methods can run.
function stylesWithMethods() {
  return ab.styles.filter((s) => methodsFor(s).length >= 2);
}

function pairsOf(arms) {
  const out = [];
  for (let i = 0; i < arms.length; i++) for (let j = i + 1; j < arms.length; j++) out.push([arms[i], arms[j]]);
  // Shuffled, and each pair's sides at random.
  for (let i = out.length - 1; i > 0; i--) {
    const k = Math.floor(Math.random() * (i + 1));
    [out[i], out[k]] = [out[k], out[i]];
  }
  return out.map((p) => (Math.random() < 0.5 ? p : [p[1], p[0]]));
}

function buildQueue() {
  if (ab.mode === "methods") {
    const style = ab.styles.find((s) => s.name === $("ab-style").value);
    ab.queue = style ? pairsOf(methodsFor(style).map((m) => ({ style: style.name, method: m }))) : [];
  } else {
    ab.queue = pairsOf(styleArms());
  }
}

// ---------------------------------------------------------------------------------------------
// Controls

async function loadChoices() {
  try {
    const [{ styles }, methods] = await Promise.all([getJson(apiUrl("list_styles")), getJson(apiUrl("list_methods"))]);
    ab.styles = styles;
    ab.methods = methods;
  } catch (e) {
    if (!(e instanceof ApiError && e.status === 401)) setStatus(`The styles could not be loaded: ${e.message}`, "error");
    return;
  }
  const select = $("ab-style");
  const previous = select.value;
  const options = stylesWithMethods();
  select.replaceChildren(...options.map((s) => el("option", { value: s.name, text: s.title })));
  if (options.some((s) => s.name === previous)) select.value = previous;
  $("ab-mode-methods").disabled = options.length === 0;
  updateControls();
}

function updateControls() {
  ab.mode = $("ab-mode-methods").checked ? "methods" : "styles";
  $("ab-style-field").hidden = ab.mode !== "methods";
  const still = !!(ab.photo && ab.photo.id && (!ab.photo.media || ab.photo.media === "image"));
  $("ab-start").disabled = !still;
  if (!ab.photo) setStatus("Add a photo above, then compare.");
  else if (!ab.photo.id) setStatus("Uploading your photo…");
  else if (!still) setStatus("Comparisons are made on photos, not on videos or animations.");
  else if (!ab.pair) setStatus("Ready: press Compare.");
}

function resetView() {
  ab.seq++;
  ab.pair = null;
  ab.queue = [];
  $("ab-view").hidden = true;
  $("ab-actions").hidden = true;
  $("ab-panel").dataset.state = "idle";
  for (const side of SIDES) {
    const img = $(`ab-${side}`).querySelector("img");
    if (img.src.startsWith("blob:")) URL.revokeObjectURL(img.src);
    img.removeAttribute("src");
  }
}

// ---------------------------------------------------------------------------------------------
// A pair

async function stylise(arm) {
  const { status, body } = await sendJson(apiUrl("stylize"), "POST", {
    image: ab.photo.id,
    style: arm.style,
    method: arm.method,
    max_size: SIZE,
    format: "png",
  });
  if (status !== 202) return body.result;
  // Over the server's budget for answers at once: a job; wait for it.
  const last = await followEvents(apiUrl("job_events", { id: body.job }), () => {});
  if (!last || last.state !== "succeeded") throw new Error(last?.error?.message || "the job did not succeed");
  return last.result;
}

async function showPair() {
  if (!ab.photo || !ab.photo.id) return;
  if (!ab.queue.length) buildQueue();
  const next = ab.queue.shift();
  if (!next) {
    setStatus(ab.mode === "methods" ? "This style has only one quick method here: choose another style." : "There are not two styles to compare.", "error");
    return;
  }
  const seq = ++ab.seq;
  // A keyboard user who asked for the pair gets the focus on its left picture once it is shown.
  const keyboard = $("ab-panel").contains(document.activeElement);
  const [a, b] = next;
  ab.pair = { a: { ...a }, b: { ...b }, chosen: null };
  $("ab-panel").dataset.state = "loading";
  $("ab-view").hidden = false;
  $("ab-view").setAttribute("aria-busy", "true");
  $("ab-actions").hidden = true;
  for (const side of SIDES) {
    const button = $(`ab-${side}`);
    button.disabled = true;
    button.setAttribute("aria-pressed", "false");
    button.classList.remove("won", "lost");
    button.querySelector(".ab-name").textContent = side === "a" ? "Left" : "Right";
    button.setAttribute("aria-label", `${side === "a" ? "Left" : "Right"} picture: loading`);
    const img = button.querySelector("img");
    if (img.src.startsWith("blob:")) URL.revokeObjectURL(img.src);
    img.removeAttribute("src");
  }
  setStatus("Stylising your photo both ways…");
  try {
    const results = await Promise.all([stylise(a), stylise(b)]);
    document.dispatchEvent(new CustomEvent("styleforge:results", { detail: { results } }));
    const urls = await Promise.all(results.map(async (r) => URL.createObjectURL(await fetchBlob(apiUrl("get_result", { id: r })))));
    if (seq !== ab.seq) {
      for (const u of urls) URL.revokeObjectURL(u);
      return;
    }
    await Promise.all(
      SIDES.map((side, i) => {
        ab.pair[side].result = results[i];
        const button = $(`ab-${side}`);
        button.dataset.style = ab.pair[side].style;
        button.dataset.method = ab.pair[side].method;
        button.dataset.result = results[i];
        const img = button.querySelector("img");
        return new Promise((resolve) => {
          img.onload = resolve;
          img.onerror = resolve;
          img.src = urls[i];
        });
      }),
    );
  } catch (e) {
    if (seq !== ab.seq) return;
    $("ab-panel").dataset.state = "idle";
    setStatus(`The pair could not be made: ${e.message}`, "error");
    $("ab-actions").hidden = false;
    return;
  }
  for (const side of SIDES) {
    const button = $(`ab-${side}`);
    button.disabled = false;
    button.setAttribute("aria-label", `Prefer the ${side === "a" ? "left" : "right"} picture`);
  }
  $("ab-view").setAttribute("aria-busy", "false");
  $("ab-panel").dataset.state = "choose";
  $("ab-actions").hidden = false;
  $("ab-next").textContent = "Skip this pair";
  if (keyboard || document.activeElement === document.body) $("ab-a").focus({ preventScroll: !keyboard });
  setStatus(ab.mode === "methods" ? `${styleTitle(a.style)}, two methods: which do you prefer?` : "Two styles: which do you prefer?");
}

async function choose(side) {
  const p = ab.pair;
  if (!p || p.chosen || $("ab-panel").dataset.state !== "choose") return;
  p.chosen = side;
  $("ab-panel").dataset.state = "saving";
  try {
    await sendJson(apiUrl("create_preference"), "POST", { a: p.a.result, b: p.b.result, winner: side });
  } catch (e) {
    p.chosen = null;
    $("ab-panel").dataset.state = "choose";
    setStatus(`The choice was not saved: ${e.message}`, "error");
    return;
  }
  ab.judged++;
  const other = side === "a" ? "b" : "a";
  for (const s of SIDES) {
    const button = $(`ab-${s}`);
    button.setAttribute("aria-pressed", s === side ? "true" : "false");
    button.classList.toggle("won", s === side);
    button.classList.toggle("lost", s !== side);
    button.querySelector(".ab-name").textContent = armTitle(p[s]);
    button.setAttribute("aria-label", `${armTitle(p[s])}${s === side ? ", your choice" : ""}`);
  }
  $("ab-panel").dataset.state = "chosen";
  $("ab-count").textContent = `${ab.judged} ${ab.judged === 1 ? "choice" : "choices"} this visit`;
  setStatus(`Saved: you preferred ${armTitle(p[side])} to ${armTitle(p[other])}.`, "ok");
  $("ab-next").textContent = "Next pair";
  $("ab-next").focus();
  loadStandings();
}

// ---------------------------------------------------------------------------------------------
// Standings

async function loadStandings() {
  const list = $("ab-standings");
  try {
    const style = ab.mode === "methods" ? $("ab-style").value : "";
    const stats = await getJson(apiUrl("preference_stats", { style }));
    const rows = ab.mode === "methods" ? stats.methods : stats.styles;
    const title = ab.mode === "methods" ? methodTitle : styleTitle;
    $("ab-standings-head").hidden = rows.length === 0;
    $("ab-standings-head").textContent =
      ab.mode === "methods" ? `Methods for ${styleTitle(style)}, by everyone's choices` : "Styles, by everyone's choices";
    list.replaceChildren(
      ...rows.slice(0, 6).map((r) => {
        // The bar: the chance of beating a typical choice (score 1), score / (score + 1).
        const fill = el("span");
        fill.style.width = `${Math.round((100 * r.score) / (r.score + 1))}%`;
        return el(
          "li",
          { "data-name": r.name },
          el("span", { class: "ab-rank-name", text: title(r.name) }),
          el("span", { class: "ab-rank-bar", "aria-hidden": "true" }, fill),
          el("span", { class: "hint ab-rank-score", text: `${r.score.toFixed(2)} · ${r.wins}–${r.losses}` }),
        );
      }),
    );
  } catch {
    // Standings are a bonus: the choice itself was saved.
  }
}

// ---------------------------------------------------------------------------------------------
// Wiring

function wire() {
  document.addEventListener("styleforge:photo", (e) => {
    ab.photo = e.detail || null;
    resetView();
    updateControls();
  });
  document.addEventListener("styleforge:styles", () => loadChoices());
  for (const r of document.querySelectorAll('input[name="ab-mode"]')) {
    r.addEventListener("change", () => {
      resetView();
      updateControls();
      loadStandings();
    });
  }
  $("ab-style").addEventListener("change", () => {
    resetView();
    updateControls();
    loadStandings();
  });
  $("ab-start").addEventListener("click", () => {
    resetView();
    buildQueue();
    showPair();
  });
  $("ab-next").addEventListener("click", () => showPair());
  for (const side of SIDES) $(`ab-${side}`).addEventListener("click", () => choose(side));
  // Shortcuts while focus is in the view (not in its form fields).
  $("ab-panel").addEventListener("keydown", (e) => {
    if (e.altKey || e.ctrlKey || e.metaKey || e.target.closest("select, input")) return;
    const state = $("ab-panel").dataset.state;
    if (state === "choose" && (e.key === "ArrowLeft" || e.key === "1")) choose("a");
    else if (state === "choose" && (e.key === "ArrowRight" || e.key === "2")) choose("b");
    else if ((state === "chosen" || state === "choose") && (e.key === "n" || e.key === "N")) showPair();
    else return;
    e.preventDefault();
  });
}

wire();
updateControls();
loadChoices().then(loadStandings);
