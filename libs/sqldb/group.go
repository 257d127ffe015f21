package sqldb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"
)

// Group commits concurrent write transactions together (a group commit). Do queues its
// function; one goroutine, started when work arrives and gone when none is left, owns the
// writer (on PostgreSQL up to GroupOptions.Concurrency such goroutines): it takes every
// function waiting (up to MaxBatch) into one transaction, runs each inside its own savepoint,
// commits once, and only then answers each Do. A function that fails
// is rolled back to its savepoint and fails its own Do alone; the others of the batch commit.
// One waiting function runs in a transaction of its own, without savepoints (the runner first
// yields once, runtime.Gosched, so that requests about to queue join it).
//
// A function may run more than once: when a batch's commit fails (a constraint checked at
// commit, a lost connection), every function of the batch runs again in a transaction of its
// own, so a failure stays with the function that caused it. Only the last run's writes are
// committed, so a function must set whatever it reports from scratch on every run.
//
// The functions get a context that is never canceled (a statement canceled half-way could
// abort the transaction the other functions share); a Do whose context is already done when
// its batch starts does not run and returns the context's error.
type Group struct {
	db       *DB
	maxBatch int
	runners  int // batches committed at the same time
	timeout  time.Duration

	mu      sync.Mutex
	queue   []*groupJob
	running int // runner goroutines taking batches from the queue
	pending int // Do calls not answered yet
}

// GroupOptions tune a Group; zero values take the defaults.
type GroupOptions struct {
	MaxBatch int           // functions per transaction (default 128)
	Timeout  time.Duration // bound of one batch's transaction (default 30 s)
	// Concurrency is how many batches commit at the same time (default: 1 on SQLite, which
	// has one writer; 16 on PostgreSQL, which overlaps the commits of its connections itself and
	// loses throughput when every write queues behind one connection's round trips).
	Concurrency int
}

type groupJob struct {
	ctx  context.Context
	fn   func(ctx context.Context, tx *sql.Tx) error
	done chan error // buffered: the runner never waits for the caller
}

// NewGroup returns a Group committing transactions of db.
func NewGroup(db *DB, o GroupOptions) (*Group, error) {
	if db == nil {
		return nil, errors.New("sqldb: a DB is required for a Group")
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = 128
	}
	if o.Timeout <= 0 {
		o.Timeout = 30 * time.Second
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 1
		if db.Dialect == Postgres {
			o.Concurrency = 16
		}
	}
	return &Group{db: db, maxBatch: o.MaxBatch, runners: o.Concurrency, timeout: o.Timeout}, nil
}

// Do runs fn in the next group transaction and returns after that transaction committed (nil)
// or with fn's error, the commit's, or ctx's if ctx ended before fn ran.
func (g *Group) Do(ctx context.Context, fn func(ctx context.Context, tx *sql.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	j := &groupJob{ctx: ctx, fn: fn, done: make(chan error, 1)}
	g.mu.Lock()
	g.queue = append(g.queue, j)
	g.pending++
	start := g.running < g.runners
	if start {
		g.running++
	}
	g.mu.Unlock()
	if start {
		go g.run()
	}
	err := <-j.done
	g.mu.Lock()
	g.pending--
	g.mu.Unlock()
	return err
}

// Pending returns how many Do calls wait for their answer: queued, or in the batch being
// committed.
func (g *Group) Pending() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.pending
}

// run commits batches until the queue is empty.
func (g *Group) run() {
	for {
		g.mu.Lock()
		if len(g.queue) == 1 {
			// One function alone: let the goroutines that are about to queue theirs (the
			// other requests of a burst) run first. On an idle machine nothing else is
			// runnable and this returns at once; under load it makes batches of several
			// instead of a commit per function.
			g.mu.Unlock()
			runtime.Gosched()
			g.mu.Lock()
		}
		n := min(len(g.queue), g.maxBatch)
		if n == 0 {
			g.running--
			if g.running == 0 {
				g.queue = nil
			}
			g.mu.Unlock()
			return
		}
		batch := g.queue[:n:n]
		g.queue = g.queue[n:]
		g.mu.Unlock()
		g.commit(batch)
	}
}

// commit runs one batch and answers every job of it.
func (g *Group) commit(batch []*groupJob) {
	live := batch[:0:0]
	for _, j := range batch {
		if err := j.ctx.Err(); err != nil {
			j.done <- err
			continue
		}
		live = append(live, j)
	}
	ctx, cancel := context.WithTimeout(context.Background(), g.timeout)
	defer cancel()
	switch len(live) {
	case 0:
		return
	case 1:
		live[0].done <- g.alone(ctx, live[0])
		return
	}
	errs, err := g.together(ctx, live)
	if err != nil { // the shared transaction failed as a whole: each job on its own
		for _, j := range live {
			j.done <- g.alone(ctx, j)
		}
		return
	}
	for i, j := range live {
		j.done <- errs[i]
	}
}

// alone runs j in a transaction of its own.
func (g *Group) alone(ctx context.Context, j *groupJob) error {
	jctx := context.WithoutCancel(j.ctx)
	return g.db.InTx(ctx, func(tx *sql.Tx) error { return call(jctx, tx, j.fn) })
}

const (
	savepointSQL = `SAVEPOINT sqldb_group`
	releaseSQL   = `RELEASE SAVEPOINT sqldb_group`
	rollbackSQL  = `ROLLBACK TO SAVEPOINT sqldb_group`
)

// together runs jobs in one transaction, each in a savepoint, and commits. errs holds each
// job's own error (its work rolled back to its savepoint); err is set when the transaction
// itself failed (begin, a savepoint statement, the commit), and then nothing was committed.
func (g *Group) together(ctx context.Context, jobs []*groupJob) (errs []error, err error) {
	errs = make([]error, len(jobs))
	err = g.db.InTx(ctx, func(tx *sql.Tx) error {
		for i, j := range jobs {
			if err := g.exec(ctx, tx, savepointSQL); err != nil {
				return err
			}
			if errs[i] = call(context.WithoutCancel(j.ctx), tx, j.fn); errs[i] != nil {
				if err := g.exec(ctx, tx, rollbackSQL); err != nil {
					return err
				}
			}
			if err := g.exec(ctx, tx, releaseSQL); err != nil {
				return err
			}
		}
		return nil
	})
	return errs, err
}

func (g *Group) exec(ctx context.Context, tx *sql.Tx, query string) error {
	st, err := g.db.TxStmt(ctx, tx, query)
	if err != nil {
		return fmt.Errorf("sqldb group: %w", err)
	}
	if _, err := st.ExecContext(ctx); err != nil {
		return fmt.Errorf("sqldb group: %w", err)
	}
	return nil
}

// call runs fn, turning a panic into its error: the runner goroutine serves every caller and
// must not die with one of them.
func call(ctx context.Context, tx *sql.Tx, fn func(ctx context.Context, tx *sql.Tx) error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %v", ErrGroupPanic, r)
		}
	}()
	return fn(ctx, tx)
}
