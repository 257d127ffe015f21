// Package server is the SFU node: the signaling WebSocket, the join checks (JWT, space,
// duplicate participant, node assignment), participant state in Redis, events through the
// outbox, node heartbeats and the cleanup of dead nodes' participants.
package server

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/pion/webrtc/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/spacecast/spacecast/libs/idgen"
	"github.com/spacecast/spacecast/libs/outbox"
	"github.com/spacecast/spacecast/libs/spacejwt"
	"github.com/spacecast/spacecast/libs/sqldb"
	"github.com/spacecast/spacecast/services/sfu/internal/media"
	"github.com/spacecast/spacecast/services/sfu/internal/registry"
	"github.com/spacecast/spacecast/services/sfu/internal/space"
	"github.com/spacecast/spacecast/services/sfu/rtcproto"
)

// SpaceInfo is what the SFU needs to know about a space.
type SpaceInfo struct {
	ID            string
	EnvironmentID string
	Status        string
}

// ErrSpaceNotFound is what a SpaceLookup returns (wrapped) for a missing space.
var ErrSpaceNotFound = errors.New("space not found")

// SpaceLookup finds spaces of any environment.
type SpaceLookup interface {
	LookupSpace(ctx context.Context, id string) (SpaceInfo, error)
}

// ActiveSpaceLister pages through the spaces spaces-api shows active (ordered by id, after
// the given id), for the reconciliation.
type ActiveSpaceLister interface {
	ActiveSpaces(ctx context.Context, after string, limit int) ([]SpaceInfo, error)
}

// TokenVerifier checks space JWTs and whether their signing key still exists.
type TokenVerifier interface {
	Verify(ctx context.Context, token, audience string) (spacejwt.Claims, error)
	HasKey(ctx context.Context, kid string) bool
}

var _ TokenVerifier = (*spacejwt.Verifier)(nil)

// Config tunes a node.
type Config struct {
	NodeID            string
	PublicURL         string // this node's signaling URL, given to clients redirected here
	ICEServers        []rtcproto.ICEServer
	HeartbeatInterval time.Duration
	NodeTimeout       time.Duration
	CleanupInterval   time.Duration
	ReconcileInterval time.Duration // how often active spaces without participants are looked for
	KeyCheckInterval  time.Duration // how often connected participants' signing keys are checked
	JoinTimeout       time.Duration
	Leeway            time.Duration
	ReconnectWindow   time.Duration         // a dropped Mux Spaces connection may come back unseen this long
	MaxParticipants   int                   // per space on this node (0: no limit)
	Simulcast         bool                  // ask camera publishers for three layers
	Registerer        prometheus.Registerer // /metrics (nil: not exported)
	// OnSpaceRetired, if set, runs (on its own goroutine) when a space's owner on this node
	// retires because its last participant here left.
	OnSpaceRetired func(spaceID string)
	// InternalURL is the base URL (ws://host:port) other nodes dial to relay a space's
	// signaling here ("": connections are not relayed to this node).
	InternalURL string
	// InternalSecret authenticates relayed connections between nodes ("": no relaying).
	InternalSecret string
}

// Server is one SFU node.
type Server struct {
	cfg    Config
	log    *slog.Logger
	reg    *registry.Registry
	engine *media.Engine
	jwt    TokenVerifier
	spaces SpaceLookup
	active ActiveSpaceLister // nil: no reconciliation
	ev     *emitter

	mu       sync.Mutex
	rooms    map[string]*media.Room
	sessions map[string]*session // connection id
	halted   bool
	wg       sync.WaitGroup

	owners     map[string]*space.Space // Mux Spaces protocol: one owner per space
	spaceConns map[*wsConn]connInfo
	metrics    *space.Metrics
	relays     relaySet // Mux Spaces connections relayed to the node hosting their space
}

