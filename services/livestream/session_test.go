package livestream_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spacecast/spacecast/libs/testenv"
	"github.com/spacecast/spacecast/services/livestream"
	"github.com/spacecast/spacecast/services/livestream/internal/flv"
	"github.com/spacecast/spacecast/services/livestream/internal/hls"
	"github.com/spacecast/spacecast/services/livestream/internal/session"
)

func (e *env) stream(id string) map[string]any {
	e.t.Helper()
	st, res := e.call(readerA, "GET", "/video/v1/live-streams/"+id, "")
	if st != 200 {
		e.t.Fatalf("get %s = %d %v", id, st, res)
	}
	return data(res)
}

func (e *env) asset(id string) map[string]any {
	e.t.Helper()
	st, res := e.call(readerA, "GET", "/video/v1/assets/"+id, "")
	if st != 200 {
		e.t.Fatalf("get asset %s = %d %v", id, st, res)
	}
	return data(res)
}

// frame is a stand-in video keyframe at ts (the segmenter does not decode it).
func frame(ts time.Duration) flv.Packet {
	return flv.Packet{Kind: flv.Video, DTS: ts, PTS: ts, Keyframe: true, Data: []byte{0, 0, 0, 1, 9, 0xf0}}
}

// feed writes keyframes every 250 ms from `from` to `to`: with 1 s segments the recording gets
// to - from of media (the last frame opens a segment of its own that ends where it starts).
func feed(t *testing.T, s *session.Session, from, to time.Duration) {
	t.Helper()
	for ts := from; ts <= to; ts += 250 * time.Millisecond {
		if err := s.WritePacket(frame(ts)); err != nil {
			t.Fatal(err)
		}
	}
}

// publish runs one encoder connection: media from 0 to dur (≥ 1 s: playable), then (unless
// keep) gone.
func publish(t *testing.T, e *env, key string, dur time.Duration, keep bool) *session.Session {
	t.Helper()
	ctx := context.Background()
	s, err := e.svc.Sessions().Begin(ctx, key, session.Publisher{})
	if err != nil {
		t.Fatalf("begin: %v", err)
	}
	feed(t, s, 0, dur)
	if !keep {
		if err := s.End(ctx); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

func TestReconnectWindow(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		ls := e.create(`{"playback_policy":"public","reconnect_window":2,"new_asset_settings":{"playback_policy":"public"}}`)
		id, key := ls["id"].(string), ls["stream_key"].(string)

		s1 := publish(t, e, key, 3*time.Second, false)
		if s1.Resumed {
			t.Fatal("first session claims to resume")
		}
		cur := e.stream(id)
		if cur["status"] != "active" || cur["active_asset_id"] != s1.Asset.ID {
			t.Fatalf("after disconnect %v", cur)
		}
		if a := e.asset(s1.Asset.ID); a["status"] != "preparing" || a["live_stream_id"] != id || len(a["playback_ids"].([]any)) != 1 {
			t.Fatalf("asset while live %v", a)
		}
		// Reconnect inside the window: same asset, no idle.
		time.Sleep(time.Second)
		s2 := publish(t, e, key, 2*time.Second, false)
		if !s2.Resumed || s2.Asset.ID != s1.Asset.ID {
			t.Fatalf("reconnect inside window: resumed=%v asset %s, want %s", s2.Resumed, s2.Asset.ID, s1.Asset.ID)
		}
		time.Sleep(1500 * time.Millisecond) // past the first disconnect's window
		if st := e.stream(id)["status"]; st != "active" {
			t.Fatalf("status %v 1.5 s into the second window, want active", st)
		}
		// Past the window: idle, asset ready with the recorded duration (3 s + 2 s of segments).
		testenv.Eventually(t, 10*time.Second, func() bool { return e.stream(id)["status"] == "idle" }, "stream never went idle")
		a := e.asset(s1.Asset.ID)
		if a["status"] != "ready" || a["duration"] != 5.0 {
			t.Fatalf("asset after window %v, want ready with duration 5", a)
		}
		if cur := e.stream(id); cur["active_asset_id"] != nil || len(cur["recent_asset_ids"].([]any)) != 1 {
			t.Fatalf("stream after window %v", cur)
		}
		// A new session is a new asset.
		s3 := publish(t, e, key, time.Second, true)
		if s3.Resumed || s3.Asset.ID == s1.Asset.ID {
			t.Fatal("session after the window continues the old asset")
		}
		if st, res := e.call(writerA, "PUT", "/video/v1/live-streams/"+id+"/complete", ""); st != 200 || res["data"] == nil {
			t.Fatalf("complete = %d %v", st, res)
		}
		if cur := e.stream(id); cur["status"] != "idle" || e.asset(s3.Asset.ID)["status"] != "ready" {
			t.Fatalf("complete did not end the recording at once: %v", cur)
		}

		want := []string{"livestream.created",
			"livestream.connected", "asset.created", "livestream.recording", "livestream.active", "livestream.disconnected",
			"livestream.connected", "livestream.recording", "livestream.active", "livestream.disconnected",
			"livestream.idle", "asset.ready", "asset.live_stream_completed",
			"livestream.connected", "asset.created", "livestream.recording", "livestream.active", "livestream.disconnected",
			"livestream.idle", "asset.ready", "asset.live_stream_completed"}
		got, _ := readEvents(t, e.brokers, id, len(want))
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Fatalf("events\n got %v\nwant %v", got, want)
		}
	})
}

