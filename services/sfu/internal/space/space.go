// Package space runs one space on this node: a single owner goroutine holds the space's
// participants, their peer connections, the published tracks, subscriptions, negotiation
// state and custom-event sequence, and makes the registry writes and events through Hooks.
// WebSocket sessions and pion callbacks only post commands to it (docs/rtc-protocol.md).
package space

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/spacecast/spacecast/libs/idgen"
	"github.com/spacecast/spacecast/services/sfu/internal/simulcast"
	"github.com/spacecast/spacecast/services/sfu/internal/speaker"
)

// ErrClosed is returned by a space that retired (its last participant left): get a new one.
var ErrClosed = errors.New("space closed")

// Conn is a participant's signaling connection as the space uses it.
type Conn interface {
	// Send queues one message (never blocks for long).
	Send(Out)
	// Close sends the queued messages and closes the socket with code.
	Close(code int, reason string)
}

// PeerFactory builds peer connections on the node's shared ICE sockets.
type PeerFactory interface {
	NewPeerConnectionWithEstimate() (*webrtc.PeerConnection, simulcast.Estimate, error)
}

// Member identifies one connection of a participant (the registry's record).
type Member struct {
	SpaceID       string
	EnvironmentID string
	ParticipantID string
	ConnectionID  string
	Role          string // "publisher" or "subscriber"
	JoinedAt      time.Time
}

// Hooks persist what the owner decides; they run on the owner goroutine.
type Hooks interface {
	// Claim records a new connection; the error is a *JoinError to refuse it.
	Claim(ctx context.Context, m Member) error
	Release(ctx context.Context, m Member)
	TrackPublished(ctx context.Context, m Member, t Track)
	TrackUnpublished(ctx context.Context, m Member, t Track)
	TrackMuted(ctx context.Context, m Member, t Track)
}

// JoinError refuses a connect with an SDK error type.
type JoinError struct {
	Type    int
	Message string
}

func (e *JoinError) Error() string {
	return fmt.Sprintf("join refused (type %d): %s", e.Type, e.Message)
}

// Config are one space's settings.
type Config struct {
	ID, EnvironmentID string
	NodeID            string // the sfu_id of the subscribe connections
	Peers             PeerFactory
	Hooks             Hooks
	Logger            *slog.Logger
	Metrics           *Metrics
	ICEServers        []ICEServer
	Limits            Limits
	MaxParticipants   int           // 0: no limit
	CameraEncodings   []Encoding    // simulcast layers asked of camera publishers (none: one layer)
	ReconnectWindow   time.Duration // how long a dropped participant may come back unseen by others
	// OnEmpty is called on the owner goroutine when the last participant is gone; the
	// space stops taking commands after it.
	OnEmpty func(*Space)
}

// Space is one space's owner.
type Space struct {
	cfg  Config
	log  *slog.Logger
	cmds chan func()
	done chan struct{}

	// Owned by the loop goroutine.
	peers    map[string]*peer // connection id
	byPID    map[string]*peer
	tracks   map[string]*track // tid
	names    map[string]string // participant id -> display name last set
	seq      int64
	joinSeq  int
	trackSeq int  // tracks in the order their media first arrived (owner goroutine)
	tried    bool // a join was attempted: the owner retires when no participant is left
	bcasting bool
	tap      Tap               // the hidden subscriber (a broadcast), nil without
	speakers *speaker.Detector // keyed by microphone track id
	lastSpk  []SpeakerTrack
}

// New starts a space's owner goroutine.
func New(cfg Config) (*Space, error) {
	if cfg.ID == "" || cfg.Peers == nil || cfg.Hooks == nil || cfg.Logger == nil || cfg.NodeID == "" {
		return nil, errors.New("space: ID, NodeID, Peers, Hooks and Logger are required")
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics(nil)
	}
	if cfg.Limits.CustomEventsPerSecond <= 0 {
		cfg.Limits.CustomEventsPerSecond = 5
	}
	if cfg.Limits.DefaultTrackLimit <= 0 {
		cfg.Limits.DefaultTrackLimit = 1
	}
	if cfg.Limits.SecondsPerSetDisplayName <= 0 {
		cfg.Limits.SecondsPerSetDisplayName = 1
	}
	if cfg.ICEServers == nil {
		cfg.ICEServers = []ICEServer{}
	}
	if cfg.CameraEncodings == nil {
		cfg.CameraEncodings = []Encoding{}
	}
	s := &Space{cfg: cfg, log: cfg.Logger.With("space_id", cfg.ID), cmds: make(chan func(), 256), done: make(chan struct{}),
		peers: map[string]*peer{}, byPID: map[string]*peer{}, tracks: map[string]*track{}, names: map[string]string{}}
	det, err := speaker.New(speaker.Options{})
	if err != nil {
		return nil, err
	}
	s.speakers = det
	go s.loop()
	return s, nil
}

