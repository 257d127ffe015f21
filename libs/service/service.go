// Package service holds what every service binary reads and does the same way: the shared
// SPACECAST_* settings, the logger, and serving HTTP until the context ends.
package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spacecast/spacecast/libs/envconfig"
	"github.com/spacecast/spacecast/libs/ratelimit"
)

// Base are the settings every service binary reads.
type Base struct {
	HTTPAddr       string   // SPACECAST_HTTP_ADDR
	DatabaseURL    string   // SPACECAST_DATABASE_URL
	RedisURL       string   // SPACECAST_REDIS_URL
	Brokers        []string // SPACECAST_KAFKA_BROKERS
	KeysURL        string   // SPACECAST_KEYS_URL (the keys service, for token and JWKS lookups)
	InternalSecret string   // SPACECAST_INTERNAL_SECRET (guards /internal/v1)
	LogLevel       string   // SPACECAST_LOG_LEVEL
	LogFormat      string   // SPACECAST_LOG_FORMAT: json | text
	AccessLog      bool     // SPACECAST_ACCESS_LOG
	// BodyTimeout bounds the time a request body may take to arrive (SPACECAST_HTTP_BODY_TIMEOUT, 10s).
	BodyTimeout time.Duration
	// RateLimit is the per-access-token request budget (SPACECAST_RATE_LIMIT_*), kept in the
	// Redis at SPACECAST_REDIS_URL by every service.
	RateLimit ratelimit.Config
}

// LoadBase reads the shared settings. needRedis/needKeys make those settings required.
func LoadBase(r *envconfig.Reader, defaultDB string) Base {
	b := Base{
		HTTPAddr:       r.String("SPACECAST_HTTP_ADDR", ":8080"),
		DatabaseURL:    r.String("SPACECAST_DATABASE_URL", defaultDB),
		RedisURL:       r.String("SPACECAST_REDIS_URL", "redis://127.0.0.1:6379/0"),
		Brokers:        r.List("SPACECAST_KAFKA_BROKERS", []string{"127.0.0.1:9092"}),
		KeysURL:        r.String("SPACECAST_KEYS_URL", "http://127.0.0.1:8080"),
		InternalSecret: r.String("SPACECAST_INTERNAL_SECRET", ""),
		LogLevel:       r.String("SPACECAST_LOG_LEVEL", "info"),
		LogFormat:      r.String("SPACECAST_LOG_FORMAT", "json"),
		AccessLog:      r.Bool("SPACECAST_ACCESS_LOG", true),
		BodyTimeout:    r.Duration("SPACECAST_HTTP_BODY_TIMEOUT", 10*time.Second),
		RateLimit:      ratelimit.LoadConfig(r),
	}
	if b.BodyTimeout <= 0 {
		r.Fail("SPACECAST_HTTP_BODY_TIMEOUT", "must be positive, such as 10s")
	}
	if _, err := ParseLevel(b.LogLevel); err != nil {
		r.Fail("SPACECAST_LOG_LEVEL", err.Error())
	}
	if b.LogFormat != "json" && b.LogFormat != "text" {
		r.Fail("SPACECAST_LOG_FORMAT", "want json or text")
	}
	if _, _, err := net.SplitHostPort(b.HTTPAddr); err != nil {
		r.Fail("SPACECAST_HTTP_ADDR", "want host:port such as :8080")
	}
	return b
}

// ParseLevel reads debug|info|warn|error.
func ParseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(strings.ToUpper(s))); err != nil {
		return 0, fmt.Errorf("log level %q: want debug, info, warn or error", s)
	}
	return l, nil
}

// NewLogger returns the process logger (JSON for services, text for dev).
func NewLogger(format, level string) *slog.Logger {
	l, err := ParseLevel(level)
	if err != nil {
		l = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: l}
	if format == "text" {
		return slog.New(slog.NewTextHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewJSONHandler(os.Stderr, opts))
}

// ServeHTTP serves h on addr until ctx ends, then shuts down gracefully.
func ServeHTTP(ctx context.Context, addr string, h http.Handler, log *slog.Logger) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", addr, err)
	}
	return Serve(ctx, ln, h, log)
}

// Serve serves h on ln until ctx ends.
func Serve(ctx context.Context, ln net.Listener, h http.Handler, log *slog.Logger) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 120 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	log.Info("http listening", "addr", ln.Addr().String())
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return nil
}
