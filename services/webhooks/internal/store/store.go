// Package store keeps webhook endpoints, deliveries and their attempts in SQL. Every state
// change that other systems should see writes its event to the outbox in the same transaction.
package store

import (
	"context"
	"database/sql"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spacecast/spacecast/libs/events"
	"github.com/spacecast/spacecast/libs/httpapi"
	"github.com/spacecast/spacecast/libs/outbox"
	"github.com/spacecast/spacecast/libs/sqldb"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Source is the CloudEvents source of this service's events.
const Source = "spacecast/webhooks"

// Sentinel errors; the API maps them to HTTP.
var (
	ErrNotFound = errors.New("not found")
)

// Delivery statuses.
const (
	StatusPending   = "pending"
	StatusSucceeded = "succeeded"
	StatusFailed    = "failed"
)

// Endpoint is the stored row of a receiver URL of one environment. It is not meant to be
// serialized: the REST resources and event payloads are in package resource.
type Endpoint struct {
	ID             string
	URL            string
	Events         []string
	Enabled        bool
	RateLimit      int
	DisabledReason *string

	EnvironmentID       string
	Secret              string `json:"-"` // a row marshalled by mistake still leaks no secret
	PreviousSecret      string `json:"-"`
	PreviousSecretUntil int64  // unix ns
	FailingSince        int64  // unix ns, 0 = healthy
	CreatedNS           int64  // unix ns: the endpoint gets only events that happened after this
}

// Secrets returns the secrets that sign a delivery now.
func (e Endpoint) Secrets(now time.Time) []string {
	s := []string{e.Secret}
	if e.PreviousSecret != "" && now.UnixNano() < e.PreviousSecretUntil {
		s = append(s, e.PreviousSecret)
	}
	return s
}

// Wants reports whether the endpoint takes events of the public type.
func (e Endpoint) Wants(typ string) bool {
	if len(e.Events) == 0 {
		return true
	}
	for _, t := range e.Events {
		if t == typ {
			return true
		}
	}
	return false
}

// Delivery is the stored row of one event for one endpoint (never serialized as it is).
type Delivery struct {
	ID            string
	CreatedAt     string // unix seconds
	EndpointID    string
	EventID       string
	EventType     string
	Status        string
	AttemptCount  int
	NextAttemptAt *string // unix seconds, while pending
	Attempts      []Attempt

	EnvironmentID string
	Payload       json.RawMessage
	NextAttemptNS int64
}

// Attempt is the stored row of one HTTP try of a delivery.
type Attempt struct {
	At           string // RFC 3339
	StatusCode   int
	LatencyMS    int
	Error        *string
	ResponseBody string

	AtNS int64
}

// Store is the webhooks SQL store.
type Store struct {
	db    *sqldb.DB
	stmts sync.Map // query -> *sql.Stmt: hot queries are parsed once per connection

	mu        sync.Mutex
	eps       map[string]cachedEndpoint // endpoint rows read lately (CachedEndpoint)
	version   uint64                    // bumped by every change of an endpoint made through this store
	fresh     map[string]freshDelivery  // deliveries this store inserted lately (TakeFresh)
	stale     map[string]freshDelivery  // the generation before
	rotated   time.Time                 // when fresh became the current generation
	freshFor  time.Duration             // 0: TakeFresh finds nothing
	freshSeen int                       // deliveries remembered in the current generation
}

type cachedEndpoint struct {
	e   Endpoint
	err error // ErrNotFound is kept too: a deleted endpoint's pending deliveries come due in bulk
	at  time.Time
}

type freshDelivery struct {
	d  Delivery
	at time.Time
}

// EndpointTTL bounds how long CachedEndpoint can lag a change of an endpoint made by another
// instance (changes made through this Store are seen at once).
const EndpointTTL = time.Second

// maxFresh bounds the deliveries remembered per generation (about 1 KB of payload each).
const maxFresh = 50_000

// prepared returns q prepared on the database (database/sql prepares it again on each
// connection it runs on, once).
func (s *Store) prepared(ctx context.Context, q string) (*sql.Stmt, error) {
	if st, ok := s.stmts.Load(q); ok {
		return st.(*sql.Stmt), nil
	}
	st, err := s.db.PrepareContext(ctx, q)
	if err != nil {
		return nil, err
	}
	if prev, loaded := s.stmts.LoadOrStore(q, st); loaded {
		st.Close()
		return prev.(*sql.Stmt), nil
	}
	return st, nil
}

func (s *Store) queryRow(ctx context.Context, q string, args ...any) *sql.Row {
	st, err := s.prepared(ctx, q)
	if err != nil {
		return s.db.QueryRowContext(ctx, q, args...) // reports the same error on Scan
	}
	return st.QueryRowContext(ctx, args...)
}

func (s *Store) query(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	st, err := s.prepared(ctx, q)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(ctx, args...)
}

// txStmts prepares each statement once per transaction, for transactions that run the same
// statements for many rows.
type txStmts struct {
	tx *sql.Tx
	m  map[string]*sql.Stmt
}

func (t *txStmts) stmt(ctx context.Context, q string) (*sql.Stmt, error) {
	st, ok := t.m[q]
	if !ok {
		var err error
		if st, err = t.tx.PrepareContext(ctx, q); err != nil {
			return nil, err
		}
		t.m[q] = st
	}
	return st, nil
}

func (t *txStmts) exec(ctx context.Context, q string, args ...any) (sql.Result, error) {
	st, err := t.stmt(ctx, q)
	if err != nil {
		return nil, err
	}
	return st.ExecContext(ctx, args...)
}

func (t *txStmts) query(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	st, err := t.stmt(ctx, q)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(ctx, args...)
}

// Open migrates db and returns the store.
func Open(ctx context.Context, db *sqldb.DB) (*Store, error) {
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return nil, err
	}
	if err := db.Migrate(ctx, sub, "webhooks"); err != nil {
		return nil, err
	}
	if err := outbox.Migrate(ctx, db); err != nil {
		return nil, err
	}
	return &Store{db: db, eps: map[string]cachedEndpoint{}, fresh: map[string]freshDelivery{}, stale: map[string]freshDelivery{}}, nil
}

