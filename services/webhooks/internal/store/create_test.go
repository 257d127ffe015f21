package store

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/spacecast/spacecast/libs/testenv"
)

// TestCreateDeliveriesManyRows: deliveries are written many rows per statement; an event read
// again keeps its deliveries as they are (their ids, and not pending once over), new ones in
// the same batch are inserted, and what comes back is every delivery still pending.
func TestCreateDeliveriesManyRows(t *testing.T) {
	for _, b := range testenv.SQLBackends(t) {
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			s := open(t, b)
			mk := func(id string, ev, ep int) Delivery {
				e := fmt.Sprintf("ev%d", ev)
				return Delivery{ID: id, EndpointID: fmt.Sprintf("ep%d", ep), EnvironmentID: "env", EventID: e, EventType: "t", Payload: json.RawMessage(`{"id":"` + e + `"}`)}
			}
			var first []Delivery
			for ev := 0; ev < 12; ev++ { // 36 rows: more than one statement's worth on SQLite
				for ep := 0; ep < 3; ep++ {
					first = append(first, mk(fmt.Sprintf("a-%d-%d", ev, ep), ev, ep))
				}
			}
			pending, err := s.CreateDeliveries(ctx, first)
			if err != nil || len(pending) != len(first) {
				t.Fatalf("first batch: %d pending, %v; want %d", len(pending), err, len(first))
			}
			if err := s.RecordAttempts(ctx, []Recorded{{Delivery: first[0], Outcome: Outcome{Attempt: Attempt{AtNS: 1, StatusCode: 204}, Status: StatusSucceeded}}}); err != nil {
				t.Fatal(err)
			}
			// The same events read again (new ids, as the dispatcher makes), plus 30 new rows.
			var again []Delivery
			for ev := 0; ev < 22; ev++ {
				for ep := 0; ep < 3; ep++ {
					again = append(again, mk(fmt.Sprintf("b-%d-%d", ev, ep), ev, ep))
				}
			}
			pending, err = s.CreateDeliveries(ctx, again)
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]bool{}
			for _, p := range pending {
				got[p.ID] = true
			}
			if len(pending) != 35+30 || got["a-0-0"] || got["b-0-0"] || !got["a-11-2"] || got["b-11-2"] || !got["b-12-0"] || !got["b-21-2"] {
				t.Fatalf("second batch: %d pending (%v); want the 35 first ones still pending under their ids and the 30 new", len(pending), got)
			}
			if d, err := s.GetDelivery(ctx, "b-21-2"); err != nil || string(d.Payload) != `{"id":"ev21"}` || d.EndpointID != "ep2" || d.Status != StatusPending {
				t.Fatalf("b-21-2: %+v, %v", d, err)
			}
			if _, err := s.GetDelivery(ctx, "b-3-1"); err != ErrNotFound {
				t.Fatalf("a duplicate of an existing delivery was stored: %v", err)
			}
		})
	}
}
