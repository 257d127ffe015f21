// Command sfu runs one SFU node alone, configured by SPACECAST_* variables.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spacecast/spacecast/libs/envconfig"
	"github.com/spacecast/spacecast/libs/httpapi"
	"github.com/spacecast/spacecast/libs/kafkabus"
	"github.com/spacecast/spacecast/libs/redisconn"
	"github.com/spacecast/spacecast/libs/service"
	"github.com/spacecast/spacecast/libs/spacejwt"
	"github.com/spacecast/spacecast/libs/sqldb"
	"github.com/spacecast/spacecast/services/sfu"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "sfu:", err)
		os.Exit(1)
	}
}

func run() error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	r := envconfig.New(os.LookupEnv)
	base := service.LoadBase(r, "sqlite:sfu.db")
	cfg := sfu.LoadConfig(r)
	spacesURL := r.String("SPACECAST_SPACES_URL", "http://127.0.0.1:8080")
	if base.InternalSecret == "" {
		r.Fail("SPACECAST_INTERNAL_SECRET", "required: it authenticates JWKS and space lookups")
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
	rdb, err := redisconn.Open(ctx, base.RedisURL)
	if err != nil {
		return err
	}
	defer rdb.Close()
	prod, err := kafkabus.NewProducer(kafkabus.ProducerConfig{Brokers: base.Brokers, Logger: log})
	if err != nil {
		return err
	}
	defer prod.Close()
	keys, err := spacejwt.NewHTTPKeySource(base.KeysURL, base.InternalSecret)
	if err != nil {
		return err
	}
	verifier, err := spacejwt.NewVerifier(keys, spacejwt.Options{Logger: log})
	if err != nil {
		return err
	}
	spaces, err := sfu.NewHTTPSpaceLookup(spacesURL, base.InternalSecret)
	if err != nil {
		return err
	}
	svc, err := sfu.New(ctx, cfg, sfu.Deps{Logger: log, DB: db, Publisher: prod, Brokers: base.Brokers, Redis: rdb,
		JWT: verifier, Spaces: spaces})
	if err != nil {
		return err
	}
	e := httpapi.NewServer(httpapi.Options{Logger: log, AccessLog: base.AccessLog, Checks: []httpapi.Check{{Name: "sfu", Fn: svc.Ping}}})
	svc.Register(e)
	runErr := make(chan error, 1)
	go func() { runErr <- svc.Run(ctx) }()
	err = service.ServeHTTP(ctx, base.HTTPAddr, e, log)
	stop()
	if rerr := <-runErr; err == nil {
		err = rerr
	}
	return err
}
