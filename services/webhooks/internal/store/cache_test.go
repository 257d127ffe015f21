package store

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/spacecast/spacecast/libs/testenv"
)

func open(t *testing.T, b testenv.SQLBackend) *Store {
	t.Helper()
	s, err := Open(context.Background(), testenv.OpenSQL(t, b))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestTakeFresh: a delivery just inserted is handed out once from memory, only within the
// window, and never after its row changed (an attempt recorded, a redelivery, abandoned);
// deliveries it did not insert (an event read again) are not.
func TestTakeFresh(t *testing.T) {
	for _, b := range testenv.SQLBackends(t) {
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			s := open(t, b)
			ep, err := s.CreateEndpoint(ctx, Endpoint{ID: "ep1", EnvironmentID: "env", URL: "https://r.example", Events: []string{}, Enabled: true, Secret: "s"})
			if err != nil {
				t.Fatal(err)
			}
			mk := func(id, ev string) Delivery {
				return Delivery{ID: id, EndpointID: ep.ID, EnvironmentID: "env", EventID: ev, EventType: "video.space.created", Payload: json.RawMessage(`{"id":"` + ev + `"}`)}
			}
			// Without KeepFresh nothing is remembered.
			if _, err := s.CreateDeliveries(ctx, []Delivery{mk("d0", "e0")}); err != nil {
				t.Fatal(err)
			}
			if _, ok := s.TakeFresh("d0"); ok {
				t.Fatal("TakeFresh found a delivery without KeepFresh")
			}
			s.KeepFresh(300 * time.Millisecond)
			if _, err := s.CreateDeliveries(ctx, []Delivery{mk("d1", "e1"), mk("d2", "e2"), mk("d3", "e3"), mk("d4", "e4")}); err != nil {
				t.Fatal(err)
			}
			// Read again: the same event for the same endpoint keeps the first delivery.
			if p, err := s.CreateDeliveries(ctx, []Delivery{mk("d1-again", "e1")}); err != nil || len(p) != 1 || p[0].ID != "d1" {
				t.Fatalf("re-read = %v, %v", p, err)
			}
			if _, ok := s.TakeFresh("d1-again"); ok {
				t.Fatal("a delivery that was not inserted came from memory")
			}
			d, ok := s.TakeFresh("d1")
			stored, err := s.GetDelivery(ctx, "d1")
			if err != nil || !ok {
				t.Fatalf("TakeFresh(d1) = %v; GetDelivery: %v", ok, err)
			}
			if d.Status != StatusPending || d.AttemptCount != 0 || len(d.Attempts) != 0 || string(d.Payload) != string(stored.Payload) ||
				d.EventID != stored.EventID || d.EventType != stored.EventType || d.EndpointID != stored.EndpointID || d.CreatedAt != stored.CreatedAt {
				t.Fatalf("fresh %+v, stored %+v", d, stored)
			}
			if _, ok := s.TakeFresh("d1"); ok {
				t.Fatal("TakeFresh handed out d1 twice")
			}
			o := Outcome{Attempt: Attempt{AtNS: time.Now().UnixNano(), StatusCode: 500}, Status: StatusPending, Next: time.Now().Add(time.Second), Failing: true}
			if err := s.RecordAttempts(ctx, []Recorded{{Delivery: mk("d2", "e2"), Outcome: o}}); err != nil {
				t.Fatal(err)
			}
			if err := s.Redeliver(ctx, ep.ID, "d3"); err != nil {
				t.Fatal(err)
			}
			if err := s.Abandon(ctx, "d4"); err != nil {
				t.Fatal(err)
			}
			for _, id := range []string{"d2", "d3", "d4"} {
				if _, ok := s.TakeFresh(id); ok {
					t.Fatalf("TakeFresh(%s) after its row changed", id)
				}
			}
			if _, err := s.CreateDeliveries(ctx, []Delivery{mk("d5", "e5")}); err != nil {
				t.Fatal(err)
			}
			time.Sleep(350 * time.Millisecond)
			if _, ok := s.TakeFresh("d5"); ok {
				t.Fatal("TakeFresh handed out a delivery older than the window")
			}
		})
	}
}

