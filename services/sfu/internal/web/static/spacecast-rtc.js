// spacecast-rtc.js: a small browser SDK for Spacecast spaces (ES module, no dependencies).
// It speaks the Mux Spaces protocol of docs/rtc-protocol.md (the unchanged @mux/spaces-web
// SDK works as well). Usage:
//
//   import { Space } from "/sdk/spacecast-rtc.js";
//   const space = await Space.join(token);                 // same-origin /spaces/v1
//   space.addEventListener("track", (e) => attach(e.detail)); // remote tracks
//   await space.publishCamera();                           // camera + microphone
//   await space.publishScreen();                           // screenshare
//   space.leave();

export const SIGNAL_PATH = "/spaces/v1";

/** Default signaling URL: the page's own host. */
export function defaultURL() {
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  return `${proto}//${location.host}${SIGNAL_PATH}`;
}

// Error types of the protocol's connect refusals, by name.
const ERROR_NAMES = { 1: "disconnected", 3: "duplicate_participant", 6: "invalid_token", 7: "participant_limit" };

/** SpaceError carries the server's error (code: a name from the error type, type: the number). */
export class SpaceError extends Error {
  constructor(code, message, extra = {}) {
    super(`${code}: ${message || ""}`);
    this.code = code;
    Object.assign(this, extra);
  }
}

const kindName = (type) => (type === 1 ? "audio" : "video");

// trackInfo turns a protocol Track into this SDK's track description.
function trackInfo(t) {
  return { track_id: t.tid, kind: kindName(t.type), source: t.source, muted: !!t.muted, name: t.name, mid: t.mid };
}

function jwtRole(token) {
  try {
    const b = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(atob(b)).role === "subscriber" ? "subscriber" : "publisher";
  } catch {
    return "publisher";
  }
}

/**
 * A joined space. Events (CustomEvent, details in brackets):
 *  participantjoined / participantleft [participant]
 *  trackpublished / trackunpublished / trackmuted [{participant_id, connection_id, track}]
 *  track [{track: MediaStreamTrack, stream: MediaStream, key, participant_id, connection_id, track_id, kind, source}]
 *        (key: connection_id for camera + microphone, connection_id + ":screen" for a screenshare)
 *  trackended [same as track]
 *  closed [{code, message}]   (code "left" after leave())
 */
export class Space extends EventTarget {
  static async join(token, { url = defaultURL(), displayName = "" } = {}) {
    const space = new Space();
    await space._connect(url, token, displayName);
    return space;
  }

  constructor() {
    super();
    this.participants = new Map(); // connection_id -> {participant_id, connection_id, role, display_name, tracks: Map}
    this.local = null; // {space_id, participant_id, connection_id, role, node_id}
    this.sub = null; // RTCPeerConnection the server offers (remote tracks)
    this.pub = null; // RTCPeerConnection this client offers (own tracks)
    this._sfuID = "";
    this._owners = new Map(); // tid -> connection_id
    this._streams = new Map(); // connection_id (or connection_id:screen) -> MediaStream
    this._remote = new Map(); // tid -> track event detail
    this._subChain = Promise.resolve();
    this._pubChain = Promise.resolve();
    this._answerWaiter = null;
    this.ownTracks = new Map(); // track_id -> track info (with mid and transceiver)
    this._closed = false;
  }

