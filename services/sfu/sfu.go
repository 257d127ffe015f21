// Package sfu is the SFU service's wiring: a WebRTC selective forwarding unit on pion/webrtc
// whose clients join spaces with a space JWT over the Mux Spaces signaling WebSocket
// (docs/rtc-protocol.md), with
// participant state in Redis, participant and track events on spacecast.rtc (appended to
// Redis streams by the same scripts that change the state, and published by each node's
// event relay; the SFU has no SQL database), and the browser SDK and demo page.
package sfu

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/spacecast/spacecast/libs/envconfig"
	"github.com/spacecast/spacecast/libs/events"
	"github.com/spacecast/spacecast/libs/idgen"
	"github.com/spacecast/spacecast/libs/kafkabus"
	"github.com/spacecast/spacecast/libs/spacejwt"
	"github.com/spacecast/spacecast/libs/ssrf"
	"github.com/spacecast/spacecast/services/sfu/internal/broadcast"
	"github.com/spacecast/spacecast/services/sfu/internal/media"
	"github.com/spacecast/spacecast/services/sfu/internal/registry"
	"github.com/spacecast/spacecast/services/sfu/internal/server"
	"github.com/spacecast/spacecast/services/sfu/internal/space"
	"github.com/spacecast/spacecast/services/sfu/internal/web"
)

// Paths served by Register.
const (
	SpacesPath = server.SpacesPath // the Mux Spaces signaling WebSocket (MUX_SPACES_BACKEND_URL = ws(s)://host/spaces)
	SDKPath    = "/sdk/spacecast-rtc.js"
	DemoPath   = "/demo/spaces"
)

// Config are the SFU's settings.
type Config struct {
	NodeID            string        // SPACECAST_SFU_NODE_ID (default: hostname + random suffix)
	PublicURL         string        // SPACECAST_SFU_PUBLIC_URL: ws(s)://host:port/spaces/v1 as clients reach this node
	ICEBindIP         string        // SPACECAST_SFU_ICE_BIND_IP: address of the ICE sockets ("" = all)
	UDPPort           int           // SPACECAST_SFU_UDP_PORT (7882; 0 = any free port)
	TCPPort           int           // SPACECAST_SFU_TCP_PORT (7881; 0 = any free port, -1 = no ICE-TCP)
	PublicIPs         []string      // SPACECAST_SFU_PUBLIC_IP: announced instead of local addresses (1:1 NAT)
	ICEServers        []string      // SPACECAST_SFU_ICE_SERVERS: STUN URLs handed to clients
	RedisPrefix       string        // SPACECAST_SFU_REDIS_PREFIX ("sfu:")
	HeartbeatInterval time.Duration // SPACECAST_SFU_HEARTBEAT_INTERVAL (2s): renews this node's lease
	NodeTimeout       time.Duration // SPACECAST_SFU_NODE_TIMEOUT (8s): lease length; a node not renewing it this long is dead
	CleanupInterval   time.Duration // SPACECAST_SFU_CLEANUP_INTERVAL (2s): sweep of expired leases
	ReconcileInterval time.Duration // SPACECAST_SFU_RECONCILE_INTERVAL (30s): active spaces without participants (also at start)
	KeyCheckInterval  time.Duration // SPACECAST_SFU_KEY_CHECK_INTERVAL (2s): participants of deleted signing keys are disconnected
	MaxTokenLifetime  time.Duration // SPACECAST_SFU_MAX_TOKEN_LIFETIME (720h): longest exp - iat of a space JWT (give it to the verifier)
	ConsumerGroup     string        // SPACECAST_SFU_CONSUMER_GROUP ("sfu"): reads space.deleted
	ReconnectWindow   time.Duration // SPACECAST_SFU_RECONNECT_WINDOW (10s): a dropped connection may resume with reconnect_id, unseen by others
	MaxParticipants   int           // SPACECAST_SFU_MAX_PARTICIPANTS (0 = no limit): per space and node
	Simulcast         bool          // SPACECAST_SFU_SIMULCAST (true): camera publishers send three layers, each subscriber gets one
	// InternalURL (SPACECAST_SFU_INTERNAL_URL): ws(s)://host:port where the other nodes reach
	// this node's /spaces/v1 to relay connections of the spaces it hosts (the command
	// defaults it to ws://<hostname>:<port of SPACECAST_HTTP_ADDR>; "": nothing is relayed here).
	InternalURL string
	// Broadcasts: with SPACECAST_SFU_LIVESTREAM_URL set, the node hosting a space runs its
	// active broadcast (compositor publishing RTMP to the ingest livestream gives at
	// /internal/v1/broadcasts/{id}/ingest).
	LivestreamURL   string // SPACECAST_SFU_LIVESTREAM_URL: the livestream service's internal base URL ("": broadcasts not run)
	InternalSecret  string // SPACECAST_INTERNAL_SECRET: authenticates the ingest lookup and relays between nodes
	BroadcastPreset string // SPACECAST_BROADCAST_PRESET (veryfast): the broadcast encoder's x264 preset
	// BackgroundAllowNetworks: CIDRs a broadcast background may be fetched from although the
	// SSRF rules refuse them (SPACECAST_BROADCAST_BACKGROUND_ALLOW_NETWORKS, e.g. 127.0.0.0/8 in dev).
	BackgroundAllowNetworks []string
}

