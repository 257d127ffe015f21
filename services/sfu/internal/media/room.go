package media

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"

	"github.com/spacecast/spacecast/libs/idgen"
	"github.com/spacecast/spacecast/services/sfu/rtcproto"
)

// Errors a peer reports to its client.
var (
	ErrPublishNotAllowed = errors.New("subscribers cannot publish")
	ErrUnexpected        = errors.New("message not expected now")
	ErrNegotiation       = errors.New("negotiation failed")
)

// Hooks receive a room's track changes (for the registry and events). They run on the
// goroutine that made the change and must not call back into the room synchronously.
type Hooks interface {
	TrackPublished(p *Peer, t rtcproto.Track)
	TrackUnpublished(p *Peer, t rtcproto.Track)
	TrackMuted(p *Peer, t rtcproto.Track)
	PeerFailed(p *Peer, code, msg string)
}

// Room is one space's peers on this node.
type Room struct {
	ID            string
	EnvironmentID string
	engine        *Engine
	hooks         Hooks
	log           *slog.Logger

	mu     sync.Mutex
	peers  map[string]*Peer
	tracks map[string]*Published
	closed bool
}

// NewRoom returns an empty room.
func NewRoom(e *Engine, id, env string, hooks Hooks, log *slog.Logger) *Room {
	return &Room{ID: id, EnvironmentID: env, engine: e, hooks: hooks, log: log.With("space_id", id),
		peers: map[string]*Peer{}, tracks: map[string]*Published{}}
}

// PeerInfo identifies a connection.
type PeerInfo struct {
	ParticipantID string
	ConnectionID  string
	Role          string
	JoinedAt      time.Time
}

// Sender delivers one signaling message to the peer's client (never blocks for long).
type Sender func(v any)

// Peer is one connection: a publish PeerConnection the client offers and a subscribe
// PeerConnection the server offers (so the two sides never offer on the same connection).
type Peer struct {
	Info PeerInfo
	room *Room
	send Sender
	log  *slog.Logger

	pubMu      sync.Mutex
	pub        *webrtc.PeerConnection
	pubSources map[string]string // mid or msid track id -> source
	pubCands   []webrtc.ICECandidateInit

	subMu        sync.Mutex
	sub          *webrtc.PeerConnection
	subOffered   bool // an offer is out, waiting for the answer
	subPending   bool // something changed while an offer was out
	subCands     []webrtc.ICECandidateInit
	subConnected bool
	senders      map[string]*subscription // track id -> subscription
	closed       bool
	closeOnce    sync.Once
}

type subscription struct {
	track  *Published
	sender *webrtc.RTPSender
}

// Published is a track a peer publishes, forwarded to everyone else.
type Published struct {
	Info   rtcproto.Track
	owner  *Peer
	remote *webrtc.TrackRemote
	local  *webrtc.TrackLocalStaticRTP
	kf     *keyframer

	mu    sync.Mutex
	muted bool
}

// Snapshot lists the room's other participants and their tracks.
func (r *Room) snapshotLocked(except string) []rtcproto.Participant {
	out := []rtcproto.Participant{}
	for _, p := range r.peers {
		if p.Info.ConnectionID == except {
			continue
		}
		out = append(out, p.participantLocked())
	}
	return out
}

func (p *Peer) participantLocked() rtcproto.Participant {
	part := rtcproto.Participant{ParticipantID: p.Info.ParticipantID, ConnectionID: p.Info.ConnectionID, Role: p.Info.Role,
		JoinedAt: fmt.Sprint(p.Info.JoinedAt.Unix()), Tracks: []rtcproto.Track{}}
	for _, t := range p.room.tracks {
		if t.owner == p {
			part.Tracks = append(part.Tracks, t.info())
		}
	}
	return part
}

func (t *Published) info() rtcproto.Track {
	t.mu.Lock()
	defer t.mu.Unlock()
	i := t.Info
	i.Muted = t.muted
	i.Mid = ""
	return i
}

// ErrRoomClosed is returned when joining a room being torn down.
var ErrRoomClosed = errors.New("room closed")

