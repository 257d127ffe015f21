package space

import (
	"context"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"

	"github.com/spacecast/spacecast/services/sfu/internal/simulcast"
	"github.com/spacecast/spacecast/services/sfu/internal/speaker"
)

// peer is one participant's connection: a subscribe PeerConnection the server offers on
// and a publish PeerConnection the client offers on. Only the owner goroutine touches it.
type peer struct {
	m           Member
	conn        Conn
	log         *slog.Logger
	displayName string
	managed     int
	joinSeq     int
	welcomed    bool // joined was sent
	resumed     bool // a reconnect of a participant others still see
	gone        bool // socket lost, inside the reconnect window

	sub        *webrtc.PeerConnection
	subOffered bool
	subPending bool
	subCands   []webrtc.ICECandidateInit
	senders    map[string]*sender // tid -> what this peer receives
	manual     map[string]bool    // tids asked for with subscribe_tracks

	est      simulcast.Estimate // the subscribe connection's send estimate
	hasEst   bool
	pub      *webrtc.PeerConnection
	pubCands []webrtc.ICECandidateInit
	pending  map[string]PendingTrack // mid -> announced track

	lastEvents []time.Time
	lastName   time.Time
}

type sender struct {
	t   *track
	s   *webrtc.RTPSender
	fw  *simulcast.Forwarder // simulcast tracks: this subscriber's layer
	sel *simulcast.Selector
}

// track is a published track: one local track fanned out to every subscriber. Its source
// (the publisher's incoming track) can be replaced when the publisher reconnects.
//
// Seam for simulcast: a layered track would give each subscriber its own forwarder here
// instead of the shared local track.
type track struct {
	info  Track
	seq   int
	owner *peer
	local *webrtc.TrackLocalStaticRTP
	cont  *continuity   // single-layer tracks: one numbering across sources
	gen   atomic.Uint64 // bumped when the source changes; a stale pump stops
	src   atomic.Pointer[source]
	kf    keyframes
	m     *Metrics
	// levels hands the audio levels the forwarding goroutine reads to the owner, which
	// drains it on its speaker tick (microphones only; nil otherwise).
	levels chan level
	// Simulcast tracks (layered): the received layers and the subscribers' forwarders;
	// local is nil for them.
	layered  bool
	codec    webrtc.RTPCodecCapability
	layerSet atomic.Pointer[map[string]*layerSrc]
	fws      atomic.Pointer[[]*simulcast.Forwarder]
	// meter measures the layers as they arrive (which are being sent, their VP8 sizes).
	meter *simulcast.Meter
	// tap is the space's hidden subscriber's sink of this track (SetTap), nil without.
	tap atomic.Pointer[tapBox]
	// tapL picks the one layer of a simulcast track the tap gets (nil: not tapped).
	tapL atomic.Pointer[tapLayers]
}

type level struct {
	v  uint8
	at time.Time
}

type source struct {
	pc   *webrtc.PeerConnection
	ssrc uint32
}

func (t *track) detach() {
	t.gen.Add(1)
	t.src.Store(nil)
	t.layerSet.Store(nil)
}

// attach makes remote the track's source and forwards its packets until it ends or is
// replaced.
func (t *track) attach(pc *webrtc.PeerConnection, recv *webrtc.RTPReceiver, remote *webrtc.TrackRemote) {
	gen := t.gen.Add(1)
	t.src.Store(&source{pc: pc, ssrc: uint32(remote.SSRC())})
	levelExt := uint8(0)
	if t.levels != nil {
		for _, h := range recv.GetParameters().HeaderExtensions {
			if h.URI == sdp.AudioLevelURI {
				levelExt = uint8(h.ID)
			}
		}
	}
	go func() {
		buf := make([]byte, 1500)
		var pkt rtp.Packet
		for {
			n, _, err := remote.Read(buf)
			if err != nil {
				return
			}
			if t.gen.Load() != gen {
				return
			}
			if pkt.Unmarshal(buf[:n]) != nil || !t.cont.rewrite(gen, &pkt) {
				continue
			}
			if levelExt != 0 {
				if v, _, err := speaker.ParseAudioLevel(pkt.GetExtension(levelExt)); err == nil {
					select {
					case t.levels <- level{v: v, at: time.Now()}:
					default: // the owner is behind: a level less
					}
				}
			}
			if t.tapping() {
				cp := pkt.Clone()
				t.tapWrite(cp)
			}
			if err := t.local.WriteRTP(&pkt); err == nil {
				t.m.ForwardedPackets.Inc()
				t.m.ForwardedBytes.Add(float64(n))
			}
		}
	}()
	t.keyframe()
}

