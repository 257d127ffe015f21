// Package livestream is the live stream service's wiring: live streams, stream keys, playback ids
// and recordings (assets), with every change's event written to spacecast.livestreams through the
// outbox.
package livestream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/redis/go-redis/v9"

	"github.com/spacecast/spacecast/libs/auth"
	"github.com/spacecast/spacecast/libs/envconfig"
	"github.com/spacecast/spacecast/libs/outbox"
	"github.com/spacecast/spacecast/libs/sqldb"
	"github.com/spacecast/spacecast/services/livestream/internal/api"
	"github.com/spacecast/spacecast/services/livestream/internal/session"
	"github.com/spacecast/spacecast/services/livestream/internal/store"
)

// Config are the live stream service's own settings.
type Config struct {
	RedisKeyPrefix string        // SPACECAST_LIVESTREAM_REDIS_PREFIX: prepended to every Redis key ("")
	LockTTL        time.Duration // SPACECAST_LIVESTREAM_LOCK_TTL: publisher lock lifetime, renewed while media flows (10s)
	TimerTick      time.Duration // SPACECAST_LIVESTREAM_TIMER_TICK: reconnect timer poll period (250ms)
}

// LoadConfig reads the settings.
func LoadConfig(r *envconfig.Reader) Config {
	c := Config{
		RedisKeyPrefix: r.String("SPACECAST_LIVESTREAM_REDIS_PREFIX", ""),
		LockTTL:        r.Duration("SPACECAST_LIVESTREAM_LOCK_TTL", 10*time.Second),
		TimerTick:      r.Duration("SPACECAST_LIVESTREAM_TIMER_TICK", 250*time.Millisecond),
	}
	if c.LockTTL < time.Second {
		r.Fail("SPACECAST_LIVESTREAM_LOCK_TTL", "want at least 1s")
	}
	if c.TimerTick <= 0 || c.TimerTick > 10*time.Second {
		r.Fail("SPACECAST_LIVESTREAM_TIMER_TICK", "want between 1ms and 10s")
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
}

// New migrates the database and builds the service.
func New(ctx context.Context, cfg Config, d Deps) (*Service, error) {
	if d.Logger == nil || d.DB == nil || d.Publisher == nil || d.Auth == nil || d.Redis == nil {
		return nil, errors.New("livestream: Logger, DB, Publisher, Auth and Redis are required")
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
		Logger: log, LockTTL: cfg.LockTTL, Tick: cfg.TimerTick})
	if err != nil {
		return nil, err
	}
	return &Service{cfg: cfg, log: log, store: st, relay: relay, authn: d.Auth, sess: sess,
		api: &api.API{Store: st, Relay: relay, Sessions: sess}}, nil
}

// Register mounts the REST routes under /video/v1.
func (s *Service) Register(e *echo.Echo) { s.api.Register(e, s.authn) }

// Ping checks the database (readiness).
func (s *Service) Ping(ctx context.Context) error { return s.store.Ping(ctx) }

// Run publishes the outbox and fires reconnect_window timers until ctx ends.
func (s *Service) Run(ctx context.Context) error {
	errc := make(chan error, 2)
	go func() { errc <- s.relay.Run(ctx) }()
	go func() { errc <- s.sess.Run(ctx) }()
	err := <-errc
	if err2 := <-errc; err == nil {
		err = err2
	}
	return err
}

// Sessions is the ingest state machine (used by the RTMP ingest and by tests).
func (s *Service) Sessions() *session.Manager { return s.sess }