// Join adds a peer. welcome is called under the room lock with the other participants, so
// the client learns the room's state before any change that follows.
func (r *Room) Join(info PeerInfo, send Sender, welcome func(others []rtcproto.Participant)) (*Peer, error) {
	sub, err := r.engine.NewPeerConnection()
	if err != nil {
		return nil, err
	}
	p := &Peer{Info: info, room: r, send: send, log: r.log.With("connection_id", info.ConnectionID),
		sub: sub, senders: map[string]*subscription{}}
	sub.OnConnectionStateChange(func(s webrtc.PeerConnectionState) { p.subState(s) })
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		_ = sub.Close()
		return nil, ErrRoomClosed
	}
	welcome(r.snapshotLocked(info.ConnectionID))
	part := p.participantLocked()
	for _, o := range r.peers {
		o.send(rtcproto.ParticipantEvent{Type: rtcproto.TypeParticipantJoined, Participant: part})
	}
	r.peers[info.ConnectionID] = p
	for _, t := range r.tracks {
		p.subscribe(t)
	}
	r.mu.Unlock()
	go p.negotiate()
	return p, nil
}

// Empty reports whether the room has no peers.
func (r *Room) Empty() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.peers) == 0
}

// CloseIfEmpty marks an empty room closed so no one joins it; it reports success.
func (r *Room) CloseIfEmpty() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.peers) == 0 {
		r.closed = true
	}
	return r.closed
}

// Peers returns the room's peers.
func (r *Room) Peers() []*Peer {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]*Peer, 0, len(r.peers))
	for _, p := range r.peers {
		out = append(out, p)
	}
	return out
}

// Leave removes the peer, unpublishes its tracks and closes its connections.
func (p *Peer) Leave() {
	p.closeOnce.Do(func() {
		r := p.room
		r.mu.Lock()
		delete(r.peers, p.Info.ConnectionID)
		var mine []*Published
		for _, t := range r.tracks {
			if t.owner == p {
				mine = append(mine, t)
			}
		}
		r.mu.Unlock()
		for _, t := range mine {
			r.unpublish(t)
		}
		p.subMu.Lock()
		p.closed = true
		p.subMu.Unlock()
		_ = p.sub.Close()
		p.pubMu.Lock()
		if p.pub != nil {
			_ = p.pub.Close()
		}
		p.pubMu.Unlock()
		r.mu.Lock()
		part := rtcproto.Participant{ParticipantID: p.Info.ParticipantID, ConnectionID: p.Info.ConnectionID, Role: p.Info.Role,
			JoinedAt: fmt.Sprint(p.Info.JoinedAt.Unix()), Tracks: []rtcproto.Track{}}
		for _, o := range r.peers {
			o.send(rtcproto.ParticipantEvent{Type: rtcproto.TypeParticipantLeft, Participant: part})
		}
		r.mu.Unlock()
	})
}

// --- subscribe side (server offers) ---

