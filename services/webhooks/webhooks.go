// Package webhooks is the webhooks service's wiring: endpoints API, a dispatcher that turns
// every spacecast.* event into durable deliveries, and a worker that signs and sends them with
// retries, timers in Redis and per-endpoint isolation.
package webhooks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/redis/go-redis/v9"

	"github.com/spacecast/spacecast/libs/auth"
	"github.com/spacecast/spacecast/libs/envconfig"
	"github.com/spacecast/spacecast/libs/events"
	"github.com/spacecast/spacecast/libs/kafkabus"
	"github.com/spacecast/spacecast/libs/outbox"
	"github.com/spacecast/spacecast/libs/sqldb"
	"github.com/spacecast/spacecast/libs/ssrf"
	"github.com/spacecast/spacecast/libs/timers"
	"github.com/spacecast/spacecast/services/webhooks/internal/api"
	"github.com/spacecast/spacecast/services/webhooks/internal/deliver"
	"github.com/spacecast/spacecast/services/webhooks/internal/store"
)

// Config are the service's own settings.
type Config struct {
	ConsumerGroup string          // SPACECAST_WEBHOOKS_CONSUMER_GROUP ("webhooks")
	RedisPrefix   string          // SPACECAST_WEBHOOKS_REDIS_PREFIX ("webhooks:")
	AllowNetworks []string        // SPACECAST_WEBHOOKS_ALLOW_NETWORKS: CIDRs receivers may be in despite the SSRF guard
	Timeout       time.Duration   // SPACECAST_WEBHOOKS_TIMEOUT (5s)
	Schedule      []time.Duration // SPACECAST_WEBHOOKS_RETRY_SCHEDULE (5s,1m,5m,30m,2h,5h,10h,14h,24h)
	PerEndpoint   int             // SPACECAST_WEBHOOKS_PER_ENDPOINT_CONCURRENCY (4)
	MaxInFlight   int             // SPACECAST_WEBHOOKS_MAX_IN_FLIGHT (256)
	DisableAfter  time.Duration   // SPACECAST_WEBHOOKS_DISABLE_AFTER (72h)
	MaxRetryAfter time.Duration   // SPACECAST_WEBHOOKS_MAX_RETRY_AFTER (1h)
	RateLimit     int             // SPACECAST_WEBHOOKS_DEFAULT_RATE_LIMIT: deliveries/s of a new endpoint that sets none (0 = unlimited)
	Reconcile     time.Duration   // SPACECAST_WEBHOOKS_RECONCILE_INTERVAL (5m): how often lost Redis timers are rebuilt from SQL
	RotateKeep    time.Duration   // how long a rotated-out secret keeps signing (24h)
}