// keyframe asks the publisher for a keyframe (at most every 300 ms; a request inside that
// interval is sent when it ends).
func (t *track) keyframe() {
	if t.info.Type != KindVideo {
		return
	}
	if t.layered {
		if ls := t.layerSet.Load(); ls != nil {
			for _, l := range *ls {
				l.keyframe()
			}
		}
		return
	}
	t.kf.request(300*time.Millisecond, func() {
		if s := t.src.Load(); s != nil {
			if err := s.pc.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: s.ssrc}}); err == nil {
				t.m.PLIs.Inc()
			}
		}
	})
}

type keyframes struct {
	mu    sync.Mutex
	last  time.Time
	timer *time.Timer
}

func (k *keyframes) request(min time.Duration, send func()) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.timer != nil {
		return
	}
	wait := min - time.Since(k.last)
	if wait <= 0 {
		k.last = time.Now()
		go send()
		return
	}
	k.timer = time.AfterFunc(wait, func() {
		k.mu.Lock()
		k.timer = nil
		k.last = time.Now()
		k.mu.Unlock()
		send()
	})
}

// wanted lists the tracks p should receive.
func (s *Space) wanted(p *peer) map[string]*track {
	out := map[string]*track{}
	if p.managed == 0 {
		for tid := range p.manual {
			if t := s.tracks[tid]; t != nil && t.owner != p {
				out[tid] = t
			}
		}
		return out
	}
	n := 0
	for _, o := range s.sorted() {
		if o == p || n >= p.managed {
			continue
		}
		own := s.ownTracks(o)
		if len(own) == 0 {
			continue
		}
		n++
		for _, t := range own {
			out[t.info.TID] = t
		}
	}
	return out
}

