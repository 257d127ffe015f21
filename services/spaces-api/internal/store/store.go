// Package store keeps spaces in SQL, writing each change's event to the outbox in the same
// transaction. The status follows the occupancy the SFU reports (its Redis registry is the
// only record of who is connected); the store keeps the sequence number of the last applied
// occupancy so late or repeated reports change nothing.
package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"io/fs"
	"time"

	"github.com/spacecast/spacecast/libs/events"
	"github.com/spacecast/spacecast/libs/httpapi"
	"github.com/spacecast/spacecast/libs/idgen"
	"github.com/spacecast/spacecast/libs/outbox"
	"github.com/spacecast/spacecast/libs/rowcache"
	"github.com/spacecast/spacecast/libs/sqldb"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Source is the CloudEvents source of this store's events.
const Source = "spacecast/spaces-api"

// Statuses.
const (
	StatusIdle   = "idle"
	StatusActive = "active"
)

// Row is a space as stored. It has no JSON form: the REST resource and the event payload are
// rendered from it (internal/resource).
type Row struct {
	ID              string
	EnvironmentID   string
	Type            string
	Status          string
	Passthrough     *string
	ActiveSessionID *string
	CreatedNS       int64
}

// Store is the spaces SQL store. Get and one space's Broadcasts answer from row caches
// (libs/rowcache, by space id) that every write of this store invalidates after its commit;
// Forget is for writes seen as events (another replica's). Hot statements are prepared once
// (sqldb.DB.Stmt).
type Store struct {
	db      *sqldb.DB
	render  Renderers
	out     *outbox.Writer
	creates *sqldb.Group // creates commit together
	rows    *rowcache.Cache[Row]
	bcs     *rowcache.Cache[[]BroadcastRow] // a space's broadcasts, by space id
}

// Open migrates db and returns the store; render renders the data of the events it writes.
func Open(ctx context.Context, db *sqldb.DB, render Renderers) (*Store, error) {
	if render.Space == nil || render.Broadcast == nil {
		return nil, errors.New("store: Space and Broadcast renderers are required")
	}
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return nil, err
	}
	if err := db.Migrate(ctx, sub, "spaces"); err != nil {
		return nil, err
	}
	if err := outbox.Migrate(ctx, db); err != nil {
		return nil, err
	}
	out, err := outbox.NewWriter(db)
	if err != nil {
		return nil, err
	}
	creates, err := sqldb.NewGroup(db, sqldb.GroupOptions{})
	if err != nil {
		return nil, err
	}
	rows, err := rowcache.New[Row](rowcache.Options{})
	if err != nil {
		return nil, err
	}
	bcs, err := rowcache.New[[]BroadcastRow](rowcache.Options{})
	if err != nil {
		return nil, err
	}
	return &Store{db: db, render: render, out: out, creates: creates, rows: rows, bcs: bcs}, nil
}

// Forget drops the cached row and broadcasts of space id: call it for every event about a
// space or one of its broadcasts written elsewhere.
func (s *Store) Forget(id string) { s.invalidate(id) }

// invalidate drops what is cached of space id (after every committed write of the space or
// of one of its broadcasts).
func (s *Store) invalidate(id string) {
	s.rows.Invalidate(id)
	s.bcs.Invalidate(id)
}

// Ping checks the database.
func (s *Store) Ping(ctx context.Context) error { return s.db.PingContext(ctx) }

const cols = `id, environment_id, type, status, passthrough, active_session_id, created_ns`

func scan(sc interface{ Scan(...any) error }) (Row, error) {
	var sp Row
	var pt, sess sql.NullString
	if err := sc.Scan(&sp.ID, &sp.EnvironmentID, &sp.Type, &sp.Status, &pt, &sess, &sp.CreatedNS); err != nil {
		return Row{}, err
	}
	if pt.Valid {
		sp.Passthrough = &pt.String
	}
	if sess.Valid {
		sp.ActiveSessionID = &sess.String
	}
	return sp, nil
}

// event renders a space.* event of sp with its broadcasts as they are inside tx.
func (s *Store) event(ctx context.Context, tx *sql.Tx, typ string, sp Row) (events.Envelope, error) {
	bs, err := s.spaceBroadcasts(ctx, tx, sp.ID)
	if err != nil {
		return events.Envelope{}, err
	}
	return events.New(Source, typ, sp.ID, sp.EnvironmentID, s.render.Space(sp, bs))
}