// New builds a node; active may be nil (no reconciliation of space status).
func New(cfg Config, log *slog.Logger, reg *registry.Registry, engine *media.Engine, jwt TokenVerifier, spaces SpaceLookup,
	active ActiveSpaceLister, db *sqldb.DB, relay *outbox.Relay) *Server {
	if cfg.JoinTimeout <= 0 {
		cfg.JoinTimeout = 10 * time.Second
	}
	if cfg.ReconcileInterval <= 0 {
		cfg.ReconcileInterval = 30 * time.Second
	}
	if cfg.KeyCheckInterval <= 0 {
		cfg.KeyCheckInterval = 2 * time.Second
	}
	if cfg.Leeway <= 0 {
		cfg.Leeway = 5 * time.Second
	}
	return &Server{cfg: cfg, log: log, reg: reg, engine: engine, jwt: jwt, spaces: spaces, active: active, ev: &emitter{db: db, relay: relay},
		rooms: map[string]*media.Room{}, sessions: map[string]*session{}}
}

// session is one WebSocket connection.
type session struct {
	srv    *Server
	conn   *websocket.Conn
	out    chan []byte
	done   chan struct{}
	once   sync.Once
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc

	mu       sync.Mutex
	closeErr *rtcproto.Error // sent before closing
	part     registry.Participant
	keyID    string // the signing key of the join token
	peer     *media.Peer
	room     *media.Room
	joined   bool
}

// ServeHTTP upgrades to the signaling WebSocket.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// The JWT in the join message is the only credential (nothing ambient like cookies),
	// so pages of any origin may use the SDK.
	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
	if err != nil {
		return
	}
	c.SetReadLimit(1 << 20)
	ctx, cancel := context.WithCancel(context.Background())
	ss := &session{srv: s, conn: c, out: make(chan []byte, 256), done: make(chan struct{}), log: s.log, ctx: ctx, cancel: cancel}
	s.wg.Add(1)
	defer s.wg.Done()
	ss.run()
}

func (ss *session) send(v any) {
	b, err := json.Marshal(v)
	if err != nil {
		ss.log.Error("marshal signaling message", "err", err)
		return
	}
	select {
	case ss.out <- b:
	case <-ss.done:
	default:
		ss.fail(rtcproto.CodeInternal, "client does not read its signaling messages")
	}
}

// fail sends an error and closes the connection (only this connection).
func (ss *session) fail(code, msg string) { ss.failWith(rtcproto.Error{Code: code, Message: msg}) }

func (ss *session) failWith(e rtcproto.Error) {
	e.Type = rtcproto.TypeError
	ss.once.Do(func() {
		ss.mu.Lock()
		ss.closeErr = &e
		ss.mu.Unlock()
		close(ss.done)
	})
}

func (ss *session) writer() {
	for {
		select {
		case b := <-ss.out:
			ctx, cancel := context.WithTimeout(ss.ctx, 10*time.Second)
			err := ss.conn.Write(ctx, websocket.MessageText, b)
			cancel()
			if err != nil {
				ss.once.Do(func() { close(ss.done) })
				return
			}
		case <-ss.done:
			return
		}
	}
}

