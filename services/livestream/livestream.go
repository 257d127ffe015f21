// Package livestream is the live stream service's wiring: live streams, stream keys, playback ids
// and recordings (assets), with every change's event written to spacecast.livestreams through the
// outbox.
package livestream

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/spacecast/spacecast/libs/auth"
	"github.com/spacecast/spacecast/libs/envconfig"
	"github.com/spacecast/spacecast/libs/events"
	"github.com/spacecast/spacecast/libs/kafkabus"
	"github.com/spacecast/spacecast/libs/outbox"
	"github.com/spacecast/spacecast/libs/spacejwt"
	"github.com/spacecast/spacecast/libs/sqldb"
	"github.com/spacecast/spacecast/libs/ssrf"
	"github.com/spacecast/spacecast/services/livestream/internal/api"
	"github.com/spacecast/spacecast/services/livestream/internal/hls"
	"github.com/spacecast/spacecast/services/livestream/internal/images"
	"github.com/spacecast/spacecast/services/livestream/internal/ingest"
	"github.com/spacecast/spacecast/services/livestream/internal/mp4"
	"github.com/spacecast/spacecast/services/livestream/internal/playback"
	"github.com/spacecast/spacecast/services/livestream/internal/renditions"
	"github.com/spacecast/spacecast/services/livestream/internal/rtmp"
	"github.com/spacecast/spacecast/services/livestream/internal/rtmps"
	"github.com/spacecast/spacecast/services/livestream/internal/session"
	"github.com/spacecast/spacecast/services/livestream/internal/simulcast"
	"github.com/spacecast/spacecast/services/livestream/internal/store"
)

// Config are the live stream service's own settings.
type Config struct {
	RedisKeyPrefix string        // SPACECAST_LIVESTREAM_REDIS_PREFIX: prepended to every Redis key ("")
	LockTTL        time.Duration // SPACECAST_LIVESTREAM_LOCK_TTL: stream lease lifetime, renewed while media flows (10s)
	TimerTick      time.Duration // SPACECAST_LIVESTREAM_TIMER_TICK: longest sleep of the reconnect timer loop (1s)
	SweepInterval  time.Duration // SPACECAST_LIVESTREAM_SWEEP_INTERVAL: orphan sweep period (2s)

	RTMPAddr        string        // SPACECAST_RTMP_ADDR: RTMP ingest listen address (":1935")
	RTMPSAddr       string        // SPACECAST_LIVESTREAM_RTMPS_ADDR: RTMPS ingest listen address ("": no RTMPS)
	RTMPSCertFile   string        // SPACECAST_LIVESTREAM_RTMPS_CERT_FILE: its certificate chain (PEM)
	RTMPSKeyFile    string        // SPACECAST_LIVESTREAM_RTMPS_KEY_FILE: its private key (PEM)
	RecordingsDir   string        // SPACECAST_RECORDINGS_DIR: segments and playlists, <dir>/<asset id>/ ("recordings")
	SegmentDuration time.Duration // SPACECAST_HLS_SEGMENT_DURATION: HLS target segment duration (2s)
	LiveWindow      int           // SPACECAST_HLS_LIVE_WINDOW: segments in a live playlist (6)
	MaxPublishers   int           // SPACECAST_RTMP_MAX_CONNECTIONS: RTMP connections per instance, 0 = no limit (1000)
	Transcode       bool          // SPACECAST_LIVESTREAM_TRANSCODE: adaptive ladder with ffmpeg (false)
	FFmpeg          string        // SPACECAST_LIVESTREAM_FFMPEG: the ffmpeg binary of the ladder ("ffmpeg")

	// What an RTMP connection may hold before and after its publish is accepted (docs/operations.md, "RTMP limits").
	RTMPHandshakeTimeout    time.Duration // SPACECAST_RTMP_HANDSHAKE_TIMEOUT: fixed, from accept (5s)
	RTMPPublishTimeout      time.Duration // SPACECAST_RTMP_PUBLISH_TIMEOUT: fixed, from accept (10s)
	RTMPIdleTimeout         time.Duration // SPACECAST_RTMP_IDLE_TIMEOUT: a silent publisher is dropped (10s)
	RTMPMaxConnectionsPerIP int           // SPACECAST_RTMP_MAX_CONNECTIONS_PER_IP: per IPv4 address or IPv6 /64, 0 = no limit (64)
	RTMPPrePublishBufferKB  int           // SPACECAST_RTMP_PREPUBLISH_BUFFER_KB: buffered before publish (256)
	RTMPMaxMessageMB        int           // SPACECAST_RTMP_MAX_MESSAGE_MB: largest message after publish (8)
	RTMPMemoryBudgetMB      int           // SPACECAST_RTMP_MEMORY_BUDGET_MB: partial messages of all connections (256)

	ImageWorkers int // SPACECAST_IMAGE_WORKERS: ffmpeg processes making thumbnails/animations at once (2)

	// Static (MP4) renditions of assets (docs/live-streams.md "MP4 renditions").
	FFprobe  string        // SPACECAST_LIVESTREAM_FFPROBE: the ffprobe binary ("ffprobe"); ffmpeg is SPACECAST_LIVESTREAM_FFMPEG
	MP4Lease time.Duration // SPACECAST_LIVESTREAM_MP4_LEASE: a rendition whose maker stopped renewing this long is made again (30s)

	// Simulcast targets (restreaming; docs/live-streams.md "Simulcast targets").
	AllowNetworks    []string      // SPACECAST_LIVESTREAM_ALLOW_NETWORKS: CIDRs targets may be in despite the SSRF guard (none)
	SimulcastCAFile  string        // SPACECAST_LIVESTREAM_SIMULCAST_CA_FILE: extra roots (PEM) for rtmps:// targets ("": system roots)
	SimulcastBackoff time.Duration // SPACECAST_LIVESTREAM_SIMULCAST_BACKOFF: first wait before reconnecting a target, doubled up to 30× (1s)

	// Broadcasts (a space sent to a live stream; docs/api.md "Broadcasts").
	InternalSecret string // SPACECAST_INTERNAL_SECRET: enables GET /internal/v1/broadcasts/{id}/ingest for the SFU ("": off)
	ConsumerGroup  string // SPACECAST_LIVESTREAM_CONSUMER_GROUP: reads space.broadcast.* when Deps.Brokers is set ("livestream")
	RTMPPublishURL string // SPACECAST_RTMP_PUBLISH_URL: the RTMP base the SFU publishes a broadcast to ("rtmp://127.0.0.1:<RTMP port>/app")
}

