// Package store keeps live streams, their playback ids and their recordings (assets) in SQL,
// writing each change's event to the outbox in the same transaction.
package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"io/fs"
	"strconv"
	"time"

	"github.com/spacecast/spacecast/libs/events"
	"github.com/spacecast/spacecast/libs/httpapi"
	"github.com/spacecast/spacecast/libs/idgen"
	"github.com/spacecast/spacecast/libs/outbox"
	"github.com/spacecast/spacecast/libs/sqldb"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Source is the CloudEvents source of this store's events.
const Source = "spacecast/livestream"

// Live stream statuses.
const (
	StatusIdle     = "idle"
	StatusActive   = "active"
	StatusDisabled = "disabled"
)

// Ingest protocols (active_ingest_protocol).
const (
	IngestRTMP  = "rtmp"
	IngestRTMPS = "rtmps"
)

// Asset statuses.
const (
	AssetPreparing = "preparing"
	AssetReady     = "ready"
	AssetErrored   = "errored"
)

// Playback policies.
const (
	PolicyPublic = "public"
	PolicySigned = "signed"
)

// PlaybackID is a playback id as the API shows it.
type PlaybackID struct {
	ID     string `json:"id"`
	Policy string `json:"policy"`
}

// LiveStream is a live stream's stored row with its playback ids and recent assets. It is
// never marshalled: the API shows Resource(), events carry Event() (no stream key).
type LiveStream struct {
	ID                    string
	EnvironmentID         string
	CreatedAt             string // unix seconds
	StreamKey             string
	Status                string
	PlaybackIDs           []PlaybackID
	ReconnectWindow       int
	LatencyMode           string
	MaxContinuousDuration int
	Passthrough           *string
	NewAssetSettings      *AssetSettings
	RecentAssetIDs        []string
	ActiveAssetID         *string
	Connected             bool   // an encoder is connected to the active recording
	IngestProtocol        string // while Connected: IngestRTMP or IngestRTMPS
	Test                  bool
	AudioOnly             bool
	Meta                  *Meta
	SimulcastTargets      []SimulcastTarget
}

// Asset is a recording's stored row with its playback ids. It is never marshalled: the API
// shows Resource(), events carry Event().
type Asset struct {
	ID            string
	EnvironmentID string
	CreatedAt     string // unix seconds
	Status        string
	Duration      *float64 // seconds
	LiveStreamID  string
	PlaybackIDs   []PlaybackID
	Passthrough   *string
	Test          bool
	Meta          *Meta
	Media         *Media
	Renditions    []StaticRendition // static (MP4) renditions, oldest first
	spans         []span
}

// NewLiveStream are the settings of a live stream to create.
type NewLiveStream struct {
	Policies              []string
	ReconnectWindow       int
	LatencyMode           string
	MaxContinuousDuration int
	Passthrough           *string
	NewAssetSettings      *AssetSettings
	Test                  bool
	AudioOnly             bool
	Meta                  *Meta
	SimulcastTargets      []NewSimulcastTarget
}

// Patch holds the fields PATCH may change; nil leaves a field as it is.
type Patch struct {
	ReconnectWindow       *int
	LatencyMode           *string
	MaxContinuousDuration *int
	Passthrough           *string
	NewAssetSettings      *AssetSettings
	AudioOnly             *bool
	Meta                  *Meta // an empty Meta clears it
}

// Store is the live stream SQL store.
type Store struct {
	db *sqldb.DB
}

// Open migrates db and returns the store.
func Open(ctx context.Context, db *sqldb.DB) (*Store, error) {
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return nil, err
	}
	if err := db.Migrate(ctx, sub, "livestream"); err != nil {
		return nil, err
	}
	if err := outbox.Migrate(ctx, db); err != nil {
		return nil, err
	}
	return &Store{db: db}, nil
}

// Ping checks the database.
func (s *Store) Ping(ctx context.Context) error { return s.db.PingContext(ctx) }

type querier interface {
	QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row
}

const lsCols = `id, environment_id, stream_key, status, reconnect_window, latency_mode, max_continuous_duration,
	passthrough, new_asset_settings, test, active_asset_id, created_ns, disconnected_ns, audio_only, meta, ingest_protocol`

func unixSeconds(ns int64) string { return strconv.FormatInt(ns/int64(time.Second), 10) }

