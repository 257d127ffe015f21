package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/spacecast/spacecast/libs/auth"
	"github.com/spacecast/spacecast/libs/envconfig"
	"github.com/spacecast/spacecast/libs/httpapi"
	"github.com/spacecast/spacecast/libs/kafkabus"
	"github.com/spacecast/spacecast/libs/ratelimit"
	"github.com/spacecast/spacecast/libs/redisconn"
	"github.com/spacecast/spacecast/libs/sqldb"
)

// Needs says which clients a service binary opens besides its database and Kafka producer.
type Needs struct {
	Redis bool // SPACECAST_REDIS_URL
	Keys  bool // token (and environment) lookups at the keys service; requires SPACECAST_INTERNAL_SECRET
	// NoDatabase: the binary keeps no SQL state; SPACECAST_DATABASE_URL is not opened
	// (Clients.DB is nil) and readiness checks only what the binary's Ping checks.
	NoDatabase bool
}

// Clients are what a service binary opens from its Base settings.
type Clients struct {
	Base     Base
	Log      *slog.Logger
	DB       *sqldb.DB
	Producer *kafkabus.Producer
	Redis    redis.UniversalClient // when Needs.Redis
	Keys     *auth.HTTPLookup      // when Needs.Keys
	Auth     *auth.Verifier        // when Needs.Keys
	// Limiter is the per-token rate limiter (nil when SPACECAST_RATE_LIMIT_* turn every limit
	// off). It uses Redis also in services that need no Redis otherwise, through a client that
	// is not pinged at start: an unreachable Redis makes the limiter fail open, not the service.
	Limiter *ratelimit.Limiter
	// Metrics is the registry /metrics serves (Go and process collectors included); services
	// register their own collectors on it.
	Metrics *prometheus.Registry
	closers []func()
}

// Load reads the shared settings, lets loadOwn read the service's own, and fails with every
// bad value named.
func Load(defaultDB string, n Needs, loadOwn func(r *envconfig.Reader)) (Base, error) {
	r := envconfig.New(os.LookupEnv)
	base := LoadBase(r, defaultDB)
	loadOwn(r)
	if n.Keys && base.InternalSecret == "" {
		r.Fail("SPACECAST_INTERNAL_SECRET", "required: it authenticates lookups at the keys service")
	}
	if err := r.Err(); err != nil {
		return Base{}, fmt.Errorf("configuration: %w", err)
	}
	return base, nil
}

// Open connects the clients n asks for.
func Open(ctx context.Context, base Base, n Needs) (*Clients, error) {
	c := &Clients{Base: base, Log: NewLogger(base.LogFormat, base.LogLevel), Metrics: httpapi.NewRegistry()}
	var err error
	if !n.NoDatabase {
		if c.DB, err = sqldb.Open(ctx, base.DatabaseURL); err != nil {
			return nil, err
		}
		c.closers = append(c.closers, func() { c.DB.Close() })
	}
	if c.Producer, err = kafkabus.NewProducer(kafkabus.ProducerConfig{Brokers: base.Brokers, Logger: c.Log}); err != nil {
		c.Close()
		return nil, err
	}
	c.closers = append(c.closers, func() { c.Producer.Close() })
	if n.Redis {
		if c.Redis, err = redisconn.Open(ctx, base.RedisURL); err != nil {
			c.Close()
			return nil, err
		}
		c.closers = append(c.closers, func() { c.Redis.Close() })
	}
	if base.RateLimit.Enabled() {
		rdb := c.Redis
		if rdb == nil {
			opt, perr := redis.ParseURL(base.RedisURL)
			if perr != nil {
				c.Close()
				return nil, fmt.Errorf("redis url (for rate limits): %w", perr)
			}
			own := redis.NewClient(opt)
			c.closers = append(c.closers, func() { own.Close() })
			rdb = own
		}
		if c.Limiter, err = ratelimit.New(rdb, base.RateLimit, ratelimit.Options{Logger: c.Log}); err != nil {
			c.Close()
			return nil, err
		}
	}
	if n.Keys {
		if c.Keys, err = auth.NewHTTPLookup(base.KeysURL, base.InternalSecret); err == nil {
			c.Auth, err = auth.NewVerifier(c.Keys, auth.VerifierOptions{Logger: c.Log})
		}
		if err != nil {
			c.Close()
			return nil, err
		}
	}
	return c, nil
}

// Close closes what Open opened, in reverse order.
func (c *Clients) Close() {
	for i := len(c.closers) - 1; i >= 0; i-- {
		c.closers[i]()
	}
}

// Runner is a service's wiring as a binary runs it.
type Runner interface {
	Register(e *echo.Echo)
	Run(ctx context.Context) error
	Ping(ctx context.Context) error
}

// Main runs build's service until SIGINT/SIGTERM: it loads settings, opens clients, serves
// HTTP with /readyz checking the database (and Redis), and runs the background loops. It
// returns the process exit code.
func Main(name, defaultDB string, n Needs, loadOwn func(r *envconfig.Reader), build func(ctx context.Context, c *Clients) (Runner, error)) int {
	if err := mainErr(name, defaultDB, n, loadOwn, build); err != nil {
		fmt.Fprintln(os.Stderr, name+":", err)
		return 1
	}
	return 0
}

func mainErr(name, defaultDB string, n Needs, loadOwn func(r *envconfig.Reader), build func(ctx context.Context, c *Clients) (Runner, error)) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	base, err := Load(defaultDB, n, loadOwn)
	if err != nil {
		return err
	}
	c, err := Open(ctx, base, n)
	if err != nil {
		return err
	}
	defer c.Close()
	svc, err := build(ctx, c)
	if err != nil {
		return err
	}
	check := "db"
	if n.NoDatabase {
		check = name
	}
	checks := []httpapi.Check{{Name: check, Fn: svc.Ping}}
	if c.Redis != nil {
		checks = append(checks, httpapi.Check{Name: "redis", Fn: func(ctx context.Context) error { return c.Redis.Ping(ctx).Err() }})
	}
	opts := httpapi.Options{Logger: c.Log, AccessLog: base.AccessLog, Checks: checks, Registry: c.Metrics, BodyTimeout: base.BodyTimeout}
	if c.Limiter != nil {
		opts.RateLimiter = c.Limiter
	}
	e := httpapi.NewServer(opts)
	svc.Register(e)
	runErr := make(chan error, 1)
	go func() {
		err := svc.Run(ctx)
		if err != nil {
			c.Log.Error(name+" background loops stopped", "err", err)
		}
		runErr <- err
		stop()
	}()
	err = ServeHTTP(ctx, base.HTTPAddr, e, c.Log)
	stop()
	return errors.Join(err, <-runErr)
}
