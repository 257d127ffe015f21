// Plays an HLS playlist with hls.js in headless Chromium, from a page on another origin than the
// playlist (so CORS must allow it), and waits until the <video> element has decoded frames and
// its playback position advances.
// Usage: node hls.mjs <playlist URL> [seconds of playback to wait for]
import { chromium } from "playwright-core";
import { createServer } from "node:http";
import { readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import path from "node:path";

const [playlist, secondsArg] = process.argv.slice(2);
const want = Number(secondsArg || "2");
const here = path.dirname(fileURLToPath(import.meta.url));
const hlsJS = await readFile(path.join(here, "node_modules/hls.js/dist/hls.min.js"));

const page = `<!doctype html>
<meta charset="utf-8">
<video id="v" muted autoplay playsinline></video>
<script src="/hls.min.js"></script>
<script>
  const v = document.getElementById("v");
  window.hlsErrors = [];
  const hls = new Hls({ liveSyncDurationCount: 2 });
  hls.on(Hls.Events.ERROR, (_, d) => { window.hlsErrors.push(d.type + "/" + d.details + (d.fatal ? " (fatal)" : "")); });
  hls.loadSource(${JSON.stringify(playlist)});
  hls.attachMedia(v);
  hls.on(Hls.Events.MANIFEST_PARSED, () => v.play().catch((e) => window.hlsErrors.push("play: " + e)));
</script>`;

// The page's own origin: a tiny server on another port than the playlist's.
const server = createServer((req, res) => {
  if (req.url === "/hls.min.js") {
    res.writeHead(200, { "content-type": "text/javascript" });
    res.end(hlsJS);
    return;
  }
  res.writeHead(200, { "content-type": "text/html" });
  res.end(page);
});
await new Promise((ok) => server.listen(0, "127.0.0.1", ok));
const origin = `http://127.0.0.1:${server.address().port}/`;

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--autoplay-policy=no-user-gesture-required", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
let code = 1;
try {
  const p = await browser.newPage();
  p.on("console", (m) => console.log(`[page] ${m.type()}: ${m.text()}`));
  p.on("pageerror", (e) => console.log(`[page] error: ${e}`));
  await p.goto(origin);
  const deadline = Date.now() + 40000;
  let state = {};
  while (Date.now() < deadline) {
    state = await p.evaluate(() => {
      const v = document.getElementById("v");
      const q = v.getVideoPlaybackQuality ? v.getVideoPlaybackQuality() : {};
      return { t: v.currentTime, frames: q.totalVideoFrames || 0, w: v.videoWidth, h: v.videoHeight, errors: window.hlsErrors };
    });
    if (state.frames > 0 && state.t >= want) break;
    await new Promise((r) => setTimeout(r, 250));
  }
  console.log(JSON.stringify(state));
  if (state.frames > 0 && state.t >= want) {
    code = 0;
  } else {
    console.error(`playback did not reach ${want}s with decoded frames: ${JSON.stringify(state)}`);
  }
} finally {
  await browser.close();
  server.close();
}
process.exit(code);