// TestCachedEndpointSeesOwnChanges: every change made through the store is seen at once by
// CachedEndpoint; the failure state follows the recorded outcomes whatever the cache held.
func TestCachedEndpointSeesOwnChanges(t *testing.T) {
	for _, b := range testenv.SQLBackends(t) {
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			s := open(t, b)
			if _, err := s.CachedEndpoint(ctx, "ep1"); err != ErrNotFound {
				t.Fatalf("missing endpoint: %v", err)
			}
			ep, err := s.CreateEndpoint(ctx, Endpoint{ID: "ep1", EnvironmentID: "env", URL: "https://a.example", Events: []string{}, Enabled: true, Secret: "s1"})
			if err != nil {
				t.Fatal(err)
			}
			get := func() Endpoint {
				t.Helper()
				e, err := s.CachedEndpoint(ctx, "ep1")
				if err != nil {
					t.Fatal(err)
				}
				return e
			}
			if e := get(); e.URL != "https://a.example" {
				t.Fatalf("after create: %+v", e)
			}
			ep.URL, ep.RateLimit = "https://b.example", 7
			if err := s.UpdateEndpoint(ctx, ep); err != nil {
				t.Fatal(err)
			}
			if e := get(); e.URL != "https://b.example" || e.RateLimit != 7 {
				t.Fatalf("after update: %+v", e)
			}
			if err := s.RotateSecret(ctx, "env", "ep1", "s2", time.Now().Add(time.Hour)); err != nil {
				t.Fatal(err)
			}
			if e := get(); e.Secret != "s2" || e.PreviousSecret != "s1" {
				t.Fatalf("after rotation: %+v", e)
			}
			d := Delivery{ID: "d1", EndpointID: "ep1", EnvironmentID: "env", EventID: "e1", EventType: "t", Payload: json.RawMessage(`{}`)}
			if _, err := s.CreateDeliveries(ctx, []Delivery{d}); err != nil {
				t.Fatal(err)
			}
			at := time.Now().UnixNano()
			fail := Outcome{Attempt: Attempt{AtNS: at, StatusCode: 500}, Status: StatusPending, Next: time.Now().Add(time.Second), Failing: true}
			ok := Outcome{Attempt: Attempt{AtNS: at + 1, StatusCode: 204}, Status: StatusSucceeded}
			if err := s.RecordAttempts(ctx, []Recorded{{Delivery: d, Outcome: fail}, {Delivery: d, Outcome: fail}}); err != nil {
				t.Fatal(err)
			}
			if e := get(); e.FailingSince != at {
				t.Fatalf("after failures: failing since %d, want %d", e.FailingSince, at)
			}
			if err := s.RecordAttempts(ctx, []Recorded{{Delivery: d, Outcome: fail}, {Delivery: d, Outcome: ok}}); err != nil {
				t.Fatal(err)
			}
			if e := get(); e.FailingSince != 0 {
				t.Fatalf("after a success: failing since %d", e.FailingSince)
			}
			if err := s.RecordAttempts(ctx, []Recorded{{Delivery: d, Outcome: ok}, {Delivery: d, Outcome: fail}}); err != nil {
				t.Fatal(err)
			}
			if e := get(); e.FailingSince != at {
				t.Fatalf("after success then failure: failing since %d, want %d", e.FailingSince, at)
			}
			gone := fail
			gone.Disable = "gone"
			if err := s.RecordAttempts(ctx, []Recorded{{Delivery: d, Outcome: gone}}); err != nil {
				t.Fatal(err)
			}
			if e := get(); e.Enabled || e.DisabledReason == nil || *e.DisabledReason != "gone" {
				t.Fatalf("after disabling: %+v", e)
			}
			// Seven attempts recorded, two or one per batch, in order; the last outcome holds.
			got, err := s.GetDelivery(ctx, "d1")
			if err != nil {
				t.Fatal(err)
			}
			if got.AttemptCount != 7 || len(got.Attempts) != 7 || got.Status != StatusPending || got.Attempts[3].StatusCode != 204 || got.Attempts[2].StatusCode != 500 {
				t.Fatalf("delivery after 7 attempts: count %d, %d attempts, status %s: %+v", got.AttemptCount, len(got.Attempts), got.Status, got.Attempts)
			}
			if err := s.DeleteEndpoint(ctx, "env", "ep1"); err != nil {
				t.Fatal(err)
			}
			if _, err := s.CachedEndpoint(ctx, "ep1"); err != ErrNotFound {
				t.Fatalf("after delete: %v", err)
			}
		})
	}
}

// TestGetDeliveries: the claimed deliveries are read in one go, each with its payload and its
// attempts in order, the same as GetDelivery reads one; ids that do not exist are left out.
func TestGetDeliveries(t *testing.T) {
	for _, b := range testenv.SQLBackends(t) {
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			s := open(t, b)
			var ds []Delivery
			for i, ev := range []string{"e1", "e2", "e3"} {
				ds = append(ds, Delivery{ID: "d" + ev, EndpointID: "ep" + string(rune('1'+i%2)), EnvironmentID: "env", EventID: ev, EventType: "t", Payload: json.RawMessage(`{"id":"` + ev + `"}`)})
			}
			if _, err := s.CreateDeliveries(ctx, ds); err != nil {
				t.Fatal(err)
			}
			at := time.Now().UnixNano()
			for i := 0; i < 3; i++ {
				o := Outcome{Attempt: Attempt{AtNS: at + int64(i), StatusCode: 500 + i}, Status: StatusPending, Next: time.Now().Add(time.Second), Failing: true}
				if err := s.RecordAttempts(ctx, []Recorded{{Delivery: ds[1], Outcome: o}}); err != nil {
					t.Fatal(err)
				}
			}
			got, err := s.GetDeliveries(ctx, []string{"de1", "de2", "de3", "missing"})
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 3 {
				t.Fatalf("got %d deliveries, want 3: %v", len(got), got)
			}
			for _, id := range []string{"de1", "de2", "de3"} {
				one, err := s.GetDelivery(ctx, id)
				if err != nil {
					t.Fatal(err)
				}
				g := got[id]
				if string(g.Payload) != string(one.Payload) || g.AttemptCount != one.AttemptCount || g.Status != one.Status || len(g.Attempts) != len(one.Attempts) || g.EndpointID != one.EndpointID {
					t.Fatalf("%s: GetDeliveries %+v, GetDelivery %+v", id, g, one)
				}
				for i := range g.Attempts {
					if g.Attempts[i].StatusCode != one.Attempts[i].StatusCode {
						t.Fatalf("%s attempt %d: %d, want %d", id, i, g.Attempts[i].StatusCode, one.Attempts[i].StatusCode)
					}
				}
			}
			if a := got["de2"].Attempts; len(a) != 3 || a[0].StatusCode != 500 || a[2].StatusCode != 502 {
				t.Fatalf("de2 attempts %+v", a)
			}
		})
	}
}