// LoadConfig reads the settings.
func LoadConfig(r *envconfig.Reader) Config {
	c := Config{
		ConsumerGroup: r.String("SPACECAST_WEBHOOKS_CONSUMER_GROUP", "webhooks"),
		RedisPrefix:   r.String("SPACECAST_WEBHOOKS_REDIS_PREFIX", "webhooks:"),
		AllowNetworks: r.List("SPACECAST_WEBHOOKS_ALLOW_NETWORKS", nil),
		Timeout:       r.Duration("SPACECAST_WEBHOOKS_TIMEOUT", 5*time.Second),
		PerEndpoint:   r.Int("SPACECAST_WEBHOOKS_PER_ENDPOINT_CONCURRENCY", 4),
		MaxInFlight:   r.Int("SPACECAST_WEBHOOKS_MAX_IN_FLIGHT", 256),
		DisableAfter:  r.Duration("SPACECAST_WEBHOOKS_DISABLE_AFTER", 72*time.Hour),
		MaxRetryAfter: r.Duration("SPACECAST_WEBHOOKS_MAX_RETRY_AFTER", time.Hour),
		RateLimit:     r.Int("SPACECAST_WEBHOOKS_DEFAULT_RATE_LIMIT", 0),
		Reconcile:     r.Duration("SPACECAST_WEBHOOKS_RECONCILE_INTERVAL", 5*time.Minute),
		RotateKeep:    24 * time.Hour,
	}
	for _, s := range r.List("SPACECAST_WEBHOOKS_RETRY_SCHEDULE", nil) {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			r.Fail("SPACECAST_WEBHOOKS_RETRY_SCHEDULE", fmt.Sprintf("%q is not a positive duration", s))
			continue
		}
		c.Schedule = append(c.Schedule, d)
	}
	if c.Timeout <= 0 || c.Timeout > time.Minute {
		r.Fail("SPACECAST_WEBHOOKS_TIMEOUT", "want a duration between 1ms and 1m")
	}
	if c.PerEndpoint < 1 {
		r.Fail("SPACECAST_WEBHOOKS_PER_ENDPOINT_CONCURRENCY", "want at least 1")
	}
	if c.MaxInFlight < 1 {
		r.Fail("SPACECAST_WEBHOOKS_MAX_IN_FLIGHT", "want at least 1")
	}
	if c.DisableAfter <= 0 {
		r.Fail("SPACECAST_WEBHOOKS_DISABLE_AFTER", "want a positive duration")
	}
	if c.MaxRetryAfter <= 0 {
		r.Fail("SPACECAST_WEBHOOKS_MAX_RETRY_AFTER", "want a positive duration")
	}
	if c.RateLimit < 0 || c.RateLimit > api.MaxRateLimit {
		r.Fail("SPACECAST_WEBHOOKS_DEFAULT_RATE_LIMIT", fmt.Sprintf("want 0 (unlimited) to %d deliveries per second", api.MaxRateLimit))
	}
	if c.Reconcile <= 0 {
		r.Fail("SPACECAST_WEBHOOKS_RECONCILE_INTERVAL", "want a positive duration")
	}
	if _, err := ssrf.New(c.AllowNetworks); err != nil {
		r.Fail("SPACECAST_WEBHOOKS_ALLOW_NETWORKS", err.Error())
	}
	return c
}

// Deps are the clients the service uses.
type Deps struct {
	Logger       *slog.Logger
	DB           *sqldb.DB
	Publisher    outbox.Publisher
	Brokers      []string
	Redis        redis.UniversalClient
	Auth         *auth.Verifier
	Environments auth.EnvironmentLookup
	// Resolver resolves receivers' names (optional; the system's resolver when nil). Every
	// address it returns still passes the SSRF guard at connect time.
	Resolver *net.Resolver
}

// Service is a running webhooks service.
type Service struct {
	log    *slog.Logger
	store  *store.Store
	relay  *outbox.Relay
	cons   *kafkabus.Consumer
	disp   *deliver.Dispatcher
	worker *deliver.Worker
	api    *api.API
	authn  *auth.Verifier
	queue  *timers.Queue
	every  time.Duration
}