func scanLS(sc interface{ Scan(...any) error }) (LiveStream, error) {
	var ls LiveStream
	var pt, nas, active, meta sql.NullString
	var rw, mcd, ns int64
	var disc sql.NullInt64
	var proto sql.NullString
	if err := sc.Scan(&ls.ID, &ls.EnvironmentID, &ls.StreamKey, &ls.Status, &rw, &ls.LatencyMode, &mcd,
		&pt, &nas, &ls.Test, &active, &ns, &disc, &ls.AudioOnly, &meta, &proto); err != nil {
		return LiveStream{}, err
	}
	ls.ReconnectWindow, ls.MaxContinuousDuration = int(rw), int(mcd)
	if pt.Valid {
		ls.Passthrough = &pt.String
	}
	if nas.Valid {
		ls.NewAssetSettings = decodeAssetSettings(nas.String)
	}
	if active.Valid {
		ls.ActiveAssetID = &active.String
		ls.Connected = !disc.Valid
		if ls.Connected {
			ls.IngestProtocol = IngestRTMP
			if proto.Valid && proto.String != "" {
				ls.IngestProtocol = proto.String
			}
		}
	}
	if meta.Valid {
		ls.Meta = decodeMeta(meta.String)
	}
	ls.CreatedAt = unixSeconds(ns)
	return ls, nil
}

// fill loads a live stream's playback ids and recent asset ids.
func fill(ctx context.Context, q querier, ls *LiveStream) error {
	var err error
	if ls.PlaybackIDs, err = playbackIDs(ctx, q, "live_stream_id", ls.ID); err != nil {
		return err
	}
	if ls.SimulcastTargets, err = simulcastTargets(ctx, q, ls.ID); err != nil {
		return err
	}
	rows, err := q.QueryContext(ctx, `SELECT id FROM assets WHERE live_stream_id = $1 ORDER BY created_ns, id`, ls.ID)
	if err != nil {
		return err
	}
	defer rows.Close()
	ls.RecentAssetIDs = []string{}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return err
		}
		ls.RecentAssetIDs = append(ls.RecentAssetIDs, id)
	}
	return rows.Err()
}

