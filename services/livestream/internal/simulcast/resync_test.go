package simulcast

import (
	"context"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/spacecast/spacecast/services/livestream/internal/flv"
	"github.com/spacecast/spacecast/services/livestream/internal/rtmp"
)

// sink is an RTMP receiver (our own server) that records what a publish sends.
type sink struct {
	mu     sync.Mutex
	tags   []flv.Tag
	closed chan struct{}
}

func (s *sink) Publish(_ context.Context, _ rtmp.PublishRequest) (rtmp.Stream, error) { return s, nil }
func (s *sink) WriteTag(t flv.Tag) error {
	s.mu.Lock()
	s.tags = append(s.tags, t)
	s.mu.Unlock()
	return nil
}
func (s *sink) Close(error) { close(s.closed) }

// TestSlowTargetResyncsAtKeyframe writes far faster than a target takes it (the whole source,
// many times over, at once into a 16-tag queue): tags are dropped, and after every gap the
// target gets the sequence headers and then a keyframe, never a frame that depends on one it
// did not get.
func TestSlowTargetResyncsAtKeyframe(t *testing.T) {
	needFFmpeg(t)
	tags, dur := source(t, 2)
	s := &sink{closed: make(chan struct{})}
	srv, err := rtmp.NewServer(rtmp.Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Handler: s})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, ln) }()
	defer func() { cancel(); <-served }()

	rec := newRecorder()
	f := start(t, Options{Dialer: loopGuard(t).Dialer(5 * time.Second), Queue: 16}, rec, "rtmp://"+ln.Addr().String()+"/app")
	// Wait until connected and waiting for media (the first attempt sees an empty queue).
	deadline := time.Now().Add(5 * time.Second)
	for {
		st := rec.statuses()
		if len(st) > 0 && st[len(st)-1] == Starting && srv.ConnCount() == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no connection: statuses %v", st)
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // the publish is accepted
	for loop := 0; loop < 20; loop++ {
		for _, tg := range tags {
			if loop > 0 && isHeader(tg) {
				continue
			}
			tg.Timestamp += int64(loop) * dur
			f.WriteTag(tg)
		}
		time.Sleep(20 * time.Millisecond) // let some of each loop through
	}
	time.Sleep(500 * time.Millisecond)
	f.Stop()
	select {
	case <-s.closed:
	case <-time.After(5 * time.Second):
		t.Fatal("the receiver's publish did not end")
	}

	s.mu.Lock()
	got := append([]flv.Tag(nil), s.tags...)
	s.mu.Unlock()
	sent := 0
	for _, tg := range tags {
		if tg.Type == flv.TagVideo && !isHeader(tg) {
			sent++
		}
	}
	sent *= 20
	var lastTS int64 = -1
	headerSince := false // a video sequence header arrived since the last gap
	videos, resumes := 0, 0
	for _, tg := range got {
		if tg.Type != flv.TagVideo {
			continue
		}
		h, err := flv.ParseVideoHeader(tg.Data)
		if err != nil {
			t.Fatalf("received video tag: %v", err)
		}
		if h.PacketType == flv.AVCSequenceHeader {
			headerSince = true
			continue
		}
		videos++
		gap := lastTS < 0 || tg.Timestamp-lastTS > 60 // frames are 40 ms apart
		if gap {
			resumes++
			if h.FrameType != flv.FrameKey {
				t.Fatalf("after a gap (%d → %d ms) the target got a non-keyframe", lastTS, tg.Timestamp)
			}
			if !headerSince {
				t.Fatalf("resumed at %d ms without the sequence header first", tg.Timestamp)
			}
		}
		headerSince = false
		lastTS = tg.Timestamp
	}
	if videos == 0 || videos >= sent {
		t.Fatalf("received %d of %d video frames: want some, and some dropped", videos, sent)
	}
	if resumes < 2 {
		t.Errorf("resumed %d times; want the test to exercise at least one gap after the start", resumes)
	}
	t.Logf("received %d of %d video frames, %d resumes", videos, sent, resumes)
}