// subscribe adds t to p's subscribe connection; the caller negotiates afterwards.
func (p *Peer) subscribe(t *Published) {
	if t.owner == p {
		return
	}
	p.subMu.Lock()
	defer p.subMu.Unlock()
	if p.closed || p.senders[t.Info.TrackID] != nil {
		return
	}
	tr, err := p.sub.AddTransceiverFromTrack(t.local, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
	if err != nil {
		p.log.Warn("adding track to subscriber failed", "err", err, "track_id", t.Info.TrackID)
		return
	}
	s := &subscription{track: t, sender: tr.Sender()}
	p.senders[t.Info.TrackID] = s
	go p.readRTCP(s)
}

// readRTCP drains the sender's RTCP (interceptors need it) and passes keyframe requests on.
func (p *Peer) readRTCP(s *subscription) {
	for {
		pkts, _, err := s.sender.ReadRTCP()
		if err != nil {
			return
		}
		for _, pkt := range pkts {
			switch pkt.(type) {
			case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
				s.track.kf.request()
			}
		}
	}
}

func (p *Peer) unsubscribe(t *Published) bool {
	p.subMu.Lock()
	defer p.subMu.Unlock()
	s := p.senders[t.Info.TrackID]
	if s == nil || p.closed {
		return false
	}
	delete(p.senders, t.Info.TrackID)
	if err := p.sub.RemoveTrack(s.sender); err != nil {
		p.log.Debug("remove track", "err", err)
	}
	return true
}

func (p *Peer) subState(s webrtc.PeerConnectionState) {
	switch s {
	case webrtc.PeerConnectionStateConnected:
		p.subMu.Lock()
		p.subConnected = true
		subs := make([]*subscription, 0, len(p.senders))
		for _, s := range p.senders {
			subs = append(subs, s)
		}
		p.subMu.Unlock()
		// A new subscriber sees nothing until the next keyframe: ask for one now.
		for _, s := range subs {
			s.track.kf.request()
		}
	case webrtc.PeerConnectionStateFailed:
		p.room.hooks.PeerFailed(p, rtcproto.CodeMediaFailed, "the subscribe connection failed")
	}
}

// negotiate sends a new offer on the subscribe connection unless one is out already, in
// which case it is sent once the answer arrived.
func (p *Peer) negotiate() {
	p.subMu.Lock()
	defer p.subMu.Unlock()
	if p.closed {
		return
	}
	if p.subOffered {
		p.subPending = true
		return
	}
	if len(p.sub.GetTransceivers()) == 0 {
		return // nothing to receive yet
	}
	p.subPending = false
	offer, err := p.sub.CreateOffer(nil)
	if err != nil {
		p.failLocked(fmt.Errorf("create offer: %w", err))
		return
	}
	gathered := webrtc.GatheringCompletePromise(p.sub)
	if err := p.sub.SetLocalDescription(offer); err != nil {
		p.failLocked(fmt.Errorf("set local offer: %w", err))
		return
	}
	select {
	case <-gathered:
	case <-time.After(5 * time.Second):
	}
	var tracks []rtcproto.SubscribedTrack
	for _, tr := range p.sub.GetTransceivers() {
		sender := tr.Sender()
		if sender == nil || sender.Track() == nil {
			continue
		}
		for _, s := range p.senders {
			if s.sender == sender {
				i := s.track.Info
				tracks = append(tracks, rtcproto.SubscribedTrack{Mid: tr.Mid(), ParticipantID: s.track.owner.Info.ParticipantID,
					ConnectionID: s.track.owner.Info.ConnectionID, TrackID: i.TrackID, Kind: i.Kind, Source: i.Source})
			}
		}
	}
	p.subOffered = true
	p.send(rtcproto.SDP{Type: rtcproto.TypeOffer, SDP: p.sub.LocalDescription().SDP, Tracks: tracks})
}

func (p *Peer) failLocked(err error) {
	p.log.Warn("negotiation failed", "err", err)
	go p.room.hooks.PeerFailed(p, rtcproto.CodeNegotiation, err.Error())
}

// HandleAnswer applies the client's answer to the server's offer.
func (p *Peer) HandleAnswer(sdpText string) error {
	p.subMu.Lock()
	if !p.subOffered {
		p.subMu.Unlock()
		return fmt.Errorf("%w: answer without an outstanding offer", ErrUnexpected)
	}
	if err := p.sub.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: sdpText}); err != nil {
		p.subMu.Unlock()
		return fmt.Errorf("%w: %v", ErrNegotiation, err)
	}
	p.subOffered = false
	for _, c := range p.subCands {
		_ = p.sub.AddICECandidate(c)
	}
	p.subCands = nil
	again := p.subPending
	connected := p.subConnected
	var subs []*subscription
	for _, s := range p.senders {
		subs = append(subs, s)
	}
	p.subMu.Unlock()
	if connected {
		// Tracks added by this renegotiation start now: their subscribers need a keyframe.
		for _, s := range subs {
			s.track.kf.request()
		}
	}
	if again {
		go p.negotiate()
	}
	return nil
}

// --- publish side (client offers) ---

// HandleOffer answers the client's offer on the publish connection.
func (p *Peer) HandleOffer(sdpText string, sources []rtcproto.TrackSource) error {
	parsed := &sdp.SessionDescription{}
	if err := parsed.UnmarshalString(sdpText); err != nil {
		return fmt.Errorf("%w: offer is not valid SDP: %v", ErrNegotiation, err)
	}
	if p.Info.Role == RoleSubscriber && sendsMedia(parsed) {
		return ErrPublishNotAllowed
	}
	p.pubMu.Lock()
	defer p.pubMu.Unlock()
	if p.pub == nil {
		pc, err := p.room.engine.NewPeerConnection()
		if err != nil {
			return err
		}
		pc.OnTrack(p.onTrack)
		pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
			if s == webrtc.PeerConnectionStateFailed {
				p.room.hooks.PeerFailed(p, rtcproto.CodeMediaFailed, "the publish connection failed")
			}
		})
		p.pub = pc
		p.pubSources = map[string]string{}
	}
	for _, s := range sources {
		if s.Mid != "" {
			p.pubSources["mid:"+s.Mid] = s.Source
		}
		if s.TrackID != "" {
			p.pubSources["id:"+s.TrackID] = s.Source
		}
	}
	if err := p.pub.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: sdpText}); err != nil {
		return fmt.Errorf("%w: %v", ErrNegotiation, err)
	}
	for _, c := range p.pubCands {
		_ = p.pub.AddICECandidate(c)
	}
	p.pubCands = nil
	answer, err := p.pub.CreateAnswer(nil)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrNegotiation, err)
	}
	gathered := webrtc.GatheringCompletePromise(p.pub)
	if err := p.pub.SetLocalDescription(answer); err != nil {
		return fmt.Errorf("%w: %v", ErrNegotiation, err)
	}
	select {
	case <-gathered:
	case <-time.After(5 * time.Second):
	}
	p.send(rtcproto.SDP{Type: rtcproto.TypeAnswer, SDP: p.pub.LocalDescription().SDP})
	return nil
}

