// Runs one scenario of the unchanged Mux Spaces Web SDK (@mux/spaces-web from npm) against
// Spacecast in headless Chromium with fake camera and microphone.
// Usage: node sdk.mjs <scenario> <test page URL> <MUX_SPACES_BACKEND_URL>
// SDK_TOKENS (environment) is a JSON object of named space JWTs the scenario uses.
// Driven by TestMuxSpacesSDK (services/sfu/sdk_browser_test.go).
import { chromium } from "playwright-core";

const [scenario, pageURL, backend] = process.argv.slice(2);
const tokens = JSON.parse(process.env.SDK_TOKENS || "{}");
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
    "--auto-select-desktop-capture-source=Entire screen",
    "--autoplay-policy=no-user-gesture-required",
    // A steady tone as the fake microphone (the default one beeps too quietly to be speech).
    ...(process.env.FAKE_AUDIO ? [`--use-file-for-fake-audio-capture=${process.env.FAKE_AUDIO}`] : []),
  ],
});

const pages = [];
async function tab(name) {
  const ctx = await browser.newContext();
  const page = await ctx.newPage();
  page.on("console", (m) => {
    const t = m.text();
    if (m.type() === "error" || m.type() === "warning" || /unsupported|no participant/i.test(t))
      console.log(`[${name}] ${m.type()}: ${t.slice(0, 400)}`);
  });
  page.on("pageerror", (e) => console.log(`[${name}] pageerror: ${e}`));
  await page.goto(`${pageURL}?backend=${encodeURIComponent(backend)}`);
  await page.waitForFunction(() => window.T && window.MuxSpaces);
  page.name = name;
  pages.push(page);
  return page;
}

function fail(msg) {
  throw new Error(msg);
}

// until polls fn(page state) until it returns true.
async function until(page, desc, pred, timeout = 30000) {
  const end = Date.now() + timeout;
  let last;
  while (Date.now() < end) {
    last = await page.evaluate(() => ({ state: T.state(), events: T.events }));
    if (pred(last.state, last.events)) return last;
    await new Promise((r) => setTimeout(r, 250));
  }
  fail(`${page.name}: timed out waiting for ${desc}\nstate: ${JSON.stringify(last.state)}\nevents: ${JSON.stringify(last.events.map((e) => e.type + ":" + (e.participant || "") + ":" + (e.source || "")))}`);
}

async function join(page, token, opts = {}) {
  const r = await page.evaluate(([t, o]) => T.join(t, o), [token, opts]);
  if (r.error) fail(`${page.name}: join failed: ${r.error}: ${r.message}`);
  return r;
}

