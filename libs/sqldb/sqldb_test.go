package sqldb_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/spacecast/spacecast/libs/sqldb"
	"github.com/spacecast/spacecast/libs/testenv"
)

func TestOpenRejectsUnsupportedDSNs(t *testing.T) {
	for _, dsn := range []string{
		"",
		"sqlite:",
		"mysql://root@127.0.0.1/db",
		"sqlserver://sa@127.0.0.1",
		"redis://127.0.0.1:6379/0",
		"postgres:/db",
		"postgres//127.0.0.1/db",
		"file.db",
		"/var/lib/spacecast/keys.db",
		"SQLITE:/tmp/x.db",
	} {
		t.Run(dsn, func(t *testing.T) {
			db, err := sqldb.Open(context.Background(), dsn)
			if !errors.Is(err, sqldb.ErrBadDSN) {
				t.Fatalf("Open(%q) = %v, %v; want ErrBadDSN", dsn, db, err)
			}
		})
	}
}

func TestOpenUnreachablePostgresFailsAtOpen(t *testing.T) {
	// Nothing listens on port 1: Open pings, so the failure shows at startup, not later.
	_, err := sqldb.Open(context.Background(), "postgres://postgres@127.0.0.1:1/x?sslmode=disable&connect_timeout=2")
	if err == nil || errors.Is(err, sqldb.ErrBadDSN) {
		t.Fatalf("unreachable server: %v", err)
	}
}

func TestSQLiteSettings(t *testing.T) {
	ctx := context.Background()
	db, err := sqldb.Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "s.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if db.Dialect != sqldb.SQLite || db.Dialect.String() != "sqlite" {
		t.Fatalf("dialect %v", db.Dialect)
	}
	for pragma, want := range map[string]string{"journal_mode": "wal", "foreign_keys": "1", "busy_timeout": "10000", "temp_store": "2"} {
		var got string
		if err := db.QueryRowContext(ctx, "PRAGMA "+pragma).Scan(&got); err != nil || got != want {
			t.Errorf("PRAGMA %s = %q (%v), want %q", pragma, got, err, want)
		}
	}
	// In-memory: one private database, the same across statements.
	mem, err := sqldb.Open(ctx, "sqlite::memory:")
	if err != nil {
		t.Fatal(err)
	}
	defer mem.Close()
	if _, err := mem.ExecContext(ctx, "CREATE TABLE x (n INTEGER)"); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := mem.InTx(ctx, func(tx *sql.Tx) error {
				_, err := tx.ExecContext(ctx, "INSERT INTO x (n) VALUES ($1)", i)
				return err
			}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	var n int
	if err := mem.QueryRowContext(ctx, "SELECT COUNT(*) FROM x").Scan(&n); err != nil || n != 4 {
		t.Fatalf("in-memory database lost rows or split into several: %d, %v", n, err)
	}
}

var itemsV1 = fstest.MapFS{
	"00001_items.sql": {Data: []byte(`-- +goose Up
CREATE TABLE items (
    id AUTO_ID_PRIMARY_KEY,
    name TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL
);
-- +goose Down
DROP TABLE items;
`)},
	"README.md": {Data: []byte("not a migration")},
}

func withV2(fs fstest.MapFS) fstest.MapFS {
	out := fstest.MapFS{"00002_note.sql": {Data: []byte(`-- +goose Up
ALTER TABLE items ADD COLUMN note TEXT;
-- +goose Down
ALTER TABLE items DROP COLUMN note;
`)}}
	for k, v := range fs {
		out[k] = v
	}
	return out
}

func insert(t *testing.T, db *sqldb.DB, name string) int64 {
	t.Helper()
	var id int64
	if err := db.QueryRowContext(context.Background(), `INSERT INTO items (name, created_at) VALUES ($1, $2) RETURNING id`, name, 1).Scan(&id); err != nil {
		t.Fatal(err)
	}
	return id
}

