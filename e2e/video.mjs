// A video in the page, on a server with an empty library: the upload shows its frame count and
// duration, the cartoon filter runs as a job with per-frame progress, and the result plays in a
// <video> element and downloads as MP4. The same for an animated GIF, shown as an image.
//
// Environment: STYLEFORGE_URL (the page), STYLEFORGE_VIDEO (an MP4 clip), STYLEFORGE_GIF (an
// animated GIF), STYLEFORGE_CHROMIUM, STYLEFORGE_E2E_SHOTS.

import { assertClean, check, env, fileArg, log, open, run, shot } from "./lib.mjs";

const URL = env("STYLEFORGE_URL");
const VIDEO = env("STYLEFORGE_VIDEO");
const GIF = env("STYLEFORGE_GIF");

await run("video", 300, async (browser) => {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, acceptDownloads: true });
  const page = await open(context, URL);
  await page.locator(".style-card").first().waitFor();

  await page.setInputFiles("#file-input", fileArg(VIDEO, "video/mp4"));
  await page.waitForFunction(() => document.getElementById("photo-meta").textContent.includes("frames"), null, { timeout: 60_000 });
  const meta = await page.textContent("#photo-meta");
  log(`video uploaded: ${meta}`);
  check(meta.includes("MP4") && meta.includes("24 frames"), `the upload names its container and frames: ${meta}`);
  check(await page.isVisible("#photo-video"), "the video previews in a <video>");

  await page.click('.style-card[data-name="cartoon-paprika"]');
  // Record every progress text while the job runs.
  await page.evaluate(() => {
    window.__stages = [];
    new MutationObserver(() => window.__stages.push(document.getElementById("stage").textContent)).observe(document.getElementById("stage"), { childList: true, characterData: true, subtree: true });
  });
  await page.click("#go");
  await page.waitForFunction(
    () => {
      const v = document.getElementById("result-video");
      return !v.hidden && v.readyState >= 2 && v.videoWidth > 0;
    },
    null,
    { timeout: 180_000 },
  );
  const stages = await page.evaluate(() => window.__stages);
  log(`progress seen: ${[...new Set(stages)].slice(0, 6).join(" | ")}`);
  check(stages.some((s) => /frame \d+ of 24/.test(s)), `per-frame progress shown: ${stages.join(" | ")}`);
  const v = await page.evaluate(() => {
    const el = document.getElementById("result-video");
    return { w: el.videoWidth, h: el.videoHeight, duration: el.duration, compare: document.getElementById("compare").hidden };
  });
  log(`result video: ${JSON.stringify(v)}`);
  check(v.w === 160 && v.h === 96, `the stylised video keeps its size: ${v.w}x${v.h}`);
  check(Math.abs(v.duration - 0.96) < 0.1, `and its duration: ${v.duration}`);
  check(v.compare, "no before/after slider for a video");
  // The played frame is stylised: it differs from the source's first frame.
  // The playing frames are stylised: the result differs from the source (both play, looping;
  // the pan between two moments is small beside the stylisation).
  await page.waitForFunction(() => ["photo-video", "result-video"].every((id) => document.getElementById(id).currentTime > 0), null, { timeout: 30_000 });
  const diff = await page.evaluate(() => {
    const grab = (el) => {
      const c = document.createElement("canvas");
      c.width = 80;
      c.height = 48;
      const ctx = c.getContext("2d", { willReadFrequently: true });
      ctx.drawImage(el, 0, 0, 80, 48);
      return ctx.getImageData(0, 0, 80, 48).data;
    };
    const [a, b] = [grab(document.getElementById("photo-video")), grab(document.getElementById("result-video"))];
    let s = 0;
    let lit = 0;
    for (let i = 0; i < a.length; i += 4) {
      s += Math.abs(a[i] - b[i]) + Math.abs(a[i + 1] - b[i + 1]) + Math.abs(a[i + 2] - b[i + 2]);
      lit += a[i] + a[i + 1] + a[i + 2] > 30 ? 1 : 0;
    }
    return { diff: s / (a.length / 4) / 3, lit: lit / (a.length / 4) };
  });
  check(diff.lit > 0.5, `the source frame was drawn (${JSON.stringify(diff)})`);
  log(`playing frames: mean difference from the source ${diff.diff.toFixed(1)}`);
  check(diff.diff > 10, `the video is stylised (${diff.diff.toFixed(1)})`);
  const name = await page.getAttribute("#download", "download");
  check(name.endsWith(".mp4"), `the download is an MP4: ${name}`);
  const [download] = await Promise.all([page.waitForEvent("download"), page.click("#download")]);
  log(`downloaded ${download.suggestedFilename()}`);
  await shot(page, "video-page-result");

  // An animated GIF: uploaded as an animation, stylised into a GIF shown as an image.
  await page.setInputFiles("#file-input", fileArg(GIF, "image/gif"));
  await page.waitForFunction(() => document.getElementById("photo-meta").textContent.includes("GIF"), null, { timeout: 60_000 });
  log(`animation uploaded: ${await page.textContent("#photo-meta")}`);
  await page.click("#go");
  await page.waitForFunction(
    () => {
      const after = document.getElementById("after");
      return document.getElementById("result-video").hidden && !document.getElementById("compare").hidden && after.naturalWidth > 0 && after.src.startsWith("blob:");
    },
    null,
    { timeout: 180_000 },
  );
  const gifName = await page.getAttribute("#download", "download");
  check(gifName.endsWith(".gif"), `the download is a GIF: ${gifName}`);
  await page.waitForFunction(() => document.querySelectorAll("#history video.h-img").length >= 1, null, { timeout: 30_000 });
  log("the history shows the video result as a video");
  await shot(page, "video-page-gif");
  assertClean(page);
});