// New migrates the database and builds the service.
func New(ctx context.Context, cfg Config, d Deps) (*Service, error) {
	if d.Logger == nil || d.DB == nil || d.Publisher == nil || d.Redis == nil || d.Auth == nil || d.Environments == nil || len(d.Brokers) == 0 {
		return nil, errors.New("webhooks: Logger, DB, Publisher, Brokers, Redis, Auth and Environments are required")
	}
	if cfg.ConsumerGroup == "" {
		cfg.ConsumerGroup = "webhooks"
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	if cfg.RotateKeep <= 0 {
		cfg.RotateKeep = 24 * time.Hour
	}
	if cfg.Reconcile <= 0 {
		cfg.Reconcile = 5 * time.Minute
	}
	log := d.Logger.With("service", "webhooks")
	st, err := store.Open(ctx, d.DB)
	if err != nil {
		return nil, fmt.Errorf("webhooks: %w", err)
	}
	var opts []ssrf.Option
	if d.Resolver != nil {
		opts = append(opts, ssrf.WithResolver(d.Resolver))
	}
	guard, err := ssrf.New(cfg.AllowNetworks, opts...)
	if err != nil {
		return nil, err
	}
	queue, err := timers.New(d.Redis, "{"+cfg.RedisPrefix+"deliveries}:due")
	if err != nil {
		return nil, err
	}
	relay, err := outbox.NewRelay(outbox.RelayConfig{DB: d.DB, Publisher: d.Publisher, Logger: log})
	if err != nil {
		return nil, err
	}
	cons, err := kafkabus.NewConsumer(kafkabus.ConsumerConfig{Brokers: d.Brokers, GroupID: cfg.ConsumerGroup, Topics: events.AllTopics, Logger: log})
	if err != nil {
		return nil, err
	}
	// A delivery's first attempt is made from the row the dispatcher just wrote, for as long
	// as no retry of it can have come due (the shortest retry delay, less its jitter).
	sched := cfg.Schedule
	if len(sched) == 0 {
		sched = deliver.DefaultSchedule
	}
	st.KeepFresh(max(100*time.Millisecond, slices.Min(sched)*8/10))
	// The lease outlives the HTTP timeout so an attempt in flight is never handed out twice.
	worker := deliver.NewWorker(deliver.WorkerConfig{Store: st, Queue: queue, Sender: deliver.NewSender(guard, cfg.Timeout), Relay: relay,
		Log: log, Schedule: cfg.Schedule, PerEndpoint: cfg.PerEndpoint, MaxInFlight: cfg.MaxInFlight, DisableAfter: cfg.DisableAfter,
		MaxRetryAfter: cfg.MaxRetryAfter, Lease: 6*cfg.Timeout + 5*time.Second})
	s := &Service{log: log, store: st, relay: relay, cons: cons, worker: worker, authn: d.Auth, queue: queue, every: cfg.Reconcile,
		disp: &deliver.Dispatcher{Store: st, Queue: queue, Envs: d.Environments, Log: log, Wake: worker.Wake}}
	s.api = &api.API{Store: st, Guard: guard, Queue: queue, Wake: worker.Wake, RotateKeep: cfg.RotateKeep, DefaultRateLimit: cfg.RateLimit}
	return s, nil
}

// Register mounts the REST routes.
func (s *Service) Register(e *echo.Echo) { s.api.Register(e, s.authn) }

// Ping checks the database (readiness).
func (s *Service) Ping(ctx context.Context) error { return s.store.Ping(ctx) }

// dispatchBatch bounds how many events the dispatcher records in one transaction. Batches are
// what was fetched while the previous one was written, so they only grow under load.
const dispatchBatch = 256

// Run consumes events, sends deliveries and publishes the outbox until ctx ends.
func (s *Service) Run(ctx context.Context) error {
	if err := s.rebuildTimers(ctx); err != nil {
		return err
	}
	errc := make(chan error, 4)
	go func() { errc <- s.relay.Run(ctx) }()
	go func() { errc <- s.cons.RunBatch(ctx, dispatchBatch, s.disp.HandleBatch) }()
	go func() { errc <- s.worker.Run(ctx) }()
	go func() { errc <- s.reconcile(ctx) }()
	var err error
	for i := 0; i < 4; i++ {
		err = errors.Join(err, <-errc)
	}
	return err
}

// reconcile rebuilds lost timers periodically: a Redis that restarts without its data while
// the service runs loses no delivery either.
func (s *Service) reconcile(ctx context.Context) error {
	t := time.NewTicker(s.every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if err := s.rebuildTimers(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("rebuilding timers failed; trying again later", "err", err)
		}
	}
}

// rebuildTimers puts every pending delivery back in Redis (if absent): SQL is the durable
// record, so a Redis that lost its data loses no delivery.
func (s *Service) rebuildTimers(ctx context.Context) error {
	after, n := "", 0
	for {
		ds, err := s.store.Pending(ctx, after, 500)
		if err != nil {
			return fmt.Errorf("webhooks: rebuilding timers: %w", err)
		}
		due := make([]timers.Timer, len(ds))
		for i, d := range ds {
			due[i] = timers.Timer{Member: deliver.Member(d.EndpointID, d.ID), Due: time.Unix(0, d.NextAttemptNS)}
			after = d.ID
		}
		if err := s.queue.ScheduleAllIfAbsent(ctx, due...); err != nil {
			return fmt.Errorf("webhooks: rebuilding timers: %w", err)
		}
		n += len(ds)
		if len(ds) < 500 {
			break
		}
	}
	if n > 0 {
		s.log.Debug("pending deliveries checked against their timers", "count", n)
	}
	return nil
}
