package store

import (
	"context"
	"database/sql"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/spacecast/spacecast/libs/events"
	"github.com/spacecast/spacecast/libs/idgen"
	"github.com/spacecast/spacecast/libs/outbox"
	"github.com/spacecast/spacecast/libs/sqldb"
)

// Broadcast statuses are the space's: idle and active.

// BroadcastRow is a broadcast as stored (rendered by internal/resource for the API and events).
type BroadcastRow struct {
	ID            string
	SpaceID       string
	EnvironmentID string
	LiveStreamID  string
	Status        string
	Layout        string
	Background    *string
	Resolution    string
	Passthrough   *string
	CreatedNS     int64
}

// NewBroadcast is what a caller asks for; the store gives it an id, the space's environment
// and the idle status.
type NewBroadcast struct {
	LiveStreamID string
	Layout       string
	Background   *string
	Resolution   string
	Passthrough  *string
}

// Renderers turn rows into event data: Space for space.* events (with the space's
// broadcasts), Broadcast for space.broadcast.* events.
type Renderers struct {
	Space     func(Row, []BroadcastRow) any
	Broadcast func(BroadcastRow) any
}

const bcCols = `id, space_id, environment_id, live_stream_id, status, layout, background, resolution, passthrough, created_ns`

func scanBroadcast(sc interface{ Scan(...any) error }) (BroadcastRow, error) {
	var b BroadcastRow
	var bg, pt sql.NullString
	if err := sc.Scan(&b.ID, &b.SpaceID, &b.EnvironmentID, &b.LiveStreamID, &b.Status, &b.Layout, &bg, &b.Resolution, &pt, &b.CreatedNS); err != nil {
		return BroadcastRow{}, err
	}
	if bg.Valid {
		b.Background = &bg.String
	}
	if pt.Valid {
		b.Passthrough = &pt.String
	}
	return b, nil
}

type querier interface {
	QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row
}

func queryBroadcasts(ctx context.Context, q querier, where string, args ...any) ([]BroadcastRow, error) {
	return scanBroadcasts(q.QueryContext(ctx, `SELECT `+bcCols+` FROM broadcasts WHERE `+where+` ORDER BY created_ns, id`, args...))
}

// spaceBroadcastsSQL is the query of one space's broadcasts, prepared once (sqldb.DB.Stmt):
// every GET of a space and every space event runs it.
const spaceBroadcastsSQL = `SELECT ` + bcCols + ` FROM broadcasts WHERE space_id = $1 ORDER BY created_ns, id`

// spaceBroadcasts returns the broadcasts of space id, inside tx when tx is not nil.
func (s *Store) spaceBroadcasts(ctx context.Context, tx *sql.Tx, id string) ([]BroadcastRow, error) {
	st, err := s.db.Stmt(ctx, spaceBroadcastsSQL)
	if err != nil {
		return nil, err
	}
	if tx != nil {
		st = tx.StmtContext(ctx, st)
	}
	return scanBroadcasts(st.QueryContext(ctx, id))
}

