// The page and the widget on servers whose library is empty: the gallery shows the built-in
// paintings with thumbnails; a painting restyles a photo with the built-in MicroAST at once, and
// so does an uploaded style image, alone or blended with a painting; the widget offers the
// paintings and restyles a post image and an avatar with them.
//
// Environment: STYLEFORGE_URL (the page), STYLEFORGE_HOST_OK (a page on another origin embedding
// the widget), STYLEFORGE_PHOTO, STYLEFORGE_STYLE1, STYLEFORGE_AVATAR_PHOTO, STYLEFORGE_CHROMIUM,
// STYLEFORGE_E2E_SHOTS.

import { assertClean, assertLabelled, check, env, fileArg, log, meanDiff, open, run, shot, waitResult } from "./lib.mjs";

const URL = env("STYLEFORGE_URL");
const HOST_OK = env("STYLEFORGE_HOST_OK");
const PHOTO = env("STYLEFORGE_PHOTO");
const STYLE1 = env("STYLEFORGE_STYLE1");
const AVATAR_PHOTO = env("STYLEFORGE_AVATAR_PHOTO");

const PAINTINGS = 11;
// The built-in cartoon filters are styles of their own (models), listed with the paintings.
const FILTERS = ["cartoon-paprika", "cartoon-shinkai"];
const STYLES = PAINTINGS + FILTERS.length;
const IMG = "styleforge-widget[data-mode=image]";
const AV = "styleforge-widget[data-mode=avatar]";

async function resultDiff(page) {
  const [before, after] = await page.evaluate(() => [document.getElementById("before").src, document.getElementById("after").src]);
  return meanDiff(page, before, after);
}

async function widgetResults(page, n) {
  await page.waitForFunction((n) => window.__results.length >= n || window.__errors.length > 0, n, { timeout: 120_000 });
  const errors = await page.evaluate(() => window.__errors);
  check(errors.length === 0, `no widget errors: ${JSON.stringify(errors)}`);
  return page.evaluate(() => window.__results);
}

