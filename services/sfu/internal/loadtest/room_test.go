package loadtest

import (
	"context"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"testing"
	"time"
)

// The test binary is Run's child too: "serve" runs the SFU node as sfu-load's does.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "serve" {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
		err := ServeCommand(ctx, os.Args[2:], os.Stdout, slog.New(slog.DiscardHandler))
		stop()
		if err != nil {
			os.Exit(1)
		}
		os.Exit(0)
	}
	if len(os.Args) > 1 && os.Args[1] == "serve-anchor" {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
		err := ServeAnchorCommand(ctx, os.Stdout, slog.New(slog.DiscardHandler))
		stop()
		if err != nil {
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// A small room through a real node: every subscriber gets one camera and one microphone
// track per publisher, each camera's first frame, and (simulcast) frames of the layers the
// publishers mark, one layer per track at a time.
func TestRoomThroughTheNode(t *testing.T) {
	if testing.Short() {
		t.Skip("starts an SFU node")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, simulcast := range []bool{false, true} {
		name := "one layer"
		if simulcast {
			name = "simulcast"
		}
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			const pubs, subs = 3, 2
			res, err := Run(ctx, Options{Subscribers: []int{subs}, Publishers: pubs, Simulcast: simulcast, Duration: 2 * time.Second,
				Bitrate: 300_000, JoinRate: 20, Self: self, Out: io.Discard, Log: slog.New(slog.DiscardHandler)})
			if err != nil {
				t.Fatal(err)
			}
			if len(res) != 1 {
				t.Fatalf("%d results", len(res))
			}
			r, s := res[0], res[0].Summary
			if r.Joined != subs || s.Tracks != 2*subs*pubs || s.VideoTracks != subs*pubs || s.MissingVideo != 0 || s.ExtraVideo != 0 {
				t.Fatalf("joined %d, tracks %d (video %d), missing %d, extra %d; want %d, %d (%d), 0, 0",
					r.Joined, s.Tracks, s.VideoTracks, s.MissingVideo, s.ExtraVideo, subs, 2*subs*pubs, subs*pubs)
			}
			if r.NoFrame != 0 || s.Silent != 0 || s.Packets == 0 || r.BitrateMbps <= 0 {
				t.Fatalf("no-frame %d, silent %d, packets %d, %.2f Mbit/s", r.NoFrame, s.Silent, s.Packets, r.BitrateMbps)
			}
			if !simulcast {
				return
			}
			if s.Unmarked != 0 || s.OneLayer+s.Switched != s.VideoTracks || s.SwitchesMax > 10 {
				t.Fatalf("simulcast: unmarked %d, one layer %d, switched %d, most changes on a track %d", s.Unmarked, s.OneLayer, s.Switched, s.SwitchesMax)
			}
		})
	}
}
