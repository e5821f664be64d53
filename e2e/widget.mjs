// The widget in Chromium, embedded in pages served from other origins than the API: on an
// allowed origin it restyles a marked image (a `styleforge:result` event with the blob, the image
// replaced), finds styles by keywords, and makes a 512x512 avatar from an adjustable crop; the
// host page's aggressive CSS does not reach it; on an origin the key does not allow, it refuses.
//
// Environment: STYLEFORGE_HOST_OK, STYLEFORGE_HOST_DENIED (pages embedding the widget),
// STYLEFORGE_AVATAR_PHOTO, STYLEFORGE_CHROMIUM, STYLEFORGE_E2E_SHOTS.

import { assertClean, assertNoSideScroll, check, env, fileArg, log, meanDiff, open, run, shot } from "./lib.mjs";

const OK = env("STYLEFORGE_HOST_OK");
const DENIED = env("STYLEFORGE_HOST_DENIED");
const AVATAR_PHOTO = env("STYLEFORGE_AVATAR_PHOTO");

const IMG = "styleforge-widget[data-mode=image]";
const AV = "styleforge-widget[data-mode=avatar]";

async function results(page, n) {
  await page.waitForFunction((n) => window.__results.length >= n || window.__errors.length > 0, n, { timeout: 120_000 });
  const errors = await page.evaluate(() => window.__errors);
  check(errors.length === 0, `no widget errors: ${JSON.stringify(errors)}`);
  return page.evaluate(() => window.__results);
}

async function restyleImage(page, style) {
  const toggle = page.locator(`${IMG} button.toggle`);
  if ((await toggle.getAttribute("aria-expanded")) !== "true") await toggle.click();
  await page.locator(`${IMG} .card[data-style="${style}"]`).waitFor();
  const before = (await page.evaluate(() => window.__results.length)) + 1;
  await page.locator(`${IMG} .card[data-style="${style}"]`).click();
  return (await results(page, before)).at(-1);
}

