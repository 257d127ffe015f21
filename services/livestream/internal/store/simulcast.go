package store

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/spacecast/spacecast/libs/events"
	"github.com/spacecast/spacecast/libs/idgen"
	"github.com/spacecast/spacecast/libs/outbox"
)

// Simulcast target statuses (Mux's).
const (
	TargetIdle         = "idle"
	TargetStarting     = "starting"
	TargetBroadcasting = "broadcasting"
	TargetErrored      = "errored"
)

// SimulcastTarget is a simulcast target's stored row. It is never marshalled: the API shows
// Resource(), events carry Event() (no stream key).
type SimulcastTarget struct {
	ID            string
	LiveStreamID  string
	EnvironmentID string
	URL           string
	StreamKey     *string
	Passthrough   *string
	Status        string
}

// NewSimulcastTarget are the settings of a target to create (already validated).
type NewSimulcastTarget struct {
	URL         string
	StreamKey   *string
	Passthrough *string
}

// SimulcastTargetResource is a target as the API shows it.
type SimulcastTargetResource struct {
	ID          string  `json:"id"`
	Passthrough *string `json:"passthrough,omitempty"`
	Status      string  `json:"status"`
	StreamKey   *string `json:"stream_key,omitempty"`
	URL         string  `json:"url"`
}

// SimulcastTargetEvent is a target's event payload.
type SimulcastTargetEvent struct {
	ID           string  `json:"id"`
	LiveStreamID string  `json:"live_stream_id"`
	Passthrough  *string `json:"passthrough,omitempty"`
	Status       string  `json:"status"`
	URL          string  `json:"url"`
}

// Resource is the target as the API shows it.
func (t SimulcastTarget) Resource() SimulcastTargetResource {
	return SimulcastTargetResource{ID: t.ID, Passthrough: t.Passthrough, Status: t.Status, StreamKey: t.StreamKey, URL: t.URL}
}

// Event is the target's event payload.
func (t SimulcastTarget) Event() SimulcastTargetEvent {
	return SimulcastTargetEvent{ID: t.ID, LiveStreamID: t.LiveStreamID, Passthrough: t.Passthrough, Status: t.Status, URL: t.URL}
}

const targetCols = `id, live_stream_id, environment_id, url, stream_key, passthrough, status`

func scanTarget(sc interface{ Scan(...any) error }) (SimulcastTarget, error) {
	var t SimulcastTarget
	var key, pt sql.NullString
	if err := sc.Scan(&t.ID, &t.LiveStreamID, &t.EnvironmentID, &t.URL, &key, &pt, &t.Status); err != nil {
		return t, err
	}
	if key.Valid {
		t.StreamKey = &key.String
	}
	if pt.Valid {
		t.Passthrough = &pt.String
	}
	return t, nil
}

