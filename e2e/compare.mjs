// The A/B view and the rated gallery in Chromium: a photo is stylised two ways side by side (two
// styles, then two methods for one painting), each pair is judged with the keyboard only (Space
// on a picture, Enter on "Next pair", the 1 and ← shortcuts), every choice reaches
// POST /v1/preferences and shows in GET /v1/stats/preferences and the standings; then ratings show
// on the gallery's cards and "Best rated" puts the best-rated style first.
//
// Environment: STYLEFORGE_URL, STYLEFORGE_PHOTO, STYLEFORGE_CHROMIUM, STYLEFORGE_E2E_SHOTS.

import { join } from "node:path";
import { assertClean, assertLabelled, check, env, fileArg, log, meanDiff, open, run, shot } from "./lib.mjs";

const URL = env("STYLEFORGE_URL");
const PHOTO = env("STYLEFORGE_PHOTO");
const SHOTS = env("STYLEFORGE_E2E_SHOTS");

const state = (page) => page.evaluate(() => document.getElementById("ab-panel").dataset.state);

// Waits until both pictures of a pair are shown and can be chosen; returns its two arms.
async function waitPair(page) {
  await page.waitForFunction(
    () =>
      document.getElementById("ab-panel").dataset.state === "choose" &&
      Array.from(document.querySelectorAll(".ab-choice img")).every((i) => i.complete && i.naturalWidth > 0),
    null,
    { timeout: 120_000 },
  );
  const arms = await page.evaluate(() =>
    ["a", "b"].map((s) => {
      const b = document.getElementById(`ab-${s}`);
      return { style: b.dataset.style, method: b.dataset.method, result: b.dataset.result, name: b.querySelector(".ab-name").textContent };
    }),
  );
  check(arms.every((a) => a.style && a.method && a.result), `both sides name their arm: ${JSON.stringify(arms)}`);
  check(arms[0].name === "Left" && arms[1].name === "Right", `the names stay hidden until the choice: ${JSON.stringify(arms)}`);
  const [srcA, srcB] = await page.$$eval(".ab-choice img", (imgs) => imgs.map((i) => i.src));
  const diff = await meanDiff(page, srcA, srcB);
  check(diff > 3, `the two pictures differ (mean difference ${diff.toFixed(1)})`);
  log(`pair: ${arms.map((a) => `${a.style}/${a.method}`).join(" vs ")} (difference ${diff.toFixed(1)})`);
  return arms;
}

async function waitChosen(page) {
  await page.waitForFunction(() => document.getElementById("ab-panel").dataset.state === "chosen", null, { timeout: 30_000 });
}

const stats = (page, q = "") => page.evaluate(async (q) => (await fetch(`/v1/stats/preferences${q}`)).json(), q);
const same = (x, y) => x.style === y.style && x.method === y.method;
const armStat = (s, arm) => s.arms.find((x) => same(x, arm));

