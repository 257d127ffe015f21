package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/spacecast/spacecast/libs/idgen"
)

// This file holds the state changes of an ingest session. Each writes its events in the same
// transaction; all have the live stream id as Kafka key (asset events too, whose subject is the
// asset) so one stream's events stay in order on spacecast.livestreams.

// Connect records an encoder connection: it continues the stream's active asset (a reconnect
// inside reconnect_window, resumed = true) or starts a new one (asset.created), and emits
// livestream.connected. A disabled stream gives ErrDisabled.
func (s *Store) Connect(ctx context.Context, id, protocol string) (ls LiveStream, asset Asset, resumed bool, err error) {
	if protocol == "" {
		protocol = IngestRTMP
	}
	if protocol != IngestRTMP && protocol != IngestRTMPS {
		return ls, asset, false, fmt.Errorf("store: unknown ingest protocol %q", protocol)
	}
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
			if asset, err = getAsset(ctx, tx, "", *cur.ActiveAssetID); err != nil {
				return err
			}
			if asset.Status != AssetPreparing {
				return ErrRecordingEnded // never reopen a ready asset
			}
			resumed = true
			if _, err := tx.ExecContext(ctx, `UPDATE live_streams SET disconnected_ns = NULL, updated_ns = $1 WHERE id = $2`, now, id); err != nil {
				return err
			}
			spans := asset.spans
			closeSpan(spans, now) // a disconnect that was never recorded (a crash) ends here at the latest
			if _, err := tx.ExecContext(ctx, `UPDATE assets SET recording_times = $1 WHERE id = $2`,
				encodeSpans(append(spans, span{Start: now})), asset.ID); err != nil {
				return err
			}
		} else {
			// The recording takes its settings from new_asset_settings, as on Mux: without
			// playback policies there it has no playback ids; the stream's own passthrough
			// and playback ids are not copied.
			aid := idgen.New()
			nas := cur.NewAssetSettings
			if nas == nil {
				nas = &AssetSettings{}
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO assets (id, environment_id, live_stream_id, status, passthrough, test, meta,
				recording_times, created_ns, updated_ns) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)`, aid, cur.EnvironmentID, id,
				AssetPreparing, nullString(nas.Passthrough), cur.Test || nas.Test, encodeMeta(nas.Meta), encodeSpans([]span{{Start: now}}), now); err != nil {
				return err
			}
			for i, p := range nas.PlaybackPolicies {
				if _, err := tx.ExecContext(ctx, `INSERT INTO playback_ids (id, environment_id, asset_id, policy, created_ns)
					VALUES ($1, $2, $3, $4, $5)`, idgen.New(), cur.EnvironmentID, aid, p, now+int64(i)); err != nil {
					return err
				}
			}
			if _, err := tx.ExecContext(ctx, `UPDATE live_streams SET active_asset_id = $1, disconnected_ns = NULL, updated_ns = $2 WHERE id = $3`, aid, now, id); err != nil {
				return err
			}
			if asset, err = getAsset(ctx, tx, "", aid); err != nil {
				return err
			}
			if err := insertAssetSettingsRenditions(ctx, tx, asset, nas, now); err != nil {
				return err
			}
			if asset, err = getAsset(ctx, tx, "", aid); err != nil {
				return err
			}
		}
		if _, err := tx.ExecContext(ctx, `UPDATE live_streams SET ingest_protocol = $1 WHERE id = $2`, protocol, id); err != nil {
			return err
		}
		if ls, err = getLS(ctx, tx, "", id); err != nil {
			return err
		}
		if err := emit(ctx, tx, "livestream.connected", id, ls.EnvironmentID, ls.Event()); err != nil {
			return err
		}
		if resumed {
			return nil
		}
		if err := emitAsset(ctx, tx, "asset.created", asset); err != nil {
			return err
		}
		for _, r := range asset.Renditions {
			if err := emitRendition(ctx, tx, "asset.static_rendition.created", r); err != nil {
				return err
			}
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

// Disconnect records that the connection to the stream's recording assetID ended at at:
// livestream.disconnected, and reconnect_window runs from at. The status stays as it is. It
// reports false, changing nothing, when assetID is no longer the active asset or the
// disconnect is already recorded (a sweep that repeats).
func (s *Store) Disconnect(ctx context.Context, id, assetID string, at time.Time) (bool, error) {
	done := false
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE live_streams SET disconnected_ns = $1, updated_ns = $2
			WHERE id = $3 AND active_asset_id = $4 AND disconnected_ns IS NULL`, at.UnixNano(), time.Now().UnixNano(), id, assetID)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return err
		}
		if err := endSpan(ctx, tx, assetID, at.UnixNano()); err != nil {
			return err
		}
		if err := idleTargets(ctx, tx, id); err != nil {
			return err
		}
		ls, err := getLS(ctx, tx, "", id)
		if err != nil {
			return err
		}
		done = true
		return emit(ctx, tx, "livestream.disconnected", id, ls.EnvironmentID, ls.Event())
	})
	return done, err
}