// syncSubs adds and removes p's forwarded tracks; with negotiate, a change is offered.
func (s *Space) syncSubs(p *peer, negotiate bool) {
	if p.sub == nil {
		return
	}
	want := s.wanted(p)
	changed := false
	for tid, sd := range p.senders {
		if want[tid] == sd.t {
			continue
		}
		if err := p.sub.RemoveTrack(sd.s); err != nil {
			p.log.Debug("remove track", "err", err)
		}
		if sd.fw != nil {
			sd.t.dropForwarder(sd.fw)
		}
		delete(p.senders, tid)
		changed = true
	}
	for tid, t := range want {
		if p.senders[tid] != nil {
			continue
		}
		if t.layered {
			sd, err := s.subscribeLayered(p, t)
			if err != nil {
				p.log.Warn("forwarding a simulcast track failed", "err", err, "tid", tid)
				continue
			}
			p.senders[tid] = sd
			go s.readRTCP(sd)
			changed = true
			continue
		}
		tr, err := p.sub.AddTransceiverFromTrack(t.local, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
		if err != nil {
			p.log.Warn("forwarding a track failed", "err", err, "tid", tid)
			continue
		}
		sd := &sender{t: t, s: tr.Sender()}
		p.senders[tid] = sd
		go s.readRTCP(sd)
		changed = true
	}
	if changed && negotiate {
		s.offerSub(p, nil)
	}
}

// readRTCP drains a sender's RTCP (the interceptors need it) and passes keyframe requests on.
func (s *Space) readRTCP(sd *sender) {
	for {
		pkts, _, err := sd.s.ReadRTCP()
		if err != nil {
			return
		}
		for _, pkt := range pkts {
			switch pkt.(type) {
			case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
				if sd.fw != nil {
					if rid := sd.fw.Current(); rid != "" {
						sd.t.keyframeRID(rid)
					}
					continue
				}
				sd.t.keyframe()
			case *rtcp.TransportLayerNack:
				s.cfg.Metrics.NACKs.Inc()
			}
		}
	}
}

// offerSub sends a new subscribe offer unless one is out (then it follows the answer).
// then, if set, replaces sending sub_offer (the first offer goes into joined).
func (s *Space) offerSub(p *peer, then func()) {
	if p.sub == nil {
		return
	}
	if p.subOffered {
		p.subPending = true
		return
	}
	p.subPending = false
	offer, err := p.sub.CreateOffer(nil)
	if err != nil {
		s.negotiationFailed(p, "create subscribe offer", err)
		return
	}
	gathered := webrtc.GatheringCompletePromise(p.sub)
	if err := p.sub.SetLocalDescription(offer); err != nil {
		s.negotiationFailed(p, "set subscribe offer", err)
		return
	}
	p.subOffered = true
	pc := p.sub
	go func() {
		select {
		case <-gathered:
		case <-time.After(3 * time.Second):
		}
		s.post(func() {
			if !s.current(p) || p.sub != pc {
				return
			}
			if then != nil {
				then()
				return
			}
			p.conn.Send(Out{SubOffer: &SfuDescription{SfuID: s.cfg.NodeID, SDP: pc.LocalDescription().SDP}})
		})
	}()
}

func (s *Space) negotiationFailed(p *peer, what string, err error) {
	s.cfg.Metrics.NegotiationFailures.Inc()
	p.log.Warn("negotiation failed", "step", what, "err", err)
	// The SDK cannot recover a broken connection by itself (an offer left without an
	// answer stalls all its later publishing): a close that is not 4000 makes it reconnect
	// with fresh connections and publish again. The error (not fatal: the SDK only logs it)
	// says why.
	p.conn.Send(Out{Error: &Error{Type: ErrTypePeerConnection, Message: "negotiation failed (" + what + "): reconnect"}})
	p.conn.Close(1011, "negotiation failed")
}

func (s *Space) subState(p *peer, st webrtc.PeerConnectionState) {
	if !s.current(p) {
		return
	}
	switch st {
	case webrtc.PeerConnectionStateConnected:
		for _, sd := range p.senders {
			sd.t.keyframe()
		}
	case webrtc.PeerConnectionStateFailed:
		p.log.Warn("subscribe connection failed")
		p.conn.Close(1011, "media connection failed")
	}
}

func (s *Space) message(p *peer, in In) {
	if !s.current(p) || p.gone {
		return
	}
	switch {
	case in.SubAnswer != nil:
		s.subAnswer(p, *in.SubAnswer)
	case in.Offer != nil:
		s.pubOffer(p, *in.Offer)
	case in.Candidate != nil:
		s.candidate(p, *in.Candidate)
	case in.PendingTrack != nil:
		s.pendingTrack(p, *in.PendingTrack)
	case in.MuteTrack != nil:
		s.mute(p, *in.MuteTrack, true)
	case in.UnmuteTrack != nil:
		s.mute(p, *in.UnmuteTrack, false)
	case in.SubscribeTracks != nil:
		s.subscribe(p, *in.SubscribeTracks, true)
	case in.UnsubscribeTracks != nil:
		s.subscribe(p, *in.UnsubscribeTracks, false)
	case in.SetDisplayName != nil:
		s.setDisplayName(p, in.RequestID, *in.SetDisplayName)
	case in.CustomEvent != nil:
		s.customEvent(p, in.RequestID, *in.CustomEvent)
	default:
		p.log.Debug("unsupported message ignored")
	}
}

func (s *Space) subAnswer(p *peer, d SfuDescription) {
	if p.sub == nil || !p.subOffered {
		p.log.Debug("sub_answer without an offer ignored")
		return
	}
	if err := p.sub.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: d.SDP}); err != nil {
		s.negotiationFailed(p, "apply sub_answer", err)
		return
	}
	p.subOffered = false
	for _, c := range p.subCands {
		_ = p.sub.AddICECandidate(c)
	}
	p.subCands = nil
	// Tracks this negotiation added start now: their first frame needs a keyframe.
	for _, sd := range p.senders {
		sd.t.keyframe()
	}
	if p.subPending {
		s.offerSub(p, nil)
	}
}