await run("widget", 300, async (browser) => {
  // ---- Allowed origin, desktop ---------------------------------------------------------------
  const desktop = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await open(desktop, OK);
  const toggle = page.locator(`${IMG} button.toggle`);
  await toggle.waitFor();

  // The host page hides every button and spaces its letters: none of that reaches the widget.
  const looks = await toggle.evaluate((b) => {
    const cs = getComputedStyle(b);
    return { display: cs.display, spacing: cs.letterSpacing, font: cs.fontFamily };
  });
  log(`widget button style: ${JSON.stringify(looks)}`);
  check(looks.display !== "none", "the host page's `button {display: none}` does not hide the widget");
  check(looks.spacing === "normal" || looks.spacing === "0px", "the host page's letter spacing does not leak in");
  check(!/georgia/i.test(looks.font), "the host page's font does not leak in");

  await toggle.click();
  const cards = page.locator(`${IMG} .card`);
  await page.waitForFunction((sel) => document.querySelector(sel)?.shadowRoot.querySelectorAll(".card img").length >= 2, IMG);
  check((await cards.count()) >= 3, "the strip shows Original and the fast styles");

  // Theme search: keywords find the matching style first.
  const q = page.locator(`${IMG} input[type=search]`);
  await q.fill("stormy sea");
  await page.waitForFunction(
    (sel) => document.querySelector(sel).shadowRoot.querySelectorAll(".card")[1]?.dataset.style === "seascape",
    IMG,
  );
  log("theme search: `stormy sea` offers seascape first");
  await q.fill("");
  await page.waitForFunction((sel) => document.querySelector(sel).shadowRoot.querySelectorAll(".card").length >= 3, IMG);
  await shot(page, "widget-desktop-strip");

  const r = await restyleImage(page, "candy");
  await shot(page, "widget-desktop-applied");
  check(r.mode === "image" && r.style === "candy" && r.target === "post", `event detail: ${JSON.stringify(r)}`);
  check(r.type === "image/png" && r.size > 1000, "the event carries the result as a PNG blob");
  check(r.url.startsWith("blob:"), "the event carries an object URL");
  const src = await page.getAttribute("#post", "src");
  check(src === r.url, "the marked image shows the result");
  const diff = await meanDiff(page, "/photo.jpg", r.url);
  log(`widget result: mean difference from the photo ${diff.toFixed(1)}`);
  check(diff > 12, `the restyled image differs from the original (${diff.toFixed(1)})`);
  await page.locator(`${IMG} .card[data-style=""]`).click();
  await page.waitForFunction(() => document.getElementById("post").getAttribute("src") === "/photo.jpg");
  log("Original puts the photo back");

  // Avatar: a photo, a zoomed and moved square crop, a style: 512x512.
  await page.locator(`${AV} input[type=file]`).setInputFiles(fileArg(AVATAR_PHOTO));
  const crop = page.locator(`${AV} .crop`);
  await crop.waitFor();
  await page.locator(`${AV} input[type=range]`).fill("160");
  const box = await crop.boundingBox();
  await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
  await page.mouse.down();
  await page.mouse.move(box.x + box.width / 2 + 40, box.y + box.height / 2 + 15, { steps: 5 });
  await page.mouse.up();
  await crop.focus();
  await page.keyboard.press("ArrowLeft");
  await page.keyboard.press("+");
  check((await page.locator(`${AV} input[type=range]`).inputValue()) === "170", "+ zooms in");
  await page.locator(`${AV} .card[data-style="seascape"]`).click();
  const a = (await results(page, 2)).at(-1);
  check(a.mode === "avatar" && a.style === "seascape" && a.target === "avatar", `avatar event: ${JSON.stringify(a)}`);
  check(a.width === 512 && a.height === 512, `the avatar is 512x512 (${a.width}x${a.height})`);
  const decoded = await page.evaluate(async (url) => {
    const b = await createImageBitmap(await (await fetch(url)).blob());
    return [b.width, b.height];
  }, a.url);
  check(decoded[0] === 512 && decoded[1] === 512, `the avatar blob decodes to 512x512 (${decoded})`);
  await page.locator(`${AV} .card[data-style=""]`).click();
  const plain = (await results(page, 3)).at(-1);
  check(plain.style === null && plain.width === 512, "No style gives the plain 512x512 crop");
  await page.locator(`${AV} .card[data-style="seascape"]`).click();
  await results(page, 4);
  await shot(page, "widget-desktop-avatar");
  assertClean(page);
  await desktop.close();

  // ---- Allowed origin, phone ---------------------------------------------------------------
  const phone = await browser.newContext({
    viewport: { width: 390, height: 844 },
    deviceScaleFactor: 2,
    isMobile: true,
    hasTouch: true,
  });
  const p = await open(phone, OK);
  await p.locator(`${IMG} button.toggle`).waitFor();
  const pr = await restyleImage(p, "seascape");
  check(pr.style === "seascape", "the widget works at phone width");
  await p.locator(`${AV} input[type=file]`).setInputFiles(fileArg(AVATAR_PHOTO));
  await p.locator(`${AV} .crop`).waitFor();
  await p.locator(`${AV} .card[data-style="candy"]`).click();
  await results(p, 2);
  await assertNoSideScroll(p);
  await p.locator(`${AV} .crop`).scrollIntoViewIfNeeded();
  await shot(p, "widget-phone-avatar-view", { fullPage: false });
  await shot(p, "widget-phone");
  assertClean(p);
  await phone.close();

  // ---- An origin the key does not allow ---------------------------------------------------------
  const other = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const d = await open(other, DENIED);
  const refused = d.locator(`${AV} .status.error`);
  await refused.waitFor({ timeout: 30_000 });
  const message = await refused.textContent();
  log(`refused: ${message}`);
  check(/not allowed/.test(message), "the widget says this site is not allowed");
  await d.locator(`${IMG} button.toggle`).click();
  await d.locator(`${IMG} .status.error`).waitFor();
  check((await d.locator(`${IMG} .card`).count()) === 0, "no styles are offered");
  check((await d.locator(`${AV} input[type=file]`).count()) === 0, "no photo is asked for where nothing can be done with it");
  const events = await d.evaluate(() => ({ results: window.__results.length, errors: window.__errors }));
  check(events.results === 0, "no result on a refused origin");
  const direct = await d.evaluate(async () => {
    try {
      await fetch(`${window.StyleForge.server}/v1/styles`, { headers: { Authorization: `Bearer ${window.__key}` } });
      return "answered";
    } catch {
      return "blocked";
    }
  });
  check(direct === "blocked", "the browser blocks API calls from this origin (no CORS grant)");
  await shot(d, "widget-desktop-denied");
  await other.close();
});