func versions(t *testing.T, db *sqldb.DB, name string) []int64 {
	t.Helper()
	rows, err := db.QueryContext(context.Background(), `SELECT version_id FROM goose_`+name+` WHERE version_id > 0 ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []int64
	for rows.Next() {
		var v int64
		if err := rows.Scan(&v); err != nil {
			t.Fatal(err)
		}
		out = append(out, v)
	}
	return out
}

func TestMigrate(t *testing.T) {
	for _, b := range testenv.SQLBackends(t) {
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			db := testenv.OpenSQL(t, b)
			if err := db.Migrate(ctx, itemsV1, "items"); err != nil {
				t.Fatal(err)
			}
			// Auto ids increase and are never reused, even after the newest row is deleted.
			a, bb, c := insert(t, db, "a"), insert(t, db, "b"), insert(t, db, "c")
			if !(a < bb && bb < c) {
				t.Fatalf("ids %d %d %d do not increase", a, bb, c)
			}
			if _, err := db.ExecContext(ctx, `DELETE FROM items WHERE id = $1`, c); err != nil {
				t.Fatal(err)
			}
			if d := insert(t, db, "d"); d <= c {
				t.Fatalf("id %d after deleting %d: ids are reused", d, c)
			}
			// Idempotent: the second run applies nothing (re-running CREATE TABLE would fail)
			// and leaves the data alone.
			if err := db.Migrate(ctx, itemsV1, "items"); err != nil {
				t.Fatalf("second Migrate: %v", err)
			}
			if v := versions(t, db, "items"); fmt.Sprint(v) != "[1]" {
				t.Fatalf("versions after two runs: %v", v)
			}
			var n int
			if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM items`).Scan(&n); err != nil || n != 3 {
				t.Fatalf("%d rows after re-migrating (%v), want 3", n, err)
			}
			// A new file: only it runs.
			if err := db.Migrate(ctx, withV2(itemsV1), "items"); err != nil {
				t.Fatal(err)
			}
			if _, err := db.ExecContext(ctx, `UPDATE items SET note = $1 WHERE name = $2`, "hi", "a"); err != nil {
				t.Fatalf("second migration not applied: %v", err)
			}
			if v := versions(t, db, "items"); fmt.Sprint(v) != "[1 2]" {
				t.Fatalf("versions: %v", v)
			}
			// Another component's migrations have their own version table: its version 1 runs
			// although "items" already recorded a version 1.
			other := fstest.MapFS{"00001_other.sql": {Data: []byte("-- +goose Up\nCREATE TABLE other (id AUTO_ID_PRIMARY_KEY, v TEXT);\n")}}
			if err := db.Migrate(ctx, other, "other"); err != nil {
				t.Fatal(err)
			}
			if _, err := db.ExecContext(ctx, `INSERT INTO other (v) VALUES ($1)`, "x"); err != nil {
				t.Fatalf("migration of a second component skipped: %v", err)
			}
			// A broken migration is an error naming the set.
			broken := fstest.MapFS{"00001_broken.sql": {Data: []byte("-- +goose Up\nCREATE TABLEE nope (id INT);\n")}}
			if err := db.Migrate(ctx, broken, "broken"); err == nil || !strings.Contains(err.Error(), "broken") {
				t.Fatalf("broken migration: %v", err)
			}
		})
	}
}