// RecordingState is what the ingest needs to know about a stream's current recording.
type RecordingState struct {
	LiveStreamID    string
	AssetID         string     // the active asset ("" without a recording)
	DisconnectedAt  *time.Time // when its last connection ended; nil while connected
	ReconnectWindow time.Duration
	UpdatedAt       time.Time
}

const recStateCols = `id, active_asset_id, disconnected_ns, reconnect_window, updated_ns`

func scanRecState(sc interface{ Scan(...any) error }) (RecordingState, error) {
	var r RecordingState
	var aid sql.NullString
	var disc sql.NullInt64
	var rw, upd int64
	if err := sc.Scan(&r.LiveStreamID, &aid, &disc, &rw, &upd); err != nil {
		return r, err
	}
	r.AssetID = aid.String
	if disc.Valid {
		t := time.Unix(0, disc.Int64)
		r.DisconnectedAt = &t
	}
	r.ReconnectWindow = time.Duration(rw) * time.Second
	r.UpdatedAt = time.Unix(0, upd)
	return r, nil
}

// GetRecordingState returns stream id's recording state (ErrNotFound if it is gone).
func (s *Store) GetRecordingState(ctx context.Context, id string) (RecordingState, error) {
	r, err := scanRecState(s.db.QueryRowContext(ctx, `SELECT `+recStateCols+` FROM live_streams WHERE id = $1`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return r, ErrNotFound
	}
	return r, err
}

// ActiveRecordings returns the state of every stream that has an active asset (the sweeper's
// list of candidates; the index on active_asset_id keeps it to the live ones).
func (s *Store) ActiveRecordings(ctx context.Context) ([]RecordingState, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+recStateCols+` FROM live_streams WHERE active_asset_id IS NOT NULL ORDER BY id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []RecordingState
	for rows.Next() {
		r, err := scanRecState(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// Finish ends the recording assetID of stream id: the asset becomes ready with duration (the
// media its playlist lists; asset.ready, asset.live_stream_completed), the stream forgets it
// and, unless disabled, goes idle (livestream.idle). It reports false, changing nothing, when
// assetID is no longer the stream's active asset.
func (s *Store) Finish(ctx context.Context, id, assetID string, duration time.Duration) (bool, error) {
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
		if err := endSpan(ctx, tx, assetID, now); err != nil {
			return err
		}
		if err := idleTargets(ctx, tx, id); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE assets SET status = $1, duration_ms = $2, updated_ns = $3 WHERE id = $4`,
			AssetReady, duration.Milliseconds(), now, assetID); err != nil {
			return err
		}
		status := StatusIdle
		if ls.Status == StatusDisabled {
			status = StatusDisabled
		}
		if _, err := tx.ExecContext(ctx, `UPDATE live_streams SET status = $1, active_asset_id = NULL, disconnected_ns = NULL, updated_ns = $2 WHERE id = $3`,
			status, now, id); err != nil {
			return err
		}
		if ls, err = getLS(ctx, tx, "", id); err != nil {
			return err
		}
		if status == StatusIdle {
			if err := emit(ctx, tx, "livestream.idle", id, ls.EnvironmentID, ls.Event()); err != nil {
				return err
			}
		}
		a, err := getAsset(ctx, tx, "", assetID)
		if err != nil {
			return err
		}
		for _, typ := range []string{"asset.ready", "asset.live_stream_completed"} {
			if err := emitAsset(ctx, tx, typ, a); err != nil {
				return err
			}
		}
		done = true
		return nil
	})
	return done, err
}

// endSpan ends the recording's open connection span at at (ns), if one is open.
func endSpan(ctx context.Context, tx *sql.Tx, assetID string, at int64) error {
	a, err := getAsset(ctx, tx, "", assetID)
	if err != nil {
		return err
	}
	if !closeSpan(a.spans, at) {
		return nil
	}
	_, err = tx.ExecContext(ctx, `UPDATE assets SET recording_times = $1 WHERE id = $2`, encodeSpans(a.spans), assetID)
	return err
}
