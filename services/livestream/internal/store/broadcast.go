package store

import (
	"context"
	"database/sql"
	"errors"
	"time"
)

// BroadcastTarget is a broadcast of a space to a live stream, as spaces-api's events tell it.
type BroadcastTarget struct {
	BroadcastID   string
	SpaceID       string
	EnvironmentID string
	LiveStreamID  string
	Active        bool
	Layout        string
	Resolution    string
	Background    *string
}

// PutBroadcastTarget records the latest state of a broadcast (idempotent: the newest event
// per broadcast wins, and events of one space arrive in order).
func (s *Store) PutBroadcastTarget(ctx context.Context, b BroadcastTarget) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO broadcast_targets (broadcast_id, space_id, environment_id, live_stream_id, active,
		layout, resolution, background, updated_ns) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
		ON CONFLICT (broadcast_id) DO UPDATE SET space_id = $2, environment_id = $3, live_stream_id = $4, active = $5, layout = $6,
		resolution = $7, background = $8, updated_ns = $9`,
		b.BroadcastID, b.SpaceID, b.EnvironmentID, b.LiveStreamID, b.Active, b.Layout, b.Resolution, b.Background, time.Now().UnixNano())
	return err
}

// DeleteBroadcastTarget forgets a deleted broadcast.
func (s *Store) DeleteBroadcastTarget(ctx context.Context, broadcastID string) error {
	_, err := s.db.ExecContext(ctx, `DELETE FROM broadcast_targets WHERE broadcast_id = $1`, broadcastID)
	return err
}

// ActiveBroadcastTarget returns an active broadcast and its live stream (of the broadcast's
// environment), or ErrBroadcastNotActive.
func (s *Store) ActiveBroadcastTarget(ctx context.Context, broadcastID string) (BroadcastTarget, LiveStream, error) {
	var b BroadcastTarget
	var bg sql.NullString
	err := s.db.QueryRowContext(ctx, `SELECT broadcast_id, space_id, environment_id, live_stream_id, active, layout, resolution, background
		FROM broadcast_targets WHERE broadcast_id = $1 AND active = $2`, broadcastID, true).Scan(
		&b.BroadcastID, &b.SpaceID, &b.EnvironmentID, &b.LiveStreamID, &b.Active, &b.Layout, &b.Resolution, &bg)
	if errors.Is(err, sql.ErrNoRows) {
		return BroadcastTarget{}, LiveStream{}, ErrBroadcastNotActive
	}
	if err != nil {
		return BroadcastTarget{}, LiveStream{}, err
	}
	if bg.Valid {
		b.Background = &bg.String
	}
	ls, err := s.Get(ctx, b.EnvironmentID, b.LiveStreamID)
	if errors.Is(err, ErrNotFound) {
		return BroadcastTarget{}, LiveStream{}, ErrBroadcastNotActive
	}
	return b, ls, err
}
