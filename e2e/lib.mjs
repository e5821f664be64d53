// Shared helpers of the browser tests: Chromium launch, screenshots, checks, pixel comparison.

import { readFileSync, mkdirSync } from "node:fs";
import { basename, join } from "node:path";
import { chromium } from "playwright-core";

export const env = (name, fallback) => {
  const v = process.env[name];
  if (v === undefined || v === "") {
    if (fallback !== undefined) return fallback;
    throw new Error(`${name} is not set`);
  }
  return v;
};

const SHOTS = env("STYLEFORGE_E2E_SHOTS", join(process.cwd(), "..", "target", "e2e-shots"));
mkdirSync(SHOTS, { recursive: true });

const started = Date.now();
export function log(...args) {
  const t = ((Date.now() - started) / 1000).toFixed(1).padStart(6);
  console.log(`[${t}s]`, ...args);
}

export function check(cond, message) {
  if (!cond) throw new Error(`check failed: ${message}`);
}

// Runs `body(browser)` in headless Chromium with an overall time limit; exits non-zero on failure.
// `args` adds command-line switches (a fake camera, for instance).
export async function run(name, limitSeconds, body, args = []) {
  const timer = setTimeout(() => {
    console.error(`${name}: timed out after ${limitSeconds} s`);
    process.exit(2);
  }, limitSeconds * 1000);
  const browser = await chromium.launch({
    executablePath: env("STYLEFORGE_CHROMIUM", "/usr/bin/chromium"),
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--disable-dev-shm-usage",
      ...args,
    ],
  });
  let failed = false;
  try {
    await body(browser);
    log(`${name}: all checks passed`);
  } catch (e) {
    failed = true;
    console.error(`${name}: ${e.stack || e}`);
  } finally {
    await browser.close().catch(() => {});
    clearTimeout(timer);
  }
  process.exit(failed ? 1 : 0);
}

// A page that records uncaught errors and CSP violations (checked with `assertClean`).
export async function open(context, url) {
  const page = await context.newPage();
  page.problems = [];
  page.on("pageerror", (e) => page.problems.push(`uncaught: ${e.message}`));
  page.on("console", (m) => {
    if (m.type() === "error" && /Content Security Policy/i.test(m.text())) page.problems.push(`csp: ${m.text()}`);
  });
  if (url) await page.goto(url);
  return page;
}

export function assertClean(page) {
  check(page.problems.length === 0, `no script errors on the page: ${page.problems.join("; ")}`);
}

export async function shot(page, name, opts = {}) {
  const path = join(SHOTS, `${name}.png`);
  if (opts.fullPage !== false) await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path, fullPage: opts.fullPage !== false, animations: "disabled" });
  log(`screenshot ${path}`);
}

export function fileArg(path, type = "image/jpeg") {
  return { name: basename(path), mimeType: type, buffer: readFileSync(path) };
}

// Drops a file on an element, as a drag from the desktop would.
export async function dropFile(page, selector, path, type = "image/jpeg") {
  const b64 = readFileSync(path).toString("base64");
  await page.evaluate(
    ({ selector, b64, name, type }) => {
      const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
      const dt = new DataTransfer();
      dt.items.add(new File([bytes], name, { type }));
      const target = document.querySelector(selector);
      for (const kind of ["dragenter", "dragover", "drop"]) {
        target.dispatchEvent(new DragEvent(kind, { bubbles: true, cancelable: true, dataTransfer: dt }));
      }
    },
    { selector, b64, name: basename(path), type },
  );
}

// Pastes a file into the page, as Ctrl+V with an image on the clipboard would.
export async function pasteFile(page, path, type = "image/jpeg") {
  const b64 = readFileSync(path).toString("base64");
  await page.evaluate(
    ({ b64, name, type }) => {
      const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
      const dt = new DataTransfer();
      dt.items.add(new File([bytes], name, { type }));
      document.body.dispatchEvent(new ClipboardEvent("paste", { bubbles: true, cancelable: true, clipboardData: dt }));
    },
    { b64, name: basename(path), type },
  );
}

// Mean absolute difference per channel (0-255) between two images given by URL, both drawn at
// 96x96 on a canvas in the page.
export async function meanDiff(page, urlA, urlB) {
  return page.evaluate(
    async ([a, b]) => {
      const load = (src) =>
        new Promise((resolve, reject) => {
          const img = new Image();
          img.onload = () => resolve(img);
          img.onerror = () => reject(new Error(`cannot load ${src}`));
          img.src = src;
        });
      const [ia, ib] = await Promise.all([load(a), load(b)]);
      const w = 96;
      const h = 96;
      const c = document.createElement("canvas");
      c.width = w;
      c.height = h;
      const ctx = c.getContext("2d", { willReadFrequently: true });
      ctx.drawImage(ia, 0, 0, w, h);
      const da = ctx.getImageData(0, 0, w, h).data;
      ctx.clearRect(0, 0, w, h);
      ctx.drawImage(ib, 0, 0, w, h);
      const db = ctx.getImageData(0, 0, w, h).data;
      let sum = 0;
      for (let i = 0; i < da.length; i += 4) {
        sum += Math.abs(da[i] - db[i]) + Math.abs(da[i + 1] - db[i + 1]) + Math.abs(da[i + 2] - db[i + 2]);
      }
      return sum / (w * h * 3);
    },
    [urlA, urlB],
  );
}

// Every visible form control has an accessible name (label, aria-label or text).
export async function assertLabelled(page) {
  const unnamed = await page.evaluate(() => {
    const out = [];
    for (const e of document.querySelectorAll("input, select, textarea, button, a[href]")) {
      const r = e.getBoundingClientRect();
      const hiddenInput = e.type === "file" || e.type === "radio";
      if (!hiddenInput && (r.width === 0 || r.height === 0)) continue;
      const name =
        e.getAttribute("aria-label") ||
        (e.getAttribute("aria-labelledby") && document.getElementById(e.getAttribute("aria-labelledby"))?.textContent) ||
        (e.labels && Array.from(e.labels).map((l) => l.textContent).join(" ")) ||
        (e.tagName === "BUTTON" || e.tagName === "A" ? e.textContent : "") ||
        e.getAttribute("title");
      if (!name || !name.trim()) out.push(e.outerHTML.slice(0, 120));
    }
    return out;
  });
  check(unnamed.length === 0, `every control has a label: ${unnamed.join(" | ")}`);
}

// The page does not scroll sideways at this width.
export async function assertNoSideScroll(page) {
  const [sw, w] = await page.evaluate(() => [document.documentElement.scrollWidth, window.innerWidth]);
  check(sw <= w + 1, `no horizontal scrolling (content ${sw}px wide in a ${w}px window)`);
}

/** Waits until the page shows a result whose caption contains `metaContains`, and no error;
 * returns the caption. */
export async function waitResult(page, metaContains, timeout = 180_000) {
  await page.waitForFunction(
    (text) => {
      const meta = document.getElementById("result-meta");
      const after = document.getElementById("after");
      return !document.getElementById("compare").hidden && after.naturalWidth > 0 && meta.textContent.includes(text);
    },
    metaContains,
    { timeout },
  );
  const error = await page.locator("#status.error").count();
  check(error === 0, `no error shown: ${await page.locator("#status").textContent()}`);
  return page.textContent("#result-meta");
}
