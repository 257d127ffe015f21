package store_test

import (
	"context"
	"testing"

	"github.com/spacecast/spacecast/libs/httpapi"
	"github.com/spacecast/spacecast/libs/sqldb"
	"github.com/spacecast/spacecast/libs/testenv"
	"github.com/spacecast/spacecast/services/spaces-api/internal/resource"
	"github.com/spacecast/spacecast/services/spaces-api/internal/store"
)

// BenchmarkDeepList measures one list page of 100 against an environment of 100,000 spaces:
// the first page, a cursor page at the far end, the deepest page form allowed (offset 10,000),
// and, for comparison, the query main ran for ?limit=100&page=1000 before keyset paging.
//
//	SPACECAST_TEST_POSTGRES_URL=... go test -run '^$' -bench DeepList -benchtime 100x ./internal/store/
func BenchmarkDeepList(b *testing.B) {
	const rows = 100_000
	ctx := context.Background()
	for _, be := range testenv.SQLBackends(b) {
		b.Run(be.Name, func(b *testing.B) {
			db := testenv.OpenSQL(b, be)
			st, err := store.Open(ctx, db, resource.Renderers)
			if err != nil {
				b.Fatal(err)
			}
			seed := `INSERT INTO spaces (id, environment_id, type, status, created_ns, updated_ns)
				SELECT 'bench' || g, 'envA', 'server', 'idle', g, g FROM generate_series(1, $1) AS g`
			if db.Dialect == sqldb.SQLite {
				seed = `WITH RECURSIVE c(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM c WHERE g < $1)
					INSERT INTO spaces (id, environment_id, type, status, created_ns, updated_ns)
					SELECT 'bench' || g, 'envA', 'server', 'idle', g, g FROM c`
			}
			if _, err := db.Exec(seed, rows); err != nil {
				b.Fatal(err)
			}
			if _, err := db.Exec(`ANALYZE`); err != nil {
				b.Fatal(err)
			}
			first := httpapi.NewPage(100)
			deep := first
			deep.After = httpapi.Key{Time: 150, ID: "bench150"} // 100 rows before the end
			offset := first
			offset.Page, offset.Offset = 101, 10_000
			for _, c := range []struct {
				name string
				pg   httpapi.Page
			}{{"first-page", first}, {"cursor-at-row-99850", deep}, {"page-101-offset-10000", offset}} {
				b.Run(c.name, func(b *testing.B) {
					for i := 0; i < b.N; i++ {
						out, _, err := st.List(ctx, "envA", c.pg)
						if err != nil || len(out) != 100 {
							b.Fatalf("%d rows, %v", len(out), err)
						}
					}
				})
			}
			b.Run("main-offset-99900", func(b *testing.B) {
				for i := 0; i < b.N; i++ {
					r, err := db.QueryContext(ctx, `SELECT id, environment_id, type, status, passthrough, active_session_id, created_ns FROM spaces
						WHERE environment_id = $1 ORDER BY created_ns DESC, id DESC LIMIT 100 OFFSET 99900`, "envA")
					if err != nil {
						b.Fatal(err)
					}
					n := 0
					for r.Next() {
						n++
					}
					r.Close()
					if n != 100 {
						b.Fatalf("%d rows", n)
					}
				}
			})
		})
	}
}