await run("compare", 300, async (browser) => {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await open(ctx, URL);
  await page.locator(".style-card").first().waitFor();
  check(await page.isDisabled("#ab-start"), "nothing to compare before there is a photo");

  await page.setInputFiles("#file-input", fileArg(PHOTO));
  await page.waitForFunction(() => !document.getElementById("ab-start").disabled, null, { timeout: 60_000 });
  log("photo uploaded: Compare is enabled");

  // ---- Two styles, judged with the keyboard ----------------------------------------------------
  await page.focus("#ab-start");
  await page.keyboard.press("Enter");
  const first = await waitPair(page);
  check(first[0].style !== first[1].style, "two styles are compared");
  check((await page.evaluate(() => document.activeElement.id)) === "ab-a", "the left picture takes the focus");
  await page.keyboard.press("Tab");
  check((await page.evaluate(() => document.activeElement.id)) === "ab-b", "Tab reaches the right picture");
  await page.keyboard.press("Space");
  await waitChosen(page);
  check((await page.getAttribute("#ab-b", "aria-pressed")) === "true", "the right picture is marked as the choice");
  const revealed = await page.$$eval(".ab-choice .ab-name", (n) => n.map((x) => x.textContent));
  check(revealed.every((t) => t !== "Left" && t !== "Right" && t.includes(" · ")), `the names are shown after the choice: ${revealed}`);
  check((await page.evaluate(() => document.activeElement.id)) === "ab-next", "the focus moves to Next pair");
  let s = await stats(page);
  check(s.comparisons === 1, `one comparison stored: ${JSON.stringify(s)}`);
  check(armStat(s, first[1])?.wins === 1 && armStat(s, first[0])?.losses === 1, `the right arm won: ${JSON.stringify(s.arms)}`);
  check(s.styles.length === 2 && s.styles[0].name === first[1].style, `the winner leads the styles: ${JSON.stringify(s.styles)}`);
  await page.waitForFunction((name) => document.querySelector("#ab-standings li")?.dataset.name === name, first[1].style);
  log(`standings: ${await page.textContent("#ab-standings")}`);

  // The next pair (Enter on the focused button), chosen with the `1` shortcut: the left one.
  await page.keyboard.press("Enter");
  const second = await waitPair(page);
  check(!(same(second[0], first[0]) && same(second[1], first[1])) && !(same(second[0], first[1]) && same(second[1], first[0])), "the next pair is another pair");
  await page.keyboard.press("1");
  await waitChosen(page);
  check((await page.getAttribute("#ab-a", "aria-pressed")) === "true", "`1` chose the left picture");
  s = await stats(page);
  check(s.comparisons === 2, `two comparisons stored: ${JSON.stringify(s)}`);
  check(armStat(s, second[0]).wins >= 1, `the left arm won: ${JSON.stringify(s.arms)}`);
  check(await page.textContent("#ab-count") === "2 choices this visit", "the view counts the choices");

  // ---- Two methods for one painting ------------------------------------------------------------
  await page.check("#ab-mode-methods");
  await page.selectOption("#ab-style", "starry-night");
  await page.click("#ab-start");
  const third = await waitPair(page);
  check(third.every((a) => a.style === "starry-night"), `one style: ${JSON.stringify(third)}`);
  const methods = third.map((a) => a.method).sort();
  check(methods.join() === "adain,microast", `its two one-pass methods: ${methods}`);
  await page.keyboard.press("ArrowLeft");
  await waitChosen(page);
  const names = await page.$$eval(".ab-choice .ab-name", (n) => n.map((x) => x.textContent));
  check(names.includes("MicroAST") || names.some((n) => /microast/i.test(n)), `the methods are named after the choice: ${names}`);
  const starry = await stats(page, "?style=starry-night");
  check(starry.comparisons === 1 && starry.methods.length === 2 && starry.methods[0].name === third[0].method, `the left method leads on the painting: ${JSON.stringify(starry.methods)}`);
  await page.waitForFunction((m) => document.querySelectorAll("#ab-standings li").length === 2 && document.querySelector("#ab-standings li").dataset.name === m, third[0].method);
  check((await page.textContent("#ab-standings-head")).includes("The Starry Night"), "the standings name the painting");
  await page.evaluate(() => document.activeElement && document.activeElement.blur());
  const panel = join(SHOTS, "compare-ab-view.png");
  await page.locator("#ab-panel").screenshot({ path: panel, animations: "disabled" });
  log(`screenshot ${panel}`);
  await assertLabelled(page);

  // ---- Ratings in the gallery: stars, mean and count; "Best rated" first ------------------------
  const rate = (result, score) =>
    page.evaluate(
      async ([r, score]) => (await fetch(`/v1/results/${r}/rating`, { method: "PUT", headers: { "content-type": "application/json" }, body: JSON.stringify({ score }) })).status,
      [result, score],
    );
  const top = first[1];
  check((await rate(top.result, 5)) === 200 && (await rate(first[0].result, 2)) === 200, "two results rated");
  await page.selectOption("#sort", "rating");
  await page.waitForFunction((name) => document.querySelector(".style-card")?.dataset.name === name, top.style, { timeout: 30_000 });
  const badge = await page.textContent(`.style-card[data-name="${top.style}"] .style-rating`);
  check(badge.includes("5.0") && badge.includes("(1)"), `the card shows the mean and the count: ${badge}`);
  const label = await page.getAttribute(`.style-card[data-name="${top.style}"]`, "aria-label");
  check(label.includes("rated 5.0 of 5 from 1 rating"), `the card's label says it: ${label}`);
  const order = await page.$$eval(".style-card", (cs) => cs.map((c) => c.dataset.name));
  check(order.indexOf(first[0].style) === 1, `the style rated 2 comes second, before the unrated: ${order.slice(0, 4)}`);
  log(`best rated: ${order.slice(0, 4).join(", ")}`);
  const gallery = join(SHOTS, "compare-gallery.png");
  await page.locator("#gallery").screenshot({ path: gallery, animations: "disabled" });
  log(`screenshot ${gallery}`);
  await page.waitForFunction(() => document.querySelectorAll("#history li").length === 6, null, { timeout: 30_000 });
  await shot(page, "compare-page");
  assertClean(page);
  await ctx.close();
});