func (ss *session) run() {
	s := ss.srv
	go ss.writer()
	readErr := make(chan error, 1)
	msgs := make(chan []byte)
	go func() {
		for {
			typ, b, err := ss.conn.Read(ss.ctx)
			if err != nil {
				readErr <- err
				return
			}
			if typ != websocket.MessageText {
				ss.fail(rtcproto.CodeBadMessage, "messages must be JSON text frames")
				return
			}
			select {
			case msgs <- b:
			case <-ss.done:
				return
			}
		}
	}()
	joinTimer := time.NewTimer(s.cfg.JoinTimeout)
	defer joinTimer.Stop()
	pingT := time.NewTicker(15 * time.Second)
	defer pingT.Stop()
	closeCode := websocket.StatusNormalClosure
loop:
	for {
		select {
		case <-ss.done:
			break loop
		case <-readErr:
			ss.once.Do(func() { close(ss.done) })
			break loop
		case <-joinTimer.C:
			if !ss.isJoined() {
				ss.fail(rtcproto.CodeJoinTimeout, "no join message within "+s.cfg.JoinTimeout.String())
			}
		case <-pingT.C:
			go func() {
				ctx, cancel := context.WithTimeout(ss.ctx, 10*time.Second)
				defer cancel()
				if err := ss.conn.Ping(ctx); err != nil && ss.ctx.Err() == nil {
					ss.fail(rtcproto.CodeInternal, "websocket ping timed out")
				}
			}()
		case b := <-msgs:
			if code, msg := ss.handle(b); code != "" {
				ss.fail(code, msg)
			}
		}
	}
	ss.mu.Lock()
	ce := ss.closeErr
	ss.mu.Unlock()
	halted := s.isHalted()
	if !halted {
		ss.leave()
	}
	if ce != nil && !halted {
		b, _ := json.Marshal(ce)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = ss.conn.Write(ctx, websocket.MessageText, b)
		cancel()
		closeCode = closeCodeFor(ce.Code)
		reason := ce.Code
		_ = ss.conn.Close(closeCode, reason)
	} else if halted {
		_ = ss.conn.CloseNow()
	} else {
		_ = ss.conn.Close(closeCode, "")
	}
	ss.cancel()
}

func closeCodeFor(code string) websocket.StatusCode {
	switch code {
	case rtcproto.CodeServerShutdown:
		return websocket.StatusGoingAway
	case "left":
		return websocket.StatusNormalClosure
	}
	return 4000
}

func (ss *session) isJoined() bool {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return ss.joined
}

// handle processes one client message; a non-empty code closes the connection.
func (ss *session) handle(b []byte) (code, msg string) {
	var env rtcproto.Envelope
	if err := json.Unmarshal(b, &env); err != nil || env.Type == "" {
		return rtcproto.CodeBadMessage, "message is not a JSON object with a type"
	}
	joined := ss.isJoined()
	if env.Type != rtcproto.TypeJoin && env.Type != rtcproto.TypePing && !joined {
		return rtcproto.CodeUnexpectedMessage, fmt.Sprintf("%q before join", env.Type)
	}
	switch env.Type {
	case rtcproto.TypeJoin:
		if joined {
			return rtcproto.CodeUnexpectedMessage, "already joined"
		}
		var m rtcproto.Join
		if err := strictDecode(b, &m); err != nil {
			return rtcproto.CodeBadMessage, err.Error()
		}
		return ss.join(m.Token)
	case rtcproto.TypePing:
		var m rtcproto.Ping
		if err := strictDecode(b, &m); err != nil {
			return rtcproto.CodeBadMessage, err.Error()
		}
		ss.send(rtcproto.Ping{Type: rtcproto.TypePong, ID: m.ID})
	case rtcproto.TypeOffer:
		var m rtcproto.SDP
		if err := strictDecode(b, &m); err != nil || m.SDP == "" {
			return rtcproto.CodeBadMessage, "offer needs an sdp"
		}
		for _, src := range m.Sources {
			switch src.Source {
			case rtcproto.SourceCamera, rtcproto.SourceMicrophone, rtcproto.SourceScreenshare:
			default:
				return rtcproto.CodeBadMessage, "source must be microphone, camera or screenshare"
			}
		}
		if err := ss.peer.HandleOffer(m.SDP, m.Sources); err != nil {
			return mediaErr(err)
		}
	case rtcproto.TypeAnswer:
		var m rtcproto.SDP
		if err := strictDecode(b, &m); err != nil || m.SDP == "" {
			return rtcproto.CodeBadMessage, "answer needs an sdp"
		}
		if err := ss.peer.HandleAnswer(m.SDP); err != nil {
			return mediaErr(err)
		}
	case rtcproto.TypeCandidate:
		var m rtcproto.Candidate
		if err := strictDecode(b, &m); err != nil {
			return rtcproto.CodeBadMessage, err.Error()
		}
		if m.Target != rtcproto.TargetPublisher && m.Target != rtcproto.TargetSubscriber {
			return rtcproto.CodeBadMessage, "candidate target must be publisher or subscriber"
		}
		if m.Candidate.Candidate == "" {
			return "", "" // end of candidates
		}
		c := webrtc.ICECandidateInit{Candidate: m.Candidate.Candidate, SDPMid: m.Candidate.SDPMid,
			SDPMLineIndex: m.Candidate.SDPMLineIndex, UsernameFragment: m.Candidate.UsernameFragment}
		if err := ss.peer.HandleCandidate(m.Target, c); err != nil {
			return mediaErr(err)
		}
	case rtcproto.TypeMute:
		var m rtcproto.Mute
		if err := strictDecode(b, &m); err != nil || m.TrackID == "" {
			return rtcproto.CodeBadMessage, "mute needs a track_id"
		}
		if err := ss.peer.SetMuted(m.TrackID, m.Muted); err != nil {
			return mediaErr(err)
		}
	case rtcproto.TypeLeave:
		ss.failWith(rtcproto.Error{Code: "left"})
		ss.mu.Lock()
		ss.closeErr = nil
		ss.mu.Unlock()
	default:
		return rtcproto.CodeBadMessage, fmt.Sprintf("unknown message type %q", env.Type)
	}
	return "", ""
}

