package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/pprof"
	"time"

	"github.com/spacecast/spacecast/libs/auth"
	"github.com/spacecast/spacecast/libs/embedded"
	"github.com/spacecast/spacecast/libs/httpapi"
	"github.com/spacecast/spacecast/libs/kafkabus"
	"github.com/spacecast/spacecast/libs/redisconn"
	"github.com/spacecast/spacecast/libs/spacejwt"
	"github.com/spacecast/spacecast/libs/sqldb"
	"github.com/spacecast/spacecast/services/livestream"
)

// The server side is the real live stream service (livestream.New: RTMP server, sessions with
// the Redis lock and SQL state, FLV demux, HLS segmenter, outbox events to Kafka) in its own
// process, so that its CPU and memory can be read from /proc. Kafka is the embedded broker,
// SQL is SQLite; Redis is -redis, or embedded.

const (
	benchTokenID     = "bench-admin"
	benchTokenSecret = "bench-admin-secret"
)

type staticTokens struct{}

func (staticTokens) LookupToken(_ context.Context, id string) (auth.TokenRecord, error) {
	if id != benchTokenID {
		return auth.TokenRecord{}, auth.ErrTokenNotFound
	}
	return auth.TokenRecord{ID: id, EnvironmentID: "bench", SecretHash: auth.HashSecret(benchTokenSecret),
		Permissions: []string{auth.VideoRead, auth.VideoWrite}}, nil
}

type noKeys struct{}

func (noKeys) PublicKeys(context.Context) ([]spacejwt.PublicKey, error) { return nil, nil }

// runServer serves until stdin closes. It prints "RTMP <addr>", "HTTP <addr>", "DIR <dir>".
// With kafkaAddr set it publishes to that broker (rtmp-bench -serve-kafka in another process,
// so that this process is the live stream service alone); otherwise it embeds one.
func runServer(listen, dir, redisURL, kafkaAddr, cpuprofile string, segDur time.Duration, transcode bool) error {
	if dir == "" {
		return errors.New("-dir is required")
	}
	if cpuprofile != "" {
		f, err := os.Create(cpuprofile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	brokers := []string{kafkaAddr}
	if kafkaAddr == "" {
		kafka, err := embedded.StartKafka(embedded.KafkaOptions{Addr: "127.0.0.1:0"})
		if err != nil {
			return err
		}
		defer kafka.Close()
		brokers = kafka.Brokers()
	}
	prod, err := kafkabus.NewProducer(kafkabus.ProducerConfig{Brokers: brokers, Logger: log})
	if err != nil {
		return err
	}
	defer prod.Close()
	if redisURL == "" {
		r, err := embedded.StartRedis("127.0.0.1:0")
		if err != nil {
			return err
		}
		defer r.Close()
		redisURL = r.URL()
	}
	rdb, err := redisconn.Open(ctx, redisURL)
	if err != nil {
		return err
	}
	defer rdb.Close()
	db, err := sqldb.Open(ctx, "sqlite:"+filepath.Join(dir, "livestream.db"))
	if err != nil {
		return err
	}
	defer db.Close()
	authn, err := auth.NewVerifier(staticTokens{}, auth.VerifierOptions{Logger: log})
	if err != nil {
		return err
	}
	jwtv, err := spacejwt.NewVerifier(noKeys{}, spacejwt.Options{Logger: log})
	if err != nil {
		return err
	}
	rtmpLn, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	cfg := livestream.Config{RedisKeyPrefix: fmt.Sprintf("rtmp-bench-%d:", os.Getpid()), LockTTL: 10 * time.Second,
		TimerTick: time.Second, RecordingsDir: filepath.Join(dir, "recordings"), SegmentDuration: segDur, LiveWindow: 6,
		Transcode: transcode, FFmpeg: "ffmpeg"}
	svc, err := livestream.New(ctx, cfg, livestream.Deps{Logger: log, DB: db, Publisher: prod, Auth: authn, Redis: rdb,
		JWT: jwtv, RTMPListener: rtmpLn})
	if err != nil {
		return err
	}
	e := httpapi.NewServer(httpapi.Options{Logger: log})
	svc.Register(e)
	httpLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	hs := &http.Server{Handler: e}
	go hs.Serve(httpLn) //nolint:errcheck
	defer hs.Close()
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	fmt.Printf("RTMP %s\nHTTP %s\nDIR %s\n", svc.RTMPAddr(), httpLn.Addr(), cfg.RecordingsDir)
	_, _ = io.Copy(io.Discard, os.Stdin) // the benchmark closes stdin when done
	cancel()
	return <-done
}

// runKafka serves an embedded broker until stdin closes; it prints "KAFKA <addr>".
func runKafka() error {
	kafka, err := embedded.StartKafka(embedded.KafkaOptions{Addr: "127.0.0.1:0"})
	if err != nil {
		return err
	}
	defer kafka.Close()
	fmt.Printf("KAFKA %s\n", kafka.Brokers()[0])
	_, _ = io.Copy(io.Discard, os.Stdin)
	return nil
}