func (s *Space) candidate(p *peer, c CandidateMsg) {
	if c.Candidate.Candidate == "" {
		return
	}
	ci := webrtc.ICECandidateInit{Candidate: c.Candidate.Candidate, SDPMid: c.Candidate.SDPMid,
		SDPMLineIndex: c.Candidate.SDPMLineIndex, UsernameFragment: c.Candidate.UsernameFragment}
	switch c.Type {
	case CandidateSubscribe:
		if p.sub == nil {
			return
		}
		if p.sub.RemoteDescription() == nil {
			p.subCands = append(p.subCands, ci)
			return
		}
		_ = p.sub.AddICECandidate(ci) // a candidate pion cannot use is skipped
	case CandidatePublish:
		if p.pub == nil || p.pub.RemoteDescription() == nil {
			p.pubCands = append(p.pubCands, ci)
			return
		}
		_ = p.pub.AddICECandidate(ci)
	}
}

var sources = map[string]bool{"camera": true, "microphone": true, "screenshare": true, "screenshareaudio": true, "other": true}

func (s *Space) pendingTrack(p *peer, pt PendingTrack) {
	if p.m.Role == "subscriber" {
		p.conn.Send(Out{Error: &Error{Type: ErrTypeInvalidPendingTrack, Message: "a subscriber cannot publish"}})
		return
	}
	if pt.TID == "" || pt.Mid == "" || (pt.Type != KindAudio && pt.Type != KindVideo) {
		p.conn.Send(Out{Error: &Error{Type: ErrTypeInvalidPendingTrack, Message: "pending_track needs tid, mid and type 1 (audio) or 2 (video)"}})
		return
	}
	if !sources[pt.Source] {
		pt.Source = "other"
	}
	if t := s.tracks[pt.TID]; t != nil && t.owner != p {
		p.conn.Send(Out{Error: &Error{Type: ErrTypeInvalidPendingTrack, Message: "track id " + pt.TID + " is taken"}})
		return
	}
	n := 0
	for _, t := range s.ownTracks(p) {
		if t.info.Source == pt.Source && t.info.TID != pt.TID {
			n++
		}
	}
	if n >= s.cfg.Limits.DefaultTrackLimit {
		p.conn.Send(Out{Error: &Error{Type: ErrTypeInvalidPendingTrack, Message: "too many " + pt.Source + " tracks"}})
		return
	}
	p.pending[pt.Mid] = pt
}

func (s *Space) pubOffer(p *peer, offerSDP string) {
	if p.m.Role == "subscriber" {
		p.conn.Send(Out{Error: &Error{Type: ErrTypeInvalidPendingTrack, Message: "a subscriber cannot publish"}})
		return
	}
	parsed := &sdp.SessionDescription{}
	if err := parsed.UnmarshalString(offerSDP); err != nil {
		// No answer can be made, and the SDK waits for one before any later negotiation.
		s.negotiationFailed(p, "offer is not valid SDP", err)
		return
	}
	// Unpublish: the m-line of a published track turns inactive (or is stopped).
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, md := range parsed.MediaDescriptions {
		mid, _ := md.Attribute("mid")
		if mid == "" || sends(md) {
			continue
		}
		for _, t := range s.ownTracks(p) {
			if t.info.Mid == mid {
				s.removeTrack(ctx, t, true)
			}
		}
		delete(p.pending, mid)
	}
	if p.pub == nil {
		pc, _, err := s.cfg.Peers.NewPeerConnectionWithEstimate()
		if err != nil {
			s.negotiationFailed(p, "publish connection", err)
			return
		}
		pc.OnTrack(func(remote *webrtc.TrackRemote, recv *webrtc.RTPReceiver) {
			mid := ""
			for _, tr := range pc.GetTransceivers() {
				if tr.Receiver() == recv {
					mid = tr.Mid()
				}
			}
			s.post(func() { s.trackArrived(p, pc, mid, recv, remote) })
		})
		p.pub = pc
	}
	pc := p.pub
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offerSDP}); err != nil {
		s.negotiationFailed(p, "apply offer", err)
		return
	}
	for _, c := range p.pubCands {
		_ = pc.AddICECandidate(c)
	}
	p.pubCands = nil
	answer, err := pc.CreateAnswer(nil)
	if err != nil {
		s.negotiationFailed(p, "create answer", err)
		return
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(answer); err != nil {
		s.negotiationFailed(p, "set answer", err)
		return
	}
	go func() {
		select {
		case <-gathered:
		case <-time.After(3 * time.Second):
		}
		s.post(func() {
			if s.current(p) && p.pub == pc {
				p.conn.Send(Out{Answer: pc.LocalDescription().SDP})
			}
		})
	}()
}