func TestIsUniqueViolation(t *testing.T) {
	for _, b := range testenv.SQLBackends(t) {
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			db := testenv.OpenSQL(t, b)
			if err := db.Migrate(ctx, itemsV1, "items"); err != nil {
				t.Fatal(err)
			}
			if _, err := db.ExecContext(ctx, `CREATE TABLE child (item_id BIGINT NOT NULL REFERENCES items (id))`); err != nil {
				t.Fatal(err)
			}
			id := insert(t, db, "a")
			exec := func(q string, args ...any) error {
				_, err := db.ExecContext(ctx, q, args...)
				return err
			}
			tests := []struct {
				name string
				err  error
				want bool
			}{
				{"duplicate primary key", exec(`INSERT INTO items (id, name, created_at) VALUES ($1, $2, $3)`, id, "other", 1), true},
				{"duplicate unique column", exec(`INSERT INTO items (name, created_at) VALUES ($1, $2)`, "a", 1), true},
				{"wrapped duplicate", fmt.Errorf("create item: %w", exec(`INSERT INTO items (name, created_at) VALUES ($1, $2)`, "a", 1)), true},
				{"not null violation", exec(`INSERT INTO items (name) VALUES ($1)`, "b"), false},
				{"foreign key violation", exec(`INSERT INTO child (item_id) VALUES ($1)`, id+1000), false},
				{"syntax error", exec(`INSERT INTO`), false},
				{"no such table", exec(`SELECT * FROM nope`), false},
				{"plain error", errors.New("duplicate key value violates unique constraint"), false},
				{"nil", nil, false},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					if tt.name != "nil" && tt.err == nil {
						t.Fatal("the statement did not fail")
					}
					if got := sqldb.IsUniqueViolation(tt.err); got != tt.want {
						t.Fatalf("IsUniqueViolation(%v) = %v, want %v", tt.err, got, tt.want)
					}
				})
			}
		})
	}
}

func TestInTx(t *testing.T) {
	for _, b := range testenv.SQLBackends(t) {
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			db := testenv.OpenSQL(t, b)
			if _, err := db.ExecContext(ctx, `CREATE TABLE counter (name TEXT PRIMARY KEY, n BIGINT NOT NULL)`); err != nil {
				t.Fatal(err)
			}
			count := func(name string) int {
				var n int
				err := db.QueryRowContext(ctx, `SELECT n FROM counter WHERE name = $1`, name).Scan(&n)
				if errors.Is(err, sql.ErrNoRows) {
					return -1
				}
				if err != nil {
					t.Fatal(err)
				}
				return n
			}
			boom := errors.New("boom")
			err := db.InTx(ctx, func(tx *sql.Tx) error {
				if _, err := tx.ExecContext(ctx, `INSERT INTO counter (name, n) VALUES ($1, $2)`, "rolled", 1); err != nil {
					return err
				}
				return fmt.Errorf("step 2: %w", boom)
			})
			if !errors.Is(err, boom) {
				t.Fatalf("InTx returned %v, want the function's error", err)
			}
			if n := count("rolled"); n != -1 {
				t.Fatal("a failed transaction's write was committed")
			}
			if err := db.InTx(ctx, func(tx *sql.Tx) error {
				_, err := tx.ExecContext(ctx, `INSERT INTO counter (name, n) VALUES ($1, $2)`, "c", 0)
				return err
			}); err != nil {
				t.Fatal(err)
			}
			// Concurrent writers neither fail (SQLITE_BUSY) nor lose updates.
			const workers, each = 4, 25
			var wg sync.WaitGroup
			for w := 0; w < workers; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; i < each; i++ {
						if err := db.InTx(ctx, func(tx *sql.Tx) error {
							_, err := tx.ExecContext(ctx, `UPDATE counter SET n = n + 1 WHERE name = $1`, "c")
							return err
						}); err != nil {
							t.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			if n := count("c"); n != workers*each {
				t.Fatalf("counter %d, want %d", n, workers*each)
			}
			// A canceled context fails the transaction instead of running it.
			cctx, cancel := context.WithCancel(ctx)
			cancel()
			ran := false
			if err := db.InTx(cctx, func(tx *sql.Tx) error { ran = true; return nil }); err == nil || ran {
				t.Fatalf("InTx on a canceled context: err %v, ran %v", err, ran)
			}
		})
	}
}