// LoadConfig reads the settings.
func LoadConfig(r *envconfig.Reader) Config {
	c := Config{
		RedisKeyPrefix: r.String("SPACECAST_LIVESTREAM_REDIS_PREFIX", ""),
		LockTTL:        r.Duration("SPACECAST_LIVESTREAM_LOCK_TTL", 10*time.Second),
		TimerTick:      r.Duration("SPACECAST_LIVESTREAM_TIMER_TICK", time.Second),
		SweepInterval:  r.Duration("SPACECAST_LIVESTREAM_SWEEP_INTERVAL", 2*time.Second),

		RTMPAddr:        r.String("SPACECAST_RTMP_ADDR", ":1935"),
		RTMPSAddr:       r.String("SPACECAST_LIVESTREAM_RTMPS_ADDR", ""),
		RTMPSCertFile:   r.String("SPACECAST_LIVESTREAM_RTMPS_CERT_FILE", ""),
		RTMPSKeyFile:    r.String("SPACECAST_LIVESTREAM_RTMPS_KEY_FILE", ""),
		RecordingsDir:   r.String("SPACECAST_RECORDINGS_DIR", "recordings"),
		SegmentDuration: r.Duration("SPACECAST_HLS_SEGMENT_DURATION", 2*time.Second),
		LiveWindow:      r.Int("SPACECAST_HLS_LIVE_WINDOW", 6),
		MaxPublishers:   r.Int("SPACECAST_RTMP_MAX_CONNECTIONS", 1000),
		Transcode:       r.Bool("SPACECAST_LIVESTREAM_TRANSCODE", false),
		FFmpeg:          r.String("SPACECAST_LIVESTREAM_FFMPEG", "ffmpeg"),

		RTMPHandshakeTimeout:    r.Duration("SPACECAST_RTMP_HANDSHAKE_TIMEOUT", 5*time.Second),
		RTMPPublishTimeout:      r.Duration("SPACECAST_RTMP_PUBLISH_TIMEOUT", 10*time.Second),
		RTMPIdleTimeout:         r.Duration("SPACECAST_RTMP_IDLE_TIMEOUT", 10*time.Second),
		RTMPMaxConnectionsPerIP: r.Int("SPACECAST_RTMP_MAX_CONNECTIONS_PER_IP", 64),
		RTMPPrePublishBufferKB:  r.Int("SPACECAST_RTMP_PREPUBLISH_BUFFER_KB", 256),
		RTMPMaxMessageMB:        r.Int("SPACECAST_RTMP_MAX_MESSAGE_MB", 8),
		RTMPMemoryBudgetMB:      r.Int("SPACECAST_RTMP_MEMORY_BUDGET_MB", 256),

		ImageWorkers: r.Int("SPACECAST_IMAGE_WORKERS", 2),

		FFprobe:  r.String("SPACECAST_LIVESTREAM_FFPROBE", "ffprobe"),
		MP4Lease: r.Duration("SPACECAST_LIVESTREAM_MP4_LEASE", 30*time.Second),

		AllowNetworks:    r.List("SPACECAST_LIVESTREAM_ALLOW_NETWORKS", nil),
		SimulcastCAFile:  r.String("SPACECAST_LIVESTREAM_SIMULCAST_CA_FILE", ""),
		SimulcastBackoff: r.Duration("SPACECAST_LIVESTREAM_SIMULCAST_BACKOFF", time.Second),

		InternalSecret: r.String("SPACECAST_INTERNAL_SECRET", ""),
		ConsumerGroup:  r.String("SPACECAST_LIVESTREAM_CONSUMER_GROUP", "livestream"),
		RTMPPublishURL: r.String("SPACECAST_RTMP_PUBLISH_URL", ""),
	}
	if _, err := ssrf.New(c.AllowNetworks); err != nil {
		r.Fail("SPACECAST_LIVESTREAM_ALLOW_NETWORKS", err.Error())
	}
	if c.SimulcastBackoff < 10*time.Millisecond || c.SimulcastBackoff > time.Minute {
		r.Fail("SPACECAST_LIVESTREAM_SIMULCAST_BACKOFF", "want between 10ms and 1m")
	}
	if c.MP4Lease < time.Second || c.MP4Lease > 10*time.Minute {
		r.Fail("SPACECAST_LIVESTREAM_MP4_LEASE", "want between 1s and 10m")
	}
	if c.ImageWorkers < 1 || c.ImageWorkers > 64 {
		r.Fail("SPACECAST_IMAGE_WORKERS", "want 1..64")
	}
	if u := c.RTMPPublishURL; u != "" && !strings.HasPrefix(u, "rtmp://") {
		r.Fail("SPACECAST_RTMP_PUBLISH_URL", "want rtmp://HOST:PORT/app")
	}
	if c.SegmentDuration < 500*time.Millisecond || c.SegmentDuration > 30*time.Second {
		r.Fail("SPACECAST_HLS_SEGMENT_DURATION", "want between 500ms and 30s")
	}
	if c.LiveWindow < 3 || c.LiveWindow > 100 {
		r.Fail("SPACECAST_HLS_LIVE_WINDOW", "want between 3 and 100 segments")
	}
	if c.RTMPHandshakeTimeout < time.Second || c.RTMPHandshakeTimeout > time.Minute {
		r.Fail("SPACECAST_RTMP_HANDSHAKE_TIMEOUT", "want between 1s and 1m")
	}
	if c.RTMPPublishTimeout < c.RTMPHandshakeTimeout || c.RTMPPublishTimeout > 2*time.Minute {
		r.Fail("SPACECAST_RTMP_PUBLISH_TIMEOUT", "want between the handshake timeout and 2m")
	}
	if c.RTMPIdleTimeout < time.Second {
		r.Fail("SPACECAST_RTMP_IDLE_TIMEOUT", "want at least 1s")
	}
	if c.RTMPMaxConnectionsPerIP < 0 {
		r.Fail("SPACECAST_RTMP_MAX_CONNECTIONS_PER_IP", "want 0 (no limit) or more")
	}
	if c.RTMPPrePublishBufferKB < 1 || c.RTMPPrePublishBufferKB > 16383 {
		r.Fail("SPACECAST_RTMP_PREPUBLISH_BUFFER_KB", "want 1..16383")
	}
	if c.RTMPMaxMessageMB < 1 || c.RTMPMaxMessageMB > 15 {
		r.Fail("SPACECAST_RTMP_MAX_MESSAGE_MB", "want 1..15")
	}
	if c.RTMPMemoryBudgetMB < c.RTMPMaxMessageMB {
		r.Fail("SPACECAST_RTMP_MEMORY_BUDGET_MB", "want at least SPACECAST_RTMP_MAX_MESSAGE_MB")
	}
	if c.MaxPublishers < 0 {
		r.Fail("SPACECAST_RTMP_MAX_CONNECTIONS", "want 0 (no limit) or more")
	}
	if c.RTMPSAddr != "" && (c.RTMPSCertFile == "" || c.RTMPSKeyFile == "") {
		r.Fail("SPACECAST_LIVESTREAM_RTMPS_ADDR", "RTMPS needs SPACECAST_LIVESTREAM_RTMPS_CERT_FILE and SPACECAST_LIVESTREAM_RTMPS_KEY_FILE")
	}
	if c.RecordingsDir == "" {
		r.Fail("SPACECAST_RECORDINGS_DIR", "want a directory")
	}
	if c.LockTTL < time.Second {
		r.Fail("SPACECAST_LIVESTREAM_LOCK_TTL", "want at least 1s")
	}
	if c.TimerTick <= 0 || c.TimerTick > 10*time.Second {
		r.Fail("SPACECAST_LIVESTREAM_TIMER_TICK", "want between 1ms and 10s")
	}
	if c.SweepInterval < 100*time.Millisecond || c.SweepInterval > time.Minute {
		r.Fail("SPACECAST_LIVESTREAM_SWEEP_INTERVAL", "want between 100ms and 1m")
	}
	return c
}

