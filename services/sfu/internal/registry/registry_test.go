package registry_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/spacecast/spacecast/libs/embedded"
	"github.com/spacecast/spacecast/libs/redisconn"
	"github.com/spacecast/spacecast/libs/testenv"
	"github.com/spacecast/spacecast/services/sfu/internal/registry"
)

// backends runs f against the embedded Redis (miniredis, as dev mode uses) and, with
// SPACECAST_TEST_REDIS_URL, against that real server: the scripts must behave the same.
func backends(t *testing.T, f func(t *testing.T, rdb redis.UniversalClient, prefix string)) {
	t.Run("miniredis", func(t *testing.T) {
		srv, err := embedded.StartRedis("127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(srv.Close)
		rdb, err := redisconn.Open(context.Background(), srv.URL())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { rdb.Close() })
		f(t, rdb, "t:")
	})
	t.Run("redis", func(t *testing.T) {
		if os.Getenv(testenv.RedisURLEnv) == "" {
			t.Skipf("%s not set", testenv.RedisURLEnv)
		}
		rdb, prefix := testenv.Redis(t)
		f(t, rdb, prefix)
	})
}

// testEvent is an envelope-shaped event; with occupancy its data holds the marker.
func testEvent(id string, occupancy bool) registry.Event {
	data := `{"space_id":"sp","id":"` + id + `"}`
	if occupancy {
		data = `{"space_id":"sp",` + registry.OccupancyMarker + `,"node_id":"n1"}`
	}
	return registry.Event{JSON: []byte(`{"id":"` + id + `","subject":"sp","data":` + data + `}`), Occupancy: occupancy}
}

// filled is ev's JSON as the script must append it after deciding occ.
func filled(ev registry.Event, occ registry.Occupancy) string {
	return strings.Replace(string(ev.JSON), registry.OccupancyMarker,
		fmt.Sprintf(`"space_participants":%d,"space_seq":%d`, occ.Participants, occ.Seq), 1)
}

