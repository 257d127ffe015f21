package deliver

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/spacecast/spacecast/libs/testenv"
	"github.com/spacecast/spacecast/libs/timers"
	"github.com/spacecast/spacecast/services/webhooks/internal/store"
)

// TestLoadReadsOnlyWhatHasRoom: load gives the claimed deliveries of endpoints with room
// their rows (fresh ones from memory, others from SQL), drops (and finishes the timers of)
// deliveries that are gone or no longer pending, and neither reads nor finishes the deliveries
// of a saturated endpoint: they keep their timers and go back to Redis in admit.
func TestLoadReadsOnlyWhatHasRoom(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, testenv.SQLite(t))
	if err != nil {
		t.Fatal(err)
	}
	rdb, prefix := testenv.Redis(t)
	queue, err := timers.New(rdb, prefix+"due")
	if err != nil {
		t.Fatal(err)
	}
	mk := func(id, ep, ev string) store.Delivery {
		return store.Delivery{ID: id, EndpointID: ep, EnvironmentID: "env", EventID: ev, EventType: "t", Payload: json.RawMessage(`{"id":"` + ev + `"}`)}
	}
	// d-old is in SQL only (inserted before KeepFresh); d-new is fresh; d-done has succeeded.
	if _, err := st.CreateDeliveries(ctx, []store.Delivery{mk("d-old", "ok", "e1"), mk("d-done", "ok", "e2"), mk("d-dead", "dead", "e3")}); err != nil {
		t.Fatal(err)
	}
	st.KeepFresh(time.Minute)
	if _, err := st.CreateDeliveries(ctx, []store.Delivery{mk("d-new", "ok", "e4")}); err != nil {
		t.Fatal(err)
	}
	if err := st.RecordAttempts(ctx, []store.Recorded{{Delivery: mk("d-done", "ok", "e2"), Outcome: store.Outcome{Attempt: store.Attempt{AtNS: 1, StatusCode: 204}, Status: store.StatusSucceeded}}}); err != nil {
		t.Fatal(err)
	}
	members := []string{Member("ok", "d-old"), Member("ok", "d-new"), Member("ok", "d-done"), Member("ok", "d-gone"), Member("dead", "d-dead")}
	for _, m := range members {
		if err := queue.Schedule(ctx, m, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	w := NewWorker(WorkerConfig{Store: st, Queue: queue, Log: testenv.Logger(t), PerEndpoint: 2})
	w.eps["dead"] = &endpointQueue{busy: 2, started: time.Now(), waiting: make([]held, w.depth("dead"))}
	got := map[string]held{}
	for _, h := range w.load(ctx, members) {
		got[h.member] = h
	}
	if len(got) != 3 {
		t.Fatalf("load kept %v, want d-old, d-new, d-dead", got)
	}
	for _, id := range []string{"d-old", "d-new"} {
		h, ok := got[Member("ok", id)]
		if !ok || h.d == nil || h.d.ID != id || h.d.Status != store.StatusPending || string(h.d.Payload) == "" {
			t.Fatalf("%s: %+v", id, h)
		}
	}
	if h := got[Member("dead", "d-dead")]; h.d != nil {
		t.Fatalf("a saturated endpoint's delivery was read: %+v", h.d)
	}
	for m, want := range map[string]bool{Member("ok", "d-done"): false, Member("ok", "d-gone"): false, Member("dead", "d-dead"): true, Member("ok", "d-old"): true} {
		if _, ok, err := queue.Due(ctx, m); err != nil || ok != want {
			t.Fatalf("timer of %s present = %v (%v), want %v", m, ok, err, want)
		}
	}
}
