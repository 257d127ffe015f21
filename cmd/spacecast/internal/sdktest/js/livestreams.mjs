// Live streams, playback ids and assets (recordings) of @mux/mux-node 15.3.0 against
// Spacecast. The Go test records RECORDED_ASSETS (comma-separated asset ids, each recorded by
// ffmpeg from a live stream created with new_asset_settings {playback_policies: ["public"]})
// before running it. One JSON line per check; exits non-zero on the first failure.
import Mux from '@mux/mux-node';
import { check, client, rejects } from './check.mjs';

const mux = client();

const ls = await mux.video.liveStreams.create({
  playback_policies: ['public'],
  new_asset_settings: { playback_policies: ['signed'], passthrough: 'recording' },
  passthrough: 'sdk',
  reconnect_window: 30,
  latency_mode: 'reduced',
  meta: { title: 'SDK show' },
});
check('create answers the live stream',
  ls.id && ls.stream_key && ls.status === 'idle' && ls.playback_ids?.length === 1 && ls.playback_ids[0].policy === 'public' &&
  ls.reconnect_window === 30 && ls.latency_mode === 'reduced' && ls.reduced_latency === true && ls.passthrough === 'sdk' &&
  ls.meta?.title === 'SDK show' && /^\d+$/.test(ls.created_at) && ls.max_continuous_duration === 43200 &&
  Array.isArray(ls.simulcast_targets) && ls.new_asset_settings?.playback_policies?.[0] === 'signed', ls);

const got = await mux.video.liveStreams.retrieve(ls.id);
check('retrieve answers the same stream', got.id === ls.id && got.stream_key === ls.stream_key && got.passthrough === 'sdk', got);

const upd = await mux.video.liveStreams.update(ls.id, { reconnect_window: 10, passthrough: 'sdk2', latency_mode: 'standard' });
check('update changes what it names', upd.reconnect_window === 10 && upd.passthrough === 'sdk2' && upd.latency_mode === 'standard' &&
  upd.stream_key === ls.stream_key && upd.new_asset_settings?.playback_policies?.[0] === 'signed', upd);

const made = [ls.id];
for (let i = 0; i < 4; i++) made.push((await mux.video.liveStreams.create({ playback_policies: ['signed'] })).id);
const seen = [];
for await (const s of mux.video.liveStreams.list({ limit: 2 })) seen.push(s.id);
check('list iterates every page (for await, limit 2)', made.every((id) => seen.includes(id)) && new Set(seen).size === seen.length, { seen, made });

const reset = await mux.video.liveStreams.resetStreamKey(ls.id);
check('resetStreamKey gives a new key', reset.stream_key && reset.stream_key !== ls.stream_key, reset.stream_key);

await mux.video.liveStreams.disable(ls.id);
check('disable', (await mux.video.liveStreams.retrieve(ls.id)).status === 'disabled');
await mux.video.liveStreams.enable(ls.id);
check('enable', (await mux.video.liveStreams.retrieve(ls.id)).status === 'idle');
await mux.video.liveStreams.complete(ls.id);
check('complete without a recording changes nothing', (await mux.video.liveStreams.retrieve(ls.id)).status === 'idle');

const pid = await mux.video.liveStreams.createPlaybackId(ls.id, { policy: 'signed' });
check('createPlaybackId', pid.id && pid.policy === 'signed', pid);
const pgot = await mux.video.liveStreams.retrievePlaybackId(ls.id, pid.id);
check('retrievePlaybackId', pgot.id === pid.id && pgot.policy === 'signed', pgot);
const where = await mux.video.playbackIds.retrieve(pid.id);
check('playbackIds.retrieve names the live stream', where.id === pid.id && where.policy === 'signed' &&
  where.object?.type === 'live_stream' && where.object?.id === ls.id, where);
