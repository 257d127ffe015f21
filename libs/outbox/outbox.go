// Package outbox is the transactional outbox: a service writes its state change and the event
// describing it in one SQL transaction (Add), and a Relay publishes pending rows to Kafka in
// insertion order and marks them sent. If the process dies between commit and publish, the row
// is still pending and the next relay delivers it.
package outbox

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"strings"
	"time"

	"github.com/spacecast/spacecast/libs/events"
	"github.com/spacecast/spacecast/libs/kafkabus"
	"github.com/spacecast/spacecast/libs/sqldb"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Migrate creates the outbox table (own goose version table "goose_outbox").
func Migrate(ctx context.Context, db *sqldb.DB) error {
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return err
	}
	return db.Migrate(ctx, sub, "outbox")
}

// Add records env for publication on topic, keyed by env.Subject, inside tx.
func Add(ctx context.Context, tx *sql.Tx, topic string, env events.Envelope) error {
	return AddKeyed(ctx, tx, topic, env.Subject, env)
}

// AddKeyed is Add with a Kafka record key other than env.Subject: an event about one resource
// ordered with the events of another (an asset's events with its live stream's).
func AddKeyed(ctx context.Context, tx *sql.Tx, topic, key string, env events.Envelope) error {
	b, err := env.Marshal()
	if err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx,
		`INSERT INTO spacecast_outbox (topic, msg_key, payload, created_at) VALUES ($1, $2, $3, $4)`,
		topic, key, string(b), time.Now().UnixMilli())
	if err != nil {
		return fmt.Errorf("outbox add: %w", err)
	}
	return nil
}

// AddAll records envs for publication on topic, each keyed by its Subject, inside tx, in
// order, with one INSERT per 100 events (a transaction that writes an event per row it changes
// then costs a round trip per hundred events, not per event).
func AddAll(ctx context.Context, tx *sql.Tx, topic string, envs []events.Envelope) error {
	const chunk = 100
	now := time.Now().UnixMilli()
	for rest := envs; len(rest) > 0; {
		part := rest[:min(chunk, len(rest))]
		rest = rest[len(part):]
		var q strings.Builder
		q.WriteString(`INSERT INTO spacecast_outbox (topic, msg_key, payload, created_at) VALUES `)
		args := make([]any, 0, 2*len(part)+2)
		args = append(args, topic, now)
		for i, env := range part {
			b, err := env.Marshal()
			if err != nil {
				return err
			}
			if i > 0 {
				q.WriteString(", ")
			}
			fmt.Fprintf(&q, "($1, $%d, $%d, $2)", len(args)+1, len(args)+2)
			args = append(args, env.Subject, string(b))
		}
		if _, err := tx.ExecContext(ctx, q.String(), args...); err != nil {
			return fmt.Errorf("outbox add: %w", err)
		}
	}
	return nil
}

// Publisher sends messages to the broker, returning once they are acknowledged.
type Publisher interface {
	Publish(ctx context.Context, msgs ...kafkabus.Message) error
}

var _ Publisher = (*kafkabus.Producer)(nil)

// RelayConfig configures a Relay.
type RelayConfig struct {
	DB        *sqldb.DB
	Publisher Publisher
	Logger    *slog.Logger
	Batch     int           // rows per publish (default 500)
	Poll      time.Duration // idle poll interval (default 500 ms); Notify wakes it at once
	Retention time.Duration // sent rows are pruned after this (default 72 h)
}

// Relay publishes the outbox.
type Relay struct {
	cfg    RelayConfig
	log    *slog.Logger
	wake   chan struct{}
	pruned time.Time
}