  _send(msg) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(msg));
  }

  _emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  _connect(url, token, displayName) {
    this._role = jwtRole(token);
    const q = new URLSearchParams({ token, managed_subscriptions: "16", sdk_version: "spacecast-rtc" });
    if (displayName) q.set("display_name", displayName);
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(`${url}?${q}`);
      this.ws = ws;
      let joined = false;
      ws.onmessage = (ev) => {
        let msg;
        try {
          msg = JSON.parse(ev.data);
        } catch {
          return;
        }
        if (!joined) {
          if (msg.joined) {
            joined = true;
            this._onJoined(msg.joined).then(() => resolve(this), reject);
          } else if (msg.error) {
            this._closed = true;
            const e = msg.error;
            reject(new SpaceError(ERROR_NAMES[e.type] || "error", e.message, { type: e.type }));
          }
          return;
        }
        this._onMessage(msg);
      };
      ws.onclose = (ev) => {
        if (!joined) {
          reject(new SpaceError("closed", ev.reason || "the signaling connection closed"));
          return;
        }
        this._teardown(ev.code === 4000 ? "closed_by_server" : "connection_lost", ev.reason || "");
      };
    });
  }

  async _onJoined(j) {
    this._sfuID = j.sub_sfus[0].sfu_id;
    this.local = {
      space_id: j.session_id,
      participant_id: j.participant_id,
      connection_id: j.connection_id,
      role: this._role,
      node_id: this._sfuID,
      display_name: j.display_name,
    };
    this.limits = j.limits;
    this.iceServers = j.ice_servers || [];
    for (const p of j.participants) this._addParticipant(p);
    this.sub = new RTCPeerConnection({ iceServers: this.iceServers });
    this.sub.onicecandidate = (e) => {
      if (e.candidate) this._send({ candidate: { candidate: this._sigCandidate(e.candidate), type: 1, sfu_id: this._sfuID } });
    };
    this.sub.ontrack = (e) => this._onTrack(e);
    await this._onSubOffer(j.sub_sfus[0]);
  }

  _sigCandidate(c) {
    return { candidate: c.candidate, sdp_mid: c.sdpMid, sdp_mline_index: c.sdpMLineIndex, username_fragment: c.usernameFragment };
  }

  _addParticipant(p) {
    const entry = { participant_id: p.participant_id, connection_id: p.connection_id, role: p.role === 2 ? "subscriber" : "publisher",
      display_name: p.display_name, tracks: new Map() };
    for (const t of p.tracks || []) {
      entry.tracks.set(t.tid, trackInfo(t));
      this._owners.set(t.tid, p.connection_id);
    }
    this.participants.set(p.connection_id, entry);
    return entry;
  }

  _onMessage(msg) {
    if (msg.sub_offer) {
      this._subChain = this._subChain.then(() => this._onSubOffer(msg.sub_offer)).catch((err) => this._fail(err));
    } else if (msg.answer) {
      if (this._answerWaiter) this._answerWaiter(msg.answer);
    } else if (msg.candidate) {
      const c = msg.candidate;
      const pc = c.type === 2 ? this.pub : this.sub;
      const init = { candidate: c.candidate.candidate, sdpMid: c.candidate.sdp_mid, sdpMLineIndex: c.candidate.sdp_mline_index };
      if (pc) pc.addIceCandidate(init).catch(() => {});
    } else if (msg.participant_connected) {
      this._emit("participantjoined", this._addParticipant(msg.participant_connected));
    } else if (msg.participant_disconnected) {
      const id = msg.participant_disconnected.connection_id;
      const p = this.participants.get(id);
      this.participants.delete(id);
      if (p) for (const tid of p.tracks.keys()) this._endRemote(tid);
      this._streams.delete(id);
      this._streams.delete(`${id}:screen`);
      this._emit("participantleft", p || { connection_id: id });
    } else if (msg.add_track) {
      const { connection_id, track } = msg.add_track;
      const p = this.participants.get(connection_id);
      if (!p) return;
      const info = trackInfo(track);
      p.tracks.set(track.tid, info);
      this._owners.set(track.tid, connection_id);
      this._emit("trackpublished", { participant_id: p.participant_id, connection_id, track: info });
    } else if (msg.remove_track) {
      const { connection_id, track } = msg.remove_track;
      const p = this.participants.get(connection_id);
      const info = p && p.tracks.get(track.tid);
      if (p) p.tracks.delete(track.tid);
      this._endRemote(track.tid);
      this._emit("trackunpublished", { participant_id: p && p.participant_id, connection_id, track: info || { track_id: track.tid } });
    } else if (msg.track_muted || msg.track_unmuted) {
      const m = msg.track_muted || msg.track_unmuted;
      const p = this.participants.get(m.connection_id);
      const info = p && p.tracks.get(m.track.tid);
      if (info) info.muted = !!msg.track_muted;
      this._emit("trackmuted", { participant_id: p && p.participant_id, connection_id: m.connection_id,
        track: info || { track_id: m.track.tid, muted: !!msg.track_muted } });
    } else if (msg.error) {
      if (msg.error.fatal) this._teardown(ERROR_NAMES[msg.error.type] || "error", msg.error.message);
    }
  }

  async _onSubOffer(d) {
    await this.sub.setRemoteDescription({ type: "offer", sdp: d.sdp });
    const answer = await this.sub.createAnswer();
    await this.sub.setLocalDescription(answer);
    this._send({ sub_answer: { sfu_id: d.sfu_id, sdp: this.sub.localDescription.sdp } });
  }

  _onTrack(e) {
    // The msid stream id of every forwarded m-line is the publisher's track id.
    const tid = e.streams[0] && e.streams[0].id;
    const conn = this._owners.get(tid);
    const p = conn && this.participants.get(conn);
    const t = p && p.tracks.get(tid);
    if (!t) return;
    // Camera and microphone of a connection share one MediaStream; a screenshare gets its own.
    const key = t.source === "screenshare" || t.source === "screenshareaudio" ? `${conn}:screen` : conn;
    let stream = this._streams.get(key);
    if (!stream) {
      stream = new MediaStream();
      this._streams.set(key, stream);
    }
    stream.addTrack(e.track);
    const detail = { ...t, participant_id: p.participant_id, connection_id: conn, key, track: e.track, stream };
    this._remote.set(tid, detail);
    detail.end = () => {
      if (this._remote.get(tid) !== detail) return;
      this._remote.delete(tid);
      stream.removeTrack(e.track);
      this._emit("trackended", detail);
    };
    e.track.addEventListener("ended", detail.end);
    e.streams[0].addEventListener("removetrack", detail.end);
    this._emit("track", detail);
  }

  _endRemote(tid) {
    const r = this._remote.get(tid);
    if (r) r.end();
  }

  /** The MediaStream of a remote connection's camera + microphone (or of key "<connection_id>:screen"). */
  streamOf(key) {
    return this._streams.get(key);
  }

  _ensurePub() {
    if (this.pub) return;
    if (this.local.role !== "publisher") throw new SpaceError("publish_not_allowed", "this token's role is subscriber");
    this.pub = new RTCPeerConnection({ iceServers: this.iceServers });
    this.pub.onicecandidate = (e) => {
      if (e.candidate) this._send({ candidate: { candidate: this._sigCandidate(e.candidate), type: 2, sfu_id: this._sfuID } });
    };
  }

  // _negotiatePub offers on the publish connection; fresh lists the tracks it introduces.
  _negotiatePub(fresh = []) {
    this._pubChain = this._pubChain.then(async () => {
      const offer = await this.pub.createOffer();
      await this.pub.setLocalDescription(offer);
      for (const info of fresh) {
        info.mid = info.transceiver.mid;
        const settings = info.transceiver.sender.track ? info.transceiver.sender.track.getSettings() : {};
        this._send({ pending_track: { tid: info.track_id, type: info.kind === "audio" ? 1 : 2, name: info.name, muted: false,
          source: info.source, width: settings.width || 0, height: settings.height || 0, mid: info.mid } });
      }
      const answered = new Promise((resolve) => (this._answerWaiter = resolve));
      this._send({ offer: this.pub.localDescription.sdp });
      const answer = await answered;
      this._answerWaiter = null;
      await this.pub.setRemoteDescription({ type: "answer", sdp: answer });
    });
    return this._pubChain;
  }

  /**
   * Publishes a MediaStreamTrack. source: "microphone", "camera", "screenshare" or
   * "screenshareaudio". Resolves with the track's info ({track_id, kind, source, mid}) once
   * the server answered.
   */
  async publish(track, source = track.kind === "audio" ? "microphone" : "camera") {
    this._ensurePub();
    const tr = this.pub.addTransceiver(track, { direction: "sendonly" });
    const info = { track_id: crypto.randomUUID(), kind: track.kind, source, name: track.label || source, muted: false, transceiver: tr };
    await this._negotiatePub([info]);
    this.ownTracks.set(info.track_id, info);
    return info;
  }

  /** Stops publishing a track returned by publish(). */
  async unpublish(info) {
    this.pub.removeTrack(info.transceiver.sender);
    this.ownTracks.delete(info.track_id);
    await this._negotiatePub();
  }

  /** Camera and microphone: returns the local MediaStream. */
  async publishCamera({ audio = true, video = true } = {}) {
    const stream = await navigator.mediaDevices.getUserMedia({ audio, video });
    for (const t of stream.getTracks()) await this.publish(t);
    return stream;
  }

  /** Screenshare (with its audio when the browser gives one): returns the local MediaStream. */
  async publishScreen() {
    const stream = await navigator.mediaDevices.getDisplayMedia({ video: true, audio: true });
    for (const t of stream.getTracks()) await this.publish(t, t.kind === "audio" ? "screenshareaudio" : "screenshare");
    return stream;
  }

  /** Tells the others a published track is muted (and disables it locally). */
  mute(info, muted = true) {
    if (info.transceiver && info.transceiver.sender.track) info.transceiver.sender.track.enabled = !muted;
    info.muted = muted;
    this._send(muted ? { mute_track: info.track_id } : { unmute_track: info.track_id });
  }

  leave() {
    this._teardown("left", "");
  }

  _fail(err) {
    this._teardown("client_error", String(err));
  }

  _teardown(code, message) {
    if (this._closed) return;
    this._closed = true;
    if (this.sub) this.sub.close();
    if (this.pub) this.pub.close();
    if (this.ws && this.ws.readyState <= WebSocket.OPEN) this.ws.close();
    this._emit("closed", { code, message });
  }
}
