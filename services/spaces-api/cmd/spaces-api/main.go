// Command spaces-api runs the spaces service alone, configured by SPACECAST_* variables.
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
	"github.com/spacecast/spacecast/libs/service"
	"github.com/spacecast/spacecast/libs/sqldb"
	spacesapi "github.com/spacecast/spacecast/services/spaces-api"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "spaces-api:", err)
		os.Exit(1)
	}
}

func run() error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	r := envconfig.New(os.LookupEnv)
	base := service.LoadBase(r, "sqlite:spaces.db")
	cfg := spacesapi.LoadConfig(r)
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
	lookup, err := auth.NewHTTPLookup(base.KeysURL, base.InternalSecret)
	if err != nil {
		return err
	}
	authn, err := auth.NewVerifier(lookup, auth.VerifierOptions{Logger: log})
	if err != nil {
		return err
	}
	svc, err := spacesapi.New(ctx, cfg, spacesapi.Deps{Logger: log, DB: db, Publisher: prod, Brokers: base.Brokers, Auth: authn})
	if err != nil {
		return err
	}
	e := httpapi.NewServer(httpapi.Options{Logger: log, AccessLog: base.AccessLog, Checks: []httpapi.Check{{Name: "db", Fn: svc.Ping}}})
	svc.Register(e)
	go func() {
		if err := svc.Run(ctx); err != nil {
			log.Error("spaces-api background loops stopped", "err", err)
			stop()
		}
	}()
	return service.ServeHTTP(ctx, base.HTTPAddr, e, log)
}