// sendsMedia reports whether an offer has an audio/video section the offerer sends on.
func sendsMedia(s *sdp.SessionDescription) bool {
	sessionDir := direction(s.Attributes, "sendrecv")
	for _, m := range s.MediaDescriptions {
		if m.MediaName.Media != "audio" && m.MediaName.Media != "video" {
			continue
		}
		if m.MediaName.Port.Value == 0 {
			continue // rejected / stopped section
		}
		d := direction(m.Attributes, sessionDir)
		if d == "sendrecv" || d == "sendonly" {
			return true
		}
	}
	return false
}

func direction(attrs []sdp.Attribute, def string) string {
	for _, a := range attrs {
		switch a.Key {
		case "sendrecv", "sendonly", "recvonly", "inactive":
			return a.Key
		}
	}
	return def
}

// HandleCandidate adds a trickled client candidate to one of the two connections.
func (p *Peer) HandleCandidate(target string, c webrtc.ICECandidateInit) error {
	switch target {
	case rtcproto.TargetPublisher:
		p.pubMu.Lock()
		defer p.pubMu.Unlock()
		if p.pub == nil {
			return fmt.Errorf("%w: publisher candidate before the first offer", ErrUnexpected)
		}
		if p.pub.RemoteDescription() == nil {
			p.pubCands = append(p.pubCands, c)
			return nil
		}
		return ignoreCandidateErr(p.pub.AddICECandidate(c))
	case rtcproto.TargetSubscriber:
		p.subMu.Lock()
		defer p.subMu.Unlock()
		if p.sub.LocalDescription() == nil {
			return fmt.Errorf("%w: subscriber candidate before the server's offer", ErrUnexpected)
		}
		if p.subOffered || p.sub.RemoteDescription() == nil {
			p.subCands = append(p.subCands, c)
			return nil
		}
		return ignoreCandidateErr(p.sub.AddICECandidate(c))
	}
	return fmt.Errorf("candidate target must be %q or %q", rtcproto.TargetPublisher, rtcproto.TargetSubscriber)
}

// ignoreCandidateErr: a candidate pion cannot use (mDNS name, unknown transport) is not the
// client's fault; it is skipped.
func ignoreCandidateErr(err error) error { return nil }

// SetMuted marks one of the peer's tracks muted or unmuted.
func (p *Peer) SetMuted(trackID string, muted bool) error {
	r := p.room
	r.mu.Lock()
	t := r.tracks[trackID]
	if t == nil || t.owner != p {
		r.mu.Unlock()
		return fmt.Errorf("%w: no published track %q on this connection", ErrUnexpected, trackID)
	}
	t.mu.Lock()
	t.muted = muted
	t.mu.Unlock()
	info := t.info()
	for _, o := range r.peers {
		o.send(rtcproto.TrackEvent{Type: rtcproto.TypeTrackMuted, ParticipantID: p.Info.ParticipantID, ConnectionID: p.Info.ConnectionID, Track: info})
	}
	r.mu.Unlock()
	full := t.Info
	full.Muted = muted
	r.hooks.TrackMuted(p, full)
	return nil
}

