// Face-aware avatars and filter previews on servers whose library is empty (the built-in cartoon
// filters and face detector): the page's filter row shows each filter applied to the user's own
// photo once there is one; the widget's avatar crop starts on the face the service finds (zoomed
// and centred on it), or on the centre, saying so, when there is none; its filter cards preview
// on the chosen photo too.
//
// Environment: STYLEFORGE_URL (the page), STYLEFORGE_HOST_OK (a page on another origin embedding
// the widget), STYLEFORGE_PORTRAIT, STYLEFORGE_FACE_PHOTO, STYLEFORGE_NOFACE_PHOTO,
// STYLEFORGE_FACES (the detector's reference detections), STYLEFORGE_CHROMIUM,
// STYLEFORGE_E2E_SHOTS.

import { readFileSync } from "node:fs";
import { basename } from "node:path";
import { assertClean, assertLabelled, assertNoSideScroll, check, env, fileArg, log, meanDiff, open, run, shot, waitResult } from "./lib.mjs";

const URL = env("STYLEFORGE_URL");
const HOST_OK = env("STYLEFORGE_HOST_OK");
const PORTRAIT = env("STYLEFORGE_PORTRAIT");
const FACE_PHOTO = env("STYLEFORGE_FACE_PHOTO");
const NOFACE_PHOTO = env("STYLEFORGE_NOFACE_PHOTO");
const FACES = JSON.parse(readFileSync(env("STYLEFORGE_FACES"), "utf8"));

const FILTERS = ["cartoon-paprika", "cartoon-shinkai"];
const AV = "styleforge-widget[data-mode=avatar]";

// The reference's largest face in a shared photo, [x1, y1, x2, y2], and the photo's size.
function referenceFace(path) {
  const name = basename(path).replace(/\.[a-z]+$/, "");
  const c = Object.values(FACES.cases).find((v) => basename(v.file).startsWith(name));
  check(c && c.detections_xyxy_pixels_score.length > 0, `a reference face for ${name}`);
  return { box: c.detections_xyxy_pixels_score[0].slice(0, 4), size: c.image_WH };
}

async function widgetResults(page, n) {
  await page.waitForFunction((n) => window.__results.length >= n || window.__errors.length > 0, n, { timeout: 120_000 });
  const errors = await page.evaluate(() => window.__errors);
  check(errors.length === 0, `no widget errors: ${JSON.stringify(errors)}`);
  return page.evaluate(() => window.__results);
}

// Chooses a photo in the widget's avatar picker; resolves when the face search has ended, to
// { face: "found" | "none" | "error", crop: [x, y, side], status }.
async function chooseAvatarPhoto(w, path) {
  await w.locator(`${AV} .crop`).evaluate((c) => c.removeAttribute("data-face")).catch(() => {});
  await w.locator(`${AV} input[type=file]`).setInputFiles(fileArg(path));
  const crop = w.locator(`${AV} .crop`);
  await crop.waitFor();
  await w.waitForFunction(
    (sel) => ["found", "none", "error"].includes(document.querySelector(sel)?.shadowRoot.querySelector(".crop")?.dataset.face),
    AV,
    { timeout: 60_000 },
  );
  return {
    face: await crop.getAttribute("data-face"),
    crop: (await crop.getAttribute("data-crop")).split(",").map(Number),
    status: await w.locator(`${AV} .status`).textContent(),
  };
}