// Deps are the clients the service uses.
type Deps struct {
	Logger    *slog.Logger
	DB        *sqldb.DB
	Publisher outbox.Publisher // a *kafkabus.Producer
	Auth      *auth.Verifier
	Redis     redis.UniversalClient
	JWT       *spacejwt.Verifier // playback JWTs of signed playback ids
	// RTMPListener, if set, is used instead of listening on Config.RTMPAddr (tests pass
	// 127.0.0.1:0).
	RTMPListener net.Listener
	// RTMPSListener, if set, is the TCP listener of RTMPS (TLS with Config.RTMPSCertFile/KeyFile
	// is added) instead of listening on Config.RTMPSAddr.
	RTMPSListener net.Listener
	Registerer    prometheus.Registerer // optional: ingest metrics
	// Brokers, if set, are read for spaces-api's space.broadcast.* events: a broadcast going
	// idle completes its live stream, and an active one may read its stream key.
	Brokers []string
}

// Service is a running live stream service.
type Service struct {
	cfg   Config
	log   *slog.Logger
	store *store.Store
	relay *outbox.Relay
	api   *api.API
	authn *auth.Verifier
	sess  *session.Manager

	rtmp     *rtmp.Server
	rtmpLn   net.Listener
	rtmpsLn  net.Listener // nil without RTMPS
	playback *playback.Server
	images   *images.Server
	rends    *renditions.Worker
	cons     *kafkabus.Consumer // nil without Deps.Brokers
}

