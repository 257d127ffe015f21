// Opens the SFU demo page twice (two participants) in headless Chromium with fake camera and
// microphone, and waits until each page decodes the other's video (framesDecoded > 0).
// Usage: node demo.mjs <demo page URL> <token 1> <token 2>
import { chromium } from "playwright-core";

const [url, tok1, tok2] = process.argv.slice(2);
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
const browser = await chromium.launch({
  executablePath,
  headless: true,
  args: [
    "--no-sandbox",
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--allow-loopback-in-peer-connection",
    "--autoplay-policy=no-user-gesture-required",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});
const fail = async (msg) => {
  console.error(msg);
  await browser.close();
  process.exit(1);
};
try {
  const ctx = await browser.newContext();
  const pages = [];
  for (const tok of [tok1, tok2]) {
    const page = await ctx.newPage();
    page.on("console", (m) => console.log(`[page ${pages.length}] ${m.type()}: ${m.text()}`));
    page.on("pageerror", (e) => console.log(`[page ${pages.length}] error: ${e}`));
    await page.goto(`${url}?token=${encodeURIComponent(tok)}`);
    pages.push(page);
  }
  const deadline = Date.now() + 45000;
  const done = [false, false];
  const last = ["", ""];
  while (Date.now() < deadline && !done.every(Boolean)) {
    for (let i = 0; i < pages.length; i++) {
      if (done[i]) continue;
      const r = await pages[i].evaluate(async () => {
        const s = window.spacecastSpace;
        const status = document.getElementById("status").textContent;
        if (!s || !s.sub) return { status, frames: 0, videos: 0 };
        let frames = 0;
        const stats = await s.sub.getStats();
        stats.forEach((st) => {
          if (st.type === "inbound-rtp" && st.kind === "video") frames += st.framesDecoded || 0;
        });
        const videos = document.querySelectorAll("figure[data-connection-id]:not([data-connection-id^=local]) video").length;
        return { status, frames, videos };
      });
      last[i] = JSON.stringify(r);
      if (r.frames > 0 && r.videos > 0) {
        done[i] = true;
        console.log(`page ${i}: framesDecoded=${r.frames} remote videos=${r.videos}`);
      }
    }
    await new Promise((res) => setTimeout(res, 250));
  }
  if (!done.every(Boolean)) await fail(`timed out: ${last.join(" | ")}`);
  await browser.close();
  console.log("OK");
} catch (err) {
  await fail(String(err && err.stack ? err.stack : err));
}
