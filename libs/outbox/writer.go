package outbox

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/spacecast/spacecast/libs/events"
	"github.com/spacecast/spacecast/libs/sqldb"
)

// Writer is Add and AddKeyed through db's prepared statement cache (sqldb.DB.Stmt): the
// insert is parsed once per connection instead of on every event.
type Writer struct{ db *sqldb.DB }

// NewWriter returns a Writer for transactions of db.
func NewWriter(db *sqldb.DB) (*Writer, error) {
	if db == nil {
		return nil, errors.New("outbox: a DB is required")
	}
	return &Writer{db: db}, nil
}

const insertSQL = `INSERT INTO spacecast_outbox (topic, msg_key, payload, created_at) VALUES ($1, $2, $3, $4)`

// Add is the package's Add with a prepared statement; tx must be a transaction of w's DB.
func (w *Writer) Add(ctx context.Context, tx *sql.Tx, topic string, env events.Envelope) error {
	return w.AddKeyed(ctx, tx, topic, env.Subject, env)
}

// AddKeyed is the package's AddKeyed with a prepared statement.
func (w *Writer) AddKeyed(ctx context.Context, tx *sql.Tx, topic, key string, env events.Envelope) error {
	b, err := env.Marshal()
	if err != nil {
		return err
	}
	return w.AddPayload(ctx, tx, topic, key, b)
}

// AddPayload records an event already marshalled (events.Envelope.Marshal) for publication on
// topic with key, inside tx: the marshalling can then happen before the transaction.
func (w *Writer) AddPayload(ctx context.Context, tx *sql.Tx, topic, key string, payload []byte) error {
	st, err := w.db.TxStmt(ctx, tx, insertSQL)
	if err != nil {
		return fmt.Errorf("outbox add: %w", err)
	}
	if _, err := st.ExecContext(ctx, topic, key, string(payload), time.Now().UnixMilli()); err != nil {
		return fmt.Errorf("outbox add: %w", err)
	}
	return nil
}