// Create inserts a new idle space with the broadcasts given (space.created, then
// space.broadcast.created for each) and returns it with its broadcasts. Concurrent creates
// share a transaction (sqldb.Group): a create returns once the commit holding it is done, and
// one that fails (an unknown live stream, a constraint) fails alone.
func (s *Store) Create(ctx context.Context, env, typ string, passthrough *string, broadcasts ...NewBroadcast) (Row, []BroadcastRow, error) {
	now := time.Now().UnixNano()
	sp := Row{ID: idgen.New(), EnvironmentID: env, Type: typ, Status: StatusIdle, Passthrough: passthrough, CreatedNS: now}
	bs := make([]BroadcastRow, len(broadcasts))
	for i, nb := range broadcasts {
		bs[i] = newBroadcastRow(sp, nb, now)
	}
	// A new space has no broadcasts but these: its event is rendered and marshalled before
	// the transaction, which then only writes.
	ev, err := events.New(Source, "space.created", sp.ID, env, s.render.Space(sp, bs))
	if err != nil {
		return Row{}, nil, err
	}
	evs := []events.Envelope{ev}
	for _, b := range bs {
		bev, err := events.New(Source, "space.broadcast.created", b.ID, b.EnvironmentID, s.render.Broadcast(b))
		if err != nil {
			return Row{}, nil, err
		}
		evs = append(evs, bev)
	}
	payloads := make([][]byte, len(evs)) // all keyed by the space, as broadcastEvent keys them
	for i, e := range evs {
		if payloads[i], err = e.Marshal(); err != nil {
			return Row{}, nil, err
		}
	}
	ticket, bticket := s.rows.Ticket(), s.bcs.Ticket()
	err = s.creates.Do(ctx, func(ctx context.Context, tx *sql.Tx) error {
		ins, err := s.db.TxStmt(ctx, tx, insertSQL)
		if err != nil {
			return err
		}
		if _, err := ins.ExecContext(ctx, sp.ID, env, typ, StatusIdle, passthrough, now); err != nil {
			return err
		}
		for _, b := range bs {
			if err := s.insertBroadcast(ctx, tx, b); err != nil {
				return err
			}
		}
		for _, p := range payloads {
			if err := s.out.AddPayload(ctx, tx, events.TopicSpaces, sp.ID, p); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return Row{}, nil, err
	}
	s.rows.Fill(sp.ID, sp, ticket)
	s.bcs.Fill(sp.ID, bs, bticket)
	return sp, bs, nil
}

const (
	insertSQL = `INSERT INTO spaces (id, environment_id, type, status, passthrough, created_ns, updated_ns)
			VALUES ($1, $2, $3, $4, $5, $6, $6)`
	getSQL = `SELECT ` + cols + ` FROM spaces WHERE id = $1`
)

// Get returns a space of env (env "" = any environment).
func (s *Store) Get(ctx context.Context, env, id string) (Row, error) {
	sp, ok := s.rows.Get(id)
	if !ok {
		ticket := s.rows.Ticket()
		st, err := s.db.Stmt(ctx, getSQL)
		if err != nil {
			return Row{}, err
		}
		sp, err = scan(st.QueryRowContext(ctx, id))
		if errors.Is(err, sql.ErrNoRows) {
			return Row{}, ErrNotFound
		}
		if err != nil {
			return Row{}, err
		}
		s.rows.Fill(id, sp, ticket)
	}
	if env != "" && sp.EnvironmentID != env {
		return Row{}, ErrNotFound
	}
	return sp, nil
}

// List returns a page of env's spaces, newest first, and the cursor of the next page ("" on
// the last). The keyset (created_ns, id) bounds the page: O(limit) at any depth with a cursor.
func (s *Store) List(ctx context.Context, env string, pg httpapi.Page) ([]Row, string, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+cols+` FROM spaces WHERE environment_id = $1 AND (created_ns, id) < ($2, $3)
		ORDER BY created_ns DESC, id DESC LIMIT $4 OFFSET $5`, env, pg.After.Time, pg.After.ID, pg.Fetch(), pg.Offset)
	if err != nil {
		return nil, "", err
	}
	defer rows.Close()
	out, keys := []Row{}, []httpapi.Key{}
	for rows.Next() {
		sp, err := scan(rows)
		if err != nil {
			return nil, "", err
		}
		out, keys = append(out, sp), append(keys, httpapi.Key{Time: sp.CreatedNS, ID: sp.ID})
	}
	out, next := httpapi.PageOf(pg, out, keys)
	return out, next, rows.Err()
}

// UpdatePassthrough sets a space's passthrough.
func (s *Store) UpdatePassthrough(ctx context.Context, env, id string, passthrough *string) (Row, error) {
	var sp Row
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE spaces SET passthrough = $1, updated_ns = $2 WHERE id = $3 AND environment_id = $4`,
			passthrough, time.Now().UnixNano(), id, env)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrNotFound
		}
		if sp, err = scan(tx.QueryRowContext(ctx, `SELECT `+cols+` FROM spaces WHERE id = $1`, id)); err != nil {
			return err
		}
		ev, err := s.event(ctx, tx, "space.updated", sp)
		if err != nil {
			return err
		}
		return s.out.Add(ctx, tx, events.TopicSpaces, ev)
	})
	s.invalidate(id)
	return sp, err
}

// Delete removes an idle space; an active one is ErrActive.
func (s *Store) Delete(ctx context.Context, env, id string) error {
	defer s.invalidate(id)
	return s.db.InTx(ctx, func(tx *sql.Tx) error {
		sp, err := scan(tx.QueryRowContext(ctx, `SELECT `+cols+` FROM spaces WHERE id = $1 AND environment_id = $2`, id, env))
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		if sp.Status == StatusActive {
			return ErrActive
		}
		bs, err := s.spaceBroadcasts(ctx, tx, id)
		if err != nil {
			return err
		}
		for _, b := range bs { // idle: only an active space has an active broadcast
			if err := s.deleteBroadcast(ctx, tx, b); err != nil {
				return err
			}
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM spaces WHERE id = $1`, id); err != nil {
			return err
		}
		ev, err := s.event(ctx, tx, "space.deleted", sp)
		if err != nil {
			return err
		}
		return s.out.Add(ctx, tx, events.TopicSpaces, ev)
	})
}

