// The styleforge API as the page uses it: the key kept in localStorage, JSON errors turned into
// ApiError, images fetched as blobs (so they work with a key), and job events read from a
// streamed fetch (EventSource cannot send the key).

const KEY_STORAGE = "styleforge.key";

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export function getKey() {
  try {
    return localStorage.getItem(KEY_STORAGE) || "";
  } catch {
    return "";
  }
}

export function setKey(key) {
  try {
    if (key) localStorage.setItem(KEY_STORAGE, key);
    else localStorage.removeItem(KEY_STORAGE);
  } catch {
    // Private browsing without storage: the key lasts until the page closes.
  }
  memoryKey = key || "";
}

let memoryKey = "";

function currentKey() {
  return getKey() || memoryKey;
}

export async function api(path, { method = "GET", json, body, headers = {}, signal } = {}) {
  const h = new Headers(headers);
  const key = currentKey();
  if (key) h.set("Authorization", `Bearer ${key}`);
  if (json !== undefined) {
    h.set("Content-Type", "application/json");
    body = JSON.stringify(json);
  }
  let r;
  try {
    r = await fetch(path, { method, headers: h, body, signal });
  } catch (e) {
    if (e.name === "AbortError") throw e;
    throw new ApiError(0, "network", "The server cannot be reached. Check the connection and try again.");
  }
  if (!r.ok) {
    let code = `http_${r.status}`;
    let message = r.statusText || "Request failed";
    try {
      const j = await r.json();
      code = j.code || code;
      message = j.message || message;
    } catch {
      // Not JSON: keep the status text.
    }
    throw new ApiError(r.status, code, message);
  }
  return r;
}

export async function getJson(path, opts) {
  const r = await api(path, opts);
  return r.json();
}

export async function sendJson(path, method, json) {
  const r = await api(path, { method, json });
  return { status: r.status, body: await r.json() };
}

export async function fetchBlob(path, opts) {
  const r = await api(path, opts);
  return r.blob();
}

// Reads a job's Server-Sent Events, calling onEvent(name, data) for each, until the `done` event
// or the end of the stream. Returns the last status seen.
export async function followEvents(path, onEvent, signal) {
  const r = await api(path, { signal, headers: { Accept: "text/event-stream" } });
  const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let last = null;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value.replace(/\r\n?/g, "\n");
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      let name = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) name = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
      }
      if (!data.length) continue;
      let parsed;
      try {
        parsed = JSON.parse(data.join("\n"));
      } catch {
        continue;
      }
      last = parsed;
      onEvent(name, parsed);
      if (name === "done") {
        reader.cancel().catch(() => {});
        return last;
      }
    }
  }
  return last;
}
