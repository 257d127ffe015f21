package store_test

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spacecast/spacecast/libs/sqldb"
	"github.com/spacecast/spacecast/libs/testenv"
	"github.com/spacecast/spacecast/services/spaces-api/internal/resource"
	"github.com/spacecast/spacecast/services/spaces-api/internal/store"
)

// TestGroupedCreates: creates that wait while the writer is busy commit in shared batches; one that
// fails (an unknown live stream before any write, a second broadcast after the space and the
// first broadcast were written) fails alone and leaves no row and no event, the others of its
// batch are created with their events.
func TestGroupedCreates(t *testing.T) {
	for _, b := range testenv.SQLBackends(t) {
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			db := testenv.OpenSQL(t, b)
			st, err := store.Open(ctx, db, resource.Renderers)
			if err != nil {
				t.Fatal(err)
			}
			if err := st.LiveStreamCreated(ctx, "ls1", "envA"); err != nil {
				t.Fatal(err)
			}
			one := []store.NewBroadcast{{LiveStreamID: "ls1", Layout: "gallery", Resolution: "1920x1080"}}
			cases := []struct {
				broadcasts []store.NewBroadcast
				want       error
			}{
				{nil, nil},
				{[]store.NewBroadcast{{LiveStreamID: "nope", Layout: "gallery", Resolution: "1920x1080"}}, store.ErrUnknownLiveStream},
				{one, nil},
				{append(one, one[0]), store.ErrBroadcastExists},
				{nil, nil},
				{one, nil},
				{nil, nil},
				{one, nil},
			}
			// Hold the writer (SQLite: the write queue; PostgreSQL: the spaces table) until every
			// create waits: in the batch the committer took (blocked by the lock), and in the
			// next one.
			locked, release, unlocked := make(chan struct{}), make(chan struct{}), make(chan error, 1)
			go func() {
				unlocked <- db.InTx(ctx, func(tx *sql.Tx) error {
					if db.Dialect == sqldb.Postgres {
						if _, err := tx.ExecContext(ctx, `LOCK TABLE spaces IN EXCLUSIVE MODE`); err != nil {
							close(locked)
							return err
						}
					}
					close(locked)
					<-release
					return nil
				})
			}()
			<-locked
			type result struct {
				row store.Row
				bs  []store.BroadcastRow
				err error
			}
			results := make([]result, len(cases))
			var wg sync.WaitGroup
			for i, c := range cases {
				wg.Add(1)
				go func() {
					defer wg.Done()
					r := &results[i]
					r.row, r.bs, r.err = st.Create(ctx, "envA", "server", nil, c.broadcasts...)
				}()
			}
			testenv.Eventually(t, 10*time.Second, func() bool { return st.PendingCreates() == len(cases) },
				"%d creates never waited together", len(cases))
			close(release)
			if err := <-unlocked; err != nil {
				t.Fatal(err)
			}
			wg.Wait()
			spaces, events, withBroadcast := 0, 0, 0
			for i, c := range cases {
				r := results[i]
				if !errors.Is(r.err, c.want) || (c.want == nil) != (r.err == nil) {
					t.Fatalf("create %d: %v, want %v", i, r.err, c.want)
				}
				if r.err != nil {
					continue
				}
				if len(r.bs) != len(c.broadcasts) {
					t.Fatalf("create %d returned %d broadcasts, want %d", i, len(r.bs), len(c.broadcasts))
				}
				got, err := st.Get(ctx, "envA", r.row.ID)
				if err != nil || got.ID != r.row.ID {
					t.Fatalf("created space %d: %v", i, err)
				}
				spaces++
				events += 1 + len(r.bs)
				withBroadcast += len(r.bs)
				// space.created names the broadcast created with the space.
				var payload string
				if err := db.QueryRowContext(ctx, `SELECT payload FROM spacecast_outbox WHERE msg_key = $1 ORDER BY seq LIMIT 1`, r.row.ID).Scan(&payload); err != nil {
					t.Fatal(err)
				}
				if !strings.Contains(payload, `"type":"space.created"`) || (len(r.bs) == 1 && !strings.Contains(payload, r.bs[0].ID)) {
					t.Fatalf("create %d: space.created payload %s", i, payload)
				}
			}
			count := func(table string) int {
				var n int
				if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM `+table).Scan(&n); err != nil {
					t.Fatal(err)
				}
				return n
			}
			if count("spaces") != spaces || count("broadcasts") != withBroadcast || count("spacecast_outbox") != events {
				t.Fatalf("%d spaces, %d broadcasts, %d events stored; want %d, %d, %d (a failed create left rows behind)",
					count("spaces"), count("broadcasts"), count("spacecast_outbox"), spaces, withBroadcast, events)
			}
		})
	}
}
