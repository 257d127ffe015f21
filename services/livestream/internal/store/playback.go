package store

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/spacecast/spacecast/libs/idgen"
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

// PlaybackIDObject is what a playback id belongs to (Mux's `GET /video/v1/playback-ids/{id}`).
type PlaybackIDObject struct {
	ID     string `json:"id"`
	Policy string `json:"policy"`
	Object struct {
		Type string `json:"type"` // "asset" or "live_stream"
		ID   string `json:"id"`
	} `json:"object"`
}

// LookupPlaybackID returns what playback id pid of env belongs to; ErrPlaybackID if nothing.
func (s *Store) LookupPlaybackID(ctx context.Context, env, pid string) (PlaybackIDObject, error) {
	var out PlaybackIDObject
	var ls, asset sql.NullString
	err := s.db.QueryRowContext(ctx, `SELECT policy, live_stream_id, asset_id FROM playback_ids WHERE id = $1 AND environment_id = $2`, pid, env).
		Scan(&out.Policy, &ls, &asset)
	if errors.Is(err, sql.ErrNoRows) {
		return out, ErrPlaybackID
	}
	if err != nil {
		return out, err
	}
	out.ID = pid
	if ls.Valid {
		out.Object.Type, out.Object.ID = "live_stream", ls.String
	} else {
		out.Object.Type, out.Object.ID = "asset", asset.String
	}
	return out, nil
}

// AddAssetPlaybackID adds a playback id to an asset and emits asset.updated.
func (s *Store) AddAssetPlaybackID(ctx context.Context, env, id, policy string) (PlaybackID, error) {
	p := PlaybackID{ID: idgen.New(), Policy: policy}
	err := s.mutateAsset(ctx, env, id, func(tx *sql.Tx, a Asset) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO playback_ids (id, environment_id, asset_id, policy, created_ns)
			VALUES ($1, $2, $3, $4, $5)`, p.ID, a.EnvironmentID, a.ID, policy, time.Now().UnixNano())
		return err
	})
	return p, err
}

// GetAssetPlaybackID returns one playback id of an asset.
func (s *Store) GetAssetPlaybackID(ctx context.Context, env, id, pid string) (PlaybackID, error) {
	a, err := s.GetAsset(ctx, env, id)
	if err != nil {
		return PlaybackID{}, err
	}
	return findPlaybackID(a.PlaybackIDs, pid)
}

// DeleteAssetPlaybackID removes a playback id of an asset and emits asset.updated.
func (s *Store) DeleteAssetPlaybackID(ctx context.Context, env, id, pid string) error {
	return s.mutateAsset(ctx, env, id, func(tx *sql.Tx, a Asset) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM playback_ids WHERE id = $1 AND asset_id = $2`, pid, a.ID)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			if err == nil {
				err = ErrPlaybackID
			}
			return err
		}
		return nil
	})
}

// mutateAsset runs f on the asset inside a transaction, then emits asset.updated with the asset
// as it is after f.
func (s *Store) mutateAsset(ctx context.Context, env, id string, f func(tx *sql.Tx, a Asset) error) error {
	return s.db.InTx(ctx, func(tx *sql.Tx) error {
		a, err := getAsset(ctx, tx, env, id)
		if err != nil {
			return err
		}
		if err := f(tx, a); err != nil {
			return err
		}
		if a, err = getAsset(ctx, tx, env, id); err != nil {
			return err
		}
		return emitAsset(ctx, tx, "asset.updated", a)
	})
}