// The join and leave scripts decide the occupancy after each change and append each change's
// events, with that occupancy filled in, to the space's stream in the same step; refused
// changes append nothing; the sequence only grows, also across a Redis that lost its data.
func TestOccupancyAndEvents(t *testing.T) {
	backends(t, func(t *testing.T, rdb redis.UniversalClient, prefix string) {
		ctx := context.Background()
		r, err := registry.New(rdb, prefix)
		if err != nil {
			t.Fatal(err)
		}
		stream := prefix + "{space:sp}:events"
		var want []string // the stream's expected entries, oldest first
		check := func(what string) {
			t.Helper()
			msgs, err := rdb.XRange(ctx, stream, "-", "+").Result()
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, m := range msgs {
				if len(m.Values) != 1 {
					t.Fatalf("%s: stream entry %v, want one field", what, m.Values)
				}
				got = append(got, fmt.Sprint(m.Values["e"]))
			}
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Fatalf("%s: stream\n%s\nwant\n%s", what, strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
		}
		part := func(id, node string) registry.Participant {
			return registry.Participant{SpaceID: "sp", ParticipantID: id, ConnectionID: "c-" + id, NodeID: node, EnvironmentID: "env"}
		}
		var last int64
		next := func(what string, occ registry.Occupancy, wantN int) {
			t.Helper()
			if occ.Participants != wantN || occ.Seq <= last {
				t.Fatalf("%s: occupancy %+v, want %d participants and seq > %d", what, occ, wantN, last)
			}
			last = occ.Seq
		}
		a, b := part("a", "n1"), part("b", "n1")
		ev := testEvent("join-a", true)
		occ, err := r.Claim(ctx, a, ev)
		if err != nil {
			t.Fatal(err)
		}
		next("first join", occ, 1)
		want = append(want, filled(ev, occ))
		check("first join")
		ev = testEvent("join-b", true)
		occ, err = r.Claim(ctx, b, ev)
		if err != nil {
			t.Fatal(err)
		}
		next("second join", occ, 2)
		want = append(want, filled(ev, occ))
		check("second join")

		// Refused claims append nothing.
		dup := a
		dup.ConnectionID = "c-a2"
		if _, err := r.Claim(ctx, dup, testEvent("join-dup", true)); !errors.Is(err, registry.ErrDuplicate) {
			t.Fatalf("duplicate claim = %v", err)
		}
		if _, err := r.Claim(ctx, part("x", "n2"), testEvent("join-x", true)); !errors.Is(err, registry.ErrWrongNode) {
			t.Fatalf("claim on another node = %v", err)
		}
		if _, err := r.Claim(ctx, part("y", "n1"), registry.Event{JSON: []byte(`{"data":{}}`), Occupancy: true}); !errors.Is(err, registry.ErrNoOccupancy) {
			t.Fatalf("claim with an event without the occupancy marker = %v", err)
		}
		if _, vacant, err := r.Vacant(ctx, "sp", testEvent("vacated-early", true)); err != nil || vacant {
			t.Fatalf("occupied space vacant=%v err=%v", vacant, err)
		}
		check("refused changes")

		// Tracks: publish appends its event, a mute change none, unpublish one (once).
		tr := registry.Track{TrackID: "t1", Kind: "audio", Source: "microphone"}
		ev = testEvent("published", false)
		if err := r.SetTrack(ctx, "sp", a.ConnectionID, tr, ev); err != nil {
			t.Fatal(err)
		}
		want = append(want, string(ev.JSON))
		tr.Muted = true
		if err := r.SetTrack(ctx, "sp", a.ConnectionID, tr); err != nil {
			t.Fatal(err)
		}
		if ts, _ := r.Tracks(ctx, "sp", a.ConnectionID); len(ts) != 1 || !ts[0].Muted {
			t.Fatalf("tracks %+v", ts)
		}
		check("track published and muted")
		ev = testEvent("unpublished", false)
		if removed, err := r.RemoveTrack(ctx, "sp", a.ConnectionID, "t1", ev); err != nil || !removed {
			t.Fatalf("remove track = %v %v", removed, err)
		}
		want = append(want, string(ev.JSON))
		if removed, err := r.RemoveTrack(ctx, "sp", a.ConnectionID, "t1", testEvent("unpublished-again", false)); err != nil || removed {
			t.Fatalf("second remove track = %v %v", removed, err)
		}
		if err := r.SetTrack(ctx, "sp", a.ConnectionID, tr, testEvent("occupancy", true)); !errors.Is(err, registry.ErrNoOccupancy) {
			t.Fatalf("track event with occupancy = %v", err)
		}
		check("track unpublished")

		// A release appends its events in order (the left one with the occupancy after it);
		// releasing again appends nothing.
		if err := r.SetTrack(ctx, "sp", a.ConnectionID, tr); err != nil {
			t.Fatal(err)
		}
		unpub, left := testEvent("orphan-unpublished", false), testEvent("left-a", true)
		occ, ok, err := r.Release(ctx, a, unpub, left)
		if err != nil || !ok {
			t.Fatalf("release = %+v %v %v", occ, ok, err)
		}
		next("leave", occ, 1)
		want = append(want, string(unpub.JSON), filled(left, occ))
		if ts, _ := r.Tracks(ctx, "sp", a.ConnectionID); len(ts) != 0 {
			t.Fatalf("tracks after release %+v", ts)
		}
		if _, ok, err := r.Release(ctx, a, testEvent("left-a-again", true)); err != nil || ok {
			t.Fatalf("second release ok=%v err=%v", ok, err)
		}
		check("leave")
		left = testEvent("left-b", true)
		occ, ok, err = r.Release(ctx, b, left)
		if err != nil || !ok {
			t.Fatal(ok, err)
		}
		next("last leave", occ, 0)
		want = append(want, filled(left, occ))
		if node, _ := r.SpaceNode(ctx, "sp"); node != "" {
			t.Fatalf("empty space still hosted by %q", node)
		}
		ev = testEvent("vacated", true)
		occ, vacant, err := r.Vacant(ctx, "sp", ev)
		if err != nil || !vacant {
			t.Fatalf("empty space vacant=%v err=%v", vacant, err)
		}
		next("vacancy", occ, 0)
		want = append(want, filled(ev, occ))
		check("last leave and vacancy")

		// Redis loses everything (dev mode restart): the sequence still grows (clock floor).
		if err := rdb.Del(ctx, prefix+"{space:sp}:seq", prefix+"{space:sp}:participants", stream).Err(); err != nil {
			t.Fatal(err)
		}
		want = nil
		ev = testEvent("join-c", true)
		occ, err = r.Claim(ctx, part("c", "n2"), ev)
		if err != nil {
			t.Fatal(err)
		}
		next("join after Redis lost its data", occ, 1)
		want = append(want, filled(ev, occ))
		check("join after Redis lost its data")
	})
}

// One relay at a time reads a space's stream, oldest first; acknowledged events are deleted;
// an emptied stream releases the lock; a dead node's lock can be broken.
func TestEventStreamRelayLock(t *testing.T) {
	backends(t, func(t *testing.T, rdb redis.UniversalClient, prefix string) {
		ctx := context.Background()
		r, err := registry.New(rdb, prefix)
		if err != nil {
			t.Fatal(err)
		}
		if evs, held, err := r.TakeEvents(ctx, "sp", "n1", 10e9, 10); err != nil || !held || len(evs) != 0 {
			t.Fatalf("take from an empty stream = %v %v %v", evs, held, err)
		}
		for i := range 3 {
			if err := r.SetTrack(ctx, "sp", "c1", registry.Track{TrackID: fmt.Sprint(i)}, testEvent(fmt.Sprint("ev", i), false)); err != nil {
				t.Fatal(err)
			}
		}
		evs, held, err := r.TakeEvents(ctx, "sp", "n1", 10e9, 2)
		if err != nil || !held || len(evs) != 2 || string(evs[0].JSON) != string(testEvent("ev0", false).JSON) ||
			string(evs[1].JSON) != string(testEvent("ev1", false).JSON) {
			t.Fatalf("take = %v %v %v", evs, held, err)
		}
		if _, held, err := r.TakeEvents(ctx, "sp", "n2", 10e9, 10); err != nil || held {
			t.Fatalf("a second relay took the stream: held=%v err=%v", held, err)
		}
		if n, err := r.AckEvents(ctx, "sp", "n1", []string{evs[0].ID, evs[1].ID}); err != nil || n != 1 {
			t.Fatalf("ack = %d %v, want 1 left", n, err)
		}
		// n1 dies holding the lock: its cleaner breaks it and takes the rest.
		if err := r.BreakRelayLock(ctx, "sp", "n2"); err != nil {
			t.Fatal(err)
		}
		if _, held, _ := r.TakeEvents(ctx, "sp", "n2", 10e9, 10); held {
			t.Fatal("breaking another node's lock released n1's")
		}
		if err := r.BreakRelayLock(ctx, "sp", "n1"); err != nil {
			t.Fatal(err)
		}
		evs, held, err = r.TakeEvents(ctx, "sp", "n2", 10e9, 10)
		if err != nil || !held || len(evs) != 1 || string(evs[0].JSON) != string(testEvent("ev2", false).JSON) {
			t.Fatalf("take after breaking the lock = %v %v %v", evs, held, err)
		}
		if n, err := r.AckEvents(ctx, "sp", "n2", []string{evs[0].ID}); err != nil || n != 0 {
			t.Fatalf("last ack = %d %v", n, err)
		}
		if n, err := rdb.Exists(ctx, prefix+"{space:sp}:events", prefix+"{space:sp}:relay").Result(); err != nil || n != 0 {
			t.Fatalf("emptied stream and its lock: %d keys left (%v)", n, err)
		}
		if _, held, _ := r.TakeEvents(ctx, "sp", "n1", 10e9, 10); !held {
			t.Fatal("the lock was not released with the emptied stream")
		}
	})
}