// KeepFresh makes the store remember, for d, each delivery it inserts, so that its first
// attempt needs no read (TakeFresh). d must be shorter than the shortest time between an
// attempt and the retry it schedules: then an entry can never describe a delivery that another
// instance has attempted and rescheduled since (it would be due only after the entry expired).
func (s *Store) KeepFresh(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.freshFor = max(0, d)
}

// remember keeps the deliveries just inserted for TakeFresh. s.mu is held.
func (s *Store) remember(ds []Delivery, now time.Time) {
	if s.freshFor <= 0 {
		return
	}
	if now.Sub(s.rotated) > s.freshFor {
		s.stale, s.fresh, s.rotated, s.freshSeen = s.fresh, make(map[string]freshDelivery, len(s.fresh)), now, 0
	}
	for _, d := range ds {
		if s.freshSeen >= maxFresh {
			return
		}
		s.fresh[d.ID] = freshDelivery{d: d, at: now}
		s.freshSeen++
	}
}

// TakeFresh returns, once, a delivery this store inserted less than the KeepFresh window ago
// and has not changed since: pending, with no attempt. Its caller must hold the delivery's
// claim. Otherwise (an older delivery, a retry, another instance's, one already taken) it
// reports false and the caller reads the row (GetDelivery).
func (s *Store) TakeFresh(id string) (Delivery, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f, ok := s.fresh[id]
	if ok {
		delete(s.fresh, id)
	} else if f, ok = s.stale[id]; ok {
		delete(s.stale, id)
	}
	if !ok || time.Since(f.at) >= s.freshFor {
		return Delivery{}, false
	}
	return f.d, true
}

// forgetDeliveries drops deliveries whose row changed from TakeFresh.
func (s *Store) forgetDeliveries(ids ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range ids {
		delete(s.fresh, id)
		delete(s.stale, id)
	}
}

// CachedEndpoint returns an endpoint of any environment as it was at most EndpointTTL ago
// (at once after a change made through this store): the worker reads it for every attempt.
func (s *Store) CachedEndpoint(ctx context.Context, id string) (Endpoint, error) {
	now := time.Now()
	s.mu.Lock()
	c, ok := s.eps[id]
	v := s.version
	s.mu.Unlock()
	if ok && now.Sub(c.at) < EndpointTTL {
		return c.e, c.err
	}
	e, err := s.GetEndpoint(ctx, "", id)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return e, err
	}
	s.mu.Lock()
	if s.version == v { // no change raced the read
		if len(s.eps) > 100_000 {
			clear(s.eps)
		}
		s.eps[id] = cachedEndpoint{e: e, err: err, at: now}
	}
	s.mu.Unlock()
	return e, err
}