await mux.video.liveStreams.deletePlaybackId(ls.id, pid.id);
await rejects('deleted playback id is NotFoundError', mux.video.liveStreams.retrievePlaybackId(ls.id, pid.id), Mux.NotFoundError);
await rejects('playbackIds.retrieve of an unknown id is NotFoundError', mux.video.playbackIds.retrieve('no-such-playback-id'), Mux.NotFoundError);

await rejects('a wrong live stream id is NotFoundError', mux.video.liveStreams.retrieve('no-such-stream'), Mux.NotFoundError);
await rejects('a bad latency_mode is BadRequestError', mux.video.liveStreams.create({ latency_mode: 'fast' }), Mux.BadRequestError, 'latency_mode');
const tgt = await mux.video.liveStreams.createSimulcastTarget(ls.id, { url: 'rtmp://live.example.com/app', stream_key: 'k', passthrough: 'yt' });
check('createSimulcastTarget', tgt.id && tgt.status === 'idle' && tgt.url === 'rtmp://live.example.com/app' &&
  tgt.stream_key === 'k' && tgt.passthrough === 'yt', tgt);
const tgot = await mux.video.liveStreams.retrieveSimulcastTarget(ls.id, tgt.id);
check('retrieveSimulcastTarget', tgot.id === tgt.id && tgot.status === 'idle', tgot);
check('the live stream lists its simulcast target',
  (await mux.video.liveStreams.retrieve(ls.id)).simulcast_targets.some((x) => x.id === tgt.id && x.stream_key === 'k'));
await rejects('a simulcast target that is not rtmp(s) is a BadRequestError',
  mux.video.liveStreams.createSimulcastTarget(ls.id, { url: 'https://live.example.com/app' }), Mux.BadRequestError, 'rtmp');
await rejects('a simulcast target at a private address is a BadRequestError',
  mux.video.liveStreams.create({ simulcast_targets: [{ url: 'rtmp://10.0.0.1/app', stream_key: 'k' }] }), Mux.BadRequestError, 'simulcast_targets[0].url');
await mux.video.liveStreams.deleteSimulcastTarget(ls.id, tgt.id);
await rejects('a deleted simulcast target is NotFoundError', mux.video.liveStreams.retrieveSimulcastTarget(ls.id, tgt.id), Mux.NotFoundError);
await rejects('generated subtitles are a BadRequestError naming them',
  mux.video.liveStreams.create({ generated_subtitles: [{ name: 'English', language_code: 'en' }] }), Mux.BadRequestError, 'generated subtitles');
await rejects('an unimplemented asset setting is a BadRequestError naming it',
  mux.video.liveStreams.create({ new_asset_settings: { master_access: 'temporary' } }), Mux.BadRequestError, 'master_access');

// Static (MP4) renditions.
const mp4ls = await mux.video.liveStreams.create({ playback_policies: ['public'],
  new_asset_settings: { playback_policies: ['public'], static_renditions: [{ resolution: 'highest' }, { resolution: 'audio-only', passthrough: 'a' }] } });
check('create takes new_asset_settings.static_renditions', mp4ls.new_asset_settings?.static_renditions?.length === 2 &&
  mp4ls.new_asset_settings.static_renditions[1].resolution === 'audio-only' && mp4ls.new_asset_settings.static_renditions[1].passthrough === 'a', mp4ls.new_asset_settings);
const mp4upd = await mux.video.liveStreams.updateNewAssetSettingsStaticRenditions(mp4ls.id, { static_renditions: [{ resolution: '720p' }] });
check('updateNewAssetSettingsStaticRenditions replaces them', mp4upd.new_asset_settings?.static_renditions?.length === 1 &&
  mp4upd.new_asset_settings.static_renditions[0].resolution === '720p', mp4upd.new_asset_settings);
await mux.video.liveStreams.deleteNewAssetSettingsStaticRenditions(mp4ls.id);
check('deleteNewAssetSettingsStaticRenditions removes them',
  !(await mux.video.liveStreams.retrieve(mp4ls.id)).new_asset_settings?.static_renditions);
await rejects('an unknown static rendition resolution is a BadRequestError', mux.video.liveStreams.create({
  new_asset_settings: { static_renditions: [{ resolution: '4k' }] } }), Mux.BadRequestError, 'resolution');
