// The official @mux/mux-node 7.3.5 (the last release with Video.Spaces and JWT.signSpaceId)
// against a Spacecast dev mode. One JSON line per check; the first mismatch exits 1.
//
// SPACES_PHASE selects what runs (the Go test joins the space between the phases):
//   api    (default) REST calls, errors, pagination, a broadcast to a live stream (create,
//          get, refusals), a signing key and space tokens; writes {space_id, token,
//          token_alice, token_long} to SPACES_OUT.
//   active SPACE_ID is active (the Go client joined with the tokens): status, session id,
//          delete refused with a conflict; its broadcast starts, stops and starts again.
//   idle   SPACE_ID is idle again (its broadcast stopped with it) and can be deleted.
import fs from 'node:fs';
import Mux from 'mux-node-7';
import { check } from './check.mjs';

const base = process.env.SPACECAST_BASE_URL;
const mux = new Mux(process.env.MUX_TOKEN_ID, process.env.MUX_TOKEN_SECRET, { baseUrl: base });
const { Video } = mux;

// rejects awaits p and returns the SDK's rejection (7.3.5 rejects with the body's `error`
// object, {type, messages}), failing the check if p resolves.
async function rejects(name, p) {
  try {
    const v = await p;
    check(name, false, { resolved: v });
  } catch (e) {
    return e;
  }
}

function apiError(name, e, type, ...words) {
  const msg = Array.isArray(e?.messages) ? e.messages.join(' ') : '';
  check(name, e?.type === type && words.every((w) => msg.toLowerCase().includes(w)), { error: e, want: { type, words } });
}

const spaceKeys = ['active_session_id', 'broadcasts', 'created_at', 'id', 'passthrough', 'status', 'type'];

function checkSpace(name, s, want) {
  const now = Math.floor(Date.now() / 1000);
  check(`${name}: id`, typeof s?.id === 'string' && s.id.length >= 16, s);
  check(`${name}: type server`, s.type === 'server', s.type);
  check(`${name}: status ${want.status}`, s.status === want.status, s.status);
  check(`${name}: created_at is a string of Unix seconds`, typeof s.created_at === 'string' && /^\d+$/.test(s.created_at) &&
    Math.abs(Number(s.created_at) - now) < 600, s.created_at);
  const nb = want.broadcasts ?? 0;
  check(`${name}: broadcasts is an array of ${nb}`, Array.isArray(s.broadcasts) && s.broadcasts.length === nb, s.broadcasts);
  check(`${name}: passthrough`, s.passthrough === want.passthrough, s.passthrough);
  if (want.status === 'active') {
    check(`${name}: active_session_id while active`, typeof s.active_session_id === 'string' && s.active_session_id.length > 0, s.active_session_id);
  } else {
    check(`${name}: no active_session_id while idle`, s.active_session_id === undefined, s.active_session_id);
  }
  const extra = Object.keys(s).filter((k) => !spaceKeys.includes(k));
  check(`${name}: only Mux's Space fields`, extra.length === 0, extra);
}