// LoadConfig reads the settings.
func LoadConfig(r *envconfig.Reader) Config {
	c := Config{
		NodeID:                  r.String("SPACECAST_SFU_NODE_ID", ""),
		PublicURL:               r.String("SPACECAST_SFU_PUBLIC_URL", ""),
		InternalURL:             r.String("SPACECAST_SFU_INTERNAL_URL", ""),
		ICEBindIP:               r.String("SPACECAST_SFU_ICE_BIND_IP", ""),
		UDPPort:                 r.Int("SPACECAST_SFU_UDP_PORT", 7882),
		TCPPort:                 r.Int("SPACECAST_SFU_TCP_PORT", 7881),
		PublicIPs:               r.List("SPACECAST_SFU_PUBLIC_IP", nil),
		ICEServers:              r.List("SPACECAST_SFU_ICE_SERVERS", nil),
		RedisPrefix:             r.String("SPACECAST_SFU_REDIS_PREFIX", "sfu:"),
		HeartbeatInterval:       r.Duration("SPACECAST_SFU_HEARTBEAT_INTERVAL", 2*time.Second),
		NodeTimeout:             r.Duration("SPACECAST_SFU_NODE_TIMEOUT", 8*time.Second),
		CleanupInterval:         r.Duration("SPACECAST_SFU_CLEANUP_INTERVAL", 2*time.Second),
		ReconcileInterval:       r.Duration("SPACECAST_SFU_RECONCILE_INTERVAL", 30*time.Second),
		KeyCheckInterval:        r.Duration("SPACECAST_SFU_KEY_CHECK_INTERVAL", 2*time.Second),
		MaxTokenLifetime:        r.Duration("SPACECAST_SFU_MAX_TOKEN_LIFETIME", spacejwt.DefaultMaxLifetime),
		ConsumerGroup:           r.String("SPACECAST_SFU_CONSUMER_GROUP", "sfu"),
		ReconnectWindow:         r.Duration("SPACECAST_SFU_RECONNECT_WINDOW", 10*time.Second),
		MaxParticipants:         r.Int("SPACECAST_SFU_MAX_PARTICIPANTS", 0),
		Simulcast:               r.Bool("SPACECAST_SFU_SIMULCAST", true),
		LivestreamURL:           r.String("SPACECAST_SFU_LIVESTREAM_URL", ""),
		InternalSecret:          r.String("SPACECAST_INTERNAL_SECRET", ""),
		BroadcastPreset:         r.String("SPACECAST_BROADCAST_PRESET", "veryfast"),
		BackgroundAllowNetworks: r.List("SPACECAST_BROADCAST_BACKGROUND_ALLOW_NETWORKS", nil),
	}
	if c.ReconnectWindow < 0 {
		r.Fail("SPACECAST_SFU_RECONNECT_WINDOW", "must not be negative")
	}
	if c.MaxParticipants < 0 {
		r.Fail("SPACECAST_SFU_MAX_PARTICIPANTS", "must not be negative")
	}
	if c.UDPPort < 0 || c.UDPPort > 65535 {
		r.Fail("SPACECAST_SFU_UDP_PORT", "want 0..65535")
	}
	if c.TCPPort < -1 || c.TCPPort > 65535 {
		r.Fail("SPACECAST_SFU_TCP_PORT", "want -1 (off) or 0..65535")
	}
	if c.HeartbeatInterval <= 0 || c.NodeTimeout <= 2*c.HeartbeatInterval {
		r.Fail("SPACECAST_SFU_NODE_TIMEOUT", "must be more than twice SPACECAST_SFU_HEARTBEAT_INTERVAL")
	}
	if c.CleanupInterval <= 0 {
		r.Fail("SPACECAST_SFU_CLEANUP_INTERVAL", "must be positive")
	}
	if c.ReconcileInterval <= 0 {
		r.Fail("SPACECAST_SFU_RECONCILE_INTERVAL", "must be positive")
	}
	if c.KeyCheckInterval <= 0 {
		r.Fail("SPACECAST_SFU_KEY_CHECK_INTERVAL", "must be positive")
	}
	if c.InternalURL != "" && !strings.HasPrefix(c.InternalURL, "ws://") && !strings.HasPrefix(c.InternalURL, "wss://") {
		r.Fail("SPACECAST_SFU_INTERNAL_URL", "want ws://host:port or wss://host:port")
	}
	if c.MaxTokenLifetime < time.Minute {
		r.Fail("SPACECAST_SFU_MAX_TOKEN_LIFETIME", "must be at least 1m")
	}
	for _, u := range c.ICEServers {
		if !strings.HasPrefix(u, "stun:") && !strings.HasPrefix(u, "turn:") && !strings.HasPrefix(u, "turns:") {
			r.Fail("SPACECAST_SFU_ICE_SERVERS", "want stun:, turn: or turns: URLs")
		}
	}
	return c
}

