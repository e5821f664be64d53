// The page at `/` in Chromium: keyword search, a dropped photo restyled by a fast network (the
// result differs from the photo), compare slider, rating, download; own style images blended
// with AdaIN; a Gatys job followed to completion over its event stream; a cancelled job; the
// history; the phone layout; and a server that needs an API key.
//
// Environment: STYLEFORGE_URL, STYLEFORGE_PHOTO, STYLEFORGE_STYLE1, STYLEFORGE_STYLE2,
// optional STYLEFORGE_KEYED_URL + STYLEFORGE_KEY, STYLEFORGE_CHROMIUM, STYLEFORGE_E2E_SHOTS.

import {
  assertClean,
  assertLabelled,
  assertNoSideScroll,
  check,
  dropFile,
  env,
  fileArg,
  log,
  meanDiff,
  open,
  pasteFile,
  run,
  shot,
  waitResult,
} from "./lib.mjs";

const URL = env("STYLEFORGE_URL");
const PHOTO = env("STYLEFORGE_PHOTO");
const STYLE1 = env("STYLEFORGE_STYLE1");
const STYLE2 = env("STYLEFORGE_STYLE2");
const KEYED_URL = env("STYLEFORGE_KEYED_URL", "");
const KEY = env("STYLEFORGE_KEY", "");

const cards = (page) => page.locator(".style-card");

async function resultDiff(page) {
  const [before, after] = await page.evaluate(() => [document.getElementById("before").src, document.getElementById("after").src]);
  return meanDiff(page, before, after);
}

