// Command sfu-load benchmarks the SFU: P publishers (VP8 ≈ 2.5 Mbit/s + Opus, optionally as
// RID simulcast layers) and N subscribers, each receiving every publisher, as Go clients
// against an SFU node it starts as a child process; per N it prints forwarded packets/s and
// bitrate, loss (total and per subscriber track), the SFU's CPU (and per forwarded track),
// join → first video frame p50/p95 per track and, with simulcast, the layers each track got.
// With -compare-anchor P it runs, per N, P pairs of steps against the SFU and against a
// minimal pion fan-out (the "serve-anchor" child, package pionfanout), alternating the order,
// and prints both and the ratio of CPU per subscriber.
//
//	go run ./services/sfu/cmd/sfu-load -n 10,50,100 -duration 10s
//	go run ./services/sfu/cmd/sfu-load -publishers 10 -n 10 -bitrate 1000000 -simulcast
//	go run ./services/sfu/cmd/sfu-load -compare-anchor 2 -n 50,150 -bitrate 1000000 -duration 10s
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spacecast/spacecast/services/sfu/internal/loadtest"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "sfu-load:", err)
		os.Exit(1)
	}
}

func run() error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if len(os.Args) > 1 && os.Args[1] == "serve" {
		log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
		return loadtest.ServeCommand(ctx, os.Args[2:], os.Stdout, log)
	}
	if len(os.Args) > 1 && os.Args[1] == "serve-anchor" {
		log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
		return loadtest.ServeAnchorCommand(ctx, os.Stdout, log)
	}
	steps := flag.String("n", "10,50,100", "subscriber counts, comma separated")
	publishers := flag.Int("publishers", 1, "participants publishing a camera and a microphone (each subscriber receives all)")
	simulcast := flag.Bool("simulcast", false, "the SFU asks cameras for its q/h/f layers and publishers send them (-bitrate caps the top one)")
	settle := flag.Duration("settle", time.Second, "wait after the first frames before the window")
	dur := flag.Duration("duration", 10*time.Second, "measuring window per step")
	bitrate := flag.Int("bitrate", 2_500_000, "video bitrate, bits/s")
	joinRate := flag.Int("join-rate", 50, "subscriber joins started per second")
	noNACK := flag.Bool("no-nack", false, "subscribers send no NACKs: loss is measured before retransmission")
	subRcvBuf := flag.Int("sub-rcvbuf", 0, "each subscriber's UDP receive buffer, bytes (0: the system's default; capped by net.core.rmem_max)")
	anchorPairs := flag.Int("compare-anchor", 0, "instead: per N, this many pairs of steps against the SFU and a minimal pion fan-out, alternating, with the ratio of CPU per subscriber")
	flag.Parse()
	var ns []int
	for _, s := range strings.Split(*steps, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			return fmt.Errorf("-n: bad count %q", s)
		}
		ns = append(ns, n)
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if *publishers < 1 {
		return fmt.Errorf("-publishers: want at least 1, got %d", *publishers)
	}
	fmt.Printf("sfu-load: %d publisher(s) VP8 %.1f Mbit/s @30fps + Opus 20 ms; simulcast %v; window %v per step; subscriber NACK %v, receive buffer %d; %d CPUs\n",
		*publishers, float64(*bitrate)/1e6, *simulcast, *dur, !*noNACK, *subRcvBuf, numCPU())
	o := loadtest.Options{Subscribers: ns, Publishers: *publishers, Simulcast: *simulcast, Duration: *dur, Settle: *settle,
		Bitrate: *bitrate, JoinRate: *joinRate, NoNACK: *noNACK, SubRcvBuf: *subRcvBuf, Self: self, Out: os.Stdout, Log: log}
	if *anchorPairs > 0 {
		_, err = loadtest.Compare(ctx, o, *anchorPairs)
		return err
	}
	_, err = loadtest.Run(ctx, o)
	return err
}

func numCPU() int { return runtime.NumCPU() }