// forgetEndpoints drops endpoints whose row changed from the cache.
func (s *Store) forgetEndpoints(ids ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.version++
	for _, id := range ids {
		delete(s.eps, id)
	}
}

// Ping checks the database.
func (s *Store) Ping(ctx context.Context) error { return s.db.PingContext(ctx) }

func secs(ns int64) string { return strconv.FormatInt(ns/int64(time.Second), 10) }

const endpointCols = `id, environment_id, url, events, enabled, secret, previous_secret, previous_secret_until, rate_limit, failing_since, disabled_reason, created_ns`

func scanEndpoint(sc interface{ Scan(...any) error }) (Endpoint, error) {
	var e Endpoint
	var evs string
	var prev, reason sql.NullString
	var prevUntil, failing sql.NullInt64
	var ns int64
	if err := sc.Scan(&e.ID, &e.EnvironmentID, &e.URL, &evs, &e.Enabled, &e.Secret, &prev, &prevUntil, &e.RateLimit, &failing, &reason, &ns); err != nil {
		return Endpoint{}, err
	}
	e.Events = []string{}
	_ = json.Unmarshal([]byte(evs), &e.Events)
	e.PreviousSecret, e.PreviousSecretUntil, e.FailingSince = prev.String, prevUntil.Int64, failing.Int64
	if reason.Valid {
		e.DisabledReason = &reason.String
	}
	e.CreatedNS = ns
	return e, nil
}

// CreateEndpoint inserts e.
func (s *Store) CreateEndpoint(ctx context.Context, e Endpoint) (Endpoint, error) {
	now := time.Now().UnixNano()
	evs, _ := json.Marshal(e.Events)
	_, err := s.db.ExecContext(ctx, `INSERT INTO endpoints (id, environment_id, url, events, enabled, secret, rate_limit, created_ns, updated_ns)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)`, e.ID, e.EnvironmentID, e.URL, string(evs), e.Enabled, e.Secret, e.RateLimit, now)
	e.CreatedNS = now
	s.forgetEndpoints(e.ID) // a cached "not found" for this id
	return e, err
}

// GetEndpoint returns an endpoint of env ("" = any environment).
func (s *Store) GetEndpoint(ctx context.Context, env, id string) (Endpoint, error) {
	e, err := scanEndpoint(s.queryRow(ctx, `SELECT `+endpointCols+` FROM endpoints WHERE id = $1 AND ($2 = '' OR environment_id = $2)`, id, env))
	if errors.Is(err, sql.ErrNoRows) {
		return Endpoint{}, ErrNotFound
	}
	return e, err
}

