// Command keys runs the keys service alone, configured by SPACECAST_* environment variables.
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
	"github.com/spacecast/spacecast/libs/service"
	"github.com/spacecast/spacecast/libs/sqldb"
	"github.com/spacecast/spacecast/services/keys"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "keys:", err)
		os.Exit(1)
	}
}

func run() error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	r := envconfig.New(os.LookupEnv)
	base := service.LoadBase(r, "sqlite:keys.db")
	cfg := keys.LoadConfig(r)
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
	svc, err := keys.New(ctx, cfg, keys.Deps{Logger: log, DB: db, Publisher: prod})
	if err != nil {
		return err
	}
	boot, err := svc.Bootstrap(ctx)
	if err != nil {
		return err
	}
	if boot.Created && boot.Secret != "" {
		fmt.Fprintf(os.Stderr, "Created admin access token (shown once):\n  id:     %s\n  secret: %s\n", boot.TokenID, boot.Secret)
	}
	e := httpapi.NewServer(httpapi.Options{Logger: log, AccessLog: base.AccessLog, Checks: []httpapi.Check{{Name: "db", Fn: svc.Ping}}})
	svc.Register(e)
	go func() {
		if err := svc.Run(ctx); err != nil {
			log.Error("keys background loop stopped", "err", err)
			stop()
		}
	}()
	return service.ServeHTTP(ctx, base.HTTPAddr, e, log)
}
