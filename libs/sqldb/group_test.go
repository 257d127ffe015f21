package sqldb_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spacecast/spacecast/libs/sqldb"
	"github.com/spacecast/spacecast/libs/testenv"
)

// groupRun is one Do of a grouped batch and what its function saw.
type groupRun struct {
	mu   sync.Mutex
	txs  []*sql.Tx // the transaction of every run of the function
	err  error     // Do's result
	done chan struct{}
}

func (r *groupRun) ran(tx *sql.Tx) { r.mu.Lock(); r.txs = append(r.txs, tx); r.mu.Unlock() }

// TestGroup: functions queued while the writer is busy are committed in one transaction; one
// that fails (its own error, a unique violation, a panic, a constraint only checked at commit)
// fails alone and leaves nothing behind, the others of its batch commit.
func TestGroup(t *testing.T) {
	if _, err := sqldb.NewGroup(nil, sqldb.GroupOptions{}); err == nil {
		t.Fatal("NewGroup(nil) accepted")
	}
	boom := errors.New("boom")
	cases := []struct {
		name string
		// bad is the function of the one failing Do; ok reports whether its Do's error is the
		// expected one.
		bad         func(ctx context.Context, tx *sql.Tx) error
		ok          func(err error) bool
		commitFails bool // the failure only shows at commit: the batch reruns one by one
	}{
		{"own error", func(ctx context.Context, tx *sql.Tx) error {
			if _, err := tx.ExecContext(ctx, `INSERT INTO items (name) VALUES ('bad')`); err != nil {
				return err
			}
			return fmt.Errorf("step 2: %w", boom)
		}, func(err error) bool { return errors.Is(err, boom) }, false},
		{"unique violation", func(ctx context.Context, tx *sql.Tx) error {
			_, err := tx.ExecContext(ctx, `INSERT INTO items (name) VALUES ('job-0')`) // job 0 of the same batch has it
			return err
		}, sqldb.IsUniqueViolation, false},
		{"panic", func(ctx context.Context, tx *sql.Tx) error {
			if _, err := tx.ExecContext(ctx, `INSERT INTO items (name) VALUES ('bad')`); err != nil {
				return err
			}
			panic("bad function")
		}, func(err error) bool {
			return errors.Is(err, sqldb.ErrGroupPanic) && strings.Contains(err.Error(), "bad function")
		}, false},
		{"deferred constraint", func(ctx context.Context, tx *sql.Tx) error {
			_, err := tx.ExecContext(ctx, `INSERT INTO children (parent) VALUES ('nobody')`)
			return err
		}, func(err error) bool { return err != nil && !errors.Is(err, boom) }, true},
	}
	for _, b := range testenv.SQLBackends(t) {
		for _, c := range cases {
			t.Run(b.Name+"/"+c.name, func(t *testing.T) {
				ctx := context.Background()
				db := testenv.OpenSQL(t, b)
				for _, q := range []string{
					`CREATE TABLE items (name TEXT PRIMARY KEY)`,
					`CREATE TABLE children (parent TEXT NOT NULL REFERENCES items (name) DEFERRABLE INITIALLY DEFERRED)`,
				} {
					if _, err := db.ExecContext(ctx, q); err != nil {
						t.Fatal(err)
					}
				}
				g, err := sqldb.NewGroup(db, sqldb.GroupOptions{Concurrency: 1})
				if err != nil {
					t.Fatal(err)
				}
				// The first Do holds the writer until the others wait: they form one batch.
				started, release := make(chan struct{}), make(chan struct{})
				first := make(chan error, 1)
				go func() {
					first <- g.Do(ctx, func(ctx context.Context, tx *sql.Tx) error {
						close(started)
						<-release
						_, err := tx.ExecContext(ctx, `INSERT INTO items (name) VALUES ('first')`)
						return err
					})
				}()
				<-started
				const n, badAt = 6, 3
				runs := make([]*groupRun, n)
				for i := range runs {
					r := &groupRun{done: make(chan struct{})}
					runs[i] = r
					fn := func(ctx context.Context, tx *sql.Tx) error {
						r.ran(tx)
						if _, err := tx.ExecContext(ctx, `INSERT INTO items (name) VALUES ($1)`, fmt.Sprint("job-", i)); err != nil {
							return err
						}
						return nil
					}
					if i == badAt {
						fn = func(ctx context.Context, tx *sql.Tx) error { r.ran(tx); return c.bad(ctx, tx) }
					}
					go func() { defer close(r.done); r.err = g.Do(ctx, fn) }()
					// In order, so that job 0 precedes the unique violation's function. Pending
					// counts the first Do too: its batch is the one being committed.
					testenv.Eventually(t, 5*time.Second, func() bool { return g.Pending() == i+2 }, "job %d never queued", i)
				}
				close(release)
				if err := <-first; err != nil {
					t.Fatal(err)
				}
				for i, r := range runs {
					<-r.done
					if i == badAt {
						if !c.ok(r.err) {
							t.Errorf("failing job: Do returned %v", r.err)
						}
					} else if r.err != nil {
						t.Errorf("job %d failed with the batch's failing job: %v", i, r.err)
					}
				}
				// One shared transaction; after a failed commit, each job once more on its own.
				wantRuns := 1
				if c.commitFails {
					wantRuns = 2
				}
				for i, r := range runs {
					if len(r.txs) != wantRuns || r.txs[0] != runs[0].txs[0] {
						t.Fatalf("job %d ran %d times (want %d), first in a transaction of its own: %v", i, len(r.txs), wantRuns, r.txs[0] != runs[0].txs[0])
					}
					if c.commitFails && i > 0 && r.txs[1] == runs[0].txs[1] {
						t.Fatalf("job %d reran in job 0's transaction", i)
					}
				}
				var names []string
				rows, err := db.QueryContext(ctx, `SELECT name FROM items ORDER BY name`)
				if err != nil {
					t.Fatal(err)
				}
				defer rows.Close()
				for rows.Next() {
					var s string
					if err := rows.Scan(&s); err != nil {
						t.Fatal(err)
					}
					names = append(names, s)
				}
				if got, want := strings.Join(names, " "), "first job-0 job-1 job-2 job-4 job-5"; got != want {
					t.Fatalf("committed %q, want %q", got, want)
				}
				var children int
				if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM children`).Scan(&children); err != nil || children != 0 {
					t.Fatalf("children %d, %v", children, err)
				}
			})
		}
	}
}

// TestGroupConcurrent: many concurrent Do calls all commit (one runner: in fewer transactions
// than calls; the default runners of the backend: without lost updates), and a Do whose
// context is canceled does not run.
func TestGroupConcurrent(t *testing.T) {
	for _, b := range testenv.SQLBackends(t) {
		for _, runners := range []int{1, 0} {
			t.Run(fmt.Sprintf("%s/concurrency-%d", b.Name, runners), func(t *testing.T) {
				testGroupConcurrent(t, b, runners)
			})
		}
	}
}

func testGroupConcurrent(t *testing.T, b testenv.SQLBackend, runners int) {
	ctx := context.Background()
	db := testenv.OpenSQL(t, b)
	if _, err := db.ExecContext(ctx, `CREATE TABLE counter (name TEXT PRIMARY KEY, n BIGINT NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, `INSERT INTO counter (name, n) VALUES ('c', 0)`); err != nil {
		t.Fatal(err)
	}
	g, err := sqldb.NewGroup(db, sqldb.GroupOptions{MaxBatch: 8, Concurrency: runners})
	if err != nil {
		t.Fatal(err)
	}
	const workers, each = 16, 20
	var mu sync.Mutex
	txs := map[*sql.Tx]int{}
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				if err := g.Do(ctx, func(ctx context.Context, tx *sql.Tx) error {
					mu.Lock()
					txs[tx]++
					mu.Unlock()
					_, err := tx.ExecContext(ctx, `UPDATE counter SET n = n + 1 WHERE name = 'c'`)
					return err
				}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	var n int
	if err := db.QueryRowContext(ctx, `SELECT n FROM counter WHERE name = 'c'`).Scan(&n); err != nil || n != workers*each {
		t.Fatalf("counter %d (%v), want %d", n, err, workers*each)
	}
	most := 0
	for _, k := range txs {
		most = max(most, k)
	}
	t.Logf("%d calls in %d transactions, at most %d in one", workers*each, len(txs), most)
	if most > 8 {
		t.Fatalf("a transaction held %d calls, MaxBatch is 8", most)
	}
	if runners == 1 && len(txs) == workers*each {
		t.Fatalf("%d concurrent calls took a transaction each: nothing was grouped", workers*each)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	ran := false
	if err := g.Do(cctx, func(context.Context, *sql.Tx) error { ran = true; return nil }); !errors.Is(err, context.Canceled) || ran {
		t.Fatalf("Do on a canceled context: %v, ran %v", err, ran)
	}
}