func TestRefusedPublishers(t *testing.T) {
	e := setup(t, testenv.SQLBackends(t)[0])
	ctx := context.Background()
	m := e.svc.Sessions()
	ls := e.create(`{"playback_policy":"public"}`)
	id, key := ls["id"].(string), ls["stream_key"].(string)
	if _, err := m.Begin(ctx, "not-a-key", session.Publisher{}); !errors.Is(err, session.ErrBadKey) {
		t.Fatalf("bad key: %v", err)
	}
	_, res := e.call(writerA, "POST", "/video/v1/live-streams/"+id+"/reset-stream-key", "")
	newKey := data(res)["stream_key"].(string)
	if _, err := m.Begin(ctx, key, session.Publisher{}); !errors.Is(err, session.ErrBadKey) {
		t.Fatalf("reset key: %v", err)
	}
	kicked := make(chan struct{}, 1)
	s, err := m.Begin(ctx, newKey, session.Publisher{Kick: func() { kicked <- struct{}{} }})
	if err != nil {
		t.Fatal(err)
	}
	feed(t, s, 0, 0)
	if st, _ := e.call(writerA, "PUT", "/video/v1/live-streams/"+id+"/disable", ""); st != 200 {
		t.Fatal("disable failed")
	}
	select {
	case <-kicked:
	case <-time.After(5 * time.Second):
		t.Fatal("disable did not kick the publisher")
	}
	if cur := e.stream(id); cur["status"] != "disabled" || e.asset(s.Asset.ID)["status"] != "ready" {
		t.Fatalf("after disable %v", cur)
	}
	if _, err := m.Begin(ctx, newKey, session.Publisher{}); !errors.Is(err, session.ErrDisabled) {
		t.Fatalf("disabled: %v", err)
	}
	e.call(writerA, "PUT", "/video/v1/live-streams/"+id+"/enable", "")
	s2, err := m.Begin(ctx, newKey, session.Publisher{})
	if err != nil || s2.Resumed {
		t.Fatalf("after enable: %v resumed=%v", err, s2 != nil && s2.Resumed)
	}
	if st, _ := e.call(writerA, "DELETE", "/video/v1/live-streams/"+id, ""); st != 204 {
		t.Fatal("delete failed")
	}
	if a := e.asset(s2.Asset.ID); a["status"] != "ready" {
		t.Fatalf("delete left the recording %v", a)
	}
	if _, err := m.Begin(ctx, newKey, session.Publisher{}); !errors.Is(err, session.ErrBadKey) {
		t.Fatalf("deleted stream: %v", err)
	}
}

