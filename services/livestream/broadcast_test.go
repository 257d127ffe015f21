package livestream_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/spacecast/spacecast/libs/auth"
	"github.com/spacecast/spacecast/libs/events"
	"github.com/spacecast/spacecast/libs/kafkabus"
	"github.com/spacecast/spacecast/libs/testenv"
	"github.com/spacecast/spacecast/services/livestream"
)

// broadcastEvent publishes a space.broadcast.* event as spaces-api does: on spacecast.spaces,
// keyed by the space, the broadcast (with space_id) as data.
func broadcastEvent(t *testing.T, e *env, typ, envID, bid, space, liveStream string) {
	t.Helper()
	status := "idle"
	if typ == "space.broadcast.active" {
		status = "active"
	}
	ev, err := events.New("spacecast/spaces-api", typ, bid, envID, map[string]any{"id": bid, "space_id": space,
		"live_stream_id": liveStream, "status": status, "layout": "gallery", "resolution": "1280x720"})
	if err != nil {
		t.Fatal(err)
	}
	prod, err := kafkabus.NewProducer(kafkabus.ProducerConfig{Brokers: e.brokers})
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	b, _ := ev.Marshal()
	if err := prod.Publish(context.Background(), kafkabus.Message{Topic: events.TopicSpaces, Key: []byte(space), Value: b}); err != nil {
		t.Fatal(err)
	}
}

// TestBroadcastIngest: while spaces-api says a broadcast is active, the SFU reads its live
// stream's RTMP target and key from the internal endpoint (and nobody else does); ffmpeg
// publishing there makes the stream active; the broadcast going idle completes the live
// stream at once (the publisher is dropped, the asset is ready) and the key is no longer served.
func TestBroadcastIngest(t *testing.T) {
	needFFmpeg(t)
	for _, b := range testenv.SQLBackends(t) {
		t.Run(b.Name, func(t *testing.T) { testBroadcastIngest(t, b) })
	}
}

func testBroadcastIngest(t *testing.T, b testenv.SQLBackend) {
	rdb, prefix := testenv.Redis(t)
	e := startWith(t, testenv.OpenSQL(t, b), testenv.Kafka(t), rdb, prefix, t.TempDir(), func(c *livestream.Config) {
		c.ConsumerGroup, c.InternalSecret = "livestream-test", "internal"
	})
	ls := e.create(`{"playback_policy":"public","reconnect_window":60}`)
	id, key := ls["id"].(string), ls["stream_key"].(string)
	st, res := e.call(writerB, "POST", "/video/v1/live-streams", `{}`)
	if st != 201 {
		t.Fatalf("create B = %d %v", st, res)
	}
	lookup, err := livestream.NewHTTPIngestLookup(e.url, "internal")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := lookup.BroadcastIngest(ctx, "b1"); !errors.Is(err, livestream.ErrNoActiveBroadcast) {
		t.Fatalf("before any event: %v", err)
	}
	// Another environment's broadcast naming this stream is ignored.
	broadcastEvent(t, e, "space.broadcast.active", "envB", "bOther", "spB", id)
	broadcastEvent(t, e, "space.broadcast.active", "envA", "b1", "sp1", id)
	var in livestream.BroadcastIngest
	testenv.Eventually(t, 10*time.Second, func() bool { in, err = lookup.BroadcastIngest(ctx, "b1"); return err == nil },
		"the active broadcast's ingest never showed: %v", err)
	want := "rtmp://" + e.svc.RTMPAddr().String() + "/app"
	if in.StreamKey != key || in.RTMPURL != want || in.LiveStreamID != id || in.SpaceID != "sp1" || in.EnvironmentID != "envA" ||
		in.Layout != "gallery" || in.Resolution != "1280x720" {
		t.Fatalf("ingest = %+v, want key %s at %s", in, key, want)
	}
	if _, err := lookup.BroadcastIngest(ctx, "bOther"); !errors.Is(err, livestream.ErrNoActiveBroadcast) {
		t.Fatalf("another environment's broadcast: %v", err)
	}
	for _, tt := range []struct{ secret, path string }{{"", "/internal/v1/broadcasts/b1/ingest"}, {"wrong", "/internal/v1/broadcasts/b1/ingest"}} {
		req, _ := http.NewRequest("GET", e.url+tt.path, nil)
		if tt.secret != "" {
			req.Header.Set(auth.InternalAuthHeader, tt.secret)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 401 {
			t.Fatalf("secret %q: %d, want 401", tt.secret, res.StatusCode)
		}
	}

	enc := publishFFmpeg(t, in.RTMPURL+"/"+in.StreamKey, 60*time.Second)
	testenv.Eventually(t, 20*time.Second, func() bool { return e.stream(id)["status"] == "active" && e.stream(id)["active_asset_id"] != nil },
		"the broadcast's RTMP never made the stream active; ffmpeg: %s", enc.stderr)
	assetID := e.stream(id)["active_asset_id"].(string)

	broadcastEvent(t, e, "space.broadcast.idle", "envA", "b1", "sp1", id)
	// Completed at once: no reconnect_window wait (60 s here).
	testenv.Eventually(t, 15*time.Second, func() bool { return e.stream(id)["status"] == "idle" }, "broadcast idle did not complete the live stream")
	if a := e.asset(assetID); a["status"] != "ready" {
		t.Fatalf("asset after the broadcast stopped: %v", a)
	}
	_ = enc.wait(t, 10*time.Second) // the publisher was dropped
	if _, err := lookup.BroadcastIngest(ctx, "b1"); !errors.Is(err, livestream.ErrNoActiveBroadcast) {
		t.Fatalf("idle broadcast still served: %v", err)
	}
	got, _ := readEvents(t, e.brokers, id, 8)
	if j := strings.Join(got, ","); !strings.Contains(j, "livestream.idle") || !strings.Contains(j, "asset.live_stream_completed") {
		t.Fatalf("events %v", got)
	}
	// Active again, then deleted: forgotten.
	broadcastEvent(t, e, "space.broadcast.active", "envA", "b1", "sp1", id)
	testenv.Eventually(t, 10*time.Second, func() bool { _, err = lookup.BroadcastIngest(ctx, "b1"); return err == nil }, "re-activated broadcast not served")
	broadcastEvent(t, e, "space.broadcast.deleted", "envA", "b1", "sp1", id)
	testenv.Eventually(t, 10*time.Second, func() bool {
		_, err = lookup.BroadcastIngest(ctx, "b1")
		return errors.Is(err, livestream.ErrNoActiveBroadcast)
	}, "deleted broadcast still served")
}
