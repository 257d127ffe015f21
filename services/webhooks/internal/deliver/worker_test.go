package deliver

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/spacecast/spacecast/libs/sqldb"
	"github.com/spacecast/spacecast/libs/ssrf"
	"github.com/spacecast/spacecast/libs/testenv"
	"github.com/spacecast/spacecast/libs/timers"
	"github.com/spacecast/spacecast/services/webhooks/internal/signing"
	"github.com/spacecast/spacecast/services/webhooks/internal/store"
)

// TestStopMidBurstRecordsEveryAttemptSent: attempts are handed to the group commit without
// waiting for it, so the worker is stopped in the middle of a burst to one endpoint. Every
// delivery the receiver got is recorded as succeeded by the time Run returns (nothing handed
// to the commit is dropped), and the state in SQL and Redis agree for every delivery: a
// succeeded one has no timer left, a pending one still has its timer (it comes back: at least
// once).
func TestStopMidBurstRecordsEveryAttemptSent(t *testing.T) {
	ctx := context.Background()
	dsn := "sqlite:" + filepath.Join(t.TempDir(), "webhooks.db")
	db, err := sqldb.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	rdb, prefix := testenv.Redis(t)
	queue, err := timers.New(rdb, prefix+"due")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	got := map[string]bool{}
	half := make(chan struct{})
	const n = 400
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var b struct {
			ID string `json:"id"`
		}
		_ = json.NewDecoder(r.Body).Decode(&b)
		mu.Lock()
		got[b.ID] = true
		if len(got) == n/2 {
			close(half)
		}
		mu.Unlock()
		time.Sleep(time.Millisecond)
		w.WriteHeader(204)
	}))
	defer srv.Close()
	ep, err := st.CreateEndpoint(ctx, store.Endpoint{ID: "ep", EnvironmentID: "env", URL: srv.URL, Events: []string{}, Enabled: true, Secret: signing.NewSecret()})
	if err != nil {
		t.Fatal(err)
	}
	var ds []store.Delivery
	var due []timers.Timer
	for i := range n {
		ev := fmt.Sprintf("ev%03d", i)
		ds = append(ds, store.Delivery{ID: "d-" + ev, EndpointID: ep.ID, EnvironmentID: "env", EventID: ev, EventType: "t", Payload: json.RawMessage(`{"id":"` + ev + `"}`)})
		due = append(due, timers.Timer{Member: Member(ep.ID, "d-"+ev), Due: time.Now()})
	}
	if _, err := st.CreateDeliveries(ctx, ds); err != nil {
		t.Fatal(err)
	}
	if err := queue.ScheduleAll(ctx, due...); err != nil {
		t.Fatal(err)
	}
	guard, err := ssrf.New([]string{"127.0.0.0/8"})
	if err != nil {
		t.Fatal(err)
	}
	w := NewWorker(WorkerConfig{Store: st, Queue: queue, Sender: NewSender(guard, 5*time.Second), Log: testenv.Logger(t), PerEndpoint: 4, Lease: 30 * time.Second})
	runCtx, stop := context.WithCancel(ctx)
	ran := make(chan error, 1)
	go func() { ran <- w.Run(runCtx) }()
	select {
	case <-half:
	case <-time.After(30 * time.Second):
		t.Fatal("the receiver did not get half of the burst in 30 s")
	}
	stop()
	if err := <-ran; err != nil {
		t.Fatal(err)
	}
	// What was not committed when Run returned is lost with the database closed now.
	db.Close()
	if db, err = sqldb.Open(ctx, dsn); err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if st, err = store.Open(ctx, db); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	sent := len(got)
	mu.Unlock()
	if sent >= n {
		t.Fatalf("the whole burst was sent before the stop (%d); the test needs a stop in the middle", sent)
	}
	succeeded := 0
	for _, d := range ds {
		row, err := st.GetDelivery(ctx, d.ID)
		if err != nil {
			t.Fatal(err)
		}
		_, timer, err := queue.Due(ctx, Member(ep.ID, d.ID))
		if err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		received := got[d.EventID]
		mu.Unlock()
		switch {
		case received && (row.Status != store.StatusSucceeded || row.AttemptCount != 1 || timer):
			t.Fatalf("%s was received but is %s with %d attempts, timer left %v; want succeeded, recorded once, no timer", d.ID, row.Status, row.AttemptCount, timer)
		case !received && (row.Status != store.StatusPending || !timer):
			t.Fatalf("%s was never sent but is %s, timer left %v; want pending with its timer", d.ID, row.Status, timer)
		}
		if row.Status == store.StatusSucceeded {
			succeeded++
		}
	}
	if succeeded != sent {
		t.Fatalf("%d succeeded in SQL, %d received", succeeded, sent)
	}
}