// SpeakerTick is how often the active speakers are decided.
const SpeakerTick = 200 * time.Millisecond

// tickSpeakers feeds the microphones' levels to the detector and announces a changed set.
func (s *Space) tickSpeakers(now time.Time) {
	for _, t := range s.tracks {
		if t.levels == nil {
			continue
		}
		for drained := false; !drained; {
			select {
			case l := <-t.levels:
				s.speakers.Observe(t.info.TID, l.v, l.at)
			default:
				drained = true
			}
		}
	}
	ids, changed := s.speakers.Tick(now)
	if !changed {
		return
	}
	list := []SpeakerTrack{}
	for _, tid := range ids {
		if t := s.tracks[tid]; t != nil {
			list = append(list, SpeakerTrack{ConnectionID: t.owner.m.ConnectionID, TrackID: tid})
		}
	}
	s.lastSpk = list
	if s.tap != nil {
		c := ""
		if len(list) > 0 {
			c = list[0].ConnectionID
		}
		s.tap.ActiveSpeaker(c)
	}
	s.broadcast(nil, Out{ActiveSpeakers: &ActiveSpeakers{Tracks: list}})
}

// ID is the space id.
func (s *Space) ID() string { return s.cfg.ID }

func (s *Space) loop() {
	tick := time.NewTicker(SpeakerTick)
	defer tick.Stop()
	for {
		select {
		case now := <-tick.C:
			s.tickSpeakers(now)
			s.tickLayers(now)
			s.tickTaps(now)
		case f := <-s.cmds:
			f()
			if len(s.peers) == 0 && (s.joinSeq > 0 || s.tried) {
				if s.cfg.OnEmpty != nil {
					s.cfg.OnEmpty(s)
				}
				close(s.done)
				return
			}
		case <-s.done:
			return
		}
	}
}

// post queues f on the owner; false when the space has retired.
func (s *Space) post(f func()) bool {
	select {
	case <-s.done:
		return false
	default:
	}
	select {
	case s.cmds <- f:
		return true
	case <-s.done:
		return false
	}
}