// New migrates the database and builds the service.
func New(ctx context.Context, cfg Config, d Deps) (*Service, error) {
	if d.Logger == nil || d.DB == nil || d.Publisher == nil || d.Auth == nil || d.Redis == nil || d.JWT == nil {
		return nil, errors.New("livestream: Logger, DB, Publisher, Auth, Redis and JWT are required")
	}
	log := d.Logger.With("service", "livestream")
	st, err := store.Open(ctx, d.DB)
	if err != nil {
		return nil, fmt.Errorf("livestream: %w", err)
	}
	relay, err := outbox.NewRelay(outbox.RelayConfig{DB: d.DB, Publisher: d.Publisher, Logger: log})
	if err != nil {
		return nil, err
	}
	sess, err := session.New(session.Options{Store: st, Redis: d.Redis, KeyPrefix: cfg.RedisKeyPrefix, Relay: relay,
		Logger: log, LockTTL: cfg.LockTTL, Tick: cfg.TimerTick, SweepInterval: cfg.SweepInterval,
		Dir: cfg.RecordingsDir, SegmentDuration: cfg.SegmentDuration, LiveWindow: cfg.LiveWindow})
	if err != nil {
		return nil, fmt.Errorf("livestream: %w", err)
	}
	guard, err := ssrf.New(cfg.AllowNetworks)
	if err != nil {
		return nil, fmt.Errorf("livestream: SPACECAST_LIVESTREAM_ALLOW_NETWORKS: %w", err)
	}
	targetTLS, err := simulcastTLS(cfg.SimulcastCAFile)
	if err != nil {
		return nil, err
	}
	backoff := cfg.SimulcastBackoff
	if backoff <= 0 {
		backoff = time.Second
	}
	in, err := ingest.New(ingest.Options{Sessions: sess, Media: st, Dir: cfg.RecordingsDir, Logger: log, Registerer: d.Registerer,
		Transcode: cfg.Transcode, FFmpeg: cfg.FFmpeg, SegmentDuration: cfg.SegmentDuration,
		Targets: st, Simulcast: simulcast.Options{Statuses: st, Relay: relay, Logger: log.With("component", "simulcast"),
			Dialer: guard.Dialer(10 * time.Second), TLS: targetTLS, MinBackoff: backoff, MaxBackoff: 30 * backoff}})
	if err != nil {
		return nil, fmt.Errorf("livestream: %w", err)
	}
	perIP := cfg.RTMPMaxConnectionsPerIP
	if perIP == 0 {
		perIP = -1 // rtmp.Config: -1 is no limit, 0 its default
	}
	srv, err := rtmp.NewServer(rtmp.Config{Logger: log.With("component", "rtmp"), Handler: in, MaxConnections: cfg.MaxPublishers,
		HandshakeTimeout: cfg.RTMPHandshakeTimeout, PublishTimeout: cfg.RTMPPublishTimeout, IdleTimeout: cfg.RTMPIdleTimeout,
		MaxConnectionsPerIP: perIP, PrePublishBuffer: cfg.RTMPPrePublishBufferKB << 10, MaxMessageSize: cfg.RTMPMaxMessageMB << 20,
		MemoryBudget: int64(cfg.RTMPMemoryBudgetMB) << 20, Registerer: d.Registerer})
	if err != nil {
		return nil, err
	}
	ln := d.RTMPListener
	if ln == nil {
		if ln, err = net.Listen("tcp", cfg.RTMPAddr); err != nil {
			return nil, fmt.Errorf("livestream: RTMP listen %s: %w", cfg.RTMPAddr, err)
		}
	}
	rtmpsLn, err := listenRTMPS(cfg, d.RTMPSListener)
	if err != nil {
		ln.Close()
		return nil, err
	}
	img, err := images.New(images.Options{Resolve: st, JWT: d.JWT, Dir: cfg.RecordingsDir, Logger: log.With("component", "images"),
		Workers: cfg.ImageWorkers, LivePlaylist: hls.LivePlaylist, VODPlaylist: hls.VODPlaylist})
	if err != nil {
		return nil, err
	}
	ffmpeg, ffprobe := cfg.FFmpeg, cfg.FFprobe
	if ffmpeg == "" {
		ffmpeg = "ffmpeg"
	}
	if ffprobe == "" {
		ffprobe = "ffprobe"
	}
	maker, err := mp4.NewMaker(ffmpeg, ffprobe)
	if err != nil {
		return nil, err
	}
	rends, err := renditions.New(renditions.Options{Store: st, Maker: maker, Relay: relay, Logger: log.With("component", "renditions"),
		Dir: cfg.RecordingsDir, Lease: cfg.MP4Lease})
	if err != nil {
		return nil, err
	}
	var cons *kafkabus.Consumer
	if len(d.Brokers) > 0 {
		if cfg.ConsumerGroup == "" {
			cfg.ConsumerGroup = "livestream"
		}
		if cons, err = kafkabus.NewConsumer(kafkabus.ConsumerConfig{Brokers: d.Brokers, GroupID: cfg.ConsumerGroup,
			Topics: []string{events.TopicSpaces}, Logger: log}); err != nil {
			ln.Close()
			if rtmpsLn != nil {
				rtmpsLn.Close()
			}
			return nil, err
		}
	}
	if cfg.RTMPPublishURL == "" {
		cfg.RTMPPublishURL = defaultPublishURL(ln.Addr())
	}
	return &Service{cfg: cfg, log: log, store: st, relay: relay, authn: d.Auth, sess: sess, images: img, cons: cons,
		rtmp: srv, rtmpLn: ln, rtmpsLn: rtmpsLn, rends: rends,
		playback: &playback.Server{Resolve: st, Renditions: st, JWT: d.JWT, Dir: cfg.RecordingsDir},
		api:      &api.API{Store: st, Relay: relay, Sessions: sess, Recordings: in, Renditions: rends, Guard: guard}}, nil
}