func TestOnePublisherAcrossInstances(t *testing.T) {
	a := setup(t, testenv.SQLBackends(t)[0])
	b := start(t, a.db, a.brokers, a.rdb, a.prefix, a.dir)
	ctx := context.Background()
	ls := a.create(`{"playback_policy":"public","reconnect_window":30}`)
	key := ls["stream_key"].(string)
	kicked := make(chan struct{}, 1)
	s1, err := a.svc.Sessions().Begin(ctx, key, session.Publisher{Kick: func() { kicked <- struct{}{} }})
	if err != nil {
		t.Fatal(err)
	}
	// While s1 sends media, the other instance refuses a second publisher.
	stopMedia := make(chan struct{})
	go func() {
		for i := 0; ; i++ {
			select {
			case <-stopMedia:
				return
			case <-time.After(100 * time.Millisecond):
				_ = s1.WritePacket(frame(time.Duration(i) * 100 * time.Millisecond))
			}
		}
	}()
	for i := 0; i < 4; i++ { // across two lock lifetimes: the lock is renewed
		if _, err := b.svc.Sessions().Begin(ctx, key, session.Publisher{}); !errors.Is(err, session.ErrBusy) {
			t.Fatalf("second publisher: %v, want busy", err)
		}
		time.Sleep(time.Second)
	}
	// s1 stops sending (a dead TCP session): a reconnecting publisher takes over once the lock lapses.
	close(stopMedia)
	var s2 *session.Session
	testenv.Eventually(t, 10*time.Second, func() bool {
		s2, err = b.svc.Sessions().Begin(ctx, key, session.Publisher{})
		return err == nil
	}, "a new publisher never took over a silent session")
	if !s2.Resumed || s2.Asset.ID != s1.Asset.ID {
		t.Fatal("takeover did not continue the asset")
	}
	select {
	case <-kicked:
	case <-time.After(5 * time.Second):
		t.Fatal("the silent session was not kicked")
	}
	feed(t, s2, 0, 1500*time.Millisecond)
	_ = s1.End(ctx) // must not end the recording the new publisher continues
	if err := a.svc.Sessions().EndNow(ctx, "no-such-stream"); err == nil {
		t.Fatal("EndNow of an unknown stream succeeded")
	}
	time.Sleep(500 * time.Millisecond)
	if cur := a.stream(ls["id"].(string)); cur["status"] != "active" || cur["active_asset_id"] != s1.Asset.ID {
		t.Fatalf("after the old session ended %v, want active on the same asset", cur)
	}
	if n, _ := a.rdb.ZCard(ctx, a.prefix+"{livestream}:reconnect").Result(); n != 0 {
		t.Fatalf("the old session scheduled %d reconnect timers", n)
	}
	if err := s2.End(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := a.svc.Sessions().Begin(ctx, key, session.Publisher{}); err != nil {
		t.Fatalf("after release: %v", err)
	}
}

func TestTimerSurvivesRestart(t *testing.T) {
	a := setup(t, testenv.SQLBackends(t)[0])
	ls := a.create(`{"playback_policy":"public","reconnect_window":2}`)
	id, key := ls["id"].(string), ls["stream_key"].(string)
	s := publish(t, a, key, 4*time.Second, false)
	a.stop() // the instance that scheduled the timer is gone
	b := start(t, a.db, a.brokers, a.rdb, a.prefix, a.dir)
	c := start(t, a.db, a.brokers, a.rdb, a.prefix, a.dir)
	testenv.Eventually(t, 10*time.Second, func() bool { return b.stream(id)["status"] == "idle" }, "pending idle never fired after restart")
	if as := b.asset(s.Asset.ID); as["status"] != "ready" || as["duration"] != 4.0 {
		t.Fatalf("asset %v", as)
	}
	time.Sleep(time.Second)
	got, _ := readEvents(t, c.brokers, id, 9)
	n := 0
	for _, typ := range got {
		if typ == "asset.ready" {
			n++
		}
	}
	if n != 1 || got[len(got)-1] != "asset.live_stream_completed" {
		t.Fatalf("events %v: want exactly one asset.ready", got)
	}
}

// TestMaxContinuousDuration: a session longer than max_continuous_duration is cut off and its
// recording ends at once (no reconnect wait). The API's minimum is 60 s, so the test lowers the
// stored value to 1 s directly in SQL.
func TestMaxContinuousDuration(t *testing.T) {
	e := setup(t, testenv.SQLBackends(t)[0])
	ls := e.create(`{"playback_policy":"public","reconnect_window":600}`)
	id, key := ls["id"].(string), ls["stream_key"].(string)
	if _, err := e.db.ExecContext(context.Background(), `UPDATE live_streams SET max_continuous_duration = 1 WHERE id = $1`, id); err != nil {
		t.Fatal(err)
	}
	kicked := make(chan struct{}, 1)
	ctx := context.Background()
	s, err := e.svc.Sessions().Begin(ctx, key, session.Publisher{Kick: func() {
		select {
		case kicked <- struct{}{}:
		default:
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	feed(t, s, 0, 1250*time.Millisecond)
	select {
	case <-kicked:
	case <-time.After(5 * time.Second):
		t.Fatal("the publisher was not cut off after max_continuous_duration")
	}
	testenv.Eventually(t, 5*time.Second, func() bool { return e.stream(id)["status"] == "idle" }, "stream not idle after max_continuous_duration")
	if a := e.asset(s.Asset.ID); a["status"] != "ready" {
		t.Fatalf("asset %v", a)
	}
}

// TestLeaseLoss: the owner renews the stream lease while media flows. If Redis loses the
// lease record (a restart without persistence) the owner takes it again and the publisher goes
// on; if another holder has it, the owner stops writing at once (nothing more reaches the
// recording) and drops its publisher.
func TestLeaseLoss(t *testing.T) {
	for _, c := range []struct {
		name   string
		stolen bool
	}{{"record lost", false}, {"taken by another holder", true}} {
		t.Run(c.name, func(t *testing.T) {
			rdb, prefix := testenv.Redis(t)
			e := startWith(t, testenv.OpenSQL(t, testenv.SQLBackends(t)[0]), testenv.Kafka(t), rdb, prefix, t.TempDir(),
				func(c *livestream.Config) { c.SweepInterval = time.Minute }) // the sweeper stays out of it
			ls := e.create(`{"playback_policy":"public"}`)
			id, key := ls["id"].(string), ls["stream_key"].(string)
			ctx := context.Background()
			kicked := make(chan struct{}, 1)
			s, err := e.svc.Sessions().Begin(ctx, key, session.Publisher{Kick: func() {
				select {
				case kicked <- struct{}{}:
				default:
				}
			}})
			if err != nil {
				t.Fatal(err)
			}
			feed(t, s, 0, 1500*time.Millisecond)
			leases, tokens := prefix+"{livestream}:leases", prefix+"{livestream}:lease-tokens"
			if c.stolen {
				rdb.HSet(ctx, tokens, id, "someone-else")
			} else {
				rdb.Del(ctx, leases, tokens)
			}
			vod := filepath.Join(e.dir, s.Asset.ID, "vod.m3u8")
			before, _ := os.ReadFile(vod)
			var writeErr error
			for ts := 1750 * time.Millisecond; ts < 5*time.Second && writeErr == nil; ts += 250 * time.Millisecond {
				writeErr = s.WritePacket(frame(ts))
				time.Sleep(100 * time.Millisecond)
			}
			after, _ := os.ReadFile(vod)
			select {
			case <-kicked:
				if !c.stolen {
					t.Fatal("the publisher was dropped although nobody else held the lease")
				}
			default:
				if c.stolen {
					t.Fatal("the publisher kept going without the lease")
				}
			}
			if c.stolen {
				if !errors.Is(writeErr, hls.ErrFinished) {
					t.Fatalf("writing after the lease was lost: %v", writeErr)
				}
				time.Sleep(time.Second)
				if err := s.WritePacket(frame(10 * time.Second)); !errors.Is(err, hls.ErrFinished) {
					t.Fatalf("writing after the lease was lost: %v", err)
				}
				if later, _ := os.ReadFile(vod); !bytes.Equal(later, after) {
					t.Fatalf("the playlist changed after the owner gave up:\n%s\nthen\n%s", after, later)
				}
				return
			}
			if writeErr != nil || bytes.Equal(before, after) {
				t.Fatalf("the recording stopped: %v", writeErr)
			}
			if tok, _ := rdb.HGet(ctx, tokens, id).Result(); tok == "" {
				t.Fatal("the owner did not take its lease again")
			}
			if err := s.End(ctx); err != nil {
				t.Fatal(err)
			}
			if n, _ := rdb.ZCard(ctx, leases).Result(); n != 0 {
				t.Fatalf("%d leases left after the end", n)
			}
		})
	}
}

// TestReconnectTimerFiresOnTime: the timer loop sleeps until the earliest timer and is woken
// when its own instance schedules one, so with a 10 s TimerTick a 1 s reconnect_window still
// ends the recording about 1 s after the disconnect.
func TestReconnectTimerFiresOnTime(t *testing.T) {
	b := testenv.SQLBackends(t)[0]
	rdb, prefix := testenv.Redis(t)
	e := startWith(t, testenv.OpenSQL(t, b), testenv.Kafka(t), rdb, prefix, t.TempDir(),
		func(c *livestream.Config) { c.TimerTick = 10 * time.Second })
	ls := e.create(`{"playback_policy":"public","reconnect_window":1}`)
	id, key := ls["id"].(string), ls["stream_key"].(string)
	publish(t, e, key, 2*time.Second, false)
	gone := time.Now()
	testenv.Eventually(t, 8*time.Second, func() bool { return e.stream(id)["status"] == "idle" }, "stream never went idle")
	if d := time.Since(gone); d < time.Second || d > 3*time.Second {
		t.Fatalf("idle %v after the disconnect, want about the 1 s reconnect_window (TimerTick is 10 s)", d)
	}
}