// sends reports whether an offer's m-line sends media.
func sends(md *sdp.MediaDescription) bool {
	if md.MediaName.Port.Value == 0 {
		return false
	}
	if md.MediaName.Media != "audio" && md.MediaName.Media != "video" {
		return true // not a track (data channel)
	}
	for _, a := range md.Attributes {
		switch a.Key {
		case "inactive", "recvonly":
			return false
		}
	}
	return true
}

func (s *Space) trackArrived(p *peer, pc *webrtc.PeerConnection, mid string, recv *webrtc.RTPReceiver, remote *webrtc.TrackRemote) {
	if !s.current(p) || p.pub != pc {
		return
	}
	pt, ok := p.pending[mid]
	if !ok {
		p.log.Warn("media on a mid without pending_track: not forwarded", "mid", mid)
		return
	}
	if t := s.tracks[pt.TID]; t != nil && t.owner == p {
		// The same track again: the publisher reconnected (or renegotiated it), or another
		// layer of a simulcast track.
		t.info.Mid = mid
		if t.layered && remote.RID() != "" {
			s.addLayer(t, pc, remote)
		} else {
			t.attach(pc, recv, remote)
		}
		return
	}
	kind := KindAudio
	if remote.Kind() == webrtc.RTPCodecTypeVideo {
		kind = KindVideo
	}
	s.trackSeq++
	t := &track{info: Track{TID: pt.TID, Type: kind, Source: pt.Source, Name: pt.Name, Muted: pt.Muted, Width: pt.Width,
		Height: pt.Height, Metadata: map[string]any{}, Mid: mid}, seq: s.trackSeq, owner: p, m: s.cfg.Metrics,
		codec: remote.Codec().RTPCodecCapability, layered: remote.RID() != ""}
	if !t.layered {
		local, err := webrtc.NewTrackLocalStaticRTP(remote.Codec().RTPCodecCapability, pt.TID, pt.TID)
		if err != nil {
			p.log.Warn("forwarding track", "err", err)
			return
		}
		t.local = local
		t.cont = newContinuity(remote.Codec().ClockRate, nil)
	}
	if kind == KindAudio && pt.Source == "microphone" {
		t.levels = make(chan level, 256)
	}
	if t.layered {
		t.meter = simulcast.NewMeter(nil)
	}
	s.tracks[pt.TID] = t
	s.cfg.Metrics.Tracks.Inc()
	if t.layered {
		s.addLayer(t, pc, remote)
	} else {
		t.attach(pc, recv, remote)
	}
	s.broadcast(p, Out{AddTrack: &TrackEvent{ConnectionID: p.m.ConnectionID, Track: t.info}})
	s.tapTrack(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s.cfg.Hooks.TrackPublished(ctx, p.m, t.info)
	s.resync()
}

// removeTrack unpublishes t; with announce, the others get remove_track (a leave's
// participant_disconnected says it instead).
func (s *Space) removeTrack(ctx context.Context, t *track, announce bool) {
	if s.tracks[t.info.TID] != t {
		return
	}
	delete(s.tracks, t.info.TID)
	s.cfg.Metrics.Tracks.Dec()
	t.detach()
	if s.tap != nil && t.tap.Load() != nil {
		t.tap.Store(nil)
		t.tapL.Store(nil)
		s.tap.TrackRemoved(t.owner.m.ConnectionID, t.info.TID)
	}
	if t.levels != nil {
		s.speakers.Remove(t.info.TID)
	}
	if announce {
		s.broadcast(t.owner, Out{RemoveTrack: &TrackRefEvent{ConnectionID: t.owner.m.ConnectionID, Track: TrackRef{TID: t.info.TID}}})
		s.resync()
	}
	s.cfg.Hooks.TrackUnpublished(ctx, t.owner.m, t.info)
}

func (s *Space) mute(p *peer, tid string, muted bool) {
	t := s.tracks[tid]
	if t == nil {
		// Muted right after publishing, before its media arrived: announced muted.
		for mid, pt := range p.pending {
			if pt.TID == tid {
				pt.Muted = muted
				p.pending[mid] = pt
				return
			}
		}
	}
	if t == nil || t.owner != p {
		p.log.Debug("mute of an unknown track ignored", "tid", tid)
		return
	}
	if t.info.Muted == muted {
		return
	}
	t.info.Muted = muted
	if s.tap != nil {
		s.tap.TrackMuted(p.m.ConnectionID, tid, muted)
	}
	ev := &TrackRefEvent{ConnectionID: p.m.ConnectionID, Track: TrackRef{TID: tid}}
	if muted {
		s.broadcast(p, Out{TrackMuted: ev})
	} else {
		s.broadcast(p, Out{TrackUnmuted: ev})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s.cfg.Hooks.TrackMuted(ctx, p.m, t.info)
}

func (s *Space) subscribe(p *peer, req SubscribeRequest, on bool) {
	res := SubscribeResult{Successes: []ConnectionTracks{}, Failures: []ConnectionTracks{}}
	for _, c := range req.Connections {
		o := s.peers[c.ConnectionID]
		ok := p.managed == 0 && o != nil && o != p
		if ok {
			for _, tid := range c.TrackIDs {
				t := s.tracks[tid]
				if on && (t == nil || t.owner != o) {
					ok = false
				}
			}
		}
		if c.TrackIDs == nil {
			c.TrackIDs = []string{}
		}
		if !ok {
			res.Failures = append(res.Failures, c)
			continue
		}
		for _, tid := range c.TrackIDs {
			if on {
				p.manual[tid] = true
			} else {
				delete(p.manual, tid)
			}
		}
		res.Successes = append(res.Successes, c)
	}
	if on {
		p.conn.Send(Out{SubscribeTracks: &res})
	} else {
		p.conn.Send(Out{UnsubscribeTracks: &res})
	}
	s.syncSubs(p, true)
}

func reqErr(typ int, msg, requestID string) Out {
	return Out{Error: &Error{Type: typ, Message: msg, RequestError: &RequestError{Correlator: requestID}}}
}

func (s *Space) customEvent(p *peer, requestID string, ev CustomEvent) {
	switch {
	case p.m.Role == "subscriber":
		p.conn.Send(reqErr(ReqErrCustomEvent, "only participants with the publisher role can publish custom events", requestID))
		return
	case len(ev.Payload) > 4096:
		p.conn.Send(reqErr(ReqErrCustomEvent, "custom event payload is larger than 4096 bytes", requestID))
		return
	}
	// At most custom_events_per_second in any second (a little slack for network jitter
	// between the client's own spacing and our clock).
	now := time.Now()
	keep := p.lastEvents[:0]
	for _, at := range p.lastEvents {
		if now.Sub(at) < 900*time.Millisecond {
			keep = append(keep, at)
		}
	}
	p.lastEvents = keep
	if len(p.lastEvents) >= s.cfg.Limits.CustomEventsPerSecond {
		p.conn.Send(reqErr(ReqErrCustomEventRate, "custom events are limited to "+strconv.Itoa(s.cfg.Limits.CustomEventsPerSecond)+" per second", requestID))
		return
	}
	p.lastEvents = append(p.lastEvents, now)
	s.seq++
	out := CustomEvent{ID: ev.ID, Payload: ev.Payload, Scope: ev.Scope, ConnectionID: p.m.ConnectionID, SequenceNum: s.seq}
	s.broadcast(nil, Out{RequestID: requestID, CustomEvent: &out})
}

func (s *Space) setDisplayName(p *peer, requestID, name string) {
	if name == "" || utf8.RuneCountInString(name) > 64 {
		p.conn.Send(reqErr(ReqErrSetDisplayName, "display name must be 1 to 64 characters", requestID))
		return
	}
	min := time.Duration(s.cfg.Limits.SecondsPerSetDisplayName*float64(time.Second)) * 9 / 10
	if !p.lastName.IsZero() && time.Since(p.lastName) < min {
		p.conn.Send(reqErr(ReqErrSetDisplayNameRate, "display name changes are rate limited", requestID))
		return
	}
	p.lastName = time.Now()
	p.displayName = name
	s.names[p.m.ParticipantID] = name
	s.broadcast(nil, Out{RequestID: requestID, ParticipantUpdate: &ParticipantUpdate{ConnectionID: p.m.ConnectionID, DisplayName: name}})
}