func scanBroadcasts(rows *sql.Rows, err error) ([]BroadcastRow, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []BroadcastRow{}
	for rows.Next() {
		b, err := scanBroadcast(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, rows.Err()
}

// Broadcasts returns the broadcasts of the given spaces, by space id (one space's from the
// cache; the rows are shared: do not modify them).
func (s *Store) Broadcasts(ctx context.Context, spaceIDs ...string) (map[string][]BroadcastRow, error) {
	out := map[string][]BroadcastRow{}
	switch len(spaceIDs) {
	case 0:
		return out, nil
	case 1: // a GET of a space: cached
		id := spaceIDs[0]
		bs, ok := s.bcs.Get(id)
		if !ok {
			ticket := s.bcs.Ticket()
			var err error
			if bs, err = s.spaceBroadcasts(ctx, nil, id); err != nil {
				return nil, err
			}
			s.bcs.Fill(id, bs, ticket)
		}
		if len(bs) > 0 {
			out[id] = bs
		}
		return out, nil
	}
	ph := make([]string, len(spaceIDs))
	args := make([]any, len(spaceIDs))
	for i, id := range spaceIDs {
		ph[i], args[i] = "$"+strconv.Itoa(i+1), id
	}
	bs, err := queryBroadcasts(ctx, s.db, `space_id IN (`+strings.Join(ph, ", ")+`)`, args...)
	if err != nil {
		return nil, err
	}
	for _, b := range bs {
		out[b.SpaceID] = append(out[b.SpaceID], b)
	}
	return out, nil
}

// GetBroadcast returns broadcast bid of space spaceID in env (env "" = any environment).
// A missing or foreign space is ErrNotFound, a missing broadcast ErrBroadcastNotFound.
func (s *Store) GetBroadcast(ctx context.Context, env, spaceID, bid string) (Row, BroadcastRow, error) {
	sp, err := scan(s.db.QueryRowContext(ctx, `SELECT `+cols+` FROM spaces WHERE id = $1 AND ($2 = '' OR environment_id = $2)`, spaceID, env))
	if errors.Is(err, sql.ErrNoRows) {
		return Row{}, BroadcastRow{}, ErrNotFound
	}
	if err != nil {
		return Row{}, BroadcastRow{}, err
	}
	b, err := scanBroadcast(s.db.QueryRowContext(ctx, `SELECT `+bcCols+` FROM broadcasts WHERE id = $1 AND space_id = $2`, bid, spaceID))
	if errors.Is(err, sql.ErrNoRows) {
		return Row{}, BroadcastRow{}, ErrBroadcastNotFound
	}
	return sp, b, err
}

// BroadcastByID returns a broadcast of any space and environment (internal lookups).
func (s *Store) BroadcastByID(ctx context.Context, bid string) (BroadcastRow, error) {
	b, err := scanBroadcast(s.db.QueryRowContext(ctx, `SELECT `+bcCols+` FROM broadcasts WHERE id = $1`, bid))
	if errors.Is(err, sql.ErrNoRows) {
		return BroadcastRow{}, ErrBroadcastNotFound
	}
	return b, err
}

func (s *Store) broadcastEvent(ctx context.Context, tx *sql.Tx, typ string, b BroadcastRow) error {
	ev, err := events.New(Source, typ, b.ID, b.EnvironmentID, s.render.Broadcast(b))
	if err != nil {
		return err
	}
	// Keyed by the space, so a space's and its broadcast's events stay in order.
	return outbox.AddKeyed(ctx, tx, events.TopicSpaces, b.SpaceID, ev)
}

// newBroadcastRow is the idle broadcast nb of sp, created at now.
func newBroadcastRow(sp Row, nb NewBroadcast, now int64) BroadcastRow {
	return BroadcastRow{ID: idgen.New(), SpaceID: sp.ID, EnvironmentID: sp.EnvironmentID, LiveStreamID: nb.LiveStreamID, Status: StatusIdle,
		Layout: nb.Layout, Background: nb.Background, Resolution: nb.Resolution, Passthrough: nb.Passthrough, CreatedNS: now}
}

// insertBroadcast adds broadcast b (newBroadcastRow) inside tx; the caller writes its
// space.broadcast.created.
func (s *Store) insertBroadcast(ctx context.Context, tx *sql.Tx, b BroadcastRow) error {
	var known int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM known_live_streams WHERE id = $1 AND environment_id = $2 AND deleted = 0`,
		b.LiveStreamID, b.EnvironmentID).Scan(&known); err != nil {
		return err
	}
	if known == 0 {
		return ErrUnknownLiveStream
	}
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM broadcasts WHERE space_id = $1`, b.SpaceID).Scan(&n); err != nil {
		return err
	}
	if n > 0 {
		return ErrBroadcastExists
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO broadcasts (id, space_id, environment_id, live_stream_id, status, layout, background,
		resolution, passthrough, created_ns, updated_ns) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10)`,
		b.ID, b.SpaceID, b.EnvironmentID, b.LiveStreamID, b.Status, b.Layout, b.Background, b.Resolution, b.Passthrough, b.CreatedNS); err != nil {
		if sqldb.IsUniqueViolation(err) {
			return ErrBroadcastExists // a concurrent create won
		}
		return err
	}
	return nil
}

// CreateBroadcast adds an idle broadcast to space spaceID of env.
func (s *Store) CreateBroadcast(ctx context.Context, env, spaceID string, nb NewBroadcast) (BroadcastRow, error) {
	var b BroadcastRow
	defer s.invalidate(spaceID)
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		sp, err := scan(tx.QueryRowContext(ctx, `SELECT `+cols+` FROM spaces WHERE id = $1 AND environment_id = $2`, spaceID, env))
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		b = newBroadcastRow(sp, nb, time.Now().UnixNano())
		if err := s.insertBroadcast(ctx, tx, b); err != nil {
			return err
		}
		return s.broadcastEvent(ctx, tx, "space.broadcast.created", b)
	})
	return b, err
}

// lockBroadcast reads space and broadcast inside tx, taking the space row's write lock first
// (an UPDATE that changes nothing) so start, stop and the space going idle serialize.
func lockBroadcast(ctx context.Context, tx *sql.Tx, env, spaceID, bid string) (Row, BroadcastRow, error) {
	res, err := tx.ExecContext(ctx, `UPDATE spaces SET updated_ns = updated_ns WHERE id = $1 AND environment_id = $2`, spaceID, env)
	if err != nil {
		return Row{}, BroadcastRow{}, err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return Row{}, BroadcastRow{}, ErrNotFound
	}
	sp, err := scan(tx.QueryRowContext(ctx, `SELECT `+cols+` FROM spaces WHERE id = $1`, spaceID))
	if err != nil {
		return Row{}, BroadcastRow{}, err
	}
	b, err := scanBroadcast(tx.QueryRowContext(ctx, `SELECT `+bcCols+` FROM broadcasts WHERE id = $1 AND space_id = $2`, bid, spaceID))
	if errors.Is(err, sql.ErrNoRows) {
		return Row{}, BroadcastRow{}, ErrBroadcastNotFound
	}
	return sp, b, err
}

func (s *Store) setBroadcastStatus(ctx context.Context, tx *sql.Tx, b *BroadcastRow, status string) error {
	if _, err := tx.ExecContext(ctx, `UPDATE broadcasts SET status = $1, updated_ns = $2 WHERE id = $3`, status, time.Now().UnixNano(), b.ID); err != nil {
		return err
	}
	b.Status = status
	return s.broadcastEvent(ctx, tx, "space.broadcast."+status, *b)
}

// StartBroadcast makes an idle broadcast of an active space active (space.broadcast.active);
// an idle space is ErrSpaceNotActive, a live stream another active broadcast is sending to
// ErrLiveStreamBroadcast, a deleted live stream ErrLiveStreamGone. Starting an active broadcast
// changes nothing.
func (s *Store) StartBroadcast(ctx context.Context, env, spaceID, bid string) (BroadcastRow, bool, error) {
	var b BroadcastRow
	defer s.invalidate(spaceID)
	changed := false
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		sp, row, err := lockBroadcast(ctx, tx, env, spaceID, bid)
		if err != nil {
			return err
		}
		b = row
		if sp.Status != StatusActive {
			return ErrSpaceNotActive
		}
		if b.Status == StatusActive {
			return nil
		}
		// Lock the live stream's row: two spaces starting broadcasts to it serialize here.
		res, err := tx.ExecContext(ctx, `UPDATE known_live_streams SET deleted = deleted WHERE id = $1 AND environment_id = $2 AND deleted = 0`,
			b.LiveStreamID, b.EnvironmentID)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrLiveStreamGone
		}
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM broadcasts WHERE live_stream_id = $1 AND status = $2 AND id <> $3`,
			b.LiveStreamID, StatusActive, b.ID).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return ErrLiveStreamBroadcast
		}
		changed = true
		return s.setBroadcastStatus(ctx, tx, &b, StatusActive)
	})
	return b, changed, err
}

