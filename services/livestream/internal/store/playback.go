package store

import (
	"context"
	"database/sql"
	"errors"
)

// PlaybackTarget is what a playback id plays.
type PlaybackTarget struct {
	PlaybackID    string
	EnvironmentID string
	Policy        string
	Live          bool   // a live stream's playback id (else an asset's)
	LiveStreamID  string // the live stream (for an asset: the one that recorded it)
	Active        bool   // live: the stream is active and has a recording to play
	AssetID       string // the recording to play: the live stream's active asset, or the asset
	AssetStatus   string // an asset's status (empty for a live stream's playback id)
}

// ResolvePlayback finds what playback id pid plays; ErrPlaybackID if nothing.
func (s *Store) ResolvePlayback(ctx context.Context, pid string) (PlaybackTarget, error) {
	t := PlaybackTarget{PlaybackID: pid}
	var ls, asset sql.NullString
	err := s.db.QueryRowContext(ctx, `SELECT environment_id, policy, live_stream_id, asset_id FROM playback_ids WHERE id = $1`, pid).
		Scan(&t.EnvironmentID, &t.Policy, &ls, &asset)
	if errors.Is(err, sql.ErrNoRows) {
		return t, ErrPlaybackID
	}
	if err != nil {
		return t, err
	}
	if ls.Valid {
		t.Live, t.LiveStreamID = true, ls.String
		var status string
		var active sql.NullString
		err = s.db.QueryRowContext(ctx, `SELECT status, active_asset_id FROM live_streams WHERE id = $1`, ls.String).Scan(&status, &active)
		if errors.Is(err, sql.ErrNoRows) {
			return t, ErrPlaybackID
		}
		if err != nil {
			return t, err
		}
		t.Active = status == StatusActive && active.Valid
		t.AssetID = active.String
		return t, nil
	}
	t.AssetID = asset.String
	err = s.db.QueryRowContext(ctx, `SELECT status, live_stream_id FROM assets WHERE id = $1`, asset.String).Scan(&t.AssetStatus, &t.LiveStreamID)
	if errors.Is(err, sql.ErrNoRows) {
		return t, ErrPlaybackID
	}
	return t, err
}
