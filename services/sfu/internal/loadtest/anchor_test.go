package loadtest

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"math"
	"os"
	"testing"
	"time"
)

// The pion fan-out anchor forwards its publisher's camera and microphone to every
// subscriber: each gets one video and one audio track, a first frame, and packets in the
// window; a second publisher is refused.
func TestAnchorFansOut(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the anchor")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const subs = 2
	o := Options{Publishers: 1, Duration: 2 * time.Second, Settle: 500 * time.Millisecond, Bitrate: 300_000, JoinRate: 20,
		Self: self, Out: io.Discard, Log: slog.New(slog.DiscardHandler)}
	tg, stop, err := anchorTarget(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	if c, err := startAnchorPublisher(ctx, ctx, o, tg.url); !errors.Is(err, ErrAnchorSignal) {
		if c != nil {
			c.Close()
		}
		t.Fatalf("second publisher: %v, want %v", err, ErrAnchorSignal)
	}
	r, err := step(ctx, o, tg, subs)
	if err != nil {
		t.Fatal(err)
	}
	s := r.Summary
	if r.Joined != subs || s.Tracks != 2*subs || s.VideoTracks != subs || s.MissingVideo != 0 || s.ExtraVideo != 0 {
		t.Fatalf("joined %d, tracks %d (video %d), missing %d, extra %d; want %d, %d (%d), 0, 0",
			r.Joined, s.Tracks, s.VideoTracks, s.MissingVideo, s.ExtraVideo, subs, 2*subs, subs)
	}
	if r.NoFrame != 0 || s.Silent != 0 || s.Packets == 0 || r.BitrateMbps <= 0 || r.LossPct > 5 {
		t.Fatalf("no-frame %d, silent %d, packets %d, %.2f Mbit/s, loss %.2f%%", r.NoFrame, s.Silent, s.Packets, r.BitrateMbps, r.LossPct)
	}
}

func TestCPURatio(t *testing.T) {
	cases := []struct {
		name        string
		sfu, anchor Result
		want        float64
	}{
		{"equal per subscriber", Result{Joined: 50, SFUCPUPct: 50}, Result{Joined: 50, SFUCPUPct: 50}, 1},
		{"SFU twice the CPU", Result{Joined: 150, SFUCPUPct: 120}, Result{Joined: 150, SFUCPUPct: 60}, 2},
		{"per joined subscriber, not per asked", Result{Subscribers: 150, Joined: 100, SFUCPUPct: 100}, Result{Subscribers: 150, Joined: 150, SFUCPUPct: 100}, 1.5},
		{"anchor nobody joined", Result{Joined: 10, SFUCPUPct: 10}, Result{Joined: 0, SFUCPUPct: 5}, 0},
		{"anchor no CPU", Result{Joined: 10, SFUCPUPct: 10}, Result{Joined: 10}, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := (Pair{SFU: tc.sfu, Anchor: tc.anchor}).Ratio(); math.Abs(got-tc.want) > 1e-9 {
				t.Fatalf("ratio %v, want %v", got, tc.want)
			}
		})
	}
}

func TestPktRatio(t *testing.T) {
	cases := []struct {
		name        string
		sfu, anchor Result
		want        float64
	}{
		{"same CPU, SFU forwarded half the packets", Result{PacketsPerSec: 10000, SFUCPUPct: 20}, Result{PacketsPerSec: 20000, SFUCPUPct: 20}, 2},
		{"equal per packet", Result{PacketsPerSec: 30000, SFUCPUPct: 60}, Result{PacketsPerSec: 15000, SFUCPUPct: 30}, 1},
		{"anchor forwarded nothing", Result{PacketsPerSec: 100, SFUCPUPct: 1}, Result{SFUCPUPct: 1}, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := (Pair{SFU: tc.sfu, Anchor: tc.anchor}).PktRatio(); math.Abs(got-tc.want) > 1e-9 {
				t.Fatalf("ratio %v, want %v", got, tc.want)
			}
		})
	}
}

func TestMedianOf(t *testing.T) {
	cases := []struct {
		xs   []float64
		want float64
	}{
		{nil, 0},
		{[]float64{1.3}, 1.3},
		{[]float64{1.5, 1.1}, 1.3},
		{[]float64{3, 1, 2}, 2},
		{[]float64{4, 1, 3, 2}, 2.5},
	}
	for _, tc := range cases {
		if got := medianOf(tc.xs); math.Abs(got-tc.want) > 1e-9 {
			t.Errorf("medianOf(%v) = %v, want %v", tc.xs, got, tc.want)
		}
	}
}
