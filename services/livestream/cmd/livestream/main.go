// Command livestream runs the live stream service alone, configured by SPACECAST_* variables.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spacecast/spacecast/libs/auth"
	"github.com/spacecast/spacecast/libs/envconfig"
	"github.com/spacecast/spacecast/libs/httpapi"
	"github.com/spacecast/spacecast/libs/kafkabus"
	"github.com/spacecast/spacecast/libs/redisconn"
	"github.com/spacecast/spacecast/libs/service"
	"github.com/spacecast/spacecast/libs/sqldb"
	livestream "github.com/spacecast/spacecast/services/livestream"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "livestream:", err)
		os.Exit(1)
	}
}

func run() error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	r := envconfig.New(os.LookupEnv)
	base := service.LoadBase(r, "sqlite:livestream.db")
	cfg := livestream.LoadConfig(r)
	if base.InternalSecret == "" {
		r.Fail("SPACECAST_INTERNAL_SECRET", "required: it authenticates token lookups at the keys service")
	}
	if err := r.Err(); err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	log := service.NewLogger(base.LogFormat, base.LogLevel)
	db, err := sqldb.Open(ctx, base.DatabaseURL)
	if err != nil {
		return err
	}
	defer db.Close()
	prod, err := kafkabus.NewProducer(kafkabus.ProducerConfig{Brokers: base.Brokers, Logger: log})
	if err != nil {
		return err
	}
	defer prod.Close()
	rdb, err := redisconn.Open(ctx, base.RedisURL)
	if err != nil {
		return err
	}
	defer rdb.Close()
	lookup, err := auth.NewHTTPLookup(base.KeysURL, base.InternalSecret)
	if err != nil {
		return err
	}
	authn, err := auth.NewVerifier(lookup, auth.VerifierOptions{Logger: log})
	if err != nil {
		return err
	}
	svc, err := livestream.New(ctx, cfg, livestream.Deps{Logger: log, DB: db, Publisher: prod, Auth: authn, Redis: rdb})
	if err != nil {
		return err
	}
	e := httpapi.NewServer(httpapi.Options{Logger: log, AccessLog: base.AccessLog, Checks: []httpapi.Check{
		{Name: "db", Fn: svc.Ping}, {Name: "redis", Fn: func(ctx context.Context) error { return rdb.Ping(ctx).Err() }}}})
	svc.Register(e)
	go func() {
		if err := svc.Run(ctx); err != nil {
			log.Error("livestream background loops stopped", "err", err)
			stop()
		}
	}()
	return service.ServeHTTP(ctx, base.HTTPAddr, e, log)
}