async function apiPhase() {
  const a = await Video.Spaces.create({});
  checkSpace('create {}', a, { status: 'idle' });
  const b = await Video.Spaces.create({ type: 'server', passthrough: 'team-42' });
  checkSpace('create {type, passthrough}', b, { status: 'idle', passthrough: 'team-42' });
  check('get = create', JSON.stringify(await Video.Spaces.get(b.id)) === JSON.stringify(b), b.id);

  // Typed errors: 7.3.5 rejects with {type, messages}.
  apiError('get unknown: not_found', await rejects('get unknown rejects', Video.Spaces.get('no-such-space')), 'not_found', 'space');
  apiError('create type client: invalid_parameters naming type', await rejects('create type client rejects',
    Video.Spaces.create({ type: 'client' })), 'invalid_parameters', 'type');
  apiError('create passthrough too long', await rejects('long passthrough rejects',
    Video.Spaces.create({ passthrough: 'x'.repeat(256) })), 'invalid_parameters', 'passthrough');
  apiError('create with a broadcast of an unknown live stream: invalid_parameters', await rejects('create with broadcasts rejects',
    Video.Spaces.create({ broadcasts: [{ live_stream_id: 'no-such-live-stream' }] })), 'invalid_parameters', 'live_stream_id');
  const bad = new Mux('nobody', 'wrong-secret-wrong-secret', { baseUrl: base });
  apiError('wrong credentials: unauthorized', await rejects('wrong credentials reject', bad.Video.Spaces.list({})), 'unauthorized');
  apiError('delete unknown: not_found', await rejects('delete unknown rejects', Video.Spaces.delete('no-such-space')), 'not_found', 'space');

  // A broadcast of space b to a live stream. spaces-api learns live streams from the
  // livestream service's events, so the first create may come a moment too early.
  const BC = Video.Spaces.Broadcasts;
  const ls = await Video.LiveStreams.create({ playback_policy: 'public' });
  let bc;
  for (let i = 0; i < 100 && !bc; i++) {
    try {
      bc = await BC.create(b.id, { live_stream_id: ls.id, layout: 'gallery', resolution: '1280x720', passthrough: 'show' });
    } catch (e) {
      if (e?.type !== 'invalid_parameters') throw e;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  check('broadcast create: Mux Broadcast', bc?.status === 'idle' && bc.live_stream_id === ls.id && bc.layout === 'gallery' &&
    bc.resolution === '1280x720' && bc.passthrough === 'show' && typeof bc.id === 'string' && bc.stream_key === undefined, bc);
  check('broadcast get = create', JSON.stringify(await BC.get(b.id, bc.id)) === JSON.stringify(bc), bc.id);
  checkSpace('space with its broadcast', await Video.Spaces.get(b.id), { status: 'idle', passthrough: 'team-42', broadcasts: 1 });
  apiError('second broadcast: conflict', await rejects('second broadcast rejects',
    BC.create(b.id, { live_stream_id: ls.id })), 'conflict', 'already has a broadcast');
  apiError('broadcast start while the space is idle: conflict', await rejects('start idle rejects', BC.start(b.id, bc.id)), 'conflict', 'not active');
  apiError('broadcast bad layout: invalid_parameters', await rejects('bad layout rejects',
    BC.create(a.id, { live_stream_id: ls.id, layout: 'grid' })), 'invalid_parameters', 'layout');
  apiError('broadcast bad resolution: invalid_parameters', await rejects('bad resolution rejects',
    BC.create(a.id, { live_stream_id: ls.id, resolution: '640x480' })), 'invalid_parameters', 'resolution');
  apiError('broadcast of an unknown live stream: invalid_parameters', await rejects('unknown live stream rejects',
    BC.create(a.id, { live_stream_id: 'no-such-live-stream' })), 'invalid_parameters', 'live_stream_id');
  apiError('broadcast create on unknown space: not_found', await rejects('broadcast create unknown space rejects',
    BC.create('no-such-space', { live_stream_id: ls.id })), 'not_found', 'space');
  for (const [call, p] of [['get', () => BC.get(a.id, 'b1')], ['delete', () => BC.delete(a.id, 'b1')],
    ['start', () => BC.start(a.id, 'b1')], ['stop', () => BC.stop(a.id, 'b1')]]) {
    apiError(`unknown broadcast ${call}: not_found`, await rejects(`broadcast ${call} rejects`, p()), 'not_found', 'broadcast');
  }

  // Pagination: 7.3.5 pages with ?limit=&page= (it returns the array only).
  const c = await Video.Spaces.create(); // no body at all
  checkSpace('create()', c, { status: 'idle' });
  const made = new Set([a.id, b.id, c.id]);
  for (let i = 0; i < 3; i++) made.add((await Video.Spaces.create({ passthrough: `p${i}` })).id);
  const seen = [];
  let last = Infinity;
  for (let page = 1; page < 50; page++) {
    const items = await Video.Spaces.list({ limit: 2, page });
    check(`list page ${page}: an array of at most 2`, Array.isArray(items) && items.length <= 2, items);
    if (items.length === 0) break;
    for (const s of items) {
      check(`list page ${page}: newest first`, Number(s.created_at) <= last, { created_at: s.created_at, last });
      last = Number(s.created_at);
      seen.push(s.id);
    }
  }
  check('list pages: every space exactly once', new Set(seen).size === seen.length && [...made].every((id) => seen.includes(id)), { seen, made: [...made] });
  const all = await Video.Spaces.list({});
  check('list without params: default page', Array.isArray(all) && all.length === made.size, all.length);
  apiError('list limit 0: invalid_parameters naming limit', await rejects('list limit 0 rejects', Video.Spaces.list({ limit: 0 })), 'invalid_parameters', 'limit');

  const deleted = await Video.Spaces.delete(a.id);
  check('delete idle space resolves', deleted === '' || deleted === undefined, deleted);
  apiError('get deleted: not_found', await rejects('get deleted rejects', Video.Spaces.get(a.id)), 'not_found', 'space');

  // A signing key from the API and space tokens from the SDK's JWT helper.
  const key = await Video.SigningKeys.create();
  check('signing key: id and private_key', typeof key?.id === 'string' && typeof key.private_key === 'string', Object.keys(key ?? {}));
  // The key from the environment as Mux's docs set it up (MUX_SIGNING_KEY, and MUX_PRIVATE_KEY
  // holding the base64 the API returned), every option at its default.
  process.env.MUX_SIGNING_KEY = key.id;
  process.env.MUX_PRIVATE_KEY = key.private_key;
  const token = Mux.JWT.signSpaceId(b.id);
  const claims = Mux.JWT.decode(token);
  check('signSpaceId: aud rt, sub, exp in 7 days', claims.aud === 'rt' && claims.sub === b.id &&
    Math.abs(claims.exp - Date.now() / 1000 - 7 * 86400) < 600, claims);
  const alice = Mux.JWT.signSpaceId(b.id, { keyId: key.id, keySecret: key.private_key, expiration: '1h',
    params: { participant_id: 'sdk-alice', role: 'subscriber' } });
  check('signSpaceId with params', Mux.JWT.decode(alice).participant_id === 'sdk-alice', Mux.JWT.decode(alice));
  // Spacecast bounds a space token's lifetime (SPACECAST_SFU_MAX_TOKEN_LIFETIME, 30 days).
  const long = Mux.JWT.signSpaceId(b.id, { keyId: key.id, keySecret: key.private_key, expiration: '31d' });
  fs.writeFileSync(process.env.SPACES_OUT, JSON.stringify({ space_id: b.id, token, token_alice: alice, token_long: long }));
  check('tokens written', true, { space_id: b.id });
}

async function activePhase(id) {
  const s = await Video.Spaces.get(id);
  checkSpace('get while joined', s, { status: 'active', passthrough: 'team-42', broadcasts: 1 });
  const listed = (await Video.Spaces.list({ limit: 100 })).find((x) => x.id === id);
  check('list shows it active with the same session', listed?.status === 'active' && listed.active_session_id === s.active_session_id, listed);
  apiError('delete active: conflict', await rejects('delete active rejects', Video.Spaces.delete(id)), 'conflict', 'active');
  const BC = Video.Spaces.Broadcasts;
  const bid = s.broadcasts[0].id;
  await BC.start(id, bid);
  check('broadcast start: active', (await BC.get(id, bid)).status === 'active', bid);
  apiError('delete active broadcast: conflict', await rejects('delete active broadcast rejects', BC.delete(id, bid)), 'conflict', 'active');
  await BC.stop(id, bid);
  check('broadcast stop: idle', (await BC.get(id, bid)).status === 'idle', bid);
  await BC.start(id, bid); // the space going idle stops it (idle phase)
  check('broadcast started again', (await BC.get(id, bid)).status === 'active', bid);
}

async function idlePhase(id) {
  const s = await Video.Spaces.get(id);
  checkSpace('get after leaving', s, { status: 'idle', passthrough: 'team-42', broadcasts: 1 });
  check('the space going idle stopped its broadcast', s.broadcasts[0].status === 'idle', s.broadcasts);
  await Video.Spaces.Broadcasts.delete(id, s.broadcasts[0].id);
  checkSpace('broadcast deleted', await Video.Spaces.get(id), { status: 'idle', passthrough: 'team-42' });
  await Video.Spaces.delete(id);
  apiError('get deleted: not_found', await rejects('get deleted rejects', Video.Spaces.get(id)), 'not_found', 'space');
}

const phase = process.env.SPACES_PHASE ?? 'api';
try {
  if (phase === 'api') await apiPhase();
  else if (phase === 'active') await activePhase(process.env.SPACE_ID);
  else if (phase === 'idle') await idlePhase(process.env.SPACE_ID);
  else check(`known phase ${phase}`, false);
} catch (e) {
  check('no unexpected error', false, { error: e?.message ?? e, stack: e?.stack });
}