func mediaErr(err error) (string, string) {
	switch {
	case errors.Is(err, media.ErrPublishNotAllowed):
		return rtcproto.CodePublishNotAllowed, "a subscriber cannot send tracks"
	case errors.Is(err, media.ErrUnexpected):
		return rtcproto.CodeUnexpectedMessage, err.Error()
	case errors.Is(err, media.ErrNegotiation):
		return rtcproto.CodeNegotiation, err.Error()
	}
	return rtcproto.CodeInternal, err.Error()
}

// strictDecode rejects unknown fields and wrong types.
func strictDecode(b []byte, v any) error {
	d := json.NewDecoder(strings.NewReader(string(b)))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return fmt.Errorf("bad message: %v", err)
	}
	return nil
}

// tokenCode maps a verification error to its reason code.
func tokenCode(err error) string {
	switch {
	case errors.Is(err, spacejwt.ErrAlgorithm):
		return rtcproto.CodeTokenAlgorithm
	case errors.Is(err, spacejwt.ErrUnknownKey):
		return rtcproto.CodeTokenUnknownKey
	case errors.Is(err, spacejwt.ErrSignature):
		return rtcproto.CodeTokenSignature
	case errors.Is(err, spacejwt.ErrExpired):
		return rtcproto.CodeTokenExpired
	case errors.Is(err, spacejwt.ErrNotYetValid):
		return rtcproto.CodeTokenNotYetValid
	case errors.Is(err, spacejwt.ErrAudience):
		return rtcproto.CodeTokenAudience
	case errors.Is(err, spacejwt.ErrMissingExpiry):
		return rtcproto.CodeTokenMissingExpiry
	case errors.Is(err, spacejwt.ErrLifetime):
		return rtcproto.CodeTokenLifetime
	case errors.Is(err, spacejwt.ErrRole), errors.Is(err, spacejwt.ErrSubject), errors.Is(err, spacejwt.ErrParticipantID):
		return rtcproto.CodeTokenClaims
	}
	return rtcproto.CodeTokenMalformed
}

// issuedInFuture reads iat of an already verified token: a token issued in the future
// (beyond the clock leeway) is refused like an nbf in the future.
func issuedInFuture(token string, now time.Time, leeway time.Duration) bool {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return false
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return false
	}
	var c struct {
		IAT *float64 `json:"iat"`
	}
	if json.Unmarshal(raw, &c) != nil || c.IAT == nil {
		return false
	}
	return time.Unix(int64(*c.IAT), 0).After(now.Add(leeway))
}