// listenRTMPS opens the RTMPS listener if it is configured (nil, nil if not).
func listenRTMPS(cfg Config, tcp net.Listener) (net.Listener, error) {
	if tcp == nil && cfg.RTMPSAddr == "" {
		return nil, nil
	}
	if tcp == nil {
		var err error
		if tcp, err = net.Listen("tcp", cfg.RTMPSAddr); err != nil {
			return nil, fmt.Errorf("livestream: RTMPS listen %s: %w", cfg.RTMPSAddr, err)
		}
	}
	ln, err := rtmps.Listen(tcp, cfg.RTMPSCertFile, cfg.RTMPSKeyFile)
	if err != nil {
		tcp.Close()
		return nil, fmt.Errorf("livestream: %w", err)
	}
	return ln, nil
}

// SelfSignedRTMPS makes (or reuses) a self-signed RTMPS certificate for hosts in dir, as dev
// mode uses: the PEM files and the certificate's SHA-256.
func SelfSignedRTMPS(dir string, hosts []string) (certFile, keyFile, fingerprint string, err error) {
	return rtmps.SelfSigned(dir, hosts)
}

// RTMPSAddr is the address the RTMPS ingest listens on (nil without RTMPS).
func (s *Service) RTMPSAddr() net.Addr {
	if s.rtmpsLn == nil {
		return nil
	}
	return s.rtmpsLn.Addr()
}