// SpaceInfo is what the SFU needs to know about a space.
type SpaceInfo = server.SpaceInfo

// SpaceLookup finds a space of any environment; a missing space is an error wrapping
// ErrSpaceNotFound.
type SpaceLookup = server.SpaceLookup

// ActiveSpaceLister pages through the spaces spaces-api shows active, ordered by id and
// starting after the given id (the status reconciliation reads it).
type ActiveSpaceLister = server.ActiveSpaceLister

// SpaceLookupFunc adapts a function to SpaceLookup.
type SpaceLookupFunc func(ctx context.Context, id string) (SpaceInfo, error)

// LookupSpace implements SpaceLookup.
func (f SpaceLookupFunc) LookupSpace(ctx context.Context, id string) (SpaceInfo, error) {
	return f(ctx, id)
}

// ActiveSpacesFunc adapts a function to ActiveSpaceLister (the dev mode hands it the
// in-process spaces-api's ActiveSpaces).
type ActiveSpacesFunc func(ctx context.Context, after string, limit int) ([]SpaceInfo, error)

var _ ActiveSpaceLister = ActiveSpacesFunc(nil)

// ActiveSpaces implements ActiveSpaceLister.
func (f ActiveSpacesFunc) ActiveSpaces(ctx context.Context, after string, limit int) ([]SpaceInfo, error) {
	return f(ctx, after, limit)
}