func playbackIDs(ctx context.Context, q querier, col, owner string) ([]PlaybackID, error) {
	rows, err := q.QueryContext(ctx, `SELECT id, policy FROM playback_ids WHERE `+col+` = $1 ORDER BY created_ns, id`, owner)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []PlaybackID{}
	for rows.Next() {
		var p PlaybackID
		if err := rows.Scan(&p.ID, &p.Policy); err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

func getLS(ctx context.Context, q querier, env, id string) (LiveStream, error) {
	ls, err := scanLS(q.QueryRowContext(ctx, `SELECT `+lsCols+` FROM live_streams WHERE id = $1 AND ($2 = '' OR environment_id = $2)`, id, env))
	if errors.Is(err, sql.ErrNoRows) {
		return LiveStream{}, ErrNotFound
	}
	if err != nil {
		return LiveStream{}, err
	}
	return ls, fill(ctx, q, &ls)
}

func emit(ctx context.Context, tx *sql.Tx, typ, subject, env string, data any) error {
	ev, err := events.New(Source, typ, subject, env, data)
	if err != nil {
		return err
	}
	return outbox.Add(ctx, tx, events.TopicLivestreams, ev)
}

// emitAsset writes an asset event: subject (and so the webhook's object) the asset, Kafka key
// its live stream, so that one stream's events, its recordings' too, stay in order on one
// partition.
func emitAsset(ctx context.Context, tx *sql.Tx, typ string, a Asset) error {
	ev, err := events.New(Source, typ, a.ID, a.EnvironmentID, a.Event())
	if err != nil {
		return err
	}
	return outbox.AddKeyed(ctx, tx, events.TopicLivestreams, a.LiveStreamID, ev)
}

func nullString(p *string) any {
	if p == nil {
		return nil
	}
	return *p
}

// Create inserts a new idle live stream with a fresh stream key and one playback id per policy.
func (s *Store) Create(ctx context.Context, env string, n NewLiveStream) (LiveStream, error) {
	now := time.Now().UnixNano()
	id := idgen.New()
	var ls LiveStream
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO live_streams (id, environment_id, stream_key, status, reconnect_window,
			latency_mode, max_continuous_duration, passthrough, new_asset_settings, test, audio_only, meta, created_ns, updated_ns)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13)`,
			id, env, idgen.Secret(), StatusIdle, n.ReconnectWindow, n.LatencyMode, n.MaxContinuousDuration,
			nullString(n.Passthrough), encodeAssetSettings(n.NewAssetSettings), n.Test, n.AudioOnly, encodeMeta(n.Meta), now); err != nil {
			return err
		}
		for i, p := range n.Policies {
			if _, err := tx.ExecContext(ctx, `INSERT INTO playback_ids (id, environment_id, live_stream_id, policy, created_ns)
				VALUES ($1, $2, $3, $4, $5)`, idgen.New(), env, id, p, now+int64(i)); err != nil {
				return err
			}
		}
		created, err := getLS(ctx, tx, env, id)
		if err != nil {
			return err
		}
		for i, t := range n.SimulcastTargets {
			if _, err := insertTarget(ctx, tx, created, t, now+int64(i)); err != nil {
				return err
			}
		}
		if ls, err = getLS(ctx, tx, env, id); err != nil {
			return err
		}
		return emit(ctx, tx, "livestream.created", id, env, ls.Event())
	})
	return ls, err
}

// Get returns a live stream of env (env "" = any environment).
func (s *Store) Get(ctx context.Context, env, id string) (LiveStream, error) {
	return getLS(ctx, s.db, env, id)
}

// GetByStreamKey returns the live stream whose current key is key.
func (s *Store) GetByStreamKey(ctx context.Context, key string) (LiveStream, error) {
	ls, err := scanLS(s.db.QueryRowContext(ctx, `SELECT `+lsCols+` FROM live_streams WHERE stream_key = $1`, key))
	if errors.Is(err, sql.ErrNoRows) {
		return LiveStream{}, ErrNotFound
	}
	if err != nil {
		return LiveStream{}, err
	}
	return ls, fill(ctx, s.db, &ls)
}

// List returns a page of env's live streams, newest first, optionally filtered by status and stream key.
// It also returns the cursor of the next page ("" on the last); the keyset (created_ns, id)
// bounds the page, O(limit) at any depth with a cursor.
func (s *Store) List(ctx context.Context, env, status, streamKey string, pg httpapi.Page) ([]LiveStream, string, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+lsCols+`, created_ns FROM live_streams WHERE environment_id = $1
		AND ($2 = '' OR status = $2) AND ($3 = '' OR stream_key = $3) AND (created_ns, id) < ($4, $5)
		ORDER BY created_ns DESC, id DESC LIMIT $6 OFFSET $7`, env, status, streamKey, pg.After.Time, pg.After.ID, pg.Fetch(), pg.Offset)
	if err != nil {
		return nil, "", err
	}
	out, keys := []LiveStream{}, []httpapi.Key{}
	for rows.Next() {
		var ns int64
		ls, err := scanLS(httpapi.ScanKey(rows, &ns))
		if err != nil {
			rows.Close()
			return nil, "", err
		}
		out, keys = append(out, ls), append(keys, httpapi.Key{Time: ns, ID: ls.ID})
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, "", err
	}
	out, next := httpapi.PageOf(pg, out, keys)
	for i := range out {
		if err := fill(ctx, s.db, &out[i]); err != nil {
			return nil, "", err
		}
	}
	return out, next, nil
}

// mutate runs f on the live stream inside a transaction, then emits typ with the stream as it is after f.
func (s *Store) mutate(ctx context.Context, env, id, typ string, f func(tx *sql.Tx, ls LiveStream) error) (LiveStream, error) {
	var out LiveStream
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		ls, err := getLS(ctx, tx, env, id)
		if err != nil {
			return err
		}
		if err := f(tx, ls); err != nil {
			return err
		}
		if out, err = getLS(ctx, tx, env, id); err != nil {
			return err
		}
		if typ == "" {
			return nil
		}
		return emit(ctx, tx, typ, id, out.EnvironmentID, out.Event())
	})
	return out, err
}

// Update applies p and emits livestream.updated.
func (s *Store) Update(ctx context.Context, env, id string, p Patch) (LiveStream, error) {
	return s.mutate(ctx, env, id, "livestream.updated", func(tx *sql.Tx, ls LiveStream) error {
		if p.ReconnectWindow != nil {
			ls.ReconnectWindow = *p.ReconnectWindow
		}
		if p.LatencyMode != nil {
			ls.LatencyMode = *p.LatencyMode
		}
		if p.MaxContinuousDuration != nil {
			ls.MaxContinuousDuration = *p.MaxContinuousDuration
		}
		if p.Passthrough != nil {
			ls.Passthrough = p.Passthrough
		}
		if p.NewAssetSettings != nil {
			ls.NewAssetSettings = p.NewAssetSettings
		}
		if p.AudioOnly != nil {
			ls.AudioOnly = *p.AudioOnly
		}
		if p.Meta != nil {
			ls.Meta = p.Meta
		}
		_, err := tx.ExecContext(ctx, `UPDATE live_streams SET reconnect_window = $1, latency_mode = $2,
			max_continuous_duration = $3, passthrough = $4, new_asset_settings = $5, audio_only = $6, meta = $7, updated_ns = $8 WHERE id = $9`,
			ls.ReconnectWindow, ls.LatencyMode, ls.MaxContinuousDuration, nullString(ls.Passthrough),
			encodeAssetSettings(ls.NewAssetSettings), ls.AudioOnly, encodeMeta(ls.Meta), time.Now().UnixNano(), ls.ID)
		return err
	})
}

// ResetStreamKey gives the stream a new key; the old one stops matching at once.
func (s *Store) ResetStreamKey(ctx context.Context, env, id string) (LiveStream, error) {
	return s.mutate(ctx, env, id, "livestream.updated", func(tx *sql.Tx, ls LiveStream) error {
		_, err := tx.ExecContext(ctx, `UPDATE live_streams SET stream_key = $1, updated_ns = $2 WHERE id = $3`,
			idgen.Secret(), time.Now().UnixNano(), ls.ID)
		return err
	})
}

// SetEnabled enables (status idle) or disables a live stream and emits livestream.enabled or
// livestream.disabled. Enabling a stream that is not disabled changes nothing and emits nothing.
func (s *Store) SetEnabled(ctx context.Context, env, id string, enabled bool) (LiveStream, error) {
	typ := "livestream.disabled"
	if enabled {
		typ = "livestream.enabled"
	}
	ls, err := s.Get(ctx, env, id)
	if err != nil {
		return LiveStream{}, err
	}
	if enabled == (ls.Status != StatusDisabled) {
		return ls, nil
	}
	return s.mutate(ctx, env, id, typ, func(tx *sql.Tx, ls LiveStream) error {
		status := StatusDisabled
		if enabled {
			status = StatusIdle
		}
		if enabled && ls.ActiveAssetID != nil {
			status = StatusActive
		}
		_, err := tx.ExecContext(ctx, `UPDATE live_streams SET status = $1, updated_ns = $2 WHERE id = $3`,
			status, time.Now().UnixNano(), ls.ID)
		return err
	})
}

// Delete removes a live stream and its playback ids (its recordings stay) and emits
// livestream.deleted. A stream with a recording in progress gives ErrRecordingActive: end it
// first.
func (s *Store) Delete(ctx context.Context, env, id string) (LiveStream, error) {
	var ls LiveStream
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		var err error
		if ls, err = getLS(ctx, tx, env, id); err != nil {
			return err
		}
		if ls.ActiveAssetID != nil {
			return ErrRecordingActive // a publisher came back since its recording was ended
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM playback_ids WHERE live_stream_id = $1`, id); err != nil {
			return err
		}
		for _, t := range ls.SimulcastTargets {
			if err := emitTarget(ctx, tx, "livestream.simulcast_target.deleted", t); err != nil {
				return err
			}
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM simulcast_targets WHERE live_stream_id = $1`, id); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM live_streams WHERE id = $1`, id); err != nil {
			return err
		}
		return emit(ctx, tx, "livestream.deleted", id, ls.EnvironmentID, ls.Event())
	})
	return ls, err
}

