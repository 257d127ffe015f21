// The webhooks API (mux.system.webhooks) and webhook verification (mux.webhooks.unwrap /
// verifySignature) of @mux/mux-node 15.3.0 against Spacecast: a receiver on 127.0.0.1 gets
// real deliveries and the SDK verifies them.
import http from 'node:http';
import Mux from '@mux/mux-node';
import { check, client, rejects } from './check.mjs';
import Mux7 from 'mux-node-7';

const mux = client();

// The receiver keeps each delivery's raw body and headers; it answers 200.
const got = [];
const waiters = [];
const server = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    got.push({ body: Buffer.concat(chunks).toString('utf8'), headers: req.headers });
    res.writeHead(200).end('ok');
    waiters.splice(0).forEach((w) => w());
  });
});
await new Promise((r) => server.listen(0, '127.0.0.1', r));
const address = `http://127.0.0.1:${server.address().port}/mux-webhooks`;

// Waits for a delivery whose parsed body satisfies pred; returns it.
async function delivery(pred, what) {
  const deadline = Date.now() + 30000;
  for (;;) {
    const d = got.find((d) => {
      try {
        return pred(JSON.parse(d.body));
      } catch {
        return false;
      }
    });
    if (d) return d;
    if (Date.now() > deadline) check(`delivery: ${what}`, false, `got ${got.map((d) => d.body.slice(0, 80))}`);
    await new Promise((r) => {
      waiters.push(r);
      setTimeout(r, 500);
    });
  }
}