await rejects('mp4_support with static_renditions is a BadRequestError', mux.video.liveStreams.create({
  new_asset_settings: { mp4_support: 'capped-1080p', static_renditions: [{ resolution: 'highest' }] } }), Mux.BadRequestError, 'cannot both');
await mux.video.liveStreams.delete(mp4ls.id);

await mux.video.liveStreams.delete(ls.id);
await rejects('a deleted live stream is NotFoundError', mux.video.liveStreams.retrieve(ls.id), Mux.NotFoundError);

// Assets: the recordings the Go test made.
const recorded = (process.env.RECORDED_ASSETS || '').split(',').filter(Boolean);
check('the Go test recorded assets', recorded.length >= 3, recorded);
const listed = [];
for await (const a of mux.video.assets.list({ limit: 2 })) listed.push(a.id);
check('assets.list iterates every page (for await, limit 2)', recorded.every((id) => listed.includes(id)) && new Set(listed).size === listed.length, { listed, recorded });

const asset = await mux.video.assets.retrieve(recorded[0]);
check('assets.retrieve answers the recording', asset.id === recorded[0] && asset.status === 'ready' && asset.is_live === false &&
  asset.live_stream_id && asset.duration > 0 && asset.ingest_type === 'live_rtmp' && asset.progress?.state === 'completed' &&
  asset.encoding_tier && asset.master_access === 'none' && asset.max_resolution_tier && asset.playback_ids?.length === 1 &&
  asset.playback_ids[0].policy === 'public', asset);
const video = asset.tracks?.find((t) => t.type === 'video');
const audio = asset.tracks?.find((t) => t.type === 'audio');
check('the recording describes its media', video?.max_width === 320 && video?.max_height === 240 && video?.max_frame_rate === 25 &&
  audio?.max_channels === 1 && asset.aspect_ratio === '4:3' && asset.resolution_tier === '720p' &&
  asset.max_stored_resolution === 'SD' && asset.max_stored_frame_rate === 25 && asset.recording_times?.length === 1 &&
  asset.recording_times[0].type === 'content' && !Number.isNaN(Date.parse(asset.recording_times[0].started_at)),
  { tracks: asset.tracks, recording_times: asset.recording_times });
const byStream = [];
for await (const a of mux.video.assets.list({ live_stream_id: asset.live_stream_id })) byStream.push(a.id);
check('assets.list({live_stream_id}) lists that stream\'s recordings', byStream.length === 1 && byStream[0] === asset.id, byStream);

const apid = asset.playback_ids[0].id;
const agot = await mux.video.assets.retrievePlaybackId(asset.id, apid);
check('assets.retrievePlaybackId', agot.id === apid && agot.policy === 'public', agot);
const awhere = await mux.video.playbackIds.retrieve(apid);
check('playbackIds.retrieve names the asset', awhere.object?.type === 'asset' && awhere.object?.id === asset.id, awhere);
const added = await mux.video.assets.createPlaybackId(asset.id, { policy: 'signed' });
check('assets.createPlaybackId', added.id && added.policy === 'signed', added);
check('the asset lists the new playback id', (await mux.video.assets.retrieve(asset.id)).playback_ids.some((p) => p.id === added.id));
await mux.video.assets.deletePlaybackId(asset.id, added.id);
await rejects('a deleted asset playback id is NotFoundError', mux.video.assets.retrievePlaybackId(asset.id, added.id), Mux.NotFoundError);
await rejects('a bad playback policy is BadRequestError', mux.video.assets.createPlaybackId(asset.id, { policy: 'open' }), Mux.BadRequestError, 'policy');

const sr = await mux.video.assets.createStaticRendition(asset.id, { resolution: 'highest', passthrough: 'dl' });
check('createStaticRendition answers a preparing file', sr.id && sr.name === 'highest.mp4' && sr.ext === 'mp4' && sr.status === 'preparing' &&
  sr.resolution === 'highest' && sr.passthrough === 'dl', sr);