func TestStmtCache(t *testing.T) {
	for _, b := range testenv.SQLBackends(t) {
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			db := testenv.OpenSQL(t, b)
			if _, err := db.ExecContext(ctx, `CREATE TABLE kv (k TEXT PRIMARY KEY, v TEXT NOT NULL)`); err != nil {
				t.Fatal(err)
			}
			const ins, sel = `INSERT INTO kv (k, v) VALUES ($1, $2)`, `SELECT v FROM kv WHERE k = $1`
			s1, err := db.Stmt(ctx, sel)
			if err != nil {
				t.Fatal(err)
			}
			if s2, _ := db.Stmt(ctx, sel); s2 != s1 {
				t.Fatal("the same query text gave two statements")
			}
			// Inside transactions, concurrently (each transaction on its own pooled connection).
			var wg sync.WaitGroup
			for w := range 4 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range 10 {
						err := db.InTx(ctx, func(tx *sql.Tx) error {
							st, err := db.TxStmt(ctx, tx, ins)
							if err != nil {
								return err
							}
							_, err = st.ExecContext(ctx, fmt.Sprintf("k%d-%d", w, i), "v")
							return err
						})
						if err != nil {
							t.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			var v string
			if err := s1.QueryRowContext(ctx, "k3-9").Scan(&v); err != nil || v != "v" {
				t.Fatalf("prepared select: %q, %v", v, err)
			}
			// A rolled back transaction's prepared write is rolled back too.
			_ = db.InTx(ctx, func(tx *sql.Tx) error {
				st, err := db.TxStmt(ctx, tx, ins)
				if err != nil {
					return err
				}
				if _, err := st.ExecContext(ctx, "gone", "v"); err != nil {
					return err
				}
				return errors.New("roll back")
			})
			if err := s1.QueryRowContext(ctx, "gone").Scan(&v); !errors.Is(err, sql.ErrNoRows) {
				t.Fatalf("rolled back insert visible: %v", err)
			}
			// Bad SQL is an error, not a cached statement.
			if _, err := db.Stmt(ctx, `SELEC nothing`); err == nil {
				t.Fatal("bad SQL prepared")
			}
			// Query text built from data runs out of cache room instead of growing it forever.
			var full error
			for i := 0; i <= sqldb.MaxStmts && full == nil; i++ {
				_, full = db.Stmt(ctx, fmt.Sprintf(`SELECT v FROM kv WHERE k = 'x%d'`, i))
			}
			if !errors.Is(full, sqldb.ErrTooManyStatements) {
				t.Fatalf("after %d distinct queries: %v, want ErrTooManyStatements", sqldb.MaxStmts+1, full)
			}
		})
	}
}

// TestTxStmtFullPool: as many transactions as the pool has connections, all using a query for
// the first time at the same moment, neither deadlock nor fail (TxStmt prepared it on the pool
// before, from inside the transaction: each waited for a connection the others held).
func TestTxStmtFullPool(t *testing.T) {
	for _, b := range testenv.SQLBackends(t) {
		if b.Name == "sqlite" {
			continue // one write transaction at a time: never more than one waits
		}
		t.Run(b.Name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			db := testenv.OpenSQL(t, b)
			if _, err := db.ExecContext(ctx, `CREATE TABLE kv (k TEXT PRIMARY KEY, v TEXT NOT NULL)`); err != nil {
				t.Fatal(err)
			}
			n := db.Stats().MaxOpenConnections
			var arrived sync.WaitGroup
			arrived.Add(n)
			var wg sync.WaitGroup
			for i := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					err := db.InTx(ctx, func(tx *sql.Tx) error {
						arrived.Done()
						arrived.Wait() // every pooled connection is in a transaction now
						st, err := db.TxStmt(ctx, tx, `INSERT INTO kv (k, v) VALUES ($1, $2)`)
						if err != nil {
							return err
						}
						_, err = st.ExecContext(ctx, fmt.Sprint("k", i), "v")
						return err
					})
					if err != nil {
						t.Error(err)
					}
				}()
			}
			wg.Wait()
			var count int
			if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM kv`).Scan(&count); err != nil || count != n {
				t.Fatalf("%d rows (%v), want %d", count, err, n)
			}
			// The statement is cached once the background preparation is done.
			testenv.Eventually(t, 5*time.Second, func() bool {
				st, err := db.Stmt(ctx, `INSERT INTO kv (k, v) VALUES ($1, $2)`)
				st2, _ := db.Stmt(ctx, `INSERT INTO kv (k, v) VALUES ($1, $2)`)
				return err == nil && st == st2
			}, "statement never cached")
		})
	}
}