func (p *Peer) onTrack(remote *webrtc.TrackRemote, recv *webrtc.RTPReceiver) {
	if p.Info.Role == RoleSubscriber {
		return // refused already at the offer; never forward
	}
	mid := ""
	p.pubMu.Lock()
	for _, tr := range p.pub.GetTransceivers() {
		if tr.Receiver() == recv {
			mid = tr.Mid()
		}
	}
	kind := remote.Kind().String()
	source := p.pubSources["mid:"+mid]
	if source == "" {
		source = p.pubSources["id:"+remote.ID()]
	}
	p.pubMu.Unlock()
	if source == "" || (kind == rtcproto.KindAudio) != (source == rtcproto.SourceMicrophone) {
		source = rtcproto.SourceCamera
		if kind == rtcproto.KindAudio {
			source = rtcproto.SourceMicrophone
		}
	}
	id := idgen.New()
	local, err := webrtc.NewTrackLocalStaticRTP(remote.Codec().RTPCodecCapability, id, p.Info.ConnectionID)
	if err != nil {
		p.log.Warn("forwarding track", "err", err)
		return
	}
	t := &Published{Info: rtcproto.Track{TrackID: id, Kind: kind, Source: source, Mid: mid}, owner: p, remote: remote, local: local}
	ssrc := uint32(remote.SSRC())
	pub := p.pub
	t.kf = newKeyframer(200*time.Millisecond, func() {
		if kind == rtcproto.KindVideo {
			_ = pub.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: ssrc}})
		}
	})
	p.room.publish(t)
	buf := make([]byte, 1500)
	for {
		n, _, err := remote.Read(buf)
		if err != nil {
			if !errors.Is(err, io.EOF) && !strings.Contains(err.Error(), "closed") {
				p.log.Debug("track read ended", "err", err)
			}
			break
		}
		if _, err := local.Write(buf[:n]); err != nil && !errors.Is(err, io.ErrClosedPipe) {
			p.log.Debug("forward", "err", err)
		}
	}
	p.room.unpublish(t)
}

func (r *Room) publish(t *Published) {
	r.mu.Lock()
	r.tracks[t.Info.TrackID] = t
	var others []*Peer
	for _, o := range r.peers {
		if o != t.owner {
			others = append(others, o)
		}
	}
	own := rtcproto.TrackEvent{Type: rtcproto.TypeTrackPublished, ParticipantID: t.owner.Info.ParticipantID,
		ConnectionID: t.owner.Info.ConnectionID, Track: t.Info}
	t.owner.send(own)
	ev := own
	ev.Track = t.info()
	for _, o := range others {
		o.subscribe(t)
		o.send(ev)
	}
	r.mu.Unlock()
	r.hooks.TrackPublished(t.owner, t.Info)
	for _, o := range others {
		go o.negotiate()
	}
	t.kf.request()
}

func (r *Room) unpublish(t *Published) {
	r.mu.Lock()
	if r.tracks[t.Info.TrackID] != t {
		r.mu.Unlock()
		return
	}
	delete(r.tracks, t.Info.TrackID)
	ev := rtcproto.TrackEvent{Type: rtcproto.TypeTrackUnpublished, ParticipantID: t.owner.Info.ParticipantID,
		ConnectionID: t.owner.Info.ConnectionID, Track: t.info()}
	var changed []*Peer
	for _, o := range r.peers {
		o.send(ev)
		if o.unsubscribe(t) {
			changed = append(changed, o)
		}
	}
	r.mu.Unlock()
	t.kf.stop()
	r.hooks.TrackUnpublished(t.owner, t.Info)
	for _, o := range changed {
		go o.negotiate()
	}
}

// keyframer sends keyframe requests to a publisher at most once per interval; a request
// inside the interval is sent when it ends, so a late subscriber is never left waiting.
type keyframer struct {
	mu      sync.Mutex
	min     time.Duration
	last    time.Time
	timer   *time.Timer
	send    func()
	stopped bool
}

func newKeyframer(min time.Duration, send func()) *keyframer { return &keyframer{min: min, send: send} }

func (k *keyframer) request() {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.stopped || k.timer != nil {
		return
	}
	wait := k.min - time.Since(k.last)
	if wait <= 0 {
		k.last = time.Now()
		go k.send()
		return
	}
	k.timer = time.AfterFunc(wait, func() {
		k.mu.Lock()
		k.timer = nil
		stopped := k.stopped
		k.last = time.Now()
		k.mu.Unlock()
		if !stopped {
			k.send()
		}
	})
}

func (k *keyframer) stop() {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.stopped = true
	if k.timer != nil {
		k.timer.Stop()
		k.timer = nil
	}
}

// Roles.
const (
	RolePublisher  = "publisher"
	RoleSubscriber = "subscriber"
)