// AddPlaybackID adds a playback id to a live stream and emits livestream.updated.
func (s *Store) AddPlaybackID(ctx context.Context, env, id, policy string) (PlaybackID, error) {
	p := PlaybackID{ID: idgen.New(), Policy: policy}
	_, err := s.mutate(ctx, env, id, "livestream.updated", func(tx *sql.Tx, ls LiveStream) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO playback_ids (id, environment_id, live_stream_id, policy, created_ns)
			VALUES ($1, $2, $3, $4, $5)`, p.ID, ls.EnvironmentID, ls.ID, policy, time.Now().UnixNano())
		return err
	})
	return p, err
}

// findPlaybackID is pid among ids, or ErrPlaybackID.
func findPlaybackID(ids []PlaybackID, pid string) (PlaybackID, error) {
	for _, p := range ids {
		if p.ID == pid {
			return p, nil
		}
	}
	return PlaybackID{}, ErrPlaybackID
}

// GetPlaybackID returns one playback id of a live stream.
func (s *Store) GetPlaybackID(ctx context.Context, env, id, pid string) (PlaybackID, error) {
	ls, err := s.Get(ctx, env, id)
	if err != nil {
		return PlaybackID{}, err
	}
	return findPlaybackID(ls.PlaybackIDs, pid)
}

// DeletePlaybackID removes a playback id of a live stream and emits livestream.updated.
func (s *Store) DeletePlaybackID(ctx context.Context, env, id, pid string) error {
	_, err := s.mutate(ctx, env, id, "livestream.updated", func(tx *sql.Tx, ls LiveStream) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM playback_ids WHERE id = $1 AND live_stream_id = $2`, pid, ls.ID)
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
	return err
}

