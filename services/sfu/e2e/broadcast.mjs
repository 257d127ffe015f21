// Chromium participants for broadcast tests: each participant gets its own headless
// Chromium whose fake camera and microphone play the participant's own files (a solid
// colour .y4m and a sine .wav), joins through the unchanged @mux/spaces-web (served by the
// Go test from node_modules) and publishes camera + microphone.
// Usage: node broadcast.mjs <test page URL> <MUX_SPACES_BACKEND_URL>
// BROADCAST_PARTICIPANTS (environment): JSON [{name, token, video, audio}], joined in order.
// Once everyone published it prints "READY"; then it reads commands on stdin, one JSON
// object a line, and answers each with one line "> {json}":
//   {"cmd":"events","name":n}  the SDK's BroadcastStateChanged values seen by n's page
//   {"cmd":"tracks","name":n}  how many tracks n's page knows of each other participant
//   {"cmd":"rtp","name":n}     n's RTP streams (T.rtp(): what it sends per simulcast rid)
//   {"cmd":"leave","name":n}   n leaves the space (space.leave())
//   {"cmd":"quit"}
// Driven by cmd/spacecast/internal/dev chrome_broadcast_test.go.
import { chromium } from "playwright-core";
import { createInterface } from "node:readline";

const [pageURL, backend] = process.argv.slice(2);
const parts = JSON.parse(process.env.BROADCAST_PARTICIPANTS || "[]");
const browsers = [];
const pages = new Map();

async function participant(p) {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--use-fake-device-for-media-stream",
      "--use-fake-ui-for-media-stream",
      "--autoplay-policy=no-user-gesture-required",
      `--use-file-for-fake-video-capture=${p.video}`,
      `--use-file-for-fake-audio-capture=${p.audio}`,
    ],
  });
  browsers.push(browser);
  const page = await (await browser.newContext()).newPage();
  page.on("console", (m) => {
    if (m.type() === "error" || m.type() === "warning") console.log(`[${p.name}] ${m.type()}: ${m.text().slice(0, 400)}`);
  });
  page.on("pageerror", (e) => console.log(`[${p.name}] pageerror: ${e}`));
  await page.goto(`${pageURL}?backend=${encodeURIComponent(backend)}`);
  await page.waitForFunction(() => window.T && window.MuxSpaces);
  // Manual subscriptions: the pages receive nothing (the compositor, inside the SFU, is the
  // only subscriber that matters here), which spares the machine decoding every camera 4 times.
  const r = await page.evaluate((t) => T.join(t, { manual: true }), p.token);
  if (r.error) throw new Error(`${p.name}: join failed: ${r.error}: ${r.message}`);
  // The fake microphone's tone must reach the mix as it is: no echo cancellation, noise
  // suppression (it attenuates steady tones) or gain control.
  const audio = { echoCancellation: false, noiseSuppression: false, autoGainControl: false };
  await page.evaluate((a) => T.publish({ audio: a, video: true, width: 320, height: 240 }), audio);
  pages.set(p.name, page);
}

let code = 0;
try {
  for (const p of parts) await participant(p);
  console.log("READY");
  const rl = createInterface({ input: process.stdin });
  for await (const line of rl) {
    if (!line.trim()) continue;
    const c = JSON.parse(line);
    if (c.cmd === "quit") break;
    const page = pages.get(c.name);
    if (!page) {
      console.log("> " + JSON.stringify({ error: "no participant " + c.name }));
      continue;
    }
    if (c.cmd === "events") {
      const ev = await page.evaluate(() => T.events.filter((e) => e.type === "broadcast").map((e) => e.on));
      console.log("> " + JSON.stringify({ broadcast: ev }));
    } else if (c.cmd === "tracks") {
      const st = await page.evaluate(() => T.state());
      console.log("> " + JSON.stringify({ tracks: Object.fromEntries(st.map((p) => [p.participant, p.tracks.length])) }));
    } else if (c.cmd === "rtp") {
      console.log("> " + JSON.stringify(await page.evaluate(() => T.rtp())));
    } else if (c.cmd === "leave") {
      await page.evaluate(() => T.leave());
      console.log("> " + JSON.stringify({ ok: true }));
    } else {
      console.log("> " + JSON.stringify({ error: "unknown command " + c.cmd }));
    }
  }
} catch (e) {
  console.error(`FAIL: ${e && e.stack ? e.stack : e}`);
  code = 1;
}
for (const b of browsers) await b.close().catch(() => {});
process.exit(code);