func (ss *session) join(token string) (string, string) {
	s := ss.srv
	ctx, cancel := context.WithTimeout(ss.ctx, 10*time.Second)
	defer cancel()
	claims, err := s.jwt.Verify(ctx, token, spacejwt.AudienceRT)
	if err != nil {
		return tokenCode(err), err.Error()
	}
	now := time.Now()
	if issuedInFuture(token, now, s.cfg.Leeway) {
		return rtcproto.CodeTokenNotYetValid, "token is issued in the future (iat)"
	}
	space, err := s.spaces.LookupSpace(ctx, claims.Subject)
	if errors.Is(err, ErrSpaceNotFound) || (err == nil && space.EnvironmentID != claims.EnvironmentID) {
		if del, _ := s.reg.IsDeleted(ctx, claims.Subject); del {
			return rtcproto.CodeSpaceDeleted, "the space was deleted"
		}
		return rtcproto.CodeSpaceNotFound, "the token's space does not exist in the signing key's environment"
	}
	if err != nil {
		s.log.Error("space lookup failed", "err", err, "space_id", claims.Subject)
		return rtcproto.CodeInternal, "space lookup failed"
	}
	pid := claims.ParticipantID
	if pid == "" {
		pid = idgen.New()
	}
	part := registry.Participant{SpaceID: space.ID, ParticipantID: pid, ConnectionID: idgen.New(), Role: claims.Role,
		NodeID: s.cfg.NodeID, EnvironmentID: space.EnvironmentID, JoinedAt: now.Unix()}
	occ, code, msg, e := s.claim(ctx, part)
	if code != "" {
		if e != nil {
			ss.failWith(*e)
			return "", ""
		}
		return code, msg
	}
	ss.log = s.log.With("space_id", part.SpaceID, "participant_id", part.ParticipantID, "connection_id", part.ConnectionID)
	if err := s.ev.emit(ctx, pending{typ: EventParticipantJoined, p: part, data: participantData(part, occ)}); err != nil {
		ss.log.Error("recording participant.joined failed", "err", err)
		rctx, rcancel := context.WithTimeout(context.Background(), 10*time.Second)
		if l, ok, rerr := s.reg.Release(rctx, part); rerr == nil && ok {
			s.finishLeave(rctx, l)
		}
		rcancel()
		return rtcproto.CodeInternal, "could not record the join"
	}
	ss.mu.Lock()
	ss.part = part
	ss.keyID = claims.KeyID
	ss.joined = true
	ss.mu.Unlock()
	var peer *media.Peer
	for range 3 {
		room := s.room(space.ID, space.EnvironmentID)
		peer, err = room.Join(media.PeerInfo{ParticipantID: pid, ConnectionID: part.ConnectionID, Role: part.Role, JoinedAt: now},
			ss.send, func(others []rtcproto.Participant) {
				ss.send(rtcproto.Joined{Type: rtcproto.TypeJoined, SpaceID: space.ID, ParticipantID: pid, ConnectionID: part.ConnectionID,
					Role: part.Role, NodeID: s.cfg.NodeID, Participants: others, ICEServers: s.iceServers()})
			})
		if errors.Is(err, media.ErrRoomClosed) {
			continue
		}
		break
	}
	if err != nil {
		ss.log.Error("joining the room failed", "err", err)
		return rtcproto.CodeInternal, "could not join the room"
	}
	ss.mu.Lock()
	ss.peer = peer
	ss.room = s.room(space.ID, space.EnvironmentID)
	ss.mu.Unlock()
	s.mu.Lock()
	s.sessions[part.ConnectionID] = ss
	s.mu.Unlock()
	ss.log.Info("participant joined", "role", part.Role)
	return "", ""
}

func (s *Server) iceServers() []rtcproto.ICEServer {
	if s.cfg.ICEServers == nil {
		return []rtcproto.ICEServer{}
	}
	return s.cfg.ICEServers
}