const assetCols = `id, environment_id, live_stream_id, status, duration_ms, passthrough, created_ns, test, meta, media, recording_times`

func scanAsset(sc interface{ Scan(...any) error }) (Asset, error) {
	var a Asset
	var dur sql.NullInt64
	var pt, meta, media, spans sql.NullString
	var ns int64
	if err := sc.Scan(&a.ID, &a.EnvironmentID, &a.LiveStreamID, &a.Status, &dur, &pt, &ns, &a.Test, &meta, &media, &spans); err != nil {
		return Asset{}, err
	}
	if dur.Valid {
		d := float64(dur.Int64) / 1000
		a.Duration = &d
	}
	if pt.Valid {
		a.Passthrough = &pt.String
	}
	if meta.Valid {
		a.Meta = decodeMeta(meta.String)
	}
	if media.Valid {
		a.Media = decodeMedia(media.String)
	}
	if spans.Valid {
		a.spans = decodeSpans(spans.String)
	}
	a.CreatedAt = unixSeconds(ns)
	return a, nil
}

func getAsset(ctx context.Context, q querier, env, id string) (Asset, error) {
	a, err := scanAsset(q.QueryRowContext(ctx, `SELECT `+assetCols+` FROM assets WHERE id = $1 AND ($2 = '' OR environment_id = $2)`, id, env))
	if errors.Is(err, sql.ErrNoRows) {
		return Asset{}, ErrAssetNotFound
	}
	if err != nil {
		return Asset{}, err
	}
	if a.PlaybackIDs, err = playbackIDs(ctx, q, "asset_id", a.ID); err != nil {
		return a, err
	}
	a.Renditions, err = renditionsOf(ctx, q, a.ID)
	return a, err
}

// GetAsset returns an asset of env (env "" = any environment).
func (s *Store) GetAsset(ctx context.Context, env, id string) (Asset, error) {
	return getAsset(ctx, s.db, env, id)
}

// ListAssets returns a page of env's assets, newest first, optionally of one live stream.
// It also returns the cursor of the next page ("" on the last); the keyset (created_ns, id)
// bounds the page, O(limit) at any depth with a cursor.
func (s *Store) ListAssets(ctx context.Context, env, liveStreamID string, pg httpapi.Page) ([]Asset, string, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+assetCols+`, created_ns FROM assets WHERE environment_id = $1
		AND ($2 = '' OR live_stream_id = $2) AND (created_ns, id) < ($3, $4)
		ORDER BY created_ns DESC, id DESC LIMIT $5 OFFSET $6`, env, liveStreamID, pg.After.Time, pg.After.ID, pg.Fetch(), pg.Offset)
	if err != nil {
		return nil, "", err
	}
	out, keys := []Asset{}, []httpapi.Key{}
	for rows.Next() {
		var ns int64
		a, err := scanAsset(httpapi.ScanKey(rows, &ns))
		if err != nil {
			rows.Close()
			return nil, "", err
		}
		out, keys = append(out, a), append(keys, httpapi.Key{Time: ns, ID: a.ID})
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, "", err
	}
	out, next := httpapi.PageOf(pg, out, keys)
	for i := range out {
		if out[i].PlaybackIDs, err = playbackIDs(ctx, s.db, "asset_id", out[i].ID); err != nil {
			return nil, "", err
		}
		if out[i].Renditions, err = renditionsOf(ctx, s.db, out[i].ID); err != nil {
			return nil, "", err
		}
	}
	return out, next, nil
}

// DeleteAsset removes an asset, its playback ids and its static renditions (with their
// asset.static_rendition.deleted) and emits asset.deleted.
func (s *Store) DeleteAsset(ctx context.Context, env, id string) (Asset, error) {
	var a Asset
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		var err error
		if a, err = getAsset(ctx, tx, env, id); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM playback_ids WHERE asset_id = $1`, id); err != nil {
			return err
		}
		for _, r := range a.Renditions {
			if err := deleteRendition(ctx, tx, r); err != nil {
				return err
			}
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM assets WHERE id = $1`, id); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE live_streams SET active_asset_id = NULL WHERE active_asset_id = $1`, id); err != nil {
			return err
		}
		return emitAsset(ctx, tx, "asset.deleted", a)
	})
	return a, err
}
