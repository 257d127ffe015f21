package sqldb_test

import (
	"context"
	"database/sql"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/spacecast/spacecast/libs/sqldb"
	"github.com/spacecast/spacecast/libs/testenv"
)

// BenchmarkGroup: concurrent writers (16 per GOMAXPROCS) each writing a row and an outbox-like
// row, committed alone (InTx) or in group commits (Group.Do), on each backend:
//
//	SPACECAST_TEST_POSTGRES_URL=... go test -run '^$' -bench Group -benchtime 2s ./libs/sqldb/
func BenchmarkGroup(b *testing.B) {
	ctx := context.Background()
	for _, be := range testenv.SQLBackends(b) {
		for _, mode := range []string{"intx", "group"} {
			b.Run(be.Name+"/"+mode, func(b *testing.B) {
				db := testenv.OpenSQL(b, be)
				for _, q := range []string{
					`CREATE TABLE items (id TEXT PRIMARY KEY, payload TEXT NOT NULL)`,
					`CREATE TABLE events (key TEXT NOT NULL, payload TEXT NOT NULL)`,
				} {
					if _, err := db.ExecContext(ctx, q); err != nil {
						b.Fatal(err)
					}
				}
				g, err := sqldb.NewGroup(db, sqldb.GroupOptions{})
				if err != nil {
					b.Fatal(err)
				}
				var n atomic.Int64
				write := func(ctx context.Context, tx *sql.Tx, id string) error {
					for _, q := range []string{`INSERT INTO items (id, payload) VALUES ($1, $2)`, `INSERT INTO events (key, payload) VALUES ($1, $2)`} {
						st, err := db.TxStmt(ctx, tx, q)
						if err != nil {
							return err
						}
						if _, err := st.ExecContext(ctx, id, `{"type":"item.created","data":{"id":"`+id+`"}}`); err != nil {
							return err
						}
					}
					return nil
				}
				b.SetParallelism(16)
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						id := fmt.Sprint("item-", n.Add(1))
						var err error
						if mode == "group" {
							err = g.Do(ctx, func(ctx context.Context, tx *sql.Tx) error { return write(ctx, tx, id) })
						} else {
							err = db.InTx(ctx, func(tx *sql.Tx) error { return write(ctx, tx, id) })
						}
						if err != nil {
							b.Error(err)
							return
						}
					}
				})
			})
		}
	}
}