// call runs f on the owner and waits for it.
func (s *Space) call(ctx context.Context, f func()) error {
	ran := make(chan struct{})
	if !s.post(func() { f(); close(ran) }) {
		return ErrClosed
	}
	select {
	case <-ran:
		return nil
	case <-s.done:
		select {
		case <-ran:
			return nil
		default:
		}
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
}

// JoinRequest is a connect that passed the token and space checks.
type JoinRequest struct {
	Member      Member // ConnectionID is assigned by the space
	DisplayName string
	Managed     int    // managed_subscriptions: 0 manual, N automatic with up to N participants
	ReconnectID string // participant id of a previous connection coming back
	Conn        Conn
}

// Handle is one joined connection; messages and the leave go through it.
type Handle struct {
	s     *Space
	p     *peer
	KeyID string // the caller's note of the token's signing key
}

// SpaceID is the space the connection joined.
func (h *Handle) SpaceID() string { return h.s.cfg.ID }

// ConnectionID is the connection's id.
func (h *Handle) ConnectionID() string { return h.p.m.ConnectionID }

// Join admits a connection. The joined message follows on the connection once the
// subscribe offer is ready.
func (s *Space) Join(ctx context.Context, req JoinRequest) (*Handle, error) {
	var h *Handle
	var jerr error
	if err := s.call(ctx, func() { h, jerr = s.join(ctx, req) }); err != nil {
		return nil, err
	}
	return h, jerr
}

// Message hands a client message to the owner.
func (h *Handle) Message(in In) { h.s.post(func() { h.s.message(h.p, in) }) }

// Leave reports the socket's end; abnormal (no clean close) keeps the participant for the
// reconnect window.
func (h *Handle) Leave(abnormal bool) { h.s.post(func() { h.s.leave(h.p, abnormal) }) }

// SetBroadcasting tells every participant that a broadcast of the space started or ended.
func (s *Space) SetBroadcasting(on bool) {
	s.post(func() {
		if s.bcasting == on {
			return
		}
		s.bcasting = on
		v := BroadcastEnded
		if on {
			v = BroadcastStarted
		}
		s.broadcast(nil, Out{BroadcastStateUpdate: v})
	})
}

// CloseAll disconnects every participant with an error (space deleted, node shutdown).
func (s *Space) CloseAll(e Error, code int) {
	s.post(func() {
		for _, p := range s.peers {
			if !p.gone {
				p.conn.Send(Out{Error: &e})
				p.conn.Close(code, e.Message)
			}
			s.finalize(p)
		}
	})
}

func (s *Space) join(ctx context.Context, req JoinRequest) (*Handle, error) {
	s.tried = true
	m := req.Member
	var old *peer
	if ex := s.byPID[m.ParticipantID]; ex != nil {
		switch {
		case req.ReconnectID != "" && req.ReconnectID == m.ParticipantID:
			old = ex
		case ex.gone:
			s.finalize(ex) // came back without reconnect_id (a reload): a new participant
		default:
			return nil, &JoinError{Type: ErrTypeDuplicate, Message: "participant_id " + m.ParticipantID + " is already connected to this space"}
		}
	}
	if old == nil {
		live := 0
		for _, p := range s.peers {
			if !p.gone {
				live++
			}
		}
		if s.cfg.MaxParticipants > 0 && live >= s.cfg.MaxParticipants {
			return nil, &JoinError{Type: ErrTypeParticipantLimit, Message: fmt.Sprintf("the space has its maximum of %d participants", s.cfg.MaxParticipants)}
		}
		m.ConnectionID = idgen.New()
		if err := s.cfg.Hooks.Claim(ctx, m); err != nil {
			return nil, err
		}
	}
	p := &peer{m: m, conn: req.Conn, managed: req.Managed, pending: map[string]PendingTrack{},
		senders: map[string]*sender{}, manual: map[string]bool{}, displayName: req.DisplayName,
		log: s.log.With("participant_id", m.ParticipantID)}
	if old != nil {
		p.m = old.m
		p.joinSeq = old.joinSeq
		p.resumed = true
		if n := s.names[m.ParticipantID]; n != "" {
			p.displayName = n
		} else if old.displayName != "" {
			p.displayName = old.displayName
		}
		for tid := range old.manual {
			p.manual[tid] = true
		}
		if !old.gone {
			// The old socket may still be open in the browser: 4000 keeps it from starting
			// yet another reconnect.
			old.conn.Close(4000, "replaced by a reconnect")
		}
		s.dropMedia(old)
		for _, t := range s.tracks {
			if t.owner == old {
				t.owner = p
			}
		}
		s.cfg.Metrics.Reconnects.Inc()
	} else {
		s.joinSeq++
		p.joinSeq = s.joinSeq
	}
	p.log = p.log.With("connection_id", p.m.ConnectionID)
	sub, est, err := s.cfg.Peers.NewPeerConnectionWithEstimate()
	if err != nil {
		if old == nil {
			s.cfg.Hooks.Release(ctx, m)
		}
		return nil, fmt.Errorf("subscribe connection: %w", err)
	}
	p.sub, p.est, p.hasEst = sub, est, true
	// The first offer needs a media section or the browser never connects it later: a
	// data channel the SDK ignores gives it one.
	if _, err := sub.CreateDataChannel("spacecast", nil); err != nil {
		_ = sub.Close()
		return nil, fmt.Errorf("data channel: %w", err)
	}
	sub.OnConnectionStateChange(func(st webrtc.PeerConnectionState) { s.post(func() { s.subState(p, st) }) })
	s.peers[p.m.ConnectionID] = p
	s.byPID[p.m.ParticipantID] = p
	s.cfg.Metrics.Participants.Inc()
	s.syncSubs(p, false)
	s.offerSub(p, func() { s.welcome(p) })
	return &Handle{s: s, p: p}, nil
}

// welcome sends joined once the first subscribe offer is ready.
func (s *Space) welcome(p *peer) {
	if !s.current(p) {
		return
	}
	p.welcomed = true
	others := []Participant{}
	for _, o := range s.sorted() {
		if o != p && o.welcomed {
			others = append(others, s.participant(o))
		}
	}
	p.conn.Send(Out{Joined: &Joined{SessionID: s.cfg.ID, ConnectionID: p.m.ConnectionID, ParticipantID: p.m.ParticipantID,
		SubSfus: []SfuDescription{{SfuID: s.cfg.NodeID, SDP: p.sub.LocalDescription().SDP}}, Broadcasting: s.bcasting,
		Participants: others, Simulcast: Simulcast{CameraEncodings: s.cfg.CameraEncodings, ScreenshareEncodings: []Encoding{}},
		ICEServers: s.cfg.ICEServers, Limits: s.cfg.Limits, DisplayName: p.displayName}})
	if len(s.lastSpk) > 0 {
		p.conn.Send(Out{ActiveSpeakers: &ActiveSpeakers{Tracks: s.lastSpk}})
	}
	if !p.resumed {
		s.broadcast(p, Out{ParticipantConnected: ptr(s.participant(p))})
	} else if n := s.names[p.m.ParticipantID]; n != "" {
		// The SDK re-sends only the name it was created with: tell it the one set later.
		p.conn.Send(Out{ParticipantUpdate: &ParticipantUpdate{ConnectionID: p.m.ConnectionID, DisplayName: n}})
	}
	p.log.Info("participant joined", "resumed", p.resumed, "managed_subscriptions", p.managed)
}

func ptr[T any](v T) *T { return &v }

// current reports whether p is still the live peer of its connection id.
func (s *Space) current(p *peer) bool { return s.peers[p.m.ConnectionID] == p }

func (s *Space) sorted() []*peer {
	out := make([]*peer, 0, len(s.peers))
	for _, p := range s.peers {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].joinSeq < out[j].joinSeq })
	return out
}