await run("page", 420, async (browser) => {
  // ---- Desktop -----------------------------------------------------------------------------
  const desktop = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await open(desktop, URL);
  await cards(page).first().waitFor();
  check((await cards(page).count()) >= 2, "the gallery lists the library's fast styles");
  check((await page.locator('.style-card[data-name="adain"], .style-card[data-name="vgg19"]').count()) === 0, "networks are not offered as styles");
  await page.locator(".style-card img.thumb").first().waitFor();
  await assertLabelled(page);
  await shot(page, "page-desktop-start");

  // Keyword search ranks the stormy seascape first.
  await page.fill("#search", "stormy sea");
  await page.waitForFunction(() => {
    const c = document.querySelectorAll(".style-card");
    return c.length >= 1 && c[0].dataset.name === "seascape";
  });
  log("search: `stormy sea` finds seascape first");
  await page.fill("#search", "");
  await page.waitForFunction(() => document.querySelectorAll(".style-card").length >= 2);

  // A photo dropped on the page, a fast style, the result.
  await dropFile(page, "#drop", PHOTO);
  await page.waitForFunction(() => document.getElementById("photo-meta").textContent.includes("×"));
  check(await page.locator("#go").isDisabled(), "Stylise waits for a style");
  await page.click('.style-card[data-name="candy"]');
  check((await page.getAttribute('.style-card[data-name="candy"]', "aria-pressed")) === "true", "the chosen card is marked");
  check(await page.isChecked("#method-fast"), "a fast style offers the fast method");
  await page.click("#go");
  await waitResult(page, "Candy");
  const diff = await resultDiff(page);
  log(`fast result: mean difference from the photo ${diff.toFixed(1)}`);
  check(diff > 12, `the result differs from the photo (mean difference ${diff.toFixed(1)})`);

  // The comparison slider answers the keyboard.
  await page.focus("#compare-range");
  for (let i = 0; i < 5; i++) await page.keyboard.press("ArrowLeft");
  const pos = await page.evaluate(() => document.getElementById("compare").style.getPropertyValue("--pos"));
  check(pos === "45%", `the comparison slider moves with the arrow keys (--pos ${pos})`);

  // Rating, checked through the API.
  await page.click('label[for="rate-4"]');
  await page.waitForFunction(() => document.getElementById("rating-note").textContent.includes("4 of 5"));
  const ratings = await page.evaluate(async () => (await (await fetch("/v1/ratings?style=candy")).json()).ratings);
  check(ratings.length === 1 && ratings[0].mean === 4, `the rating is stored: ${JSON.stringify(ratings)}`);

  // Download.
  const [download] = await Promise.all([page.waitForEvent("download"), page.click("#download")]);
  check(/^styleforge-candy\.png$/.test(download.suggestedFilename()), `download name ${download.suggestedFilename()}`);
  await page.evaluate(() => document.activeElement && document.activeElement.blur());
  await shot(page, "page-desktop-result");

  // Own style images, blended with AdaIN.
  await page.setInputFiles("#style-input", fileArg(STYLE1));
  await page.waitForFunction(() => document.querySelector('.style-card[aria-pressed="true"] .badge')?.textContent === "Your image");
  const first = await page.getAttribute('.style-card[aria-pressed="true"]', "data-name");
  await page.setInputFiles("#style-input", fileArg(STYLE2));
  await page.waitForFunction((prev) => {
    const c = document.querySelector('.style-card[aria-pressed="true"]');
    return c && c.dataset.name !== prev && c.querySelector(".badge")?.textContent === "Your image";
  }, first);
  check(await page.isChecked("#method-microast"), "a style image defaults to MicroAST (built in)");
  check((await page.locator("#method-adain, #method-gatys").count()) === 2, "a style image also offers AdaIN and Gatys");
  await page.check("#method-adain");
  await page.check("#blend-on");
  check((await page.inputValue("#blend-style")) === first, "the blend offers the other style image");
  await page.fill("#blend-mix", "30");
  await page.selectOption("#size", "256");
  await page.click("#go");
  await waitResult(page, "+");
  const blendDiff = await resultDiff(page);
  log(`blend result: mean difference ${blendDiff.toFixed(1)}`);
  check(blendDiff > 12, "the blended result differs from the photo");
  await shot(page, "page-desktop-blend");

  // A Gatys job: progress with stage and ETA from the event stream, then the result.
  await page.uncheck("#blend-on");
  await page.check("#method-gatys");
  check(await page.isVisible("#iterations"), "Gatys shows the step count");
  await page.selectOption("#iterations", "20");
  await page.selectOption("#size", "128");
  await page.evaluate(() => {
    window.__progress = [];
    const bar = document.getElementById("progress-bar");
    const record = () =>
      window.__progress.push({
        value: bar.hasAttribute("value") ? Number(bar.value) : null,
        stage: document.getElementById("stage").textContent,
        eta: document.getElementById("eta").textContent,
        visible: !document.getElementById("progress").hidden,
      });
    new MutationObserver(record).observe(document.getElementById("progress"), {
      attributes: true,
      childList: true,
      subtree: true,
      characterData: true,
    });
  });
  await page.click("#go");
  await page.waitForFunction(() => window.__progress.some((p) => p.visible && p.value > 0 && p.value < 100), null, { timeout: 120_000 });
  await shot(page, "page-desktop-job-progress");
  await waitResult(page, "Optimisation");
  const progress = await page.evaluate(() => window.__progress);
  const values = progress.filter((p) => p.value !== null).map((p) => p.value);
  log(`job progress values: ${values.join(", ")}`);
  log(`job stages: ${[...new Set(progress.map((p) => `${p.stage} ${p.eta}`.trim()))].join(" | ")}`);
  check(values.some((v) => v > 0 && v < 100), "the progress bar moved between 0 and 100");
  check(progress.some((p) => /step \d+ of 20/.test(p.stage)), "the stage names the optimisation step");
  check(progress.some((p) => /left$/.test(p.eta)), "an ETA was shown");
  check(await page.isHidden("#progress"), "the progress bar goes away at the end");
  const jobDiff = await resultDiff(page);
  check(jobDiff > 5, `the Gatys result differs from the photo (${jobDiff.toFixed(1)})`);

  // A job cancelled from the page.
  await page.selectOption("#iterations", "300");
  await page.click("#go");
  await page.waitForSelector("#cancel:visible");
  await page.click("#cancel");
  await page.waitForFunction(() => document.getElementById("status").textContent.startsWith("Cancelled"), null, { timeout: 120_000 });
  log("job cancelled from the page");

  // History: the four stylisations, newest first; opening one shows it.
  await page.click("#history-refresh");
  await page.waitForFunction(() => document.querySelectorAll("#history li").length >= 4);
  const states = await page.$$eval("#history li", (lis) => lis.map((l) => l.className));
  check(states[0] === "cancelled" && states.filter((s) => s === "succeeded").length === 3, `history: ${states}`);
  await page.locator("#history li.succeeded button").last().click();
  await waitResult(page, "Candy");
  await page.waitForFunction(() => Array.from(document.querySelectorAll("#history img.h-img")).length >= 3);
  await assertLabelled(page);
  await shot(page, "page-desktop-history");
  assertClean(page);
  await desktop.close();

  // ---- Phone -------------------------------------------------------------------------------
  const phone = await browser.newContext({
    viewport: { width: 390, height: 844 },
    deviceScaleFactor: 2,
    isMobile: true,
    hasTouch: true,
  });
  const p = await open(phone, URL);
  await cards(p).first().waitFor();
  await p.locator(".style-card img.thumb").first().waitFor();
  await assertNoSideScroll(p);
  check(await p.isVisible("#camera-button"), "phones get the camera button");
  await shot(p, "page-phone-start");
  await p.locator("#h-style").scrollIntoViewIfNeeded();
  await shot(p, "page-phone-gallery-view", { fullPage: false });
  await pasteFile(p, PHOTO);
  await p.waitForFunction(() => document.getElementById("photo-meta").textContent.includes("×"));
  await p.click('.style-card[data-name="seascape"]');
  await p.selectOption("#size", "512");
  await p.click("#go");
  await waitResult(p, "Seascape");
  await assertNoSideScroll(p);
  await p.locator("#result-panel").scrollIntoViewIfNeeded();
  await shot(p, "page-phone-result-view", { fullPage: false });
  await shot(p, "page-phone-result");
  assertClean(p);
  await phone.close();

  // ---- Dark colour scheme ----------------------------------------------------------------------
  const dark = await browser.newContext({ viewport: { width: 1280, height: 900 }, colorScheme: "dark" });
  const dk = await open(dark, URL);
  await dk.locator(".style-card img.thumb").first().waitFor();
  await dk.waitForFunction(() => document.querySelectorAll("#history img.h-img").length >= 3);
  await shot(dk, "page-desktop-dark", { fullPage: false });
  assertClean(dk);
  await dark.close();

  // ---- A server that needs a key -------------------------------------------------------------
  if (KEYED_URL) {
    const keyed = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const k = await open(keyed, KEYED_URL);
    await k.waitForSelector("#key-dialog[open]");
    check((await k.textContent("#notice")).includes("needs an API key"), "the page says a key is needed");
    await shot(k, "page-desktop-key", { fullPage: false });
    await k.fill("#key-input", KEY);
    await k.click("#key-save");
    await cards(k).first().waitFor();
    check(await k.isHidden("#notice"), "the notice goes once the key works");
    check((await k.textContent("#key-button")).startsWith("Key sf_"), "the key button shows the key's prefix");
    await k.setInputFiles("#file-input", fileArg(PHOTO));
    await k.waitForFunction(() => document.getElementById("photo-meta").textContent.includes("×"));
    await k.click('.style-card[data-name="candy"]');
    await k.selectOption("#size", "256");
    await k.click("#go");
    await waitResult(k, "Candy");
    await k.reload();
    await cards(k).first().waitFor();
    check(await k.isHidden("#key-dialog[open]"), "the key is remembered");
    await k.waitForFunction(() => document.querySelectorAll("#history li.succeeded").length === 1);
    assertClean(k);
    await keyed.close();
    log("keyed server: the key is asked for, kept, and used for every request");
  }
});
