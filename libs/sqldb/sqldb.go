// Package sqldb opens PostgreSQL (pgx) or SQLite (modernc, pure Go) from one DSN setting and
// runs embedded goose migrations written once for both.
package sqldb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"sync"
	"testing/fstest"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/database"
	sqlite "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// Dialect says which SQL engine a DB talks to.
type Dialect int

const (
	Postgres Dialect = iota + 1
	SQLite
)

func (d Dialect) String() string {
	switch d {
	case Postgres:
		return "postgres"
	case SQLite:
		return "sqlite"
	}
	return "unknown"
}

// DB is a *sql.DB that knows its dialect.
type DB struct {
	*sql.DB
	Dialect Dialect
	// writeMu queues SQLite write transactions in Go: SQLite allows one writer at a time,
	// and its own busy handler waits by sleeping, which turns contention into latency spikes.
	writeMu sync.Mutex
	// stmts caches prepared statements by query text (see Stmt); preparing holds the queries
	// TxStmt is caching in the background.
	stmtMu    sync.Mutex
	stmts     map[string]*sql.Stmt
	preparing map[string]bool
}

// Open opens and pings the database named by dsn:
// "postgres://user@host:5432/db?sslmode=disable" (or "postgresql://") or "sqlite:/path/file.db"
// ("sqlite::memory:" for a private in-memory database).
func Open(ctx context.Context, dsn string) (*DB, error) {
	var (
		db  *sql.DB
		d   Dialect
		err error
	)
	switch {
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		d = Postgres
		db, err = sql.Open("pgx", dsn)
		if err == nil {
			db.SetMaxOpenConns(20)
			db.SetMaxIdleConns(20)
		}
	case strings.HasPrefix(dsn, "sqlite:"):
		d = SQLite
		path := strings.TrimPrefix(dsn, "sqlite:")
		if path == "" {
			return nil, ErrBadDSN
		}
		sep := "?"
		if strings.Contains(path, "?") {
			sep = "&"
		}
		if path == ":memory:" {
			path = "file::memory:"
		}
		// WAL lets readers run beside the writer; immediate transactions take the write
		// lock up front so two writers never deadlock upgrading a read lock. Statement
		// journals (each statement of a long transaction saves the pages it changes, to undo
		// itself alone) stay in memory instead of a temporary file written with pwrite.
		path += sep + "_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_pragma=foreign_keys(1)&_pragma=temp_store(MEMORY)&_txlock=immediate"
		db, err = sql.Open("sqlite", path)
		if err == nil && strings.HasPrefix(path, "file::memory:") {
			db.SetMaxOpenConns(1) // every connection would be its own database
		} else if err == nil {
			db.SetMaxOpenConns(8)
			db.SetMaxIdleConns(8)
		}
	default:
		return nil, ErrBadDSN
	}
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", d, err)
	}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("ping %s: %w", d, err)
	}
	return &DB{DB: db, Dialect: d, stmts: map[string]*sql.Stmt{}}, nil
}

// MaxStmts bounds the statement cache: queries must be constants of the code (a service has a
// few dozen); a caller building query text from data gets ErrTooManyStatements instead of a
// cache that grows forever.
const MaxStmts = 512

// Stmt returns a prepared statement for query, prepared once per DB and kept until Close
// (database/sql prepares it again on each pooled connection the first time it runs there). The
// same query text always gives the same *sql.Stmt; use it inside a transaction with TxStmt.
// SQLite and PostgreSQL then skip parsing and planning the query on every call.
func (db *DB) Stmt(ctx context.Context, query string) (*sql.Stmt, error) {
	db.stmtMu.Lock()
	st, ok := db.stmts[query]
	db.stmtMu.Unlock()
	if ok {
		return st, nil
	}
	st, err := db.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	db.stmtMu.Lock()
	defer db.stmtMu.Unlock()
	if old, ok := db.stmts[query]; ok { // prepared by a concurrent caller meanwhile
		_ = st.Close()
		return old, nil
	}
	if db.stmts == nil {
		db.stmts = map[string]*sql.Stmt{}
	}
	if len(db.stmts) >= MaxStmts {
		_ = st.Close()
		return nil, ErrTooManyStatements
	}
	db.stmts[query] = st
	return st, nil
}