// Deps are the clients the SFU uses.
type Deps struct {
	Logger    *slog.Logger
	Publisher server.Publisher // usually a *kafkabus.Producer: receives the spacecast.rtc events
	Brokers   []string         // for the space.deleted consumer
	Redis     redis.UniversalClient
	JWT       *spacejwt.Verifier
	Spaces    SpaceLookup
	// ActiveSpaces lets the node reconcile space status at start and every
	// ReconcileInterval: spaces spaces-api shows active while nobody is connected (their
	// node died together with Redis, or events were lost) are announced with space.vacated.
	// Without it there is no reconciliation.
	ActiveSpaces ActiveSpaceLister
	// Metrics receives the SFU's counters (participants, tracks, forwarded packets...); nil:
	// not exported.
	Metrics prometheus.Registerer
}

// Service is a running SFU node.
type Service struct {
	cfg    Config
	log    *slog.Logger
	reg    *registry.Registry
	engine *media.Engine
	srv    *server.Server
	cons   *kafkabus.Consumer
	bcast  *broadcast.Manager // nil: broadcasts not run here

	closeOnce sync.Once
}

// New opens the ICE sockets and removes what an earlier run of the same node id left in
// Redis (its participants go with their participant.left, published by Run).
func New(ctx context.Context, cfg Config, d Deps) (*Service, error) {
	if d.Logger == nil || d.Publisher == nil || d.Redis == nil || d.JWT == nil || d.Spaces == nil || len(d.Brokers) == 0 {
		return nil, errors.New("sfu: Logger, Publisher, Brokers, Redis, JWT and Spaces are required")
	}
	if cfg.NodeID == "" {
		h, _ := os.Hostname()
		cfg.NodeID = strings.ToLower(h) + "-" + idgen.New()[:6]
	}
	if cfg.HeartbeatInterval <= 0 {
		cfg.HeartbeatInterval = 5 * time.Second
	}
	if cfg.NodeTimeout <= 0 {
		cfg.NodeTimeout = 3 * cfg.HeartbeatInterval
	}
	if cfg.CleanupInterval <= 0 {
		cfg.CleanupInterval = 5 * time.Second
	}
	if cfg.ConsumerGroup == "" {
		cfg.ConsumerGroup = "sfu"
	}
	if cfg.ReconnectWindow == 0 {
		cfg.ReconnectWindow = 10 * time.Second
	}
	log := d.Logger.With("service", "sfu", "node_id", cfg.NodeID)
	if d.ActiveSpaces == nil {
		log.Warn("no active-space lister: space status is not reconciled after a crash that lost Redis")
	}
	cons, err := kafkabus.NewConsumer(kafkabus.ConsumerConfig{Brokers: d.Brokers, GroupID: cfg.ConsumerGroup,
		Topics: []string{events.TopicSpaces}, Logger: log})
	if err != nil {
		return nil, err
	}
	reg, err := registry.New(d.Redis, cfg.RedisPrefix)
	if err != nil {
		return nil, err
	}
	engine, err := media.NewEngine(media.Options{BindIP: cfg.ICEBindIP, UDPPort: cfg.UDPPort, TCPPort: cfg.TCPPort,
		PublicIPs: cfg.PublicIPs, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("sfu: %w", err)
	}
	var bcast *broadcast.Manager
	var hosted *server.Server // set below, before any event is consumed
	// SPACECAST_INTERNAL_SECRET alone is shared by other internal calls: broadcasts run when the
	// livestream URL is set too (and the URL without the secret is an error).
	if cfg.LivestreamURL != "" {
		ing, err := broadcast.NewHTTPIngest(cfg.LivestreamURL, cfg.InternalSecret)
		if err != nil {
			engine.Close()
			return nil, fmt.Errorf("sfu: broadcasts (SPACECAST_SFU_LIVESTREAM_URL, SPACECAST_INTERNAL_SECRET): %w", err)
		}
		guard, err := ssrf.New(cfg.BackgroundAllowNetworks)
		if err != nil {
			engine.Close()
			return nil, fmt.Errorf("sfu: SPACECAST_BROADCAST_BACKGROUND_ALLOW_NETWORKS: %w", err)
		}
		bgs, err := broadcast.NewHTTPBackground(guard)
		if err != nil {
			engine.Close()
			return nil, fmt.Errorf("sfu: %w", err)
		}
		bcast, err = broadcast.NewManager(broadcast.ManagerConfig{Ingest: ing, Preset: cfg.BroadcastPreset, Logger: log, Backgrounds: bgs,
			Hosted: func(id string) broadcast.Host {
				if sp := hosted.HostedSpace(id); sp != nil {
					return sp
				}
				return nil
			}})
		if err != nil {
			engine.Close()
			return nil, fmt.Errorf("sfu: %w", err)
		}
	} else {
		log.Warn("broadcasts are not run on this node (SPACECAST_SFU_LIVESTREAM_URL unset)")
	}
	var ice []space.ICEServer
	if len(cfg.ICEServers) > 0 {
		ice = []space.ICEServer{{URLs: cfg.ICEServers}}
	}
	srv := server.New(server.Config{NodeID: cfg.NodeID, PublicURL: cfg.PublicURL, ICEServers: ice,
		HeartbeatInterval: cfg.HeartbeatInterval, NodeTimeout: cfg.NodeTimeout, CleanupInterval: cfg.CleanupInterval,
		ReconcileInterval: cfg.ReconcileInterval, KeyCheckInterval: cfg.KeyCheckInterval,
		ReconnectWindow: cfg.ReconnectWindow, MaxParticipants: cfg.MaxParticipants, Simulcast: cfg.Simulcast, Registerer: d.Metrics,
		InternalURL: cfg.InternalURL, InternalSecret: cfg.InternalSecret,
		OnSpaceRetired: func(id string) {
			if bcast != nil {
				bcast.Stop(id)
			}
		}},
		log, reg, engine, d.JWT, d.Spaces, d.ActiveSpaces, d.Publisher)
	hosted = srv
	if err := srv.CleanupOwn(ctx); err != nil {
		engine.Close()
		return nil, fmt.Errorf("sfu: cleaning this node's stale state: %w", err)
	}
	if err := srv.Heartbeat(ctx); err != nil {
		engine.Close()
		return nil, fmt.Errorf("sfu: first heartbeat: %w", err)
	}
	if cfg.InternalSecret == "" {
		log.Warn("no connection is relayed to or from other nodes (SPACECAST_INTERNAL_SECRET unset): run one node or route each space to its node")
	} else if cfg.InternalURL == "" {
		log.Warn("other nodes cannot relay connections to this node (SPACECAST_SFU_INTERNAL_URL unset)")
	}
	log.Info("sfu ready", "udp_port", engine.UDPPort(), "tcp_port", engine.TCPPort(), "internal_url", cfg.InternalURL)
	return &Service{cfg: cfg, log: log, reg: reg, engine: engine, srv: srv, cons: cons, bcast: bcast}, nil
}

// NodeID is this node's id.
func (s *Service) NodeID() string { return s.cfg.NodeID }

// UDPPort is the ICE UDP port actually bound.
func (s *Service) UDPPort() int { return s.engine.UDPPort() }

// TCPPort is the ICE-TCP port actually bound (0 when off).
func (s *Service) TCPPort() int { return s.engine.TCPPort() }

// Register mounts the signaling WebSocket, the browser SDK and the demo page.
func (s *Service) Register(e *echo.Echo) {
	e.GET(SpacesPath, echo.WrapHandler(http.HandlerFunc(s.srv.ServeSpaces)))
	e.GET(SDKPath, echo.WrapHandler(web.SDK()))
	e.GET(DemoPath, echo.WrapHandler(web.Demo()))
}

// Ping checks Redis (readiness).
func (s *Service) Ping(ctx context.Context) error { return s.reg.Ping(ctx) }

// Run heartbeats, cleans up dead nodes, publishes the node's events and consumes
// space.deleted until ctx ends; then it disconnects every participant (with their
// participant.left), publishes the last events and closes the ICE sockets.
func (s *Service) Run(ctx context.Context) error {
	relayCtx, stopRelay := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	relayDone := make(chan struct{})
	go func() { defer close(relayDone); s.srv.RunEvents(relayCtx) }()
	consErr := make(chan error, 1)
	wg.Add(5)
	go func() { defer wg.Done(); s.srv.RunHeartbeats(ctx) }()
	go func() { defer wg.Done(); s.srv.RunCleanup(ctx) }()
	go func() { defer wg.Done(); s.srv.RunReconcile(ctx) }()
	go func() { defer wg.Done(); s.srv.RunKeyCheck(ctx) }()
	go func() { defer wg.Done(); s.srv.RunDeletedSubscription(ctx) }()
	go func() { consErr <- s.cons.Run(ctx, s.handleSpaceEvent) }()
	var err error
	select {
	case <-ctx.Done():
	case err = <-consErr:
	}
	wg.Wait()
	if s.bcast != nil {
		s.bcast.StopAll()
	}
	s.srv.Shutdown()
	// Give the relay a moment to publish the last participant.left events; what it cannot
	// publish stays in Redis, and the node's spaces in its list, for the dead-node cleanup.
	flushCtx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	if n, ferr := s.srv.FlushEvents(flushCtx); ferr != nil || n > 0 {
		s.log.Warn("events left unpublished at shutdown; the cleanup of this node publishes them", "spaces", n, "err", ferr)
	}
	cancel()
	stopRelay()
	<-relayDone
	// Everyone left cleanly: drop this node's heartbeat so nobody waits for it to time out.
	fctx, fcancel := context.WithTimeout(context.Background(), 3*time.Second)
	// (Only when nothing is left behind, or a dead-node cleanup would lose its trace.)
	if left, ferr := s.reg.NodeSpaces(fctx, s.cfg.NodeID); ferr == nil && len(left) == 0 {
		if ferr := s.reg.ForgetNode(fctx, s.cfg.NodeID); ferr != nil {
			s.log.Warn("forgetting this node in Redis failed", "err", ferr)
		}
	}
	fcancel()
	s.close()
	return err
}

func (s *Service) close() {
	s.closeOnce.Do(func() { _ = s.engine.Close() })
}

// handleSpaceEvent applies space.deleted from spacecast.spaces.
func (s *Service) handleSpaceEvent(ctx context.Context, m kafkabus.Message) error {
	ev, err := events.Parse(m.Value)
	if err != nil {
		s.log.Error("skipping malformed event", "err", err, "offset", m.Offset)
		return nil
	}
	switch ev.Type {
	case "space.broadcast.active", "space.broadcast.idle", "space.broadcast.deleted":
		s.handleBroadcastEvent(ev)
		return nil
	case "space.deleted":
	default:
		return nil
	}
	var d struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(ev.Data, &d); err != nil || d.ID == "" {
		s.log.Error("skipping space.deleted without data.id", "event_id", ev.ID)
		return nil
	}
	return s.srv.SpaceDeleted(ctx, d.ID)
}

// handleBroadcastEvent starts (active) or stops (idle, deleted) a broadcast of a space this
// node hosts. The ingest is looked up from livestream, never read from the event.
func (s *Service) handleBroadcastEvent(ev events.Envelope) {
	if s.bcast == nil {
		return
	}
	var d struct {
		ID      string `json:"id"`
		SpaceID string `json:"space_id"`
	}
	if err := json.Unmarshal(ev.Data, &d); err != nil || d.ID == "" || d.SpaceID == "" {
		s.log.Error("skipping broadcast event without id or space_id", "event_id", ev.ID, "type", ev.Type)
		return
	}
	if ev.Type == "space.broadcast.active" {
		s.bcast.Active(d.SpaceID, d.ID)
	} else {
		s.bcast.Idle(d.SpaceID, d.ID)
	}
}