func simulcastTargets(ctx context.Context, q querier, liveStreamID string) ([]SimulcastTarget, error) {
	rows, err := q.QueryContext(ctx, `SELECT `+targetCols+` FROM simulcast_targets WHERE live_stream_id = $1 ORDER BY created_ns, id`, liveStreamID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []SimulcastTarget{}
	for rows.Next() {
		t, err := scanTarget(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

func getTarget(ctx context.Context, q querier, liveStreamID, id string) (SimulcastTarget, error) {
	t, err := scanTarget(q.QueryRowContext(ctx, `SELECT `+targetCols+` FROM simulcast_targets WHERE id = $1 AND live_stream_id = $2`, id, liveStreamID))
	if errors.Is(err, sql.ErrNoRows) {
		return t, ErrTargetNotFound
	}
	return t, err
}

// emitTarget writes a target event: subject the target, Kafka key its live stream (one
// stream's events stay in order on one partition).
func emitTarget(ctx context.Context, tx *sql.Tx, typ string, t SimulcastTarget) error {
	ev, err := events.New(Source, typ, t.ID, t.EnvironmentID, t.Event())
	if err != nil {
		return err
	}
	return outbox.AddKeyed(ctx, tx, events.TopicLivestreams, t.LiveStreamID, ev)
}

func idle(ls LiveStream) bool {
	return ls.Status != StatusActive && ls.ActiveAssetID == nil && !ls.Connected
}

func insertTarget(ctx context.Context, tx *sql.Tx, ls LiveStream, n NewSimulcastTarget, now int64) (SimulcastTarget, error) {
	t := SimulcastTarget{ID: idgen.New(), LiveStreamID: ls.ID, EnvironmentID: ls.EnvironmentID, URL: n.URL,
		StreamKey: n.StreamKey, Passthrough: n.Passthrough, Status: TargetIdle}
	if _, err := tx.ExecContext(ctx, `INSERT INTO simulcast_targets (`+targetCols+`, created_ns) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
		t.ID, t.LiveStreamID, t.EnvironmentID, t.URL, nullString(t.StreamKey), nullString(t.Passthrough), t.Status, now); err != nil {
		return t, err
	}
	return t, emitTarget(ctx, tx, "livestream.simulcast_target.created", t)
}

// CreateSimulcastTarget adds a target to an idle live stream (ErrNotIdle otherwise) and emits
// livestream.simulcast_target.created.
func (s *Store) CreateSimulcastTarget(ctx context.Context, env, liveStreamID string, n NewSimulcastTarget) (SimulcastTarget, error) {
	var t SimulcastTarget
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		ls, err := getLS(ctx, tx, env, liveStreamID)
		if err != nil {
			return err
		}
		if !idle(ls) {
			return ErrNotIdle
		}
		t, err = insertTarget(ctx, tx, ls, n, time.Now().UnixNano())
		return err
	})
	return t, err
}

// GetSimulcastTarget returns a target of a live stream of env.
func (s *Store) GetSimulcastTarget(ctx context.Context, env, liveStreamID, id string) (SimulcastTarget, error) {
	if _, err := getLS(ctx, s.db, env, liveStreamID); err != nil {
		return SimulcastTarget{}, err
	}
	return getTarget(ctx, s.db, liveStreamID, id)
}

// SimulcastTargets returns a live stream's targets (any environment: the ingest asks).
func (s *Store) SimulcastTargets(ctx context.Context, liveStreamID string) ([]SimulcastTarget, error) {
	return simulcastTargets(ctx, s.db, liveStreamID)
}

// DeleteSimulcastTarget removes a target of an idle live stream (ErrNotIdle otherwise) and
// emits livestream.simulcast_target.deleted.
func (s *Store) DeleteSimulcastTarget(ctx context.Context, env, liveStreamID, id string) error {
	return s.db.InTx(ctx, func(tx *sql.Tx) error {
		ls, err := getLS(ctx, tx, env, liveStreamID)
		if err != nil {
			return err
		}
		t, err := getTarget(ctx, tx, liveStreamID, id)
		if err != nil {
			return err
		}
		if !idle(ls) {
			return ErrNotIdle
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM simulcast_targets WHERE id = $1`, id); err != nil {
			return err
		}
		return emitTarget(ctx, tx, "livestream.simulcast_target.deleted", t)
	})
}

// SetSimulcastTargetStatus records a target's status and emits
// livestream.simulcast_target.<status> when it changed. A deleted target is ErrTargetNotFound.
func (s *Store) SetSimulcastTargetStatus(ctx context.Context, liveStreamID, id, status string) error {
	return s.db.InTx(ctx, func(tx *sql.Tx) error {
		t, err := getTarget(ctx, tx, liveStreamID, id)
		if err != nil {
			return err
		}
		if t.Status == status {
			return nil
		}
		if _, err := tx.ExecContext(ctx, `UPDATE simulcast_targets SET status = $1 WHERE id = $2`, status, id); err != nil {
			return err
		}
		t.Status = status
		return emitTarget(ctx, tx, "livestream.simulcast_target."+status, t)
	})
}

// idleTargets sets a live stream's targets idle (with their events) when its connection ends
// or its recording finishes: normally its pushers did already; after a crash nobody else does.
func idleTargets(ctx context.Context, tx *sql.Tx, liveStreamID string) error {
	ts, err := simulcastTargets(ctx, tx, liveStreamID)
	if err != nil {
		return err
	}
	for _, t := range ts {
		if t.Status == TargetIdle {
			continue
		}
		if _, err := tx.ExecContext(ctx, `UPDATE simulcast_targets SET status = $1 WHERE id = $2`, TargetIdle, t.ID); err != nil {
			return err
		}
		t.Status = TargetIdle
		if err := emitTarget(ctx, tx, "livestream.simulcast_target.idle", t); err != nil {
			return err
		}
	}
	return nil
}
