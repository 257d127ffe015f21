// Test harness around the unchanged Mux Spaces SDK: sdk.mjs drives it through window.T.
// It records what the SDK emits (its own events only) and measures the media it plays.
(() => {
  const M = window.MuxSpaces;
  const sockets = [];
  // Keep the SDK's sockets so a test can kill one mid-call (as a network drop would).
  const NativeWS = window.WebSocket;
  window.WebSocket = function (url, protocols) {
    const ws = protocols === undefined ? new NativeWS(url) : new NativeWS(url, protocols);
    sockets.push(ws);
    // T.corruptOffers > 0: the SDK's next publish offers go out as invalid SDP (a test of
    // what the server does with an offer it cannot answer).
    const send = ws.send.bind(ws);
    ws.send = (data) => {
      if (T.proxy && typeof data === "string") {
        // Media through the proxy only: the server learns none of this page's candidates (it
        // sees the page's checks arrive from the proxy instead).
        const m = JSON.parse(data);
        if (m.candidate && m.candidate.type === 1) return;
        if (m.sub_answer) {
          m.sub_answer.sdp = m.sub_answer.sdp.split("\r\n").filter((l) => !l.startsWith("a=candidate:")).join("\r\n");
          data = JSON.stringify(m);
        }
      }
      if (T.corruptOffers > 0 && typeof data === "string") {
        const m = JSON.parse(data);
        if (typeof m.offer === "string") {
          T.corruptOffers--;
          T.corrupted++;
          m.offer = "v=0 this is not SDP";
          data = JSON.stringify(m);
        }
      }
      return send(data);
    };
    return ws;
  };
  window.WebSocket.prototype = NativeWS.prototype;
  // Keep the SDK's peer connections for their statistics.
  const pcs = [];
  const NativePC = window.RTCPeerConnection;
  window.RTCPeerConnection = function (cfg) {
    const pc = new NativePC(cfg);
    pcs.push(pc);
    // T.proxy = {sfuPort, proxyPort}: the server's UDP candidate is replaced by the test's
    // UDP proxy (which can throttle this page's media); its other candidates are dropped.
    const srd = pc.setRemoteDescription.bind(pc);
    pc.setRemoteDescription = (d) => {
      if (T.proxy && d && d.sdp) d = { type: d.type, sdp: viaProxy(d.sdp) };
      return srd(d);
    };
    const aic = pc.addIceCandidate.bind(pc);
    pc.addIceCandidate = (c) => (T.proxy && c && c.candidate ? Promise.resolve() : aic(c));
    return pc;
  };
  window.RTCPeerConnection.prototype = NativePC.prototype;
  // a=candidate:<foundation> <component> <transport> <priority> <ip> <port> typ <type> ...
  function viaProxy(sdp) {
    return sdp
      .split("\r\n")
      .flatMap((l) => {
        if (!l.startsWith("a=candidate:")) return [l];
        const f = l.split(" ");
        if (f[2].toLowerCase() !== "udp" || Number(f[5]) !== T.proxy.sfuPort) return [];
        f[4] = "127.0.0.1";
        f[5] = String(T.proxy.proxyPort);
        return [f.join(" ")];
      })
      .join("\r\n");
  }
  Object.setPrototypeOf(window.RTCPeerConnection, NativePC);
  Object.assign(window.WebSocket, { CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3 });

  const T = {
    events: [],
    proxy: null,
    corruptOffers: 0,
    corrupted: 0,
    space: null,
    local: null,
    localTracks: [],
    screenTracks: [],
    audioCtx: null,
    meters: new Map(), // tid -> analyser
    elements: new Map(), // tid -> media element
    remotes: new Map(), // connection id -> RemoteParticipant (from the SDK's events)
  };
  window.T = T;
  const log = (type, detail) => T.events.push({ type, at: Date.now(), ...detail });
  const pinfo = (p) => ({ participant: p && p.id, connection: p && p.connectionId, displayName: p && p.displayName });
  // TrackKind is numeric in the SDK (1 audio, 2 video).
  const kindOf = (t) => (t.kind === 1 || t.kind === "audio" ? "audio" : "video");
  const tinfo = (t) => ({ tid: t && t.tid, source: t && t.source, kind: t && kindOf(t) });

  function meter(track) {
    if (!track.track || T.meters.has(track.tid)) return;
    if (kindOf(track) === "audio") {
      T.audioCtx = T.audioCtx || new AudioContext();
      const src = T.audioCtx.createMediaStreamSource(new MediaStream([track.track]));
      const an = T.audioCtx.createAnalyser();
      an.fftSize = 1024;
      src.connect(an);
      T.meters.set(track.tid, an);
      const el = track.attach(document.createElement("audio"));
      el.muted = true; // the analyser listens; the page stays silent
      document.getElementById("media").appendChild(el);
      T.elements.set(track.tid, el);
    } else {
      const el = document.createElement("video");
      el.muted = true;
      el.autoplay = true;
      el.playsInline = true;
      track.attach(el);
      document.getElementById("media").appendChild(el);
      T.elements.set(track.tid, el);
      T.meters.set(track.tid, null);
    }
  }

  T.join = async (token, opts = {}) => {
    const o = {};
    if (opts.displayName) o.displayName = opts.displayName;
    if (opts.manual) o.subscriptionMode = M.SubscriptionMode.Manual;
    if (opts.limit) o.automaticParticipantLimit = opts.limit;
    const space = new M.Space(token, o);
    T.space = space;
    const E = M.SpaceEvent;
    space.on(E.ParticipantJoined, (p) => {
      T.remotes.set(p.connectionId, p);
      log("joined", pinfo(p));
    });
    space.on(E.ParticipantLeft, (p) => {
      T.remotes.delete(p.connectionId);
      log("left", pinfo(p));
    });
    space.on(E.ParticipantTrackPublished, (p, t) => log("published", { ...pinfo(p), ...tinfo(t) }));
    space.on(E.ParticipantTrackUnpublished, (p, t) => log("unpublished", { ...pinfo(p), ...tinfo(t) }));
    space.on(E.ParticipantTrackSubscribed, (p, t) => {
      log("subscribed", { ...pinfo(p), ...tinfo(t) });
      if (p !== T.local) meter(t);
    });
    space.on(E.ParticipantTrackUnsubscribed, (p, t) => {
      log("unsubscribed", { ...pinfo(p), ...tinfo(t) });
      T.meters.delete(t.tid);
      const el = T.elements.get(t.tid);
      if (el) el.remove();
      T.elements.delete(t.tid);
    });
    space.on(E.ParticipantTrackMuted, (p, t) => log("muted", { ...pinfo(p), ...tinfo(t) }));
    space.on(E.ParticipantTrackUnmuted, (p, t) => log("unmuted", { ...pinfo(p), ...tinfo(t) }));
    space.on(E.ParticipantCustomEventPublished, (p, ev) =>
      log("custom", { ...pinfo(p), payload: ev.payload, sequence: ev.sequenceNumber ?? ev.sequence_num }),
    );
    space.on(E.ParticipantDisplayNameChanged, (p) => log("name", pinfo(p)));
    space.on(E.ActiveSpeakersChanged, (list) =>
      log("speakers", { speakers: list.map((s) => s.participant && s.participant.id) }),
    );
    space.on(E.LocalParticipantReconnecting, () => log("reconnecting", {}));
    space.on(E.LocalParticipantReconnected, () => log("reconnected", {}));
    space.on(E.LocalParticipantReconnectFailed, (e) => log("reconnect-failed", { error: String(e) }));
    space.on(E.BroadcastStateChanged, (b) => log("broadcast", { on: b }));
    try {
      T.local = await space.join();
    } catch (e) {
      return { error: e && e.name, message: e && e.message };
    }
    return { connection: T.local.connectionId, participant: T.local.id };
  };

  T.publish = async ({ audio = true, video = true, width = 640, height = 360 } = {}) => {
    const tracks = await M.getUserMedia({ audio, video: video ? { width, height } : false });
    T.localTracks.push(...tracks);
    await T.local.publishTracks(tracks);
    return tracks.map((t) => ({ tid: t.tid, source: t.source }));
  };

  T.screenshare = async () => {
    const tracks = await M.getDisplayMedia({ audio: true, video: true });
    T.screenTracks = tracks;
    await T.local.publishTracks(tracks);
    return tracks.map((t) => ({ tid: t.tid, source: t.source, kind: t.kind }));
  };

  T.mute = (source, on) => {
    for (const t of T.localTracks) if (t.source === source) (on ? t.mute() : t.unMute());
  };

  T.unpublish = (source) => {
    const list = T.localTracks.filter((t) => t.source === source);
    T.localTracks = T.localTracks.filter((t) => t.source !== source);
    T.local.unpublishTracks(list, { stop: true });
  };

  T.custom = async (payload) => {
    try {
      const r = await T.local.publishCustomEvent(payload);
      return { ok: true, sequence: r && (r.sequence_num ?? r.sequenceNumber) };
    } catch (e) {
      return { error: e && e.name, message: e && e.message };
    }
  };

  T.setName = async (name) => {
    try {
      await T.local.setDisplayName(name);
      return { ok: true };
    } catch (e) {
      return { error: e && e.name, message: e && e.message };
    }
  };

  T.subscribe = async (participantId, on) => {
    const p = [...T.remotes.values()].find((x) => x.id === participantId);
    if (!p) return { error: "no participant " + participantId };
    try {
      if (on) await p.subscribe();
      else await p.unsubscribe();
      return { ok: true };
    } catch (e) {
      return { error: e && e.name, message: e && e.message };
    }
  };

  T.viaProxy = (sfuPort, proxyPort) => {
    T.proxy = { sfuPort, proxyPort };
  };

  T.killSocket = () => {
    const ws = sockets.filter((s) => s.readyState === 1).pop();
    if (!ws) return false;
    ws.close(3001, "test drops the connection");
    return true;
  };

  T.leave = () => T.space && T.space.leave();

  // The RTP streams of this page's open peer connections: what it sends (per simulcast rid)
  // and what video it receives.
  T.rtp = async () => {
    const out = { sent: [], received: [] };
    for (const pc of pcs) {
      if (pc.connectionState === "closed") continue;
      const stats = await pc.getStats();
      stats.forEach((st) => {
        if (st.type === "outbound-rtp" && st.kind === "video")
          out.sent.push({ rid: st.rid || "", width: st.frameWidth || 0, bytes: st.bytesSent, active: st.active });
        if (st.type === "inbound-rtp" && st.kind === "video")
          out.received.push({ width: st.frameWidth || 0, height: st.frameHeight || 0, frames: st.framesDecoded || 0, bytes: st.bytesReceived });
      });
    }
    return out;
  };

  // What this page receives: per remote participant, its tracks with media and levels.
  T.state = () => {
    const out = [];
    for (const p of T.remotes.values()) {
      const tracks = [];
      for (const t of [...p.audioTracks.values(), ...p.videoTracks.values()]) {
        const r = { tid: t.tid, source: t.source, kind: kindOf(t), muted: t.muted, media: !!t.track };
        const el = T.elements.get(t.tid);
        if (r.kind === "video" && el) {
          r.width = el.videoWidth;
          r.frames = el.getVideoPlaybackQuality ? el.getVideoPlaybackQuality().totalVideoFrames : 0;
        }
        const an = T.meters.get(t.tid);
        if (an) {
          const buf = new Float32Array(an.fftSize);
          an.getFloatTimeDomainData(buf);
          let sum = 0;
          for (const v of buf) sum += v * v;
          r.level = Math.sqrt(sum / buf.length);
        }
        tracks.push(r);
      }
      out.push({ participant: p.id, connection: p.connectionId, displayName: p.displayName, tracks });
    }
    return out;
  };
})();
