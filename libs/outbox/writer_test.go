package outbox_test

import (
	"context"
	"database/sql"
	"errors"
	"testing"

	"github.com/spacecast/spacecast/libs/events"
	"github.com/spacecast/spacecast/libs/outbox"
	"github.com/spacecast/spacecast/libs/testenv"
)

// TestWriter: rows added through the prepared statement are pending after a commit and gone
// with a rollback, like Add's.
func TestWriter(t *testing.T) {
	if _, err := outbox.NewWriter(nil); err == nil {
		t.Fatal("NewWriter(nil) accepted")
	}
	for _, b := range testenv.SQLBackends(t) {
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			db := openDB(t, b)
			w, err := outbox.NewWriter(db)
			if err != nil {
				t.Fatal(err)
			}
			ev, err := events.New("spacecast/test", "thing.happened", "s1", "env1", map[string]int{"n": 1})
			if err != nil {
				t.Fatal(err)
			}
			boom := errors.New("state change failed")
			if err := db.InTx(ctx, func(tx *sql.Tx) error {
				if err := w.Add(ctx, tx, topic, ev); err != nil {
					return err
				}
				return boom
			}); !errors.Is(err, boom) {
				t.Fatalf("rolled back transaction: %v", err)
			}
			if n := pending(t, db); n != 0 {
				t.Fatalf("%d rows pending after a rollback", n)
			}
			for range 3 {
				if err := db.InTx(ctx, func(tx *sql.Tx) error { return w.AddKeyed(ctx, tx, topic, "other-key", ev) }); err != nil {
					t.Fatal(err)
				}
			}
			if n := pending(t, db); n != 3 {
				t.Fatalf("%d rows pending, want 3", n)
			}
			// AddPayload stores the marshalled event as it is, under the key given.
			b, err := ev.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			if err := db.InTx(ctx, func(tx *sql.Tx) error { return w.AddPayload(ctx, tx, topic, "payload-key", b) }); err != nil {
				t.Fatal(err)
			}
			var got string
			if err := db.QueryRowContext(ctx, `SELECT payload FROM spacecast_outbox WHERE msg_key = $1`, "payload-key").Scan(&got); err != nil || got != string(b) {
				t.Fatalf("AddPayload stored %q (%v), want %q", got, err, b)
			}
		})
	}
}