try {
  // create: Mux's shape, signing_secret shown once.
  const wh = await mux.system.webhooks.create({ address });
  check('create answers {id, address, created_at, enabled, signing_secret}',
    wh.id && wh.address === address && wh.enabled === true && typeof wh.signing_secret === 'string' && wh.signing_secret.length > 20 &&
      !Number.isNaN(Date.parse(wh.created_at)) && wh.url === undefined,
    wh);
  const secret = wh.signing_secret;

  const got1 = await mux.system.webhooks.retrieve(wh.id);
  check('retrieve hides signing_secret', got1.id === wh.id && got1.address === address && got1.signing_secret === undefined, got1);

  // list: for await walks every page (page-based BasePage).
  const extra = [];
  for (let i = 0; i < 3; i++) extra.push(await mux.system.webhooks.create({ address: `${address}/extra${i}` }));
  const seen = [];
  for await (const w of mux.system.webhooks.list({ limit: 2 })) seen.push(w.id);
  check('list iterates every page', seen.length === 4 && seen.includes(wh.id) && new Set(seen).size === 4, seen);
  for (const e of extra) await mux.system.webhooks.delete(e.id);

  const upd = await mux.system.webhooks.update(wh.id, { enabled: false });
  check('update enabled=false', upd.enabled === false && upd.address === address, upd);
  const upd2 = await mux.system.webhooks.update(wh.id, { enabled: true, address });
  check('update enabled=true', upd2.enabled === true, upd2);

  // A real event: a live stream created through the SDK is delivered, signed.
  const ls = await mux.video.liveStreams.create({ playback_policy: ['public'] });
  const d = await delivery((b) => b.type === 'video.live_stream.created' && b.object?.id === ls.id, 'video.live_stream.created');
  check('Mux-Signature header present', /^t=\d+,v1=[0-9a-f]{64}/.test(d.headers['mux-signature'] ?? ''), d.headers['mux-signature']);
  const ev = await mux.webhooks.unwrap(d.body, d.headers, secret);
  check('mux.webhooks.unwrap verifies and parses', ev.type === 'video.live_stream.created' && ev.object.type === 'live_stream' && ev.data.id === ls.id, ev);
  await mux.webhooks.verifySignature(d.body, d.headers, secret);
  check('verifySignature accepts', true);
  await rejects('verifySignature refuses a wrong secret', mux.webhooks.verifySignature(d.body, d.headers, 'whsec_' + 'A'.repeat(43) + '='), Error);
  await rejects('verifySignature refuses a changed body', mux.webhooks.verifySignature(d.body.replace(ls.id, 'x' + ls.id.slice(1)), d.headers, secret), Error);
  check('body carries no signing secret', !d.body.includes(secret), null);
  const ws = new Mux({ tokenId: process.env.MUX_TOKEN_ID, tokenSecret: process.env.MUX_TOKEN_SECRET, baseURL: process.env.SPACECAST_BASE_URL, webhookSecret: secret });
  const ev2 = await ws.webhooks.unwrap(d.body, d.headers);
  check('unwrap with the client webhookSecret', ev2.id === ev.id, ev2.id);
  // Backends still on 7.3.5 verify with the static helper.
  check('7.3.5 Webhooks.verifyHeader', Mux7.Webhooks.verifyHeader(d.body, d.headers['mux-signature'], secret) === true, null);
  let refused7 = false;
  try {
    Mux7.Webhooks.verifyHeader(d.body, d.headers['mux-signature'], secret + 'x');
  } catch {
    refused7 = true;
  }
  check('7.3.5 Webhooks.verifyHeader refuses a wrong secret', refused7, null);

  // rotate-secret (Spacecast's extra, a sub-resource): the new secret verifies the next
  // delivery, and so does the old one for 24 h.
  const rot = await mux.post(`/system/v1/webhooks/${wh.id}/rotate-secret`);
  const fresh = rot.data.signing_secret;
  check('rotate-secret answers a new signing_secret', typeof fresh === 'string' && fresh !== secret, rot.data);
  await mux.video.liveStreams.delete(ls.id);
  const d2 = await delivery((b) => b.type === 'video.live_stream.deleted' && b.object?.id === ls.id, 'video.live_stream.deleted');
  await mux.webhooks.verifySignature(d2.body, d2.headers, fresh);
  await mux.webhooks.verifySignature(d2.body, d2.headers, secret);
  check('after rotation both secrets verify', true);

  // The delivery log (sub-resource).
  const log = await mux.get(`/system/v1/webhooks/${wh.id}/deliveries`);
  check('deliveries list', Array.isArray(log.data) && log.data.some((x) => x.event_type === 'video.live_stream.created' && x.webhook_id === wh.id), log.data?.[0]);
  // redeliver: the same event (same id) arrives again, signed with the current secrets.
  const created = log.data.find((x) => x.event_type === 'video.live_stream.created');
  const before = got.filter((g) => JSON.parse(g.body).id === ev.id).length;
  const rd = await mux.post(`/system/v1/webhooks/${wh.id}/deliveries/${created.id}/redeliver`);
  check('redeliver answers {data: {}}', rd && typeof rd.data === 'object', rd);
  await delivery((b) => b.id === ev.id && got.filter((g) => JSON.parse(g.body).id === ev.id).length > before, 'redelivery');
  const again = got.filter((g) => JSON.parse(g.body).id === ev.id).at(-1);
  const evAgain = await mux.webhooks.unwrap(again.body, again.headers, fresh);
  check('the redelivery verifies with the new secret', evAgain.id === ev.id && evAgain.type === 'video.live_stream.created', evAgain.id);

  // Typed errors.
  await rejects('retrieve unknown -> NotFoundError', mux.system.webhooks.retrieve('nope-nope'), Mux.NotFoundError);
  await rejects('update with nothing -> BadRequestError', mux.system.webhooks.update(wh.id, {}), Mux.BadRequestError);
  await rejects('create with a bad address -> BadRequestError', mux.system.webhooks.create({ address: 'ftp://127.0.0.1/x' }), Mux.BadRequestError);
  const bad = new Mux({ tokenId: process.env.MUX_TOKEN_ID, tokenSecret: 'wrong', baseURL: process.env.SPACECAST_BASE_URL });
  await rejects('bad token -> AuthenticationError', bad.system.webhooks.list(), Mux.AuthenticationError);

  await mux.system.webhooks.delete(wh.id);
  await rejects('retrieve after delete -> NotFoundError', mux.system.webhooks.retrieve(wh.id), Mux.NotFoundError);
} finally {
  server.close();
}