let file;
for (let i = 0; i < 120 && file?.status !== 'ready'; i++) {
  await new Promise((r) => setTimeout(r, 250));
  file = (await mux.video.assets.retrieve(asset.id)).static_renditions?.files?.find((f) => f.id === sr.id);
}
check('the asset reads its static rendition ready', file?.status === 'ready' && file.width === 320 && file.height === 240 &&
  Number(file.filesize) > 0 && file.bitrate > 0 && file.type === 'standard', file);
const mp4res = await fetch(`${process.env.SPACECAST_BASE_URL}/stream/${asset.playback_ids[0].id}/highest.mp4`, { headers: { Range: 'bytes=0-7' } });
const head = Buffer.from(await mp4res.arrayBuffer());
check('the MP4 is served with ranges', mp4res.status === 206 && head.length === 8 && head.subarray(4, 8).toString() === 'ftyp', { status: mp4res.status });
await rejects('a second highest rendition is a BadRequestError', mux.video.assets.createStaticRendition(asset.id, { resolution: 'highest' }), Mux.BadRequestError);
await rejects('updateMP4Support on an asset with static renditions is a BadRequestError',
  mux.video.assets.updateMP4Support(asset.id, { mp4_support: 'capped-1080p' }), Mux.BadRequestError, 'mp4_support');
await mux.video.assets.deleteStaticRendition(asset.id, sr.id);
check('deleteStaticRendition removes it', !(await mux.video.assets.retrieve(asset.id)).static_renditions);
await rejects('deleting it again is NotFoundError', mux.video.assets.deleteStaticRendition(asset.id, sr.id), Mux.NotFoundError);

await rejects('a wrong asset id is NotFoundError', mux.video.assets.retrieve('no-such-asset'), Mux.NotFoundError);
await mux.video.assets.delete(recorded[2]);
await rejects('a deleted asset is NotFoundError', mux.video.assets.retrieve(recorded[2]), Mux.NotFoundError);
// SDK calls for features Spacecast does not have: a BadRequestError that names the feature.
const missing = [
  ['video.uploads.create', () => mux.video.uploads.create({ new_asset_settings: { playback_policy: ['public'] } }), 'direct uploads'],
  ['video.assets.create', () => mux.video.assets.create({ inputs: [{ url: 'https://example.com/a.mp4' }] }), 'assets are the recordings of live streams'],
  ['video.liveStreams.updateGeneratedSubtitles', () => mux.video.liveStreams.updateGeneratedSubtitles(ls.id, { generated_subtitles: [] }), 'generated subtitles'],
  ['video.assets.updateMasterAccess', () => mux.video.assets.updateMasterAccess(recorded[0], { master_access: 'temporary' }), 'master access'],
  ['video.assets.createTrack', () => mux.video.assets.createTrack(recorded[0], { url: 'https://example.com/en.vtt', type: 'text', text_type: 'subtitles', language_code: 'en' }), 'asset tracks'],
  ['video.playbackRestrictions.create', () => mux.video.playbackRestrictions.create({ referrer: { allowed_domains: ['*'] } }), 'playback restrictions'],
  ['video.transcriptionVocabularies.list', () => mux.video.transcriptionVocabularies.list(), 'transcription vocabularies'],
  ['video.drmConfigurations.list', () => mux.video.drmConfigurations.list(), 'DRM'],
  ['video.deliveryUsage.list', () => mux.video.deliveryUsage.list(), 'delivery usage'],
  ['data.metrics.list', () => mux.data.metrics.list(), 'Mux Data'],
  ['video.assets.update', () => mux.video.assets.update(recorded[0], { passthrough: 'x' }), 'updating an asset'],
];
for (const [name, call, mention] of missing) {
  await rejects(`${name} is a BadRequestError naming "${mention}"`, (async () => call())(), Mux.BadRequestError, mention);
}
console.log(JSON.stringify({ done: 'livestreams.mjs' }));