// NewRelay checks cfg.
func NewRelay(cfg RelayConfig) (*Relay, error) {
	if cfg.DB == nil || cfg.Publisher == nil {
		return nil, errors.New("outbox: DB and Publisher are required")
	}
	if cfg.Batch <= 0 {
		cfg.Batch = 500
	}
	if cfg.Poll <= 0 {
		cfg.Poll = 500 * time.Millisecond
	}
	if cfg.Retention <= 0 {
		cfg.Retention = 72 * time.Hour
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Relay{cfg: cfg, log: log.With("component", "outbox-relay"), wake: make(chan struct{}, 1)}, nil
}

// Notify wakes the relay (call after committing a transaction that added events).
func (r *Relay) Notify() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Run publishes until ctx is done. Publish failures are retried with backoff; rows stay
// pending until the broker acknowledged them.
func (r *Relay) Run(ctx context.Context) error {
	backoff := 100 * time.Millisecond
	for {
		n, err := r.Flush(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			r.log.Warn("outbox publish failed; retrying", "err", err, "retry_in", backoff)
			if !wait(ctx, backoff, nil) {
				return nil
			}
			backoff = min(backoff*2, 10*time.Second)
			continue
		}
		backoff = 100 * time.Millisecond
		if n == r.cfg.Batch {
			continue // more pending
		}
		r.prune(ctx)
		if !wait(ctx, r.cfg.Poll, r.wake) {
			return nil
		}
	}
}

type row struct {
	seq   int64
	topic string
	key   string
	value string
}

// Flush publishes one batch of pending rows and marks them sent; it returns how many.
func (r *Relay) Flush(ctx context.Context) (int, error) {
	if r.cfg.DB.Dialect == sqldb.Postgres {
		// One relay at a time across replicas keeps per-key order: hold a transaction-scoped
		// advisory lock while reading, publishing and marking.
		n := 0
		err := r.cfg.DB.InTx(ctx, func(tx *sql.Tx) error {
			if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(7215640023)`); err != nil {
				return err
			}
			var err error
			n, err = r.flush(ctx, tx)
			return err
		})
		return n, err
	}
	// SQLite: one process owns the file; read outside a transaction and mark inside one, so
	// the relay queues with other writers instead of holding the write lock while publishing.
	return r.flush(ctx, sqliteQuerier{r.cfg.DB})
}

type sqliteQuerier struct{ db *sqldb.DB }

func (q sqliteQuerier) QueryContext(ctx context.Context, s string, args ...any) (*sql.Rows, error) {
	return q.db.QueryContext(ctx, s, args...)
}

func (q sqliteQuerier) ExecContext(ctx context.Context, s string, args ...any) (sql.Result, error) {
	var res sql.Result
	err := q.db.InTx(ctx, func(tx *sql.Tx) error {
		var err error
		res, err = tx.ExecContext(ctx, s, args...)
		return err
	})
	return res, err
}

type querier interface {
	QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error)
	ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error)
}

func (r *Relay) flush(ctx context.Context, q querier) (int, error) {
	rs, err := q.QueryContext(ctx,
		`SELECT seq, topic, msg_key, payload FROM spacecast_outbox WHERE sent_at IS NULL ORDER BY seq LIMIT $1`, r.cfg.Batch)
	if err != nil {
		return 0, err
	}
	var rows []row
	for rs.Next() {
		var x row
		if err := rs.Scan(&x.seq, &x.topic, &x.key, &x.value); err != nil {
			rs.Close()
			return 0, err
		}
		rows = append(rows, x)
	}
	rs.Close()
	if err := rs.Err(); err != nil || len(rows) == 0 {
		return 0, err
	}
	msgs := make([]kafkabus.Message, len(rows))
	seqs := make([]string, len(rows))
	for i, x := range rows {
		msgs[i] = kafkabus.Message{Topic: x.topic, Key: []byte(x.key), Value: []byte(x.value)}
		seqs[i] = fmt.Sprint(x.seq)
	}
	if err := r.cfg.Publisher.Publish(ctx, msgs...); err != nil {
		return 0, err
	}
	// seqs are integers read from the table, so inlining them is safe.
	if _, err := q.ExecContext(ctx,
		`UPDATE spacecast_outbox SET sent_at = $1 WHERE seq IN (`+strings.Join(seqs, ",")+`)`, time.Now().UnixMilli()); err != nil {
		return 0, fmt.Errorf("outbox mark sent: %w", err)
	}
	return len(rows), nil
}

func (r *Relay) prune(ctx context.Context) {
	if time.Since(r.pruned) < time.Minute {
		return
	}
	r.pruned = time.Now()
	cut := time.Now().Add(-r.cfg.Retention).UnixMilli()
	if _, err := r.cfg.DB.ExecContext(ctx, `DELETE FROM spacecast_outbox WHERE sent_at IS NOT NULL AND sent_at < $1`, cut); err != nil {
		r.log.Warn("outbox prune failed", "err", err)
	}
}

// Pending counts rows not yet published.
func Pending(ctx context.Context, db *sqldb.DB) (int, error) {
	var n int
	err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM spacecast_outbox WHERE sent_at IS NULL`).Scan(&n)
	return n, err
}

func wait(ctx context.Context, d time.Duration, wake <-chan struct{}) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
	case <-wake:
	}
	return true
}
