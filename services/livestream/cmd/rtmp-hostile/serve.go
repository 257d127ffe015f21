package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"os"
	"runtime"
	"strings"
	"sync/atomic"

	"github.com/spacecast/spacecast/services/livestream/internal/flv"
	"github.com/spacecast/spacecast/services/livestream/internal/rtmp"
)

// The server side is the real RTMP server (rtmp.NewServer with the defaults) in its own
// process, so that its memory can be read from /proc. Its handler accepts stream keys that
// start with "legit-" and drops their media; it refuses every other key.

type sinkHandler struct{ tags atomic.Int64 }

func (h *sinkHandler) Publish(_ context.Context, req rtmp.PublishRequest) (rtmp.Stream, error) {
	if !strings.HasPrefix(req.StreamKey, "legit-") {
		return nil, &rtmp.StatusError{Code: "NetStream.Publish.BadName", Description: "unknown stream key"}
	}
	return sink{h}, nil
}

type sink struct{ h *sinkHandler }

func (s sink) WriteTag(flv.Tag) error { s.h.tags.Add(1); return nil }
func (s sink) Close(error)            {}

// serverReport is what the server process prints when asked.
type serverReport struct {
	rtmp.Stats
	Tags       int64  `json:"tags"`
	HeapInuse  uint64 `json:"heap_inuse"`
	HeapSys    uint64 `json:"heap_sys"`
	Goroutines int    `json:"goroutines"`
}

// runServer serves on listen, logs to logPath, prints "RTMP <addr>" and then a JSON
// serverReport for each line read from stdin, until stdin closes.
func runServer(listen, logPath string) error {
	logf, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logf.Close()
	log := slog.New(slog.NewTextHandler(logf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	h := &sinkHandler{}
	srv, err := rtmp.NewServer(rtmp.Config{Logger: log, Handler: h})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	fmt.Printf("RTMP %s\n", ln.Addr())
	in := bufio.NewScanner(os.Stdin)
	enc := json.NewEncoder(os.Stdout)
	for in.Scan() {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		if err := enc.Encode(serverReport{Stats: srv.Stats(), Tags: h.tags.Load(), HeapInuse: ms.HeapInuse,
			HeapSys: ms.HeapSys, Goroutines: runtime.NumGoroutine()}); err != nil {
			return err
		}
	}
	cancel()
	return <-done
}