const peer = (state, id) => state.find((p) => p.participant === id);
// receiving: the page plays video frames and hears audio from participant id.
function receiving(state, id, { video = true, audio = true } = {}) {
  const p = peer(state, id);
  if (!p) return false;
  const v = p.tracks.find((t) => t.kind === "video" && t.source === "camera");
  const a = p.tracks.find((t) => t.kind === "audio" && t.source === "microphone");
  return (!video || (v && v.media && v.frames > 0)) && (!audio || (a && a.media && a.level > 0.001));
}
function framesOf(state, id, source = "camera") {
  const p = peer(state, id);
  const v = p && p.tracks.find((t) => t.kind === "video" && t.source === source);
  return (v && v.frames) || 0;
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function meshOf(n) {
  const names = ["alice", "bob", "carol", "dave"].slice(0, n);
  const tabs = [];
  for (const nm of names) {
    const p = await tab(nm);
    await join(p, tokens[nm]);
    await p.evaluate(() => T.publish());
    tabs.push(p);
  }
  for (const p of tabs)
    for (const other of names)
      if (other !== p.name) await until(p, `media from ${other}`, (s) => receiving(s, other), 45000);
  return tabs;
}

const scenarios = {
  // Two tabs see and hear each other.
  async two() {
    await meshOf(2);
  },
  // Four tabs: everyone receives everyone else.
  async four() {
    await meshOf(4);
  },
  // Muting the microphone and camera reaches the other tab as the SDK's mute events.
  async mute() {
    const [a, b] = await meshOf(2);
    await a.evaluate(() => T.mute("microphone", true));
    await until(b, "alice's microphone muted", (s, ev) =>
      ev.some((e) => e.type === "muted" && e.participant === "alice" && e.source === "microphone") &&
      peer(s, "alice").tracks.find((t) => t.source === "microphone").muted === true);
    await a.evaluate(() => T.mute("microphone", false));
    await until(b, "alice's microphone unmuted", (s, ev) =>
      ev.some((e) => e.type === "unmuted" && e.participant === "alice" && e.source === "microphone") &&
      peer(s, "alice").tracks.find((t) => t.source === "microphone").muted === false);
    const seen = await a.evaluate(() => T.events.filter((e) => e.type === "muted" || e.type === "unmuted").length);
    if (seen !== 0) fail("alice got mute events of her own tracks");
  },
  // Unpublishing the camera removes it from the other tab; publishing again brings video back.
  async republish() {
    const [a, b] = await meshOf(2);
    await a.evaluate(() => T.unpublish("camera"));
    await until(b, "alice's camera unpublished", (s, ev) =>
      ev.some((e) => e.type === "unpublished" && e.participant === "alice" && e.source === "camera") &&
      !peer(s, "alice").tracks.some((t) => t.source === "camera"));
    // The microphone keeps playing.
    await until(b, "alice's audio after the unpublish", (s) => receiving(s, "alice", { video: false }));
    await a.evaluate(() => T.publish({ audio: false, video: true }));
    await until(b, "alice's camera again", (s, ev) =>
      ev.filter((e) => e.type === "published" && e.participant === "alice" && e.source === "camera").length >= 1 &&
      receiving(s, "alice"));
  },
  // Screenshare with its audio reaches the other tab next to the camera.
  async screenshare() {
    const [a, b] = await meshOf(2);
    const shared = await a.evaluate(() => T.screenshare());
    if (!shared.some((t) => t.source === "screenshare")) fail("no screenshare track from getDisplayMedia: " + JSON.stringify(shared));
    const wantAudio = shared.some((t) => t.source === "screenshareaudio");
    await until(b, "alice's screenshare", (s) => {
      const p = peer(s, "alice");
      const v = p && p.tracks.find((t) => t.source === "screenshare");
      const au = p && p.tracks.find((t) => t.source === "screenshareaudio");
      return v && v.media && v.frames > 0 && (!wantAudio || (au && au.media)) && receiving(s, "alice");
    });
    console.log(`screenshare tracks: ${shared.map((t) => t.source).join(",")}`);
  },
  // Custom events: delivered with sequence numbers, limited by the joined limits.
  async custom() {
    const a = await tab("alice");
    await join(a, tokens.alice);
    const b = await tab("bob");
    await join(b, tokens.bob);
    await until(a, "bob joined", (s) => !!peer(s, "bob"));
    const r1 = await a.evaluate(() => T.custom("hello"));
    if (!r1.ok || typeof r1.sequence !== "number") fail("first custom event: " + JSON.stringify(r1));
    const r2 = await a.evaluate(() => T.custom("too soon"));
    if (r2.error !== "PublishCustomEventError") fail("second event within 1/5 s should be rate limited: " + JSON.stringify(r2));
    await sleep(300);
    const r3 = await a.evaluate(() => T.custom("again"));
    if (!r3.ok || r3.sequence !== r1.sequence + 1) fail("third custom event: " + JSON.stringify(r3) + " after " + r1.sequence);
    const got = await until(b, "alice's custom events", (s, ev) => ev.filter((e) => e.type === "custom").length >= 2);
    const evs = got.events.filter((e) => e.type === "custom");
    if (evs[0].payload !== "hello" || evs[1].payload !== "again" || evs[0].participant !== "alice")
      fail("custom events at bob: " + JSON.stringify(evs));
    if (evs[0].sequence !== r1.sequence || evs[1].sequence !== r3.sequence) fail("sequence numbers differ: " + JSON.stringify(evs));
    const rb = await b.evaluate(() => T.custom("from bob"));
    if (!rb.ok || rb.sequence <= r3.sequence) fail("bob's event sequence is not after alice's: " + JSON.stringify(rb));
  },
  // Display names: the connect option and setDisplayName reach the other tab.
  async names() {
    const a = await tab("alice");
    await join(a, tokens.alice, { displayName: "Alice A." });
    const b = await tab("bob");
    await join(b, tokens.bob);
    await until(b, "alice's display name", (s) => peer(s, "alice") && peer(s, "alice").displayName === "Alice A.");
    await until(a, "bob joined", (s) => !!peer(s, "bob"));
    const r = await b.evaluate(() => T.setName("Bobby"));
    if (!r.ok) fail("setDisplayName: " + JSON.stringify(r));
    await until(a, "bob's new display name", (s, ev) =>
      peer(s, "bob").displayName === "Bobby" && ev.some((e) => e.type === "name" && e.participant === "bob"));
    const r2 = await b.evaluate(() => T.setName("Too fast"));
    if (r2.error !== "SetDisplayNameError") fail("second name change within a second: " + JSON.stringify(r2));
  },
  // A second connection with the same participant_id is refused with the SDK's error.
  async duplicate() {
    const a = await tab("alice");
    await join(a, tokens.alice);
    const a2 = await tab("alice-again");
    const r = await a2.evaluate((t) => T.join(t), tokens.alice);
    if (r.error !== "JWTError" || !/already connected/.test(r.message)) fail("duplicate join: " + JSON.stringify(r));
    const b = await tab("bob");
    await join(b, tokens.bob);
    const st = await until(b, "alice present once", (s) => s.filter((p) => p.participant === "alice").length === 1);
    if (st.state.length !== 1) fail("bob sees " + JSON.stringify(st.state));
  },
  // A bad token and a space that does not exist are refused with the SDK's JWTError.
  async errors() {
    const a = await tab("bad");
    const r = await a.evaluate((t) => T.join(t), tokens.badkey);
    if (r.error !== "JWTError" || !/token/.test(r.message)) fail("bad token: " + JSON.stringify(r));
    const r2 = await a.evaluate((t) => T.join(t), tokens.nospace);
    if (r2.error !== "JWTError" || !/space not found/.test(r2.message)) fail("missing space: " + JSON.stringify(r2));
  },
  // A socket dropped mid-call reconnects as the same participant; the other tab sees no
  // leave and no join, and media flows again both ways.
  async reconnect() {
    const [a, b] = await meshOf(2);
    const before = await a.evaluate(() => T.state());
    const f0 = framesOf(before, "bob");
    const killed = await b.evaluate(() => T.killSocket());
    if (!killed) fail("no open socket to kill");
    await until(b, "reconnected", (s, ev) => ev.some((e) => e.type === "reconnected"), 30000);
    await until(b, "alice's media after the reconnect", (s) => receiving(s, "alice"), 30000);
    await until(a, "bob's video advancing after the reconnect", (s) => framesOf(s, "bob") > f0 + 30, 30000);
    const fb = framesOf(await b.evaluate(() => T.state()), "alice");
    await until(b, "alice's video advancing at bob", (s) => framesOf(s, "alice") > fb + 30, 30000);
    const ev = await a.evaluate(() => T.events);
    if (ev.some((e) => e.type === "left" && e.participant === "bob")) fail("alice saw bob leave");
    const gone = ev.filter((e) => e.participant === "bob" && (e.type === "unpublished" || e.type === "unsubscribed"));
    if (gone.length) fail("alice saw bob's tracks go: " + JSON.stringify(gone));
    if (ev.filter((e) => e.type === "joined" && e.participant === "bob").length !== 1) fail("alice saw bob join again");
    const st = await a.evaluate(() => T.state());
    if (st.length !== 1) fail("alice sees " + JSON.stringify(st));
  },
  // The same with simulcast cameras (the Go test turns it on for "-simulcast" scenarios):
  // every subscriber's layer forwarder resumes on the reconnected publisher's new layers.
  async ["reconnect-simulcast"]() {
    await scenarios.reconnect();
  },
  // An offer the server cannot answer (invalid SDP) would stall the SDK's publishing: the
  // server sends an error and closes the socket with 1011, the SDK reconnects as the same
  // participant and publishes again; alice sees bob's media and no leave.
  async badoffer() {
    const a = await tab("alice");
    await join(a, tokens.alice);
    await a.evaluate(() => T.publish());
    const b = await tab("bob");
    await join(b, tokens.bob);
    await until(a, "bob joined", (s) => !!peer(s, "bob"));
    await b.evaluate(() => { T.corruptOffers = 1; });
    await b.evaluate(() => T.publish());
    await until(b, "reconnected after the refused offer", (s, ev) => ev.some((e) => e.type === "reconnected"), 30000);
    if ((await b.evaluate(() => T.corrupted)) !== 1) fail("no offer was corrupted");
    await until(a, "bob's media after the reconnect", (s) => receiving(s, "bob"), 45000);
    await until(b, "alice's media", (s) => receiving(s, "alice"), 45000);
    const ev = await a.evaluate(() => T.events);
    if (ev.some((e) => e.type === "left" && e.participant === "bob")) fail("alice saw bob leave");
    if (ev.filter((e) => e.type === "joined" && e.participant === "bob").length !== 1) fail("alice saw bob join again");
  },
  // Simulcast under a throttled downlink: the viewer's media goes through the Go test's UDP
  // proxy (SDK_THROTTLE: {control, sfuPort, proxyPort}); once it plays one of alice's upper
  // layers, the proxy limits what reaches it to a rate below that layer, and the viewer must
  // go on playing a smaller one (the server's estimate from the browser's feedback fell).
  async throttle() {
    if (!process.env.SDK_THROTTLE) fail("SDK_THROTTLE not set: TestMuxSpacesSDKThrottledSubscriber runs the proxy");
    const { control, sfuPort, proxyPort } = JSON.parse(process.env.SDK_THROTTLE);
    const a = await tab("alice");
    await join(a, tokens.alice);
    await a.evaluate(() => T.publish({ width: 1280, height: 720 }));
    const v = await tab("viewer");
    await v.evaluate(([s, p]) => T.viaProxy(s, p), [sfuPort, proxyPort]);
    await join(v, tokens.viewer);
    await until(v, "alice's media through the proxy", (s) => receiving(s, "alice"), 45000);
    const video = async () => {
      const r = (await v.evaluate(() => T.rtp())).received;
      return r.length === 1 ? r[0] : { width: 0, frames: 0 };
    };
    let hi = { width: 0 };
    for (const end = Date.now() + 45000; Date.now() < end && hi.width <= 320; await sleep(500)) hi = await video();
    if (hi.width <= 320) fail("the viewer never received more than alice's smallest layer: " + JSON.stringify(hi));
    const r = await fetch(`${control}?kbps=350`);
    if (!r.ok) fail("throttle control: " + r.status);
    let lo = hi;
    for (const end = Date.now() + 45000; Date.now() < end; await sleep(500)) {
      lo = await video();
      if (lo.width > 0 && lo.width < hi.width) break;
    }
    if (!(lo.width > 0 && lo.width < hi.width)) fail(`throttled to 350 kbit/s, the viewer still receives ${JSON.stringify(lo)} (before: ${JSON.stringify(hi)})`);
    const f0 = lo.frames;
    await sleep(3000);
    const after = await video();
    if (!(after.frames > f0 + 10)) fail("the smaller layer does not play: " + JSON.stringify({ lo, after }));
    console.log(`viewer: ${hi.width}x${hi.height} before the throttle, ${after.width}x${after.height} at 350 kbit/s, frames ${f0} -> ${after.frames}`);
  },
  // Active speakers: alice talks, bob's microphone is muted; both tabs see alice (and only
  // alice) in the SDK's ActiveSpeakersChanged.
  async speaker() {
    const a = await tab("alice");
    await join(a, tokens.alice);
    const b = await tab("bob");
    await join(b, tokens.bob);
    await b.evaluate(() => T.publish({ audio: true, video: false }));
    await b.evaluate(() => T.mute("microphone", true));
    await a.evaluate(() => T.publish({ audio: true, video: false }));
    for (const p of [a, b])
      await until(p, "alice among the active speakers", (s, ev) =>
        ev.some((e) => e.type === "speakers" && e.speakers.includes("alice")), 30000);
    await sleep(2000);
    for (const p of [a, b]) {
      const ev = await p.evaluate(() => T.events.filter((e) => e.type === "speakers"));
      if (ev.some((e) => e.speakers.includes("bob"))) fail(`${p.name}: muted bob was reported speaking: ${JSON.stringify(ev)}`);
    }
  },
  // Simulcast: alice's camera goes up in three layers; bob receives one video stream of it.
  async simulcast() {
    const a = await tab("alice");
    await join(a, tokens.alice);
    await a.evaluate(() => T.publish({ width: 1280, height: 720 }));
    const b = await tab("bob");
    await join(b, tokens.bob);
    await until(b, "alice's media", (s) => receiving(s, "alice"));
    const end = Date.now() + 20000;
    let sent, got;
    while (Date.now() < end) {
      sent = await a.evaluate(() => T.rtp());
      got = await b.evaluate(() => T.rtp());
      const layers = sent.sent.filter((x) => x.rid && x.bytes > 0);
      if (layers.length >= 2 && got.received.length === 1 && got.received[0].frames > 0) break;
      await sleep(500);
    }
    const layers = sent.sent.filter((x) => x.rid && x.bytes > 0);
    if (layers.length < 2) fail("alice does not send simulcast layers: " + JSON.stringify(sent));
    if (got.received.length !== 1 || !(got.received[0].frames > 0)) fail("bob should receive exactly one video stream: " + JSON.stringify(got));
    console.log(`alice sends ${JSON.stringify(layers)}; bob receives ${JSON.stringify(got.received)}`);
  },
  // Manual subscriptions: nothing arrives until asked, and only what was asked.
  async manual() {
    const a = await tab("alice");
    await join(a, tokens.alice);
    await a.evaluate(() => T.publish());
    const c = await tab("carol");
    await join(c, tokens.carol);
    await c.evaluate(() => T.publish());
    const b = await tab("bob");
    await join(b, tokens.bob, { manual: true });
    await until(b, "both publishers' tracks announced", (s) =>
      ["alice", "carol"].every((id) => peer(s, id) && peer(s, id).tracks.length === 2));
    await sleep(3000);
    let st = await b.evaluate(() => T.state());
    if (st.some((p) => p.tracks.some((t) => t.media))) fail("media arrived without a subscription: " + JSON.stringify(st));
    const r = await b.evaluate(() => T.subscribe("alice", true));
    if (!r.ok) fail("subscribe: " + JSON.stringify(r));
    await until(b, "alice's media", (s) => receiving(s, "alice"));
    await sleep(2000);
    st = await b.evaluate(() => T.state());
    if (peer(st, "carol").tracks.some((t) => t.media)) fail("carol's media arrived unasked: " + JSON.stringify(st));
    const r2 = await b.evaluate(() => T.subscribe("alice", false));
    if (!r2.ok) fail("unsubscribe: " + JSON.stringify(r2));
    await until(b, "alice's media gone", (s) => !peer(s, "alice").tracks.some((t) => t.media));
  },
  // automaticParticipantLimit: a viewer limited to one participant receives one publisher.
  async limit() {
    const a = await tab("alice");
    await join(a, tokens.alice);
    await a.evaluate(() => T.publish());
    const c = await tab("carol");
    await join(c, tokens.carol);
    await c.evaluate(() => T.publish());
    const b = await tab("bob");
    await join(b, tokens.bob, { limit: 1 });
    await until(b, "alice's media", (s) => receiving(s, "alice"));
    await sleep(3000);
    const st = await b.evaluate(() => T.state());
    if (!peer(st, "carol") || peer(st, "carol").tracks.some((t) => t.media)) fail("limit 1 but carol arrived: " + JSON.stringify(st));
    // Alice leaves: the slot goes to carol.
    await a.evaluate(() => T.leave());
    await until(b, "carol's media once alice left", (s) => receiving(s, "carol"));
  },
};

let code = 0;
try {
  const fn = scenarios[scenario];
  if (!fn) fail(`unknown scenario ${scenario}; have ${Object.keys(scenarios).join(", ")}`);
  const t0 = Date.now();
  await fn();
  console.log(`OK ${scenario} in ${Date.now() - t0} ms`);
} catch (e) {
  console.error(`FAIL ${scenario}: ${e && e.stack ? e.stack : e}`);
  code = 1;
}
await browser.close();
process.exit(code);