await run("avatar", 300, async (browser) => {
  // ---- The page: the filter row ---------------------------------------------------------------
  const desktop = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await open(desktop, URL);
  await page.locator(".filter-card").first().waitFor();
  const names = await page.$$eval(".filter-card", (cs) => cs.map((c) => c.dataset.name));
  check(JSON.stringify(names) === JSON.stringify(FILTERS), `the filter row: ${names}`);
  await page.waitForFunction((n) => document.querySelectorAll('.filter-card[data-preview="style"] img.thumb').length === n, FILTERS.length, { timeout: 60_000 });
  check((await page.textContent("#filters-hint")).includes("Add a photo"), "before a photo, the row says previews come with one");
  const sceneDims = await page.$$eval(".filter-card img.thumb", (imgs) => Promise.all(imgs.map((i) => i.decode().then(() => [i.naturalWidth, i.naturalHeight]))));
  check(sceneDims.every(([w, h]) => w > h), `before a photo, the usual (landscape) thumbnails: ${JSON.stringify(sceneDims)}`);
  const sceneUrls = await page.$$eval(".filter-card img.thumb", (imgs) => imgs.map((i) => i.src));
  await assertLabelled(page);

  // A portrait: each filter card shows that filter on it.
  const t0 = Date.now();
  await page.setInputFiles("#file-input", fileArg(PORTRAIT));
  await page.waitForFunction((n) => document.querySelectorAll('.filter-card[data-preview="photo"]').length === n, FILTERS.length, { timeout: 120_000 });
  log(`filter previews on the photo in ${Date.now() - t0} ms`);
  const previews = await page.$$eval('.filter-card[data-preview="photo"]', (cs) =>
    Promise.all(
      cs.map((c) => {
        const i = c.querySelector("img.thumb");
        return i.decode().then(() => ({ name: c.dataset.name, src: i.src, w: i.naturalWidth, h: i.naturalHeight, label: c.getAttribute("aria-label") }));
      }),
    ),
  );
  const photoUrl = await page.getAttribute("#photo-preview", "src");
  for (const [i, p] of previews.entries()) {
    check(p.h === 256 && p.w < p.h, `${p.name}: a 256-pixel preview of the portrait (${p.w}x${p.h})`);
    check(p.label.includes("previewed on your photo"), `${p.name}: its label says so (${p.label})`);
    const onPhoto = await meanDiff(page, p.src, photoUrl);
    const scene = await meanDiff(page, sceneUrls[i], photoUrl);
    log(`${p.name}: preview differs from the photo by ${onPhoto.toFixed(1)}, the scene thumbnail by ${scene.toFixed(1)}`);
    check(onPhoto < scene && onPhoto > 3, `${p.name}: the preview is the filter on the photo (${onPhoto.toFixed(1)} vs ${scene.toFixed(1)})`);
  }
  check((await meanDiff(page, previews[0].src, previews[1].src)) > 3, "the two filters' previews differ");
  check((await page.textContent("#filters-hint")) === "Previewed on your photo", "the row says the previews are on the photo");

  // Keyboard: a filter card is a button; Enter picks it, with its method, and it stylises.
  await page.focus('.filter-card[data-name="cartoon-paprika"]');
  await page.keyboard.press("Enter");
  check((await page.getAttribute('.filter-card[data-name="cartoon-paprika"]', "aria-pressed")) === "true", "the filter card is pressed");
  check((await page.getAttribute('.style-card[data-name="cartoon-paprika"]', "aria-pressed")) === "true", "and its gallery card too");
  check(await page.isChecked("#method-cartoon"), "a filter runs with the cartoon method");
  await page.selectOption("#size", "512");
  await page.click("#go");
  const title = await page.$eval('.filter-card[data-name="cartoon-paprika"] .style-title', (e) => e.textContent);
  const meta = await waitResult(page, title, 120_000);
  log(`filter result: ${meta}`);
  await assertLabelled(page);
  await page.evaluate(() => document.activeElement && document.activeElement.blur());
  await shot(page, "avatar-page-filters");
  assertClean(page);
  await desktop.close();

  const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
  const mobile = await open(phone, URL);
  await mobile.locator(".filter-card").first().waitFor();
  await mobile.setInputFiles("#file-input", fileArg(PORTRAIT));
  await mobile.waitForFunction(() => document.getElementById("photo-meta").textContent.includes("×"));
  // The previews load as the row comes into view.
  await mobile.locator("#filters").scrollIntoViewIfNeeded();
  await mobile.waitForFunction((n) => document.querySelectorAll('.filter-card[data-preview="photo"]').length === n, FILTERS.length, { timeout: 120_000 });
  await assertNoSideScroll(mobile);
  await shot(mobile, "avatar-page-filters-phone", { fullPage: false });
  assertClean(mobile);
  await phone.close();

  // ---- The widget: avatar crops start on the face ---------------------------------------------
  const site = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const w = await open(site, HOST_OK);
  const ref = referenceFace(FACE_PHOTO);
  let got = await chooseAvatarPhoto(w, FACE_PHOTO);
  log(`face photo: ${JSON.stringify(got)}; reference face ${ref.box}`);
  check(got.face === "found", `a face was found: ${JSON.stringify(got)}`);
  const [x, y, side] = got.crop;
  const [x1, y1, x2, y2] = ref.box;
  check(x <= x1 + 2 && y <= y1 + 2 && x + side >= x2 - 2 && y + side >= y2 - 2, `the crop ${got.crop} contains the reference face ${ref.box}`);
  const want = 1.8 * Math.max(x2 - x1, y2 - y1);
  check(Math.abs(side - want) / want < 0.05, `the crop is zoomed to the face enlarged 1.8x (${side} vs ${want.toFixed(0)})`);
  const [cx, cy] = [x + side / 2, y + side / 2];
  check(Math.abs(cx - (x1 + x2) / 2) < 3 && Math.abs(cy - (y1 + y2) / 2) < 3, `the crop is centred on the face (${cx}, ${cy})`);
  check(Number(await w.locator(`${AV} input[type=range]`).inputValue()) > 200, "the zoom slider shows the zoom");
  check(got.status.includes("Found your face"), `the status says so: ${got.status}`);
  await w.waitForFunction(
    ([sel, n]) => document.querySelector(sel)?.shadowRoot.querySelectorAll('.card[data-filter][data-preview="photo"] img').length === n,
    [AV, FILTERS.length],
    { timeout: 120_000 },
  );
  const labels = await w.$$eval(`${AV} .card[data-filter]`, (cs) => cs.map((c) => c.getAttribute("aria-label")));
  check(labels.every((l) => l.includes("previewed on your photo")), `the widget's filter cards preview on the photo: ${labels}`);
  await shot(w, "avatar-widget-face");

  // The user can still move and zoom it; a filter gives a 512x512 avatar of that crop.
  const crop = w.locator(`${AV} .crop`);
  await crop.focus();
  await w.keyboard.press("ArrowRight");
  await w.keyboard.press("-");
  const moved = (await crop.getAttribute("data-crop")).split(",").map(Number);
  check(moved[0] !== x && moved[2] > side, `keyboard moves and zooms out the crop (${got.crop} -> ${moved})`);
  await w.locator(`${AV} .card[data-style="cartoon-shinkai"]`).click();
  const a = (await widgetResults(w, 1)).at(-1);
  check(a.mode === "avatar" && a.style === "cartoon-shinkai" && a.width === 512 && a.height === 512, `avatar event: ${JSON.stringify(a)}`);
  await shot(w, "avatar-widget-styled");

  // No face: the centre square, and the status line says so.
  got = await chooseAvatarPhoto(w, NOFACE_PHOTO);
  log(`photo without a face: ${JSON.stringify(got)}`);
  const { width: nw, height: nh } = await w.evaluate(
    (b64) => createImageBitmap(new Blob([Uint8Array.from(atob(b64), (c) => c.charCodeAt(0))])).then((b) => ({ width: b.width, height: b.height })),
    readFileSync(NOFACE_PHOTO).toString("base64"),
  );
  const s = Math.min(nw, nh);
  check(got.face === "none", `no face found: ${JSON.stringify(got)}`);
  check(got.crop.join(",") === [Math.round((nw - s) / 2), Math.round((nh - s) / 2), s].join(","), `the centre square of ${nw}x${nh}: ${got.crop}`);
  check(got.status.includes("No face found"), `the status says so: ${got.status}`);
  await w.waitForFunction(
    ([sel, n]) => document.querySelector(sel)?.shadowRoot.querySelectorAll('.card[data-filter][data-preview="photo"] img').length === n,
    [AV, FILTERS.length],
    { timeout: 120_000 },
  );
  await shot(w, "avatar-widget-noface");
  assertClean(w);
  await site.close();
});
