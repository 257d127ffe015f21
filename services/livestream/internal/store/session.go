package store

import (
	"context"
	"database/sql"
	"time"

	"github.com/spacecast/spacecast/libs/idgen"
)

// This file holds the state changes of an ingest session. Each writes its events in the same
// transaction; all carry the live stream id as subject (asset events too) so one stream's events
// stay in order on spacecast.livestreams.

// Connect records an encoder connection: it continues the stream's active asset (a reconnect
// inside reconnect_window, resumed = true) or starts a new one (asset.created), and emits
// livestream.connected. A disabled stream gives ErrDisabled.
func (s *Store) Connect(ctx context.Context, id string) (ls LiveStream, asset Asset, resumed bool, err error) {
	err = s.db.InTx(ctx, func(tx *sql.Tx) error {
		cur, err := getLS(ctx, tx, "", id)
		if err != nil {
			return err
		}
		if cur.Status == StatusDisabled {
			return ErrDisabled
		}
		now := time.Now().UnixNano()
		if cur.ActiveAssetID != nil {
			resumed = true
			if asset, err = getAsset(ctx, tx, "", *cur.ActiveAssetID); err != nil {
				return err
			}
		} else {
			aid := idgen.New()
			if _, err := tx.ExecContext(ctx, `INSERT INTO assets (id, environment_id, live_stream_id, status, passthrough, created_ns, updated_ns)
				VALUES ($1, $2, $3, $4, $5, $6, $6)`, aid, cur.EnvironmentID, id, AssetPreparing, nullString(cur.Passthrough), now); err != nil {
				return err
			}
			for i, p := range cur.PlaybackIDs {
				if _, err := tx.ExecContext(ctx, `INSERT INTO playback_ids (id, environment_id, asset_id, policy, created_ns)
					VALUES ($1, $2, $3, $4, $5)`, idgen.New(), cur.EnvironmentID, aid, p.Policy, now+int64(i)); err != nil {
					return err
				}
			}
			if _, err := tx.ExecContext(ctx, `UPDATE live_streams SET active_asset_id = $1, updated_ns = $2 WHERE id = $3`, aid, now, id); err != nil {
				return err
			}
			if asset, err = getAsset(ctx, tx, "", aid); err != nil {
				return err
			}
			asset.IsLive = true
		}
		if ls, err = getLS(ctx, tx, "", id); err != nil {
			return err
		}
		if err := emit(ctx, tx, "livestream.connected", id, ls.EnvironmentID, ls); err != nil {
			return err
		}
		if !resumed {
			return emit(ctx, tx, "asset.created", id, ls.EnvironmentID, asset)
		}
		return nil
	})
	return ls, asset, resumed, err
}

// Recording emits livestream.recording (the first media of a connection arrived).
func (s *Store) Recording(ctx context.Context, id string) (LiveStream, error) {
	return s.mutate(ctx, "", id, "livestream.recording", func(*sql.Tx, LiveStream) error { return nil })
}

// Activate sets the status active (the stream is playable) and emits livestream.active.
func (s *Store) Activate(ctx context.Context, id string) (LiveStream, error) {
	return s.mutate(ctx, "", id, "livestream.active", func(tx *sql.Tx, ls LiveStream) error {
		if ls.Status == StatusDisabled {
			return ErrDisabled
		}
		_, err := tx.ExecContext(ctx, `UPDATE live_streams SET status = $1, updated_ns = $2 WHERE id = $3`,
			StatusActive, time.Now().UnixNano(), id)
		return err
	})
}

// Disconnect emits livestream.disconnected and adds recorded to the active asset's duration.
// The status stays as it is: the reconnect window decides what happens next.
func (s *Store) Disconnect(ctx context.Context, id string, recorded time.Duration) (LiveStream, error) {
	return s.mutate(ctx, "", id, "livestream.disconnected", func(tx *sql.Tx, ls LiveStream) error {
		if ls.ActiveAssetID == nil {
			return nil
		}
		_, err := tx.ExecContext(ctx, `UPDATE assets SET duration_ms = COALESCE(duration_ms, 0) + $1, updated_ns = $2 WHERE id = $3`,
			recorded.Milliseconds(), time.Now().UnixNano(), *ls.ActiveAssetID)
		return err
	})
}

// Finish ends the recording assetID of stream id: the asset becomes ready (asset.ready,
// asset.live_stream_completed), the stream forgets it and, unless disabled, goes idle
// (livestream.idle). It reports false, changing nothing, when assetID is no longer the stream's
// active asset (a timer that lost a race with a reconnect or complete).
func (s *Store) Finish(ctx context.Context, id, assetID string) (bool, error) {
	done := false
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		ls, err := getLS(ctx, tx, "", id)
		if err != nil {
			return err
		}
		if ls.ActiveAssetID == nil || *ls.ActiveAssetID != assetID {
			return nil
		}
		now := time.Now().UnixNano()
		if _, err := tx.ExecContext(ctx, `UPDATE assets SET status = $1, duration_ms = COALESCE(duration_ms, 0), updated_ns = $2 WHERE id = $3`,
			AssetReady, now, assetID); err != nil {
			return err
		}
		status := StatusIdle
		if ls.Status == StatusDisabled {
			status = StatusDisabled
		}
		if _, err := tx.ExecContext(ctx, `UPDATE live_streams SET status = $1, active_asset_id = NULL, updated_ns = $2 WHERE id = $3`,
			status, now, id); err != nil {
			return err
		}
		if ls, err = getLS(ctx, tx, "", id); err != nil {
			return err
		}
		if status == StatusIdle {
			if err := emit(ctx, tx, "livestream.idle", id, ls.EnvironmentID, ls); err != nil {
				return err
			}
		}
		a, err := getAsset(ctx, tx, "", assetID)
		if err != nil {
			return err
		}
		for _, typ := range []string{"asset.ready", "asset.live_stream_completed"} {
			if err := emit(ctx, tx, typ, id, ls.EnvironmentID, a); err != nil {
				return err
			}
		}
		done = true
		return nil
	})
	return done, err
}