// Occupancy is what the SFU reported about a space: how many participants it has on every
// node and the space's sequence number of that report (it only grows).
type Occupancy struct {
	SpaceID      string
	Participants int
	Seq          int64
}

// ApplyOccupancy applies an SFU report (idempotent on eventID). A report older than the last
// applied one (lower or equal Seq) changes nothing; otherwise participants make an idle space
// active with a new session id (space.active) and none make an active space idle
// (space.idle). It returns whether the status changed.
func (s *Store) ApplyOccupancy(ctx context.Context, eventID string, o Occupancy) (bool, error) {
	changed := false
	defer s.invalidate(o.SpaceID)
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO processed_events (id, processed_ns) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING`, eventID, time.Now().UnixNano())
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return nil // seen before
		}
		// Conditional on the sequence, so concurrent reports cannot move it backwards.
		now := time.Now().UnixNano()
		res, err = tx.ExecContext(ctx, `UPDATE spaces SET status_seq = $1, updated_ns = $2 WHERE id = $3 AND status_seq < $1`, o.Seq, now, o.SpaceID)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return nil // a deleted space, or an older report than the one applied
		}
		sp, err := scan(tx.QueryRowContext(ctx, `SELECT `+cols+` FROM spaces WHERE id = $1`, o.SpaceID))
		if err != nil {
			return err
		}
		typ := ""
		switch {
		case o.Participants > 0 && sp.Status == StatusIdle:
			sess := idgen.New()
			sp.Status, sp.ActiveSessionID, typ = StatusActive, &sess, "space.active"
		case o.Participants == 0 && sp.Status == StatusActive:
			sp.Status, sp.ActiveSessionID, typ = StatusIdle, nil, "space.idle"
			if err := s.stopSpaceBroadcasts(ctx, tx, sp.ID); err != nil { // space.broadcast.idle first
				return err
			}
		default:
			return nil
		}
		if _, err := tx.ExecContext(ctx, `UPDATE spaces SET status = $1, active_session_id = $2 WHERE id = $3`,
			sp.Status, sp.ActiveSessionID, sp.ID); err != nil {
			return err
		}
		ev, err := s.event(ctx, tx, typ, sp)
		if err != nil {
			return err
		}
		changed = true
		return s.out.Add(ctx, tx, events.TopicSpaces, ev)
	})
	return changed, err
}

// ActiveSpaces returns up to limit active spaces of every environment with an id greater
// than after, ordered by id (for the SFU's status reconciliation).
func (s *Store) ActiveSpaces(ctx context.Context, after string, limit int) ([]Row, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+cols+` FROM spaces WHERE status = $1 AND id > $2 ORDER BY id LIMIT $3`, StatusActive, after, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []Row{}
	for rows.Next() {
		sp, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, sp)
	}
	return out, rows.Err()
}

// PruneProcessed forgets processed event ids older than age.
func (s *Store) PruneProcessed(ctx context.Context, age time.Duration) error {
	_, err := s.db.ExecContext(ctx, `DELETE FROM processed_events WHERE processed_ns < $1`, time.Now().Add(-age).UnixNano())
	return err
}
