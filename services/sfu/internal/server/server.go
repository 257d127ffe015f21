// Package server is the SFU node: the Mux Spaces signaling WebSocket (spaces.go), the join
// checks (JWT, space, duplicate participant, node assignment), participant state in Redis,
// events appended to Redis streams with each change and published by the node's event relay,
// node heartbeats and the cleanup of dead nodes' participants.
package server

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/spacecast/spacecast/libs/spacejwt"
	"github.com/spacecast/spacecast/services/sfu/internal/media"
	"github.com/spacecast/spacecast/services/sfu/internal/registry"
	"github.com/spacecast/spacecast/services/sfu/internal/space"
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
	PublicURL         string // this node's signaling URL, recorded with its heartbeats
	ICEServers        []space.ICEServer
	HeartbeatInterval time.Duration
	NodeTimeout       time.Duration
	CleanupInterval   time.Duration
	ReconcileInterval time.Duration // how often active spaces without participants are looked for
	KeyCheckInterval  time.Duration // how often connected participants' signing keys are checked
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
	relay  *eventRelay

	mu     sync.Mutex
	halted bool
	wg     sync.WaitGroup // open WebSockets

	owners     map[string]*space.Space // one owner goroutine per space hosted here
	adopting   map[string]int          // spaces this node is appending events to without hosting them (cleanup, reconciliation)
	spaceConns map[*wsConn]connInfo
	metrics    *space.Metrics
	relays     relaySet // Mux Spaces connections relayed to the node hosting their space
}

// New builds a node; active may be nil (no reconciliation of space status). pub receives the
// node's events (RunEvents publishes them).
func New(cfg Config, log *slog.Logger, reg *registry.Registry, engine *media.Engine, jwt TokenVerifier, spaces SpaceLookup,
	active ActiveSpaceLister, pub Publisher) *Server {
	if cfg.ReconcileInterval <= 0 {
		cfg.ReconcileInterval = 30 * time.Second
	}
	if cfg.KeyCheckInterval <= 0 {
		cfg.KeyCheckInterval = 2 * time.Second
	}
	if cfg.Leeway <= 0 {
		cfg.Leeway = 5 * time.Second
	}
	s := &Server{cfg: cfg, log: log, reg: reg, engine: engine, jwt: jwt, spaces: spaces, active: active,
		owners: map[string]*space.Space{}, adopting: map[string]int{}, spaceConns: map[*wsConn]connInfo{}}
	s.relay = newEventRelay(cfg.NodeID, reg, pub, log, s.forgetIfIdle)
	return s
}

// RunEvents publishes the node's events until ctx ends (give it a context that outlives
// Shutdown, then FlushEvents, so the last participant.left events go out).
func (s *Server) RunEvents(ctx context.Context) { s.relay.run(ctx) }

// FlushEvents publishes every event this node appended or adopted, and says how many spaces
// still hold events when ctx ends first (a dead-node cleanup publishes those).
func (s *Server) FlushEvents(ctx context.Context) (int, error) { return s.relay.Flush(ctx) }

// adopt adds space to this node's list before the node appends events there without hosting
// it, and keeps the relay from dropping it until unadopt; unadopt wakes the relay.
func (s *Server) adopt(ctx context.Context, space string) error {
	s.mu.Lock()
	s.adopting[space]++
	s.mu.Unlock()
	if err := s.reg.AddNodeSpace(ctx, s.cfg.NodeID, space); err != nil {
		s.unadopt(space)
		return err
	}
	return nil
}

func (s *Server) unadopt(space string) {
	s.mu.Lock()
	if s.adopting[space]--; s.adopting[space] <= 0 {
		delete(s.adopting, space)
	}
	s.mu.Unlock()
	s.relay.Notify(space)
}

// forgetIfIdle drops space from this node's list (its events are published) unless the node
// hosts it or is appending events to it. Under mu, so no owner starts (and claims, adding the
// space again) in between.
func (s *Server) forgetIfIdle(ctx context.Context, space string) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.owners[space] != nil || s.adopting[space] > 0 {
		return
	}
	if err := s.reg.ForgetSpace(ctx, s.cfg.NodeID, space); err != nil && ctx.Err() == nil {
		s.log.Warn("dropping a published space from the node's list failed", "err", err, "space_id", space)
	}
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

// claim records the participant in Redis. A participant or space assignment held by a dead
// node is cleaned up first. A refusal is a *space.JoinError; a space hosted by another live
// node is refused too (signaling is not relayed between nodes yet).
func (s *Server) claim(ctx context.Context, p registry.Participant, joined registry.Event) (registry.Occupancy, error) {
	for attempt := 0; ; attempt++ {
		occ, err := s.reg.Claim(ctx, p, joined)
		if err == nil {
			return occ, nil
		}
		var ne *registry.NodeError
		switch {
		case errors.Is(err, registry.ErrSpaceDeleted):
			return occ, &space.JoinError{Type: space.ErrTypeInvalidJWT, Message: "space not found: the space was deleted"}
		case errors.As(err, &ne) && attempt == 0 && ne.NodeID != s.cfg.NodeID:
			alive, aerr := s.reg.Alive(ctx, ne.NodeID, s.cfg.NodeTimeout, time.Now())
			if aerr != nil {
				return occ, &space.JoinError{Type: space.ErrTypeUnknown, Message: "registry unavailable"}
			}
			if !alive {
				_ = s.cleanNodeSpace(ctx, ne.NodeID, p.SpaceID)
				continue
			}
		}
		if errors.As(err, &ne) && errors.Is(err, registry.ErrDuplicate) {
			return occ, &space.JoinError{Type: space.ErrTypeDuplicate,
				Message: "participant_id " + p.ParticipantID + " is already connected to this space"}
		}
		if errors.As(err, &ne) && errors.Is(err, registry.ErrWrongNode) {
			return occ, &wrongNodeError{nodeID: ne.NodeID} // relayed there, or refused (relayAfterClaim)
		}
		s.log.Error("registry claim failed", "err", err)
		return occ, &space.JoinError{Type: space.ErrTypeUnknown, Message: "registry unavailable"}
	}
}

// DisconnectSpace closes every local connection of a space with a fatal error (msg).
func (s *Server) DisconnectSpace(id, msg string) int {
	return s.closeSpaceConns(func(ci connInfo) bool { return ci.spaceID == id }, msg)
}

// SpaceDeleted handles a space.deleted event: tombstone (announced to every node) and
// disconnection of this node's participants.
func (s *Server) SpaceDeleted(ctx context.Context, id string) error {
	if err := s.reg.MarkDeleted(ctx, id); err != nil {
		return err
	}
	if n := s.DisconnectSpace(id, "the space was deleted"); n > 0 {
		s.log.Info("space deleted: participants disconnected", "space_id", id, "count", n)
	}
	return nil
}

func (s *Server) isHalted() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.halted
}

// Shutdown disconnects everyone (with events) and waits for the connections to end.
func (s *Server) Shutdown() {
	s.closeSpaceConns(func(connInfo) bool { return true }, "the server is shutting down")
	s.relays.closeAll(false)
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
	}
}

// Halt drops every connection without cleaning up Redis or publishing events, as a crash
// would (tests use it to play a dead node).
func (s *Server) Halt() {
	s.mu.Lock()
	s.halted = true
	conns := make([]*wsConn, 0, len(s.spaceConns))
	for c := range s.spaceConns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	s.relay.Halt()
	for _, c := range conns {
		_ = c.c.CloseNow()
	}
	s.relays.closeAll(true)
}