func (s *Store) queryEndpoints(ctx context.Context, q string, args ...any) ([]Endpoint, error) {
	rows, err := s.query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []Endpoint{}
	for rows.Next() {
		e, err := scanEndpoint(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// ListEndpoints returns a page of env's endpoints, newest first, and the cursor of the next
// page ("" on the last); the keyset (created_ns, id) bounds the page, O(limit) at any depth
// with a cursor.
func (s *Store) ListEndpoints(ctx context.Context, env string, pg httpapi.Page) ([]Endpoint, string, error) {
	rows, err := s.query(ctx, `SELECT `+endpointCols+`, created_ns FROM endpoints WHERE environment_id = $1 AND (created_ns, id) < ($2, $3)
		ORDER BY created_ns DESC, id DESC LIMIT $4 OFFSET $5`, env, pg.After.Time, pg.After.ID, pg.Fetch(), pg.Offset)
	if err != nil {
		return nil, "", err
	}
	defer rows.Close()
	out, keys := []Endpoint{}, []httpapi.Key{}
	for rows.Next() {
		var ns int64
		e, err := scanEndpoint(httpapi.ScanKey(rows, &ns))
		if err != nil {
			return nil, "", err
		}
		out, keys = append(out, e), append(keys, httpapi.Key{Time: ns, ID: e.ID})
	}
	out, next := httpapi.PageOf(pg, out, keys)
	return out, next, rows.Err()
}

// EnabledEndpoints returns env's enabled endpoints.
func (s *Store) EnabledEndpoints(ctx context.Context, env string) ([]Endpoint, error) {
	return s.queryEndpoints(ctx, `SELECT `+endpointCols+` FROM endpoints WHERE environment_id = $1 AND enabled = $2`, env, true)
}

// UpdateEndpoint stores url, events, enabled and rate limit; enabling clears the failure state.
func (s *Store) UpdateEndpoint(ctx context.Context, e Endpoint) error {
	evs, _ := json.Marshal(e.Events)
	res, err := s.db.ExecContext(ctx, `UPDATE endpoints SET url = $1, events = $2, enabled = $3, rate_limit = $4, updated_ns = $5,
		failing_since = CASE WHEN $3 THEN NULL ELSE failing_since END,
		disabled_reason = CASE WHEN $3 THEN NULL ELSE disabled_reason END
		WHERE id = $6 AND environment_id = $7`, e.URL, string(evs), e.Enabled, e.RateLimit, time.Now().UnixNano(), e.ID, e.EnvironmentID)
	s.forgetEndpoints(e.ID)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}

// RotateSecret makes secret current; the old one keeps signing until keepUntil.
func (s *Store) RotateSecret(ctx context.Context, env, id, secret string, keepUntil time.Time) error {
	res, err := s.db.ExecContext(ctx, `UPDATE endpoints SET previous_secret = secret, previous_secret_until = $1, secret = $2, updated_ns = $3
		WHERE id = $4 AND environment_id = $5`, keepUntil.UnixNano(), secret, time.Now().UnixNano(), id, env)
	s.forgetEndpoints(id)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}

// DeleteEndpoint removes an endpoint; its pending deliveries are dropped when they come due.
func (s *Store) DeleteEndpoint(ctx context.Context, env, id string) error {
	res, err := s.db.ExecContext(ctx, `DELETE FROM endpoints WHERE id = $1 AND environment_id = $2`, id, env)
	s.forgetEndpoints(id)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}

// CreateDeliveries records deliveries durably in one transaction (existing ones for the same
// endpoint and event are kept as they are) and returns those still pending (ID and EndpointID
// set). The ones it inserted are remembered for TakeFresh.
func (s *Store) CreateDeliveries(ctx context.Context, ds []Delivery) ([]Delivery, error) {
	if len(ds) == 0 {
		return nil, nil
	}
	// PostgreSQL gets many rows per statement (one round trip each); SQLite 25 per execution
	// of a statement prepared once per transaction: it binds $N parameters by a linear search,
	// so a statement with thousands of them parses in quadratic time, but one row per
	// execution spends more on executing statements than on the rows (25 rows cut the CPU of
	// inserting and recording a delivery by about a quarter).
	rowsPerInsert := 500
	if s.db.Dialect == sqldb.SQLite {
		rowsPerInsert = 25
	}
	var pending, fresh []Delivery
	now := time.Now().UnixNano()
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		pending, fresh = pending[:0], fresh[:0]
		st := &txStmts{tx: tx, m: map[string]*sql.Stmt{}}
		inserted := make(map[string]bool, len(ds))
		// Each event's body once (deliveries of one event share it; an event read again
		// already has it).
		var bodies []Delivery
		seen := make(map[string]bool, len(ds))
		for _, d := range ds {
			if !seen[d.EventID] {
				seen[d.EventID] = true
				bodies = append(bodies, d)
			}
		}
		for rest := bodies; len(rest) > 0; {
			part := rest[:min(rowsPerInsert, len(rest))]
			rest = rest[len(part):]
			var q strings.Builder
			q.WriteString(`INSERT INTO event_payloads (event_id, payload, created_ns) VALUES `)
			args := make([]any, 0, 2*len(part)+1)
			args = append(args, now)
			for i, d := range part {
				if i > 0 {
					q.WriteString(", ")
				}
				fmt.Fprintf(&q, "($%d, $%d, $1)", len(args)+1, len(args)+2)
				args = append(args, d.EventID, string(d.Payload))
			}
			q.WriteString(` ON CONFLICT (event_id) DO NOTHING`)
			if _, err := st.exec(ctx, q.String(), args...); err != nil {
				return err
			}
		}
		for rest := ds; len(rest) > 0; {
			part := rest[:min(rowsPerInsert, len(rest))]
			rest = rest[len(part):]
			var q strings.Builder
			q.WriteString(`INSERT INTO deliveries (id, endpoint_id, environment_id, event_id, event_type, payload, status, next_attempt_ns, created_ns, updated_ns) VALUES `)
			args := make([]any, 0, 5*len(part)+2)
			args = append(args, now, StatusPending)
			for i, d := range part {
				if i > 0 {
					q.WriteString(", ")
				}
				n := len(args)
				fmt.Fprintf(&q, "($%d, $%d, $%d, $%d, $%d, '', $2, $1, $1, $1)", n+1, n+2, n+3, n+4, n+5)
				args = append(args, d.ID, d.EndpointID, d.EnvironmentID, d.EventID, d.EventType)
			}
			q.WriteString(` ON CONFLICT (endpoint_id, event_id) DO NOTHING RETURNING id`)
			rows, err := st.query(ctx, q.String(), args...)
			if err != nil {
				return err
			}
			for rows.Next() {
				var id string
				if err := rows.Scan(&id); err != nil {
					rows.Close()
					return err
				}
				inserted[id] = true
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return err
			}
		}
		for _, d := range ds {
			if inserted[d.ID] {
				pending = append(pending, Delivery{ID: d.ID, EndpointID: d.EndpointID})
				f := d
				f.Status, f.AttemptCount, f.Attempts, f.CreatedAt, f.NextAttemptNS = StatusPending, 0, []Attempt{}, secs(now), now
				t := secs(now)
				f.NextAttemptAt = &t
				fresh = append(fresh, f)
				continue
			}
			// Recorded before (the event was read again): keep that delivery as it is.
			var id, status string
			if err := tx.QueryRowContext(ctx, `SELECT id, status FROM deliveries WHERE endpoint_id = $1 AND event_id = $2`, d.EndpointID, d.EventID).Scan(&id, &status); err != nil {
				return err
			}
			if status == StatusPending {
				pending = append(pending, Delivery{ID: id, EndpointID: d.EndpointID})
			}
		}
		return nil
	})
	if err == nil {
		s.mu.Lock()
		s.remember(fresh, time.Unix(0, now)) // from before the insert: nobody can attempt them earlier
		s.mu.Unlock()
	}
	return pending, err
}

// deliveryCols are the columns scanDelivery reads, without the payload (lists and timers do
// not need it); deliveryWithPayload reads a delivery with its payload (its own, or its
// event's since migration 00003).
const (
	deliveryCols        = `id, endpoint_id, environment_id, event_id, event_type, '', status, attempts, next_attempt_ns, created_ns`
	deliveryWithPayload = `SELECT d.id, d.endpoint_id, d.environment_id, d.event_id, d.event_type, COALESCE(NULLIF(d.payload, ''), p.payload, ''),
		d.status, d.attempts, d.next_attempt_ns, d.created_ns FROM deliveries d LEFT JOIN event_payloads p ON p.event_id = d.event_id`
)

func scanDelivery(sc interface{ Scan(...any) error }) (Delivery, error) {
	var d Delivery
	var payload string
	var next sql.NullInt64
	var ns int64
	if err := sc.Scan(&d.ID, &d.EndpointID, &d.EnvironmentID, &d.EventID, &d.EventType, &payload, &d.Status, &d.AttemptCount, &next, &ns); err != nil {
		return Delivery{}, err
	}
	d.Payload = json.RawMessage(payload)
	d.CreatedAt = secs(ns)
	if next.Valid && d.Status == StatusPending {
		d.NextAttemptNS = next.Int64
		t := secs(next.Int64)
		d.NextAttemptAt = &t
	}
	d.Attempts = []Attempt{}
	return d, nil
}

// GetDelivery returns a delivery with its attempts.
func (s *Store) GetDelivery(ctx context.Context, id string) (Delivery, error) {
	d, err := scanDelivery(s.queryRow(ctx, deliveryWithPayload+` WHERE d.id = $1`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Delivery{}, ErrNotFound
	}
	if err != nil {
		return Delivery{}, err
	}
	if d.AttemptCount > 0 { // a first attempt has no history to read
		d.Attempts, err = s.attempts(ctx, id)
	}
	return d, err
}

// GetDeliveries returns the deliveries of ids that exist, with their attempts, in two queries
// (per 500 ids): the worker reads what it claimed in one go.
func (s *Store) GetDeliveries(ctx context.Context, ids []string) (map[string]Delivery, error) {
	out := make(map[string]Delivery, len(ids))
	const chunk = 500
	for rest := ids; len(rest) > 0; {
		part := rest[:min(chunk, len(rest))]
		rest = rest[len(part):]
		args := make([]any, len(part))
		var in strings.Builder
		for i, id := range part {
			if i > 0 {
				in.WriteString(", ")
			}
			fmt.Fprintf(&in, "$%d", i+1)
			args[i] = id
		}
		rows, err := s.db.QueryContext(ctx, deliveryWithPayload+` WHERE d.id IN (`+in.String()+`)`, args...)
		if err != nil {
			return nil, err
		}
		var retried []any
		for rows.Next() {
			d, err := scanDelivery(rows)
			if err != nil {
				rows.Close()
				return nil, err
			}
			out[d.ID] = d
			if d.AttemptCount > 0 {
				retried = append(retried, d.ID)
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
		if len(retried) == 0 {
			continue
		}
		in.Reset()
		for i := range retried {
			if i > 0 {
				in.WriteString(", ")
			}
			fmt.Fprintf(&in, "$%d", i+1)
		}
		rows, err = s.db.QueryContext(ctx, `SELECT delivery_id, at_ns, status_code, latency_ms, error, response_body FROM attempts WHERE delivery_id IN (`+in.String()+`) ORDER BY delivery_id, seq`, retried...)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var id string
			var a Attempt
			var e, body sql.NullString
			if err := rows.Scan(&id, &a.AtNS, &a.StatusCode, &a.LatencyMS, &e, &body); err != nil {
				rows.Close()
				return nil, err
			}
			if e.Valid {
				a.Error = &e.String
			}
			a.ResponseBody, a.At = body.String, time.Unix(0, a.AtNS).UTC().Format(time.RFC3339)
			d := out[id]
			d.Attempts = append(d.Attempts, a)
			out[id] = d
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (s *Store) attempts(ctx context.Context, id string) ([]Attempt, error) {
	rows, err := s.query(ctx, `SELECT at_ns, status_code, latency_ms, error, response_body FROM attempts WHERE delivery_id = $1 ORDER BY seq`, id)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []Attempt{}
	for rows.Next() {
		var a Attempt
		var e, body sql.NullString
		if err := rows.Scan(&a.AtNS, &a.StatusCode, &a.LatencyMS, &e, &body); err != nil {
			return nil, err
		}
		if e.Valid {
			a.Error = &e.String
		}
		a.ResponseBody, a.At = body.String, time.Unix(0, a.AtNS).UTC().Format(time.RFC3339)
		out = append(out, a)
	}
	return out, rows.Err()
}

// ListDeliveries returns a page of an endpoint's deliveries, newest first, with attempts.
//
// It also returns the cursor of the next page ("" on the last); the keyset (created_ns, id)
// bounds the page, O(limit) at any depth with a cursor.
func (s *Store) ListDeliveries(ctx context.Context, endpointID string, pg httpapi.Page) ([]Delivery, string, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+deliveryCols+`, created_ns FROM deliveries WHERE endpoint_id = $1 AND (created_ns, id) < ($2, $3)
		ORDER BY created_ns DESC, id DESC LIMIT $4 OFFSET $5`, endpointID, pg.After.Time, pg.After.ID, pg.Fetch(), pg.Offset)
	if err != nil {
		return nil, "", err
	}
	out, keys := []Delivery{}, []httpapi.Key{}
	for rows.Next() {
		var ns int64
		d, err := scanDelivery(httpapi.ScanKey(rows, &ns))
		if err != nil {
			rows.Close()
			return nil, "", err
		}
		out, keys = append(out, d), append(keys, httpapi.Key{Time: ns, ID: d.ID})
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, "", err
	}
	out, next := httpapi.PageOf(pg, out, keys)
	for i := range out {
		if out[i].Attempts, err = s.attempts(ctx, out[i].ID); err != nil {
			return nil, "", err
		}
	}
	return out, next, nil
}

// Outcome is what one attempt decided.
type Outcome struct {
	Attempt Attempt
	Status  string            // new delivery status
	Next    time.Time         // next attempt when Status is pending
	Failing bool              // the endpoint failed this attempt
	Disable string            // non-empty: disable the endpoint with this reason
	Events  []events.Envelope // analytics events of this attempt

	// DisabledEvent is announced if this attempt is the one that disables the endpoint.
	DisabledEvent *events.Envelope
}

// Recorded is one attempt to store with its consequences.
type Recorded struct {
	Delivery Delivery
	Outcome  Outcome
}

// RecordAttempts stores attempts and their consequences (delivery state, endpoint failure
// state, events for the outbox) in one transaction, in order: a group commit. On PostgreSQL
// each kind of row is written by one statement for the whole batch (a round trip per row
// would bound the commit by the network); SQLite, with no round trips to save, executes one
// prepared statement per row. The endpoint's failure state is written once per endpoint in
// the batch, from the outcomes themselves rather than from a possibly cached view of the
// endpoint: the state the batch's last outcomes leave.
func (s *Store) RecordAttempts(ctx context.Context, rs []Recorded) error {
	var changed []string
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		changed = changed[:0]
		now := time.Now().UnixNano()
		st := &txStmts{tx: tx, m: map[string]*sql.Stmt{}}
		var err error
		if s.db.Dialect == sqldb.Postgres {
			err = recordRowsBulk(ctx, st, rs, now)
		} else {
			err = recordRows(ctx, st, rs, now)
		}
		if err != nil {
			return err
		}
		// Per endpoint, in batch order: the last success clears the failure state; failures
		// after it (or in a batch without success) start it at the first of them unless it
		// was already set.
		type epState struct {
			success      bool  // a success in the batch
			failingAfter int64 // at of the first failure after the last success, 0 = none
		}
		eps := map[string]*epState{}
		var order []string
		for _, r := range rs {
			id, o := r.Delivery.EndpointID, r.Outcome
			e := eps[id]
			if e == nil {
				e = &epState{}
				eps[id] = e
				order = append(order, id)
			}
			if o.Failing {
				if e.failingAfter == 0 {
					e.failingAfter = o.Attempt.AtNS
				}
			} else {
				e.success, e.failingAfter = true, 0
			}
		}
		for _, id := range order {
			e := eps[id]
			var res sql.Result
			switch {
			case e.failingAfter != 0 && e.success:
				res, err = st.exec(ctx, `UPDATE endpoints SET failing_since = $1 WHERE id = $2`, e.failingAfter, id)
			case e.failingAfter != 0:
				res, err = st.exec(ctx, `UPDATE endpoints SET failing_since = $1 WHERE id = $2 AND failing_since IS NULL`, e.failingAfter, id)
			default:
				res, err = st.exec(ctx, `UPDATE endpoints SET failing_since = NULL WHERE id = $1 AND failing_since IS NOT NULL`, id)
			}
			if err != nil {
				return err
			}
			if n, _ := res.RowsAffected(); n > 0 {
				changed = append(changed, id)
			}
		}
		var evs []events.Envelope
		for _, r := range rs {
			d, o := r.Delivery, r.Outcome
			if o.Disable != "" {
				res, err := st.exec(ctx, `UPDATE endpoints SET enabled = $1, disabled_reason = $2, updated_ns = $3 WHERE id = $4 AND enabled = $5`,
					false, o.Disable, now, d.EndpointID, true)
				if err != nil {
					return err
				}
				// Only the attempt that actually disabled it announces it (two attempts in flight
				// can both see a 410).
				if n, _ := res.RowsAffected(); n > 0 {
					changed = append(changed, d.EndpointID)
					if o.DisabledEvent != nil {
						evs = append(evs, *o.DisabledEvent)
					}
				}
			}
			evs = append(evs, o.Events...)
		}
		return outbox.AddAll(ctx, tx, events.TopicWebhooks, evs)
	})
	if err == nil {
		s.forgetEndpoints(changed...)
		ids := make([]string, len(rs))
		for i, r := range rs {
			ids[i] = r.Delivery.ID
		}
		s.forgetDeliveries(ids...)
	}
	return err
}

// recordRows writes the attempt rows and the deliveries' new state row by row.
func recordRows(ctx context.Context, st *txStmts, rs []Recorded, now int64) error {
	for _, r := range rs {
		d, o, a := r.Delivery, r.Outcome, r.Outcome.Attempt
		if _, err := st.exec(ctx, `INSERT INTO attempts (delivery_id, at_ns, status_code, latency_ms, error, response_body) VALUES ($1, $2, $3, $4, $5, $6)`,
			d.ID, a.AtNS, a.StatusCode, a.LatencyMS, a.Error, a.ResponseBody); err != nil {
			return err
		}
		var next any
		if o.Status == StatusPending {
			next = o.Next.UnixNano()
		}
		if _, err := st.exec(ctx, `UPDATE deliveries SET status = $1, attempts = attempts + 1, next_attempt_ns = $2, updated_ns = $3 WHERE id = $4`,
			o.Status, next, now, d.ID); err != nil {
			return err
		}
	}
	return nil
}

// recordRowsBulk is recordRows in a statement per kind of row (per 500 rows), for PostgreSQL.
// Attempts keep the batch's order (seq); a delivery attempted twice in one batch ends in its
// last outcome with both counted.
func recordRowsBulk(ctx context.Context, st *txStmts, rs []Recorded, now int64) error {
	const chunk = 500
	for rest := rs; len(rest) > 0; {
		part := rest[:min(chunk, len(rest))]
		rest = rest[len(part):]
		var q strings.Builder
		q.WriteString(`INSERT INTO attempts (delivery_id, at_ns, status_code, latency_ms, error, response_body) VALUES `)
		args := make([]any, 0, 6*len(part))
		for i, r := range part {
			if i > 0 {
				q.WriteString(", ")
			}
			n := len(args)
			fmt.Fprintf(&q, "($%d, $%d::bigint, $%d::integer, $%d::integer, $%d, $%d)", n+1, n+2, n+3, n+4, n+5, n+6)
			a := r.Outcome.Attempt
			args = append(args, r.Delivery.ID, a.AtNS, a.StatusCode, a.LatencyMS, a.Error, a.ResponseBody)
		}
		if _, err := st.tx.ExecContext(ctx, q.String(), args...); err != nil {
			return err
		}
	}
	type state struct {
		status string
		next   any
		n      int
	}
	last := map[string]*state{}
	var ids []string
	for _, r := range rs {
		o := r.Outcome
		var next any
		if o.Status == StatusPending {
			next = o.Next.UnixNano()
		}
		if e := last[r.Delivery.ID]; e != nil {
			e.status, e.next, e.n = o.Status, next, e.n+1
			continue
		}
		last[r.Delivery.ID] = &state{status: o.Status, next: next, n: 1}
		ids = append(ids, r.Delivery.ID)
	}
	for rest := ids; len(rest) > 0; {
		part := rest[:min(chunk, len(rest))]
		rest = rest[len(part):]
		var q strings.Builder
		q.WriteString(`UPDATE deliveries AS d SET status = v.status, attempts = d.attempts + v.n, next_attempt_ns = v.next, updated_ns = $1 FROM (VALUES `)
		args := make([]any, 0, 4*len(part)+1)
		args = append(args, now)
		for i, id := range part {
			if i > 0 {
				q.WriteString(", ")
			}
			n := len(args)
			fmt.Fprintf(&q, "($%d::text, $%d::text, $%d::bigint, $%d::integer)", n+1, n+2, n+3, n+4)
			e := last[id]
			args = append(args, id, e.status, e.next, e.n)
		}
		q.WriteString(`) AS v(id, status, next, n) WHERE d.id = v.id`)
		if _, err := st.tx.ExecContext(ctx, q.String(), args...); err != nil { // one round trip: no prepare for a one-off text
			return err
		}
	}
	return nil
}

// Abandon marks a delivery failed without an attempt (its endpoint is gone or disabled).
func (s *Store) Abandon(ctx context.Context, id string) error {
	_, err := s.db.ExecContext(ctx, `UPDATE deliveries SET status = $1, next_attempt_ns = NULL, updated_ns = $2 WHERE id = $3 AND status = $4`,
		StatusFailed, time.Now().UnixNano(), id, StatusPending)
	s.forgetDeliveries(id)
	return err
}

// Redeliver makes a delivery pending again now.
func (s *Store) Redeliver(ctx context.Context, endpointID, id string) error {
	res, err := s.db.ExecContext(ctx, `UPDATE deliveries SET status = $1, next_attempt_ns = $2, updated_ns = $2 WHERE id = $3 AND endpoint_id = $4`,
		StatusPending, time.Now().UnixNano(), id, endpointID)
	s.forgetDeliveries(id)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}

// Pending returns up to limit pending deliveries (id and due time), for rebuilding timers.
func (s *Store) Pending(ctx context.Context, after string, limit int) ([]Delivery, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+deliveryCols+` FROM deliveries WHERE status = $1 AND id > $2 ORDER BY id LIMIT $3`, StatusPending, after, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Delivery
	for rows.Next() {
		d, err := scanDelivery(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, rows.Err()
}