// claim records the participant in Redis. A participant or space assignment held by a dead
// node is cleaned up first; a space on a live node gets a redirect.
func (s *Server) claim(ctx context.Context, p registry.Participant) (registry.Occupancy, string, string, *rtcproto.Error) {
	for attempt := 0; ; attempt++ {
		occ, err := s.reg.Claim(ctx, p)
		if err == nil {
			return occ, "", "", nil
		}
		var ne *registry.NodeError
		switch {
		case errors.Is(err, registry.ErrSpaceDeleted):
			return occ, rtcproto.CodeSpaceDeleted, "the space was deleted", nil
		case errors.As(err, &ne) && attempt == 0 && ne.NodeID != s.cfg.NodeID:
			alive, aerr := s.reg.Alive(ctx, ne.NodeID, s.cfg.NodeTimeout, time.Now())
			if aerr != nil {
				return occ, rtcproto.CodeInternal, "registry unavailable", nil
			}
			if !alive {
				_ = s.cleanNodeSpace(ctx, ne.NodeID, p.SpaceID)
				continue
			}
		}
		if errors.As(err, &ne) && errors.Is(err, registry.ErrDuplicate) {
			return occ, rtcproto.CodeDuplicate, "participant_id " + p.ParticipantID + " is already connected to this space", nil
		}
		if errors.As(err, &ne) && errors.Is(err, registry.ErrWrongNode) {
			url, _ := s.reg.NodeURL(ctx, ne.NodeID)
			return occ, rtcproto.CodeWrongNode, "", &rtcproto.Error{Code: rtcproto.CodeWrongNode,
				Message: "the space is hosted by node " + ne.NodeID + ": connect to node_url", NodeID: ne.NodeID, NodeURL: url}
		}
		s.log.Error("registry claim failed", "err", err)
		return occ, rtcproto.CodeInternal, "registry unavailable", nil
	}
}

func (s *Server) room(id, env string) *media.Room {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.rooms[id]
	if r == nil {
		r = media.NewRoom(s.engine, id, env, hooks{s}, s.log)
		s.rooms[id] = r
	}
	return r
}

