// Plays a live HLS stream with hls.js in headless Chromium and measures glass-to-glass delay:
// the publisher burns the wall clock into the video as 16 black/white 40x40 blocks along the
// top rows (bit k of floor(unix time × 10) mod 65536 at x = 40k), the page reads the blocks
// of the frame on screen and compares them with its own clock (same machine).
// Usage: node latency.mjs <master playlist URL> <low|reduced|standard> <seconds to measure>
//        [throttle-kbps]
// (A stream without the clock gives no samples: use it with throttle-kbps only.)
// With throttle-kbps, after the measurement the network is throttled with CDP
// Network.emulateNetworkConditions and the script waits for hls.js to switch to a lower level.
// Prints one JSON line: {mode, samples, median, p90, max, levels, switched, errors}.
import { chromium } from "playwright-core";
import { createServer } from "node:http";
import { readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import path from "node:path";

const [playlist, mode, secondsArg, throttleArg] = process.argv.slice(2);
const measure = Number(secondsArg || "10");
const here = path.dirname(fileURLToPath(import.meta.url));
const hlsJS = await readFile(path.join(here, "node_modules/hls.js/dist/hls.min.js"));

const page = `<!doctype html>
<meta charset="utf-8">
<video id="v" muted autoplay playsinline></video>
<canvas id="c" style="display:none"></canvas>
<script src="/hls.min.js"></script>
<script>
  const v = document.getElementById("v");
  window.hlsErrors = [];
  window.levelSwitches = [];
  // Low latency: hls.js's LL-HLS mode, and catching up (up to 1.25x) when it falls behind its
  // target latency (PART-HOLD-BACK); otherwise hls.js defaults (HOLD-BACK or 3 segments).
  const cfg = ${JSON.stringify(mode)} === "low" ? { lowLatencyMode: true, maxLiveSyncPlaybackRate: 1.25 } : { lowLatencyMode: false };
  const hls = new Hls(cfg);
  window.hls = hls;
  hls.on(Hls.Events.ERROR, (_, d) => { window.hlsErrors.push(d.type + "/" + d.details + (d.fatal ? " (fatal)" : "") + " at " + v.currentTime.toFixed(2) + (d.error ? ": " + d.error.message : "") + (d.context && d.context.url ? " " + d.context.url.split("/stream/").pop() : "")); });
  hls.on(Hls.Events.LEVEL_SWITCHED, (_, d) => { window.levelSwitches.push(d.level); });
  hls.loadSource(${JSON.stringify(playlist)});
  hls.attachMedia(v);
  hls.on(Hls.Events.MANIFEST_PARSED, () => v.play().catch((e) => window.hlsErrors.push("play: " + e)));
  // The clock in the frame on screen, in tenths of a second mod 65536 (null when unreadable).
  window.frameClock = () => {
    if (!v.videoWidth) return null;
    const c = document.getElementById("c");
    c.width = v.videoWidth; c.height = v.videoHeight;
    const g = c.getContext("2d", { willReadFrequently: true });
    g.drawImage(v, 0, 0);
    const sx = v.videoWidth / 640, sy = v.videoHeight / 360;
    const row = g.getImageData(0, Math.floor(20 * sy), v.videoWidth, 1).data;
    let val = 0;
    for (let k = 0; k < 16; k++) {
      const i = Math.floor((40 * k + 20) * sx) * 4;
      const lum = 0.299 * row[i] + 0.587 * row[i + 1] + 0.114 * row[i + 2];
      if (lum > 128) val |= 1 << k;
    }
    return val;
  };
</script>`;

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
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--autoplay-policy=no-user-gesture-required"],
});
const result = { mode, samples: 0, median: null, p90: null, max: null, levels: null, switched: null, errors: [] };
let code = 1;
try {
  const ctx = await browser.newContext();
  const p = await ctx.newPage();
  p.on("pageerror", (e) => result.errors.push("page: " + e));
  if (process.env.LATENCY_TRACE) {
    const t0 = Date.now();
    p.on("request", (r) => { r._t = Date.now(); });
    p.on("requestfinished", async (r) => {
      const res = await r.response();
      console.error(`${((r._t - t0) / 1000).toFixed(2)} +${Date.now() - r._t}ms ${res ? res.status() : "-"} ${r.url().replace(/^.*\/stream\//, "")}`);
    });
    p.on("requestfailed", (r) => console.error(`${((r._t - t0) / 1000).toFixed(2)} FAILED ${r.failure()?.errorText} ${r.url()}`));
  }
  await p.goto(origin);
  // Wait for playback, then let the player settle at its target latency.
  const start = Date.now();
  while (Date.now() - start < 30000) {
    const t = await p.evaluate(() => document.getElementById("v").currentTime);
    if (t > 1) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  await new Promise((r) => setTimeout(r, 4000));
  const delays = [];
  for (const until = Date.now() + measure * 1000; Date.now() < until;) {
    const s = await p.evaluate(() => ({ clock: window.frameClock(), now: Date.now(), t: document.getElementById("v").currentTime }));
    if (s.clock !== null && s.t > 0) {
      const nowTenths = Math.floor(s.now / 100) % 65536;
      let d = (nowTenths - s.clock + 65536) % 65536;
      if (d < 600) delays.push(d / 10); // a misread frame gives nonsense: beyond 60 s is dropped
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  delays.sort((a, b) => a - b);
  result.samples = delays.length;
  if (delays.length) {
    result.median = delays[Math.floor(delays.length / 2)];
    result.p90 = delays[Math.floor(delays.length * 0.9)];
    result.max = delays[delays.length - 1];
  }
  result.player = await p.evaluate(() => ({ latency: window.hls.latency, target: window.hls.targetLatency, drift: window.hls.drift,
    buffered: (() => { const v = document.getElementById("v"); return v.buffered.length ? v.buffered.end(v.buffered.length - 1) - v.currentTime : 0; })() }));
  result.levels = await p.evaluate(() => window.hls.levels.map((l) => ({ height: l.height, bitrate: l.bitrate, codecs: l.codecSet })));
  if (throttleArg) {
    // Let ABR reach the top level on the unthrottled network, then throttle and wait for a
    // switch to a level of lower height.
    const height = () => p.evaluate(() => { const l = window.hls.levels[window.hls.currentLevel]; return l ? l.height : 0; });
    const top = Math.max(...result.levels.map((l) => l.height));
    for (const until = Date.now() + 30000; Date.now() < until && (await height()) < top;) {
      await new Promise((r) => setTimeout(r, 250));
    }
    const from = await height();
    const kbps = Number(throttleArg);
    const cdp = await ctx.newCDPSession(p);
    await cdp.send("Network.enable");
    await cdp.send("Network.emulateNetworkConditions", { offline: false, latency: 40,
      downloadThroughput: (kbps * 1000) / 8, uploadThroughput: (kbps * 1000) / 8 });
    let to = from;
    for (const until = Date.now() + 45000; Date.now() < until && to >= from;) {
      await new Promise((r) => setTimeout(r, 250));
      to = await height();
    }
    result.switched = { from, to, top };
  }
  result.errors.push(...(await p.evaluate(() => window.hlsErrors)));
  // Measuring needs the clock in the video; a switching run (throttle) needs a switch.
  code = (throttleArg ? result.switched && result.switched.to < result.switched.from : result.samples > 0) ? 0 : 1;
} finally {
  console.log(JSON.stringify(result));
  await browser.close();
  server.close();
}
process.exit(code);