// StopBroadcast makes an active broadcast idle (space.broadcast.idle); stopping an idle one
// changes nothing.
func (s *Store) StopBroadcast(ctx context.Context, env, spaceID, bid string) (BroadcastRow, bool, error) {
	var b BroadcastRow
	defer s.invalidate(spaceID)
	changed := false
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		_, row, err := lockBroadcast(ctx, tx, env, spaceID, bid)
		if err != nil {
			return err
		}
		b = row
		if b.Status != StatusActive {
			return nil
		}
		changed = true
		return s.setBroadcastStatus(ctx, tx, &b, StatusIdle)
	})
	return b, changed, err
}

// DeleteBroadcast removes an idle broadcast (space.broadcast.deleted); an active one is
// ErrBroadcastActive.
func (s *Store) DeleteBroadcast(ctx context.Context, env, spaceID, bid string) error {
	defer s.invalidate(spaceID)
	return s.db.InTx(ctx, func(tx *sql.Tx) error {
		_, b, err := lockBroadcast(ctx, tx, env, spaceID, bid)
		if err != nil {
			return err
		}
		if b.Status == StatusActive {
			return ErrBroadcastActive
		}
		return s.deleteBroadcast(ctx, tx, b)
	})
}

func (s *Store) deleteBroadcast(ctx context.Context, tx *sql.Tx, b BroadcastRow) error {
	if _, err := tx.ExecContext(ctx, `DELETE FROM broadcasts WHERE id = $1`, b.ID); err != nil {
		return err
	}
	return s.broadcastEvent(ctx, tx, "space.broadcast.deleted", b)
}

// stopSpaceBroadcasts makes every active broadcast of a space that went idle idle, inside tx.
func (s *Store) stopSpaceBroadcasts(ctx context.Context, tx *sql.Tx, spaceID string) error {
	bs, err := queryBroadcasts(ctx, tx, `space_id = $1 AND status = $2`, spaceID, StatusActive)
	if err != nil {
		return err
	}
	for i := range bs {
		if err := s.setBroadcastStatus(ctx, tx, &bs[i], StatusIdle); err != nil {
			return err
		}
	}
	return nil
}

// LiveStreamCreated records a live stream seen on spacecast.livestreams (idempotent; a
// replayed created event never revives a deleted stream).
func (s *Store) LiveStreamCreated(ctx context.Context, id, env string) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO known_live_streams (id, environment_id, deleted) VALUES ($1, $2, 0)
		ON CONFLICT (id) DO NOTHING`, id, env)
	return err
}

// LiveStreamDeleted marks a live stream gone: new broadcasts cannot name it.
func (s *Store) LiveStreamDeleted(ctx context.Context, id, env string) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO known_live_streams (id, environment_id, deleted) VALUES ($1, $2, 1)
		ON CONFLICT (id) DO UPDATE SET deleted = 1`, id, env)
	return err
}