// RTMPAddr is the address the RTMP ingest listens on.
func (s *Service) RTMPAddr() net.Addr { return s.rtmpLn.Addr() }

// Register mounts the REST routes under /video/v1, and /internal/v1/broadcasts when an
// internal secret is set.
func (s *Service) Register(e *echo.Echo) {
	s.api.Register(e, s.authn)
	s.playback.Register(e)
	s.images.Register(e)
	if s.cfg.InternalSecret != "" {
		e.GET("/internal/v1/broadcasts/:id/ingest", s.internalIngest)
	}
}

// Ping checks the database (readiness).
func (s *Service) Ping(ctx context.Context) error { return s.store.Ping(ctx) }

// Run serves RTMP ingest, publishes the outbox, fires reconnect_window timers, sweeps orphaned
// streams and listens for control messages until ctx ends.
func (s *Service) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	parts := 4
	errc := make(chan error, 6)
	go func() { errc <- s.rends.Run(ctx) }()
	go func() { errc <- s.relay.Run(ctx) }()
	go func() { errc <- s.sess.Run(ctx) }()
	go func() { errc <- s.rtmp.Serve(ctx, s.rtmpLn) }()
	if s.rtmpsLn != nil {
		parts++
		go func() { errc <- s.rtmp.Serve(ctx, s.rtmpsLn) }() // same server: one connection budget for both
	}
	if s.cons != nil {
		parts++
		go func() { errc <- s.cons.Run(ctx, s.handleSpaceEvent) }()
	}
	var err error
	for range parts {
		if e := <-errc; e != nil && err == nil {
			err = e
			cancel() // one part failing stops the others
		}
	}
	return err
}

// Sessions is the ingest state machine: one owner per live stream (used by the RTMP ingest and
// by tests).
func (s *Service) Sessions() *session.Manager { return s.sess }

// simulcastTLS is the TLS base of rtmps:// targets: system roots, plus caFile's if set.
func simulcastTLS(caFile string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile == "" {
		return cfg, nil
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("livestream: SPACECAST_LIVESTREAM_SIMULCAST_CA_FILE: %w", err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("livestream: SPACECAST_LIVESTREAM_SIMULCAST_CA_FILE: no PEM certificate in %s", caFile)
	}
	cfg.RootCAs = pool
	return cfg, nil
}