// TxStmt is Stmt bound to tx. The returned statement belongs to the transaction: it is
// closed when the transaction ends. A query not cached yet is prepared on the transaction's own
// connection and cached in the background: preparing it on the pool from inside the
// transaction would wait for a free connection, and once more transactions than pooled
// connections did that at the same moment, none would ever get one (PostgreSQL's pool of 20).
func (db *DB) TxStmt(ctx context.Context, tx *sql.Tx, query string) (*sql.Stmt, error) {
	db.stmtMu.Lock()
	st, ok := db.stmts[query]
	full := !ok && len(db.stmts) >= MaxStmts
	fill := !ok && !full && !db.preparing[query]
	if fill {
		if db.preparing == nil {
			db.preparing = map[string]bool{}
		}
		db.preparing[query] = true
	}
	db.stmtMu.Unlock()
	switch {
	case ok:
		return tx.StmtContext(ctx, st), nil
	case full:
		return nil, ErrTooManyStatements
	}
	txst, err := tx.PrepareContext(ctx, query)
	if err != nil {
		if fill {
			db.donePreparing(query)
		}
		return nil, err
	}
	if fill {
		go func() { // holds no connection while it waits for one
			defer db.donePreparing(query)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			_, _ = db.Stmt(ctx, query) // a failure leaves the query to the next TxStmt
		}()
	}
	return txst, nil
}

func (db *DB) donePreparing(query string) {
	db.stmtMu.Lock()
	delete(db.preparing, query)
	db.stmtMu.Unlock()
}

// Close closes the cached statements and the pool.
func (db *DB) Close() error {
	db.stmtMu.Lock()
	for q, st := range db.stmts {
		_ = st.Close()
		delete(db.stmts, q)
	}
	db.stmtMu.Unlock()
	return db.DB.Close()
}

// AutoIDToken is replaced in migrations by the dialect's auto-increment primary key.
const AutoIDToken = "AUTO_ID_PRIMARY_KEY"

// Migrate applies every *.sql goose migration at the root of fsys, recording versions in the
// table goose_<name>.
func (db *DB) Migrate(ctx context.Context, fsys fs.FS, name string) error {
	autoID := "BIGSERIAL PRIMARY KEY"
	gd := goose.DialectPostgres
	if db.Dialect == SQLite {
		autoID = "INTEGER PRIMARY KEY AUTOINCREMENT"
		gd = goose.DialectSQLite3
	}
	files, err := fs.Glob(fsys, "*.sql")
	if err != nil {
		return fmt.Errorf("migrations %s: %w", name, err)
	}
	mem := fstest.MapFS{}
	for _, f := range files {
		b, err := fs.ReadFile(fsys, f)
		if err != nil {
			return fmt.Errorf("migrations %s: %w", name, err)
		}
		mem[f] = &fstest.MapFile{Data: []byte(strings.ReplaceAll(string(b), AutoIDToken, autoID))}
	}
	store, err := database.NewStore(gd, "goose_"+name)
	if err != nil {
		return fmt.Errorf("migrations %s: %w", name, err)
	}
	p, err := goose.NewProvider("", db.DB, mem, goose.WithStore(store))
	if err != nil {
		return fmt.Errorf("migrations %s: %w", name, err)
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("migrations %s: %w", name, err)
	}
	return nil
}

// InTx runs fn in a transaction, committing when it returns nil and rolling back otherwise.
func (db *DB) InTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	if db.Dialect == SQLite {
		db.writeMu.Lock()
		defer db.writeMu.Unlock()
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

// IsUniqueViolation reports whether err is a unique-constraint violation on either engine.
func IsUniqueViolation(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code == "23505"
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		return se.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE || se.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
	}
	return false
}