// leave undoes a join: media, events, registry.
func (ss *session) leave() {
	s := ss.srv
	ss.mu.Lock()
	joined, part, peer, room := ss.joined, ss.part, ss.peer, ss.room
	ss.joined = false
	ss.mu.Unlock()
	if !joined {
		return
	}
	if peer != nil {
		peer.Leave() // unpublishes: track.unpublished events come from the hooks
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Redis decides the occupancy after this leave; the leave stays recorded there until
	// its participant.left is written, so a crash in between is finished by the node sweep.
	l, ok, err := s.reg.Release(ctx, part)
	switch {
	case err != nil:
		ss.log.Error("releasing participant failed; the node sweep will remove it", "err", err)
	case ok:
		s.finishLeave(ctx, l)
	}
	s.dropSession(part.ConnectionID, room)
	ss.log.Info("participant left")
}

func (s *Server) dropSession(conn string, room *media.Room) {
	s.mu.Lock()
	delete(s.sessions, conn)
	if room != nil && s.rooms[room.ID] == room && room.CloseIfEmpty() {
		delete(s.rooms, room.ID)
		s.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.reg.ForgetSpace(ctx, s.cfg.NodeID, room.ID)
		return
	}
	s.mu.Unlock()
}

// hooks connect room changes to the registry and the events.
type hooks struct{ s *Server }

func (h hooks) session(p *media.Peer) *session {
	h.s.mu.Lock()
	defer h.s.mu.Unlock()
	return h.s.sessions[p.Info.ConnectionID]
}

func (h hooks) part(p *media.Peer) (registry.Participant, bool) {
	if h.s.isHalted() {
		return registry.Participant{}, false // a crashed node records nothing
	}
	ss := h.session(p)
	if ss == nil {
		return registry.Participant{}, false
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return ss.part, true
}

func (h hooks) TrackPublished(p *media.Peer, t rtcproto.Track) {
	part, ok := h.part(p)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rt := registry.Track{TrackID: t.TrackID, Kind: t.Kind, Source: t.Source, Mid: t.Mid, Muted: t.Muted}
	if err := h.s.reg.SetTrack(ctx, part.SpaceID, part.ConnectionID, rt); err != nil {
		h.s.log.Error("recording track failed", "err", err)
	}
	if err := h.s.ev.emit(ctx, pending{typ: EventTrackPublished, p: part, data: trackData(part, rt)}); err != nil {
		h.s.log.Error("recording track.published failed", "err", err)
	}
}

func (h hooks) TrackUnpublished(p *media.Peer, t rtcproto.Track) {
	part, ok := h.part(p)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rt := registry.Track{TrackID: t.TrackID, Kind: t.Kind, Source: t.Source, Mid: t.Mid}
	if err := h.s.ev.emit(ctx, pending{typ: EventTrackUnpublished, p: part, data: trackData(part, rt)}); err != nil {
		h.s.log.Error("recording track.unpublished failed", "err", err)
	}
	if err := h.s.reg.RemoveTrack(ctx, part.SpaceID, part.ConnectionID, t.TrackID); err != nil {
		h.s.log.Error("forgetting track failed", "err", err)
	}
}

func (h hooks) TrackMuted(p *media.Peer, t rtcproto.Track) {
	part, ok := h.part(p)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = h.s.reg.SetTrack(ctx, part.SpaceID, part.ConnectionID, registry.Track{TrackID: t.TrackID, Kind: t.Kind, Source: t.Source, Mid: t.Mid, Muted: t.Muted})
}

func (h hooks) PeerFailed(p *media.Peer, code, msg string) {
	if ss := h.session(p); ss != nil {
		ss.fail(code, msg)
	}
}

// DisconnectSpace closes every local connection of a space with code.
func (s *Server) DisconnectSpace(space, code, msg string) int {
	s.mu.Lock()
	var list []*session
	for _, ss := range s.sessions {
		ss.mu.Lock()
		if ss.part.SpaceID == space {
			list = append(list, ss)
		}
		ss.mu.Unlock()
	}
	s.mu.Unlock()
	for _, ss := range list {
		ss.fail(code, msg)
	}
	return len(list) + s.closeSpaceConns(func(ci connInfo) bool { return ci.spaceID == space }, msg)
}

// SpaceDeleted handles a space.deleted event: tombstone (announced to every node) and
// disconnection of this node's participants.
func (s *Server) SpaceDeleted(ctx context.Context, space string) error {
	if err := s.reg.MarkDeleted(ctx, space); err != nil {
		return err
	}
	if n := s.DisconnectSpace(space, rtcproto.CodeSpaceDeleted, "the space was deleted"); n > 0 {
		s.log.Info("space deleted: participants disconnected", "space_id", space, "count", n)
	}
	return nil
}

func (s *Server) isHalted() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.halted
}

// Shutdown disconnects everyone (with events) and waits for the sessions to end.
func (s *Server) Shutdown() {
	s.mu.Lock()
	list := make([]*session, 0, len(s.sessions))
	for _, ss := range s.sessions {
		list = append(list, ss)
	}
	s.mu.Unlock()
	for _, ss := range list {
		ss.fail(rtcproto.CodeServerShutdown, "the server is shutting down")
	}
	s.closeSpaceConns(func(connInfo) bool { return true }, "the server is shutting down")
	s.relays.closeAll(false)
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
	}
}

// Halt drops every connection without cleaning up Redis or emitting events, as a crash
// would (tests use it to play a dead node).
func (s *Server) Halt() {
	s.mu.Lock()
	s.halted = true
	list := make([]*session, 0, len(s.sessions))
	for _, ss := range s.sessions {
		list = append(list, ss)
	}
	s.mu.Unlock()
	s.mu.Lock()
	conns := make([]*wsConn, 0, len(s.spaceConns))
	for c := range s.spaceConns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		_ = c.c.CloseNow()
	}
	s.relays.closeAll(true)
	for _, ss := range list {
		ss.mu.Lock()
		peer := ss.peer
		ss.mu.Unlock()
		ss.once.Do(func() { close(ss.done) })
		if peer != nil {
			peer.Leave()
		}
	}
}
