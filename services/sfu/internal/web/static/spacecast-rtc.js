// spacecast-rtc.js: browser SDK for Spacecast spaces (ES module, no dependencies).
// Protocol: docs/rtc-protocol.md. Usage:
//
//   import { Space } from "/sdk/spacecast-rtc.js";
//   const space = await Space.join(token);                 // same-origin signaling URL
//   space.addEventListener("track", (e) => attach(e.detail)); // remote tracks
//   await space.publishCamera();                           // camera + microphone
//   await space.publishScreen();                           // screenshare
//   space.leave();

export const SIGNAL_PATH = "/rtc/v1/ws";

/** Default signaling URL: the page's own host. */
export function defaultURL() {
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  return `${proto}//${location.host}${SIGNAL_PATH}`;
}

/** SpaceError carries the server's reason code (docs/rtc-protocol.md, "Errors"). */
export class SpaceError extends Error {
  constructor(code, message, extra = {}) {
    super(`${code}: ${message || ""}`);
    this.code = code;
    Object.assign(this, extra);
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
  static async join(token, { url = defaultURL(), followRedirect = true } = {}) {
    const space = new Space();
    try {
      await space._connect(url, token);
    } catch (err) {
      if (followRedirect && err.code === "wrong_node" && err.node_url) {
        const other = new Space();
        await other._connect(err.node_url, token);
        return other;
      }
      throw err;
    }
    return space;
  }

  constructor() {
    super();
    this.participants = new Map(); // connection_id -> {participant_id, connection_id, role, tracks: Map}
    this.local = null; // {space_id, participant_id, connection_id, role, node_id}
    this.sub = null; // RTCPeerConnection the server offers (remote tracks)
    this.pub = null; // RTCPeerConnection this client offers (own tracks)
    this._subTracks = new Map(); // mid -> subscribed track info
    this._streams = new Map(); // connection_id (or connection_id:screen) -> MediaStream
    this._remote = new Map(); // track_id -> track event detail
    this._subChain = Promise.resolve();
    this._pubChain = Promise.resolve();
    this._answerWaiter = null;
    this._sources = new Map(); // RTCRtpTransceiver -> source
    this._ownWaiters = new Map(); // mid -> resolve(track)
    this.ownTracks = new Map(); // track_id -> track info (with mid)
    this._closed = false;
  }

  _send(msg) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(msg));
  }

  _emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  _connect(url, token) {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url);
      this.ws = ws;
      let joined = false;
      ws.onopen = () => ws.send(JSON.stringify({ type: "join", token }));
      ws.onmessage = (ev) => {
        let msg;
        try {
          msg = JSON.parse(ev.data);
        } catch {
          return;
        }
        if (!joined) {
          if (msg.type === "joined") {
            joined = true;
            this._onJoined(msg);
            resolve(this);
          } else if (msg.type === "error") {
            this._closed = true;
            reject(new SpaceError(msg.code, msg.message, { node_url: msg.node_url, node_id: msg.node_id }));
          }
          return;
        }
        this._onMessage(msg);
      };
      ws.onclose = (ev) => {
        if (!joined) {
          reject(new SpaceError(ev.reason || "closed", "the signaling connection closed"));
          return;
        }
        this._teardown(ev.reason || "closed", "");
      };
    });
  }

  _onJoined(msg) {
    this.local = {
      space_id: msg.space_id,
      participant_id: msg.participant_id,
      connection_id: msg.connection_id,
      role: msg.role,
      node_id: msg.node_id,
    };
    this.iceServers = msg.ice_servers || [];
    for (const p of msg.participants) this._addParticipant(p);
    this.sub = new RTCPeerConnection({ iceServers: this.iceServers });
    this.sub.onicecandidate = (e) => {
      if (e.candidate) this._send({ type: "candidate", target: "subscriber", candidate: e.candidate.toJSON() });
    };
    this.sub.ontrack = (e) => this._onTrack(e);
    this._pingTimer = setInterval(() => this._send({ type: "ping" }), 20000);
  }

  _addParticipant(p) {
    const entry = { ...p, tracks: new Map() };
    for (const t of p.tracks || []) entry.tracks.set(t.track_id, t);
    this.participants.set(p.connection_id, entry);
    return entry;
  }

  _onMessage(msg) {
    switch (msg.type) {
      case "offer":
        this._subChain = this._subChain.then(() => this._onOffer(msg)).catch((err) => this._fail(err));
        break;
      case "answer":
        if (this._answerWaiter) this._answerWaiter(msg);
        break;
      case "candidate": {
        const pc = msg.target === "publisher" ? this.pub : this.sub;
        if (pc) pc.addIceCandidate(msg.candidate).catch(() => {});
        break;
      }
      case "participant_joined":
        this._emit("participantjoined", this._addParticipant(msg.participant));
        break;
      case "participant_left":
        this.participants.delete(msg.participant.connection_id);
        this._streams.delete(msg.participant.connection_id);
        this._streams.delete(`${msg.participant.connection_id}:screen`);
        this._emit("participantleft", msg.participant);
        break;
      case "track_published": {
        if (msg.connection_id === this.local.connection_id) {
          this.ownTracks.set(msg.track.track_id, msg.track);
          const w = this._ownWaiters.get(msg.track.mid);
          if (w) {
            this._ownWaiters.delete(msg.track.mid);
            w(msg.track);
          }
        } else {
          const p = this.participants.get(msg.connection_id);
          if (p) p.tracks.set(msg.track.track_id, msg.track);
        }
        this._emit("trackpublished", msg);
        break;
      }
      case "track_unpublished": {
        const p = this.participants.get(msg.connection_id);
        if (p) p.tracks.delete(msg.track.track_id);
        this.ownTracks.delete(msg.track.track_id);
        const r = this._remote.get(msg.track.track_id);
        if (r) r.end();
        this._emit("trackunpublished", msg);
        break;
      }
      case "track_muted": {
        const p = this.participants.get(msg.connection_id);
        if (p) p.tracks.set(msg.track.track_id, msg.track);
        this._emit("trackmuted", msg);
        break;
      }
      case "error":
        this._teardown(msg.code, msg.message);
        break;
    }
  }

  async _onOffer(msg) {
    // Each offer lists every mid that carries a track now.
    this._subTracks = new Map();
    for (const t of msg.tracks || []) this._subTracks.set(t.mid, t);
    await this.sub.setRemoteDescription({ type: "offer", sdp: msg.sdp });
    const answer = await this.sub.createAnswer();
    await this.sub.setLocalDescription(answer);
    this._send({ type: "answer", sdp: this.sub.localDescription.sdp });
  }

  _onTrack(e) {
    const mid = e.transceiver.mid;
    const info = this._subTracks.get(mid);
    if (!info) return;
    // Camera and microphone of a connection share one MediaStream; a screenshare gets its own.
    const key = info.source === "screenshare" ? `${info.connection_id}:screen` : info.connection_id;
    let stream = this._streams.get(key);
    if (!stream) {
      stream = new MediaStream();
      this._streams.set(key, stream);
    }
    stream.addTrack(e.track);
    const detail = { ...info, key, track: e.track, stream };
    this._remote.set(info.track_id, detail);
    const end = () => {
      if (this._remote.get(info.track_id) !== detail) return;
      this._remote.delete(info.track_id);
      stream.removeTrack(e.track);
      this._emit("trackended", detail);
    };
    e.track.addEventListener("ended", end);
    // A mid that went inactive (its track unpublished) mutes the receiving track.
    e.track.addEventListener("mute", () => {
      const cur = this._subTracks.get(mid);
      if (!cur || cur.track_id !== info.track_id) end();
    });
    detail.end = end;
    this._emit("track", detail);
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
      if (e.candidate) this._send({ type: "candidate", target: "publisher", candidate: e.candidate.toJSON() });
    };
  }

  _negotiatePub() {
    this._pubChain = this._pubChain.then(async () => {
      const offer = await this.pub.createOffer();
      await this.pub.setLocalDescription(offer);
      const sources = [];
      for (const tr of this.pub.getTransceivers()) {
        const s = this._sources.get(tr);
        if (s && tr.mid !== null) sources.push({ mid: tr.mid, source: s });
      }
      const answered = new Promise((resolve) => (this._answerWaiter = resolve));
      this._send({ type: "offer", sdp: this.pub.localDescription.sdp, sources });
      const answer = await answered;
      this._answerWaiter = null;
      await this.pub.setRemoteDescription({ type: "answer", sdp: answer.sdp });
    });
    return this._pubChain;
  }

  /**
   * Publishes a MediaStreamTrack. source: "microphone", "camera" or "screenshare".
   * Resolves with the track's info ({track_id, kind, source, mid}) once media reaches the server.
   */
  async publish(track, source = track.kind === "audio" ? "microphone" : "camera") {
    this._ensurePub();
    const tr = this.pub.addTransceiver(track, { direction: "sendonly" });
    this._sources.set(tr, source);
    await this._negotiatePub();
    const info = await new Promise((resolve, reject) => {
      for (const t of this.ownTracks.values()) if (t.mid === tr.mid) return resolve(t);
      this._ownWaiters.set(tr.mid, resolve);
      setTimeout(() => reject(new SpaceError("timeout", "the server did not receive the track")), 15000);
    });
    info.transceiver = tr;
    return info;
  }

  /** Stops publishing a track returned by publish(). */
  async unpublish(info) {
    this.pub.removeTrack(info.transceiver.sender);
    await this._negotiatePub();
  }

  /** Camera and microphone: returns the local MediaStream. */
  async publishCamera({ audio = true, video = true } = {}) {
    const stream = await navigator.mediaDevices.getUserMedia({ audio, video });
    for (const t of stream.getTracks()) await this.publish(t);
    return stream;
  }

  /** Screenshare: returns the local MediaStream. */
  async publishScreen() {
    const stream = await navigator.mediaDevices.getDisplayMedia({ video: true });
    for (const t of stream.getVideoTracks()) await this.publish(t, "screenshare");
    return stream;
  }

  /** Tells the others a published track is muted (and disables it locally). */
  mute(info, muted = true) {
    if (info.transceiver && info.transceiver.sender.track) info.transceiver.sender.track.enabled = !muted;
    this._send({ type: "mute", track_id: info.track_id, muted });
  }

  leave() {
    this._send({ type: "leave" });
    this._teardown("left", "");
  }

  _fail(err) {
    this._teardown("client_error", String(err));
  }

  _teardown(code, message) {
    if (this._closed) return;
    this._closed = true;
    clearInterval(this._pingTimer);
    if (this.sub) this.sub.close();
    if (this.pub) this.pub.close();
    if (this.ws && this.ws.readyState <= WebSocket.OPEN) this.ws.close();
    this._emit("closed", { code, message });
  }
}