func (s *Space) participant(p *peer) Participant {
	role := RolePublisher
	if p.m.Role == "subscriber" {
		role = RoleSubscriber
	}
	out := Participant{ConnectionID: p.m.ConnectionID, ParticipantID: p.m.ParticipantID, Role: role, Status: StatusConnected,
		DisplayName: p.displayName, Tracks: []Track{}}
	for _, t := range s.ownTracks(p) {
		out.Tracks = append(out.Tracks, t.info)
	}
	return out
}

func (s *Space) ownTracks(p *peer) []*track {
	var out []*track
	for _, t := range s.tracks {
		if t.owner == p {
			out = append(out, t)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].seq < out[j].seq })
	return out
}

// broadcast sends m to every welcomed, connected participant except skip.
func (s *Space) broadcast(skip *peer, m Out) {
	for _, o := range s.peers {
		if o != skip && o.welcomed && !o.gone {
			o.conn.Send(m)
		}
	}
}

func (s *Space) leave(p *peer, abnormal bool) {
	if !s.current(p) || p.gone {
		return
	}
	if abnormal && p.welcomed && s.cfg.ReconnectWindow > 0 {
		p.gone = true
		s.dropMedia(p)
		p.log.Info("connection lost; waiting for a reconnect", "window", s.cfg.ReconnectWindow)
		time.AfterFunc(s.cfg.ReconnectWindow, func() {
			s.post(func() {
				if s.current(p) && p.gone {
					s.finalize(p)
				}
			})
		})
		return
	}
	s.finalize(p)
}

// dropMedia closes p's peer connections; its published tracks stay (a reconnect resumes them).
func (s *Space) dropMedia(p *peer) {
	for _, t := range s.ownTracks(p) {
		t.detach()
		// A reconnect brings the layers back from a new source: every subscriber's
		// forwarder resumes at its next keyframe with continuous numbering.
		if fws := t.fws.Load(); fws != nil {
			for _, fw := range *fws {
				fw.Restart()
			}
		}
	}
	for _, sd := range p.senders {
		if sd.fw != nil {
			sd.t.dropForwarder(sd.fw)
		}
	}
	p.senders = map[string]*sender{}
	sub, pub := p.sub, p.pub
	p.sub, p.pub = nil, nil
	go func() {
		if sub != nil {
			_ = sub.Close()
		}
		if pub != nil {
			_ = pub.Close()
		}
	}()
}

// finalize is the participant's leave as everyone sees it.
func (s *Space) finalize(p *peer) {
	if !s.current(p) {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	delete(s.peers, p.m.ConnectionID)
	if s.byPID[p.m.ParticipantID] == p {
		delete(s.byPID, p.m.ParticipantID)
	}
	s.cfg.Metrics.Participants.Dec()
	mine := s.ownTracks(p)
	for _, t := range mine {
		s.removeTrack(ctx, t, false)
	}
	if s.tap != nil {
		s.tap.ParticipantLeft(p.m.ConnectionID)
	}
	if p.welcomed {
		s.broadcast(p, Out{ParticipantDisconnected: &ConnectionRef{ConnectionID: p.m.ConnectionID}})
	}
	for _, o := range s.peers {
		for _, t := range mine {
			delete(o.manual, t.info.TID)
		}
	}
	s.resync()
	s.dropMedia(p)
	s.cfg.Hooks.Release(ctx, p.m)
	p.log.Info("participant left")
}

// resync recomputes everyone's subscriptions.
func (s *Space) resync() {
	for _, o := range s.sorted() {
		if !o.gone {
			s.syncSubs(o, true)
		}
	}
}
