package sfu_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/spacecast/spacecast/services/sfu/internal/synth"
	"github.com/spacecast/spacecast/services/sfu/spacesclient"
)

func spacesBase(n *node) string { return n.url }

func spacesJoin(t *testing.T, ctx context.Context, base, token string, o spacesclient.Options) *spacesclient.Client {
	t.Helper()
	o.LoopbackOnly = true
	c, err := spacesclient.Join(ctx, base, token, o)
	if err != nil {
		t.Fatalf("join: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// spacesPublishVP8 publishes a synthetic VP8 camera.
func spacesPublishVP8(t *testing.T, ctx context.Context, c *spacesclient.Client) *spacesclient.Publication {
	t.Helper()
	track, err := webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000},
		"cam", spacesclient.NewTrackID())
	if err != nil {
		t.Fatal(err)
	}
	pub, err := c.Publish(ctx, track, "camera")
	if err != nil {
		t.Fatalf("publish: %v", err)
	}
	mctx, cancel := context.WithCancel(ctx)
	t.Cleanup(cancel)
	go synth.Video(mctx, track, 300_000, 30, 30, nil)
	return pub
}

// nextEvent waits for a message matching pred.
func nextEvent(t *testing.T, c *spacesclient.Client, d time.Duration, what string, pred func(spacesclient.Message) bool) spacesclient.Message {
	t.Helper()
	tm := time.After(d)
	for {
		select {
		case m := <-c.Events():
			if pred(m) {
				return m
			}
		case <-tm:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func waitTrack(t *testing.T, c *spacesclient.Client, tid string) {
	t.Helper()
	tm := time.After(15 * time.Second)
	for {
		select {
		case rt := <-c.Tracks():
			if rt.TID == tid {
				return
			}
		case <-tm:
			t.Fatalf("track %s never arrived", tid)
		}
	}
}

// TestSpacesReconnectKeepsTheParticipant: a dropped connection that comes back with
// reconnect_id keeps its connection id; the others see neither a leave nor a join, and
// spacecast.rtc has exactly one participant.joined and one participant.left for it.
func TestSpacesReconnectKeepsTheParticipant(t *testing.T) {
	w := newWorld(t)
	n := w.node("n1")
	evs := w.watchRTC()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	base := spacesBase(n)
	a := spacesJoin(t, ctx, base, w.token("space-1", "publisher", "alice"), spacesclient.Options{})
	pub := spacesPublishVP8(t, ctx, a)
	b := spacesJoin(t, ctx, base, w.token("space-1", "publisher", "bob"), spacesclient.Options{})
	if got := b.Info().Participants; len(got) != 1 || got[0].ParticipantID != "alice" {
		t.Fatalf("bob's joined.participants = %+v", got)
	}
	waitTrack(t, b, pub.TID)
	nextEvent(t, a, 5*time.Second, "participant_connected bob", func(m spacesclient.Message) bool {
		return m.ParticipantConnected != nil && m.ParticipantConnected.ParticipantID == "bob"
	})
	conn := b.Info().ConnectionID
	b.Drop()
	b2 := spacesJoin(t, ctx, base, w.token("space-1", "publisher", "bob"), spacesclient.Options{ReconnectID: "bob"})
	if b2.Info().ConnectionID != conn {
		t.Fatalf("reconnected connection id %s, want %s", b2.Info().ConnectionID, conn)
	}
	waitTrack(t, b2, pub.TID)
	// Nothing about bob reaches alice.
	quiet := time.After(1500 * time.Millisecond)
	for done := false; !done; {
		select {
		case m := <-a.Events():
			if m.ParticipantDisconnected != nil || m.ParticipantConnected != nil {
				t.Fatalf("alice saw %+v during bob's reconnect", m)
			}
		case <-quiet:
			done = true
		}
	}
	for name, min := range map[string]float64{"spacecast_sfu_forwarded_packets_total": 30, "spacecast_sfu_reconnects_total": 1,
		"spacecast_sfu_participants": 2, "spacecast_sfu_tracks": 1, "spacecast_sfu_plis_total": 1} {
		if v := metricValue(t, n, name); v < min {
			t.Errorf("%s = %v, want at least %v", name, v, min)
		}
	}
	if err := b2.Leave(); err != nil && !errors.Is(err, spacesclient.ErrClosed) {
		t.Logf("leave: %v", err)
	}
	nextEvent(t, a, 5*time.Second, "participant_disconnected bob", func(m spacesclient.Message) bool {
		return m.ParticipantDisconnected != nil && m.ParticipantDisconnected.ConnectionID == conn
	})
	evs.wait(t, "participant.left", map[string]string{"participant_id": "bob"}, 1)
	evs.wait(t, "track.published", map[string]string{"participant_id": "alice", "track_id": pub.TID, "kind": "video", "source": "camera"}, 1)
	if j := evs.find("participant.joined", map[string]string{"participant_id": "bob"}); len(j) != 1 {
		t.Fatalf("participant.joined for bob: %d events, want 1", len(j))
	}
	if l := evs.find("participant.left", map[string]string{"participant_id": "bob"}); len(l) != 1 {
		t.Fatalf("participant.left for bob: %d events, want 1", len(l))
	}
}

func metricValue(t *testing.T, n *node, name string) float64 {
	t.Helper()
	mfs, err := n.metrics.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		sum := 0.0
		for _, m := range mf.GetMetric() {
			sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
		return sum
	}
	t.Fatalf("metric %s not exported", name)
	return 0
}

// TestSpacesRefusals: the SDK's error types before joined.
func TestSpacesRefusals(t *testing.T) {
	w := newWorld(t)
	n := w.node("n1")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	base := spacesBase(n)
	spacesJoin(t, ctx, base, w.token("space-1", "publisher", "alice"), spacesclient.Options{})
	cases := []struct {
		name  string
		token string
		typ   int
		msg   string
	}{
		{"duplicate participant", w.token("space-1", "publisher", "alice"), 3, "already connected"},
		{"unknown key", foreignToken(t), 6, "invalid token"},
		{"missing space", w.token("space-404", "publisher", "alice"), 6, "space not found"},
		{"other environment's space", w.token("space-b", "publisher", "x"), 6, "space not found"},
		{"garbage", "not-a-jwt", 6, "invalid token"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := spacesclient.Join(ctx, base, tc.token, spacesclient.Options{LoopbackOnly: true})
			var se *spacesclient.ServerError
			if !errors.As(err, &se) || se.Type != tc.typ || !strings.Contains(se.Message, tc.msg) {
				t.Fatalf("err = %v, want type %d containing %q", err, tc.typ, tc.msg)
			}
		})
	}
}