await run("builtin", 300, async (browser) => {
  // ---- The page ------------------------------------------------------------------------------
  const desktop = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await open(desktop, URL);
  await page.locator(".style-card").first().waitFor();
  await page.waitForFunction((n) => document.querySelectorAll(".style-card img.thumb").length >= n, PAINTINGS, { timeout: 60_000 });
  const names = await page.$$eval(".style-card", (cs) => cs.map((c) => c.dataset.name));
  log(`gallery: ${names.join(", ")}`);
  const paintings = names.filter((n) => !FILTERS.includes(n));
  check(names.length === STYLES && FILTERS.every((f) => names.includes(f)), `the gallery shows the filters and the ${PAINTINGS} paintings: ${names}`);
  check(paintings.length === PAINTINGS && paintings[0] === "starry-night", `the paintings in gallery order: ${paintings}`);
  check(!names.includes("microast"), "the MicroAST network is not offered as a style");
  const badges = await page.$$eval(".style-card", (cs, filters) => [...new Set(cs.filter((c) => !filters.includes(c.dataset.name)).map((c) => c.querySelector(".badge")?.textContent))], FILTERS);
  check(badges.length === 1 && badges[0] === "Painting", `the paintings are badged as such: ${badges}`);
  const widths = await page.$$eval(".style-card img.thumb", (imgs) =>
    Promise.all(imgs.map((i) => i.decode().then(() => i.naturalWidth, () => 0))),
  );
  check(widths.every((w) => w >= 100), `every thumbnail is a decoded picture (widths ${widths})`);
  await assertLabelled(page);
  await shot(page, "builtin-page-start");

  await page.fill("#search", "hokusai");
  await page.waitForFunction(() => document.querySelector(".style-card")?.dataset.name === "great-wave");
  log("search: `hokusai` finds the Great Wave first");
  await page.fill("#search", "");
  await page.waitForFunction((n) => document.querySelectorAll(".style-card").length === n, STYLES);

  // A photo, a painting: MicroAST, answered at once.
  await page.setInputFiles("#file-input", fileArg(PHOTO));
  await page.waitForFunction(() => document.getElementById("photo-meta").textContent.includes("×"));
  await page.click('.style-card[data-name="starry-night"]');
  check(await page.isChecked("#method-microast"), "a painting is stylised with MicroAST");
  const t0 = Date.now();
  await page.click("#go");
  const meta = await waitResult(page, "The Starry Night", 120_000);
  log(`painting result in ${Date.now() - t0} ms: ${meta}`);
  check(meta.includes("MicroAST"), `the result names the method: ${meta}`);
  const diff = await resultDiff(page);
  log(`painting result: mean difference from the photo ${diff.toFixed(1)}`);
  check(diff > 12, `the result differs from the photo (${diff.toFixed(1)})`);
  await page.evaluate(() => document.activeElement && document.activeElement.blur());
  await shot(page, "builtin-page-result");

  // An uploaded style image: MicroAST too; then blended with a painting.
  await page.setInputFiles("#style-input", fileArg(STYLE1));
  await page.waitForFunction(() => document.querySelector('.style-card[aria-pressed="true"] .badge')?.textContent === "Your image");
  check(await page.isChecked("#method-microast"), "an uploaded style image is stylised with MicroAST");
  check((await page.locator("#method-adain, #method-gatys").count()) === 0, "no method without a network is offered");
  await page.selectOption("#size", "512");
  await page.click("#go");
  await waitResult(page, "MicroAST", 120_000);
  check((await resultDiff(page)) > 12, "the custom-style result differs from the photo");
  await page.check("#blend-on");
  await page.selectOption("#blend-style", "great-wave");
  await page.fill("#blend-mix", "40");
  await page.click("#go");
  const blendMeta = await waitResult(page, "The Great Wave off Kanagawa", 120_000);
  log(`blend: ${blendMeta}`);
  check(blendMeta.includes("+"), "the blend names both styles");
  check((await resultDiff(page)) > 12, "the blended result differs from the photo");
  await page.evaluate(() => document.activeElement && document.activeElement.blur());
  await shot(page, "builtin-page-blend");
  const history = await page.evaluate(async () => (await (await fetch("/v1/history?limit=10")).json()).items);
  check(history.length === 3 && history.every((j) => j.method === "microast" && j.state === "succeeded"), `history: ${JSON.stringify(history.map((j) => [j.method, j.state, j.style]))}`);
  assertClean(page);
  await desktop.close();

  // ---- The widget ----------------------------------------------------------------------------
  const site = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const w = await open(site, HOST_OK);
  await w.locator(`${IMG} button.toggle`).click();
  await w.waitForFunction(
    ([sel, n]) => document.querySelector(sel)?.shadowRoot.querySelectorAll(".card img").length >= n,
    [IMG, STYLES],
    { timeout: 60_000 },
  );
  const offered = await w.$$eval(`${IMG} .card`, (cs) => cs.map((c) => c.dataset.style));
  const strip = offered.filter((n) => !FILTERS.includes(n));
  check(offered.length === STYLES + 1 && offered[0] === "" && strip[1] === "starry-night", `the strip: Original, the filters and the paintings (${offered})`);
  await w.locator(`${IMG} .card[data-style="great-wave"]`).click();
  const r = (await widgetResults(w, 1)).at(-1);
  check(r.mode === "image" && r.style === "great-wave" && r.type === "image/png", `event detail: ${JSON.stringify(r)}`);
  check((await w.getAttribute("#post", "src")) === r.url, "the marked image shows the result");
  const wdiff = await meanDiff(w, "/photo.jpg", r.url);
  log(`widget result: mean difference from the photo ${wdiff.toFixed(1)}`);
  check(wdiff > 12, `the restyled image differs from the original (${wdiff.toFixed(1)})`);
  await w.locator(`${AV} input[type=file]`).setInputFiles(fileArg(AVATAR_PHOTO));
  await w.locator(`${AV} .crop`).waitFor();
  await w.locator(`${AV} .card[data-style="starry-night"]`).click();
  const a = (await widgetResults(w, 2)).at(-1);
  check(a.mode === "avatar" && a.style === "starry-night" && a.width === 512 && a.height === 512, `avatar event: ${JSON.stringify(a)}`);
  await shot(w, "builtin-widget");
  assertClean(w);
  await site.close();
});
