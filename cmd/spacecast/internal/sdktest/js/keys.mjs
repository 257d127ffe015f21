// Signing keys (mux.system.signingKeys) and the JWT helpers (mux.jwt.signPlaybackId) of
// @mux/mux-node 15.3.0 against Spacecast. The signed tokens are written to KEYS_OUT for the Go
// test to verify against Spacecast's JWKS.
import { writeFileSync } from 'node:fs';
import Mux from '@mux/mux-node';
import { check, client, rejects } from './check.mjs';
import Mux7 from 'mux-node-7';

const mux = client();

const key = await mux.system.signingKeys.create();
check('create answers {id, created_at, private_key}',
  key.id && /^\d+$/.test(key.created_at) && Buffer.from(key.private_key, 'base64').toString().includes('PRIVATE KEY'),
  { id: key.id, created_at: key.created_at });

const got = await mux.system.signingKeys.retrieve(key.id);
check('retrieve hides private_key', got.id === key.id && got.created_at === key.created_at && got.private_key === undefined, got);

const more = [];
for (let i = 0; i < 2; i++) more.push(await mux.system.signingKeys.create());
const seen = [];
for await (const k of mux.system.signingKeys.list({ limit: 1 })) {
  check('listed keys carry no private_key', k.private_key === undefined, k);
  seen.push(k.id);
}
check('list iterates every page', seen.length === 3 && new Set(seen).size === 3 && seen.includes(key.id), seen);

// JWT helpers with a key made through the SDK: the Go test verifies them at Spacecast.
const playbackId = 'sdk-playback-id-0001';
const video = await mux.jwt.signPlaybackId(playbackId, { keyId: key.id, keySecret: key.private_key, expiration: '1h' });
const thumb = await mux.jwt.signPlaybackId(playbackId, { keyId: key.id, keySecret: key.private_key, type: 'thumbnail' });
const signer = new Mux({ tokenId: 'x', tokenSecret: 'y', baseURL: process.env.SPACECAST_BASE_URL, jwtSigningKey: key.id, jwtPrivateKey: key.private_key });
const fromClient = await signer.jwt.signPlaybackId(playbackId);
check('signPlaybackId makes JWTs', [video, thumb, fromClient].every((t) => t.split('.').length === 3), null);

// 7.3.5: Video.SigningKeys (the /video/v1/signing-keys alias) and the static JWT helper.
const { Video } = new Mux7(process.env.MUX_TOKEN_ID, process.env.MUX_TOKEN_SECRET, { baseUrl: process.env.SPACECAST_BASE_URL });
const key7 = await Video.SigningKeys.create();
check('7.3.5 Video.SigningKeys.create', key7.id && key7.private_key, { id: key7.id });
const got7 = await Video.SigningKeys.get(key7.id);
check('7.3.5 Video.SigningKeys.get', got7.id === key7.id && got7.private_key === undefined, got7);
const list7 = await Video.SigningKeys.list({ limit: 100 });
check('7.3.5 Video.SigningKeys.list', Array.isArray(list7) && list7.some((k) => k.id === key7.id) && list7.some((k) => k.id === key.id), list7.map((k) => k.id));
const video7 = Mux7.JWT.signPlaybackId(playbackId, { keyId: key7.id, keySecret: key7.private_key });
check('7.3.5 JWT.signPlaybackId', video7.split('.').length === 3, null);

writeFileSync(process.env.KEYS_OUT, JSON.stringify({ key_id: key.id, key7_id: key7.id, playback_id: playbackId, video, thumbnail: thumb, from_client: fromClient, video7 }));

// Typed errors.
await rejects('retrieve unknown -> NotFoundError', mux.system.signingKeys.retrieve('no-such-key'), Mux.NotFoundError);
await rejects('list limit 1000 -> BadRequestError', mux.system.signingKeys.list({ limit: 1000 }), Mux.BadRequestError);
const bad = new Mux({ tokenId: process.env.MUX_TOKEN_ID, tokenSecret: 'wrong', baseURL: process.env.SPACECAST_BASE_URL });
await rejects('bad token -> AuthenticationError', bad.system.signingKeys.create(), Mux.AuthenticationError);

// A token without system:write is refused with PermissionDeniedError.
const tok = await mux.post('/system/v1/access-tokens', { body: { name: 'read only', permissions: ['system:read'] } });
const reader = new Mux({ tokenId: tok.data.id, tokenSecret: tok.data.secret, baseURL: process.env.SPACECAST_BASE_URL });
const seenByReader = [];
for await (const k of reader.system.signingKeys.list()) seenByReader.push(k.id);
check('a system:read token lists keys', seenByReader.includes(key.id), seenByReader);
await rejects('a system:read token creating a key -> PermissionDeniedError', reader.system.signingKeys.create(), Mux.PermissionDeniedError);

for (const k of more) await mux.system.signingKeys.delete(k.id);
const extra7 = await Video.SigningKeys.create();
await Video.SigningKeys.del(extra7.id);
// 7.3.5 rejects with the API's error object ({type, messages}), not an Error.
const err7 = await Video.SigningKeys.get(extra7.id).then(() => null, (e) => e);
check('7.3.5 Video.SigningKeys.get after del -> not_found', err7?.type === 'not_found', err7);
await rejects('retrieve a deleted key -> NotFoundError', mux.system.signingKeys.retrieve(more[0].id), Mux.NotFoundError);
await rejects('delete a deleted key -> NotFoundError', mux.system.signingKeys.delete(more[0].id), Mux.NotFoundError);

const me = await mux.system.utilities.whoami();
check('system.utilities.whoami names the environment and the token',
  typeof me.environment_id === 'string' && me.environment_id !== '' && typeof me.environment_name === 'string' &&
  typeof me.access_token_name === 'string' && Array.isArray(me.permissions) && me.permissions.length > 0, me);
