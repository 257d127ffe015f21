package store

import (
	"context"
	"database/sql"
	"errors"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spacecast/spacecast/libs/events"
	"github.com/spacecast/spacecast/libs/idgen"
	"github.com/spacecast/spacecast/libs/outbox"
	"github.com/spacecast/spacecast/services/livestream/internal/mp4"
)

// Static rendition statuses (Mux's).
const (
	RenditionPreparing = "preparing"
	RenditionReady     = "ready"
	RenditionSkipped   = "skipped"
	RenditionErrored   = "errored"
)

// MP4 support values (Mux's deprecated mp4_support).
const (
	MP4None     = "none"
	MP4Standard = "standard"
)

// RenditionRequest asks for one static rendition (Mux's CreateStaticRenditionRequest).
type RenditionRequest struct {
	Resolution  string  `json:"resolution"`
	Passthrough *string `json:"passthrough,omitempty"`
}

// StaticRendition is a static rendition's stored row. It is never marshalled: the asset shows
// Resource(), events carry Event().
type StaticRendition struct {
	ID            string
	AssetID       string
	EnvironmentID string
	LiveStreamID  string
	Resolution    string // highest, audio-only, capped-1080p, 2160p … 270p
	Legacy        bool   // made for mp4_support (Mux shows these without id, status, type, resolution)
	Passthrough   *string
	Status        string
	Width, Height int64 // 0 until ready (and 0 for audio)
	Bitrate       int64
	Filesize      int64
	Error         string
	Attempts      int
	ClaimedNS     int64 // the worker's lease (0: nobody)
}

// Name is the rendition's file name (highest.mp4, audio.m4a, ...).
func (r StaticRendition) Name() string {
	n, _ := mp4.Name(mp4.Rendition(r.Resolution))
	return n
}

// Ext is "mp4" or "m4a".
func (r StaticRendition) Ext() string {
	if strings.HasSuffix(r.Name(), ".m4a") {
		return "m4a"
	}
	return "mp4"
}

// StaticRenditionResource is one file of an asset's static_renditions as the API shows it
// (Mux's StaticRendition).
type StaticRenditionResource struct {
	ID             string  `json:"id,omitempty"`
	Name           string  `json:"name"`
	Ext            string  `json:"ext"`
	Resolution     string  `json:"resolution,omitempty"`
	ResolutionTier string  `json:"resolution_tier,omitempty"`
	Status         string  `json:"status,omitempty"`
	Type           string  `json:"type,omitempty"`
	Width          int64   `json:"width,omitempty"`
	Height         int64   `json:"height,omitempty"`
	Bitrate        int64   `json:"bitrate,omitempty"`
	Filesize       string  `json:"filesize,omitempty"`
	Passthrough    *string `json:"passthrough,omitempty"`
}

// StaticRenditionsResource is an asset's static_renditions object: status is the aggregate
// of the mp4_support files (absent without them), files every file (mp4_support ones once
// ready, as Mux lists them).
type StaticRenditionsResource struct {
	Status string                    `json:"status,omitempty"`
	Files  []StaticRenditionResource `json:"files"`
}

// StaticRenditionEvent is a static rendition's event payload: the file with its asset and
// live stream.
type StaticRenditionEvent struct {
	StaticRenditionResource
	ID           string `json:"id"`
	AssetID      string `json:"asset_id"`
	LiveStreamID string `json:"live_stream_id"`
	Legacy       bool   `json:"mp4_support,omitempty"`
	Error        string `json:"error,omitempty"`
}

func tier(r StaticRendition) string {
	switch {
	case r.Resolution == string(mp4.AudioOnly):
		return "audio-only"
	case r.Status != RenditionReady || r.Height == 0:
		return ""
	case r.Height > 1440:
		return "2160p"
	case r.Height > 1080:
		return "1440p"
	case r.Height > 720:
		return "1080p"
	}
	return "720p"
}

// Resource is the file as the asset shows it.
func (r StaticRendition) Resource() StaticRenditionResource {
	out := StaticRenditionResource{Name: r.Name(), Ext: r.Ext(), Passthrough: r.Passthrough}
	if r.Status == RenditionReady {
		out.Width, out.Height, out.Bitrate = r.Width, r.Height, r.Bitrate
		out.Filesize = strconv.FormatInt(r.Filesize, 10)
	}
	if !r.Legacy {
		out.ID, out.Resolution, out.Status, out.Type, out.ResolutionTier = r.ID, r.Resolution, r.Status, "standard", tier(r)
	}
	return out
}

// Event is the file's event payload.
func (r StaticRendition) Event() StaticRenditionEvent {
	res := r.Resource()
	res.Status, res.Resolution, res.Type, res.ResolutionTier = r.Status, r.Resolution, "standard", tier(r)
	return StaticRenditionEvent{StaticRenditionResource: res, ID: r.ID, AssetID: r.AssetID, LiveStreamID: r.LiveStreamID,
		Legacy: r.Legacy, Error: r.Error}
}

// staticRenditions is an asset's static_renditions object (nil without any).
func staticRenditions(rs []StaticRendition) *StaticRenditionsResource {
	if len(rs) == 0 {
		return nil
	}
	out := &StaticRenditionsResource{Files: []StaticRenditionResource{}}
	legacy := map[string]int{}
	for _, r := range rs {
		if r.Legacy {
			legacy[r.Status]++
			if r.Status != RenditionReady {
				continue
			}
		}
		out.Files = append(out.Files, r.Resource())
	}
	switch {
	case len(legacy) == 0:
	case legacy[RenditionPreparing] > 0:
		out.Status = RenditionPreparing
	case legacy[RenditionReady] > 0:
		out.Status = RenditionReady
	default:
		out.Status = RenditionErrored
	}
	return out
}

// mp4Support is the asset's mp4_support: what its mp4_support renditions are.
func mp4Support(rs []StaticRendition) string {
	var set []string
	for _, r := range rs {
		if !r.Legacy {
			continue
		}
		switch r.Resolution {
		case string(mp4.Highest):
			set = append(set, MP4Standard)
		default:
			set = append(set, r.Resolution)
		}
	}
	if len(set) == 0 {
		return MP4None
	}
	sort.Strings(set)
	return strings.Join(set, ",")
}

// MP4SupportResolutions are the renditions an mp4_support value asks for (ok false: not a
// value Mux has).
func MP4SupportResolutions(v string) (res []string, ok bool) {
	switch v {
	case MP4None:
		return nil, true
	case MP4Standard:
		return []string{string(mp4.Highest)}, true
	case "capped-1080p":
		return []string{string(mp4.Capped1080p)}, true
	case "audio-only":
		return []string{string(mp4.AudioOnly)}, true
	case "audio-only,capped-1080p":
		return []string{string(mp4.AudioOnly), string(mp4.Capped1080p)}, true
	}
	return nil, false
}

const renditionCols = `id, asset_id, environment_id, live_stream_id, resolution, legacy, passthrough, status,
	width, height, bitrate, filesize, error, attempts, claimed_ns`

func scanRendition(sc interface{ Scan(...any) error }) (StaticRendition, error) {
	var r StaticRendition
	var pt, msg sql.NullString
	var w, h, br, size, claimed sql.NullInt64
	var attempts int64
	if err := sc.Scan(&r.ID, &r.AssetID, &r.EnvironmentID, &r.LiveStreamID, &r.Resolution, &r.Legacy, &pt, &r.Status,
		&w, &h, &br, &size, &msg, &attempts, &claimed); err != nil {
		return r, err
	}
	if pt.Valid {
		r.Passthrough = &pt.String
	}
	r.Width, r.Height, r.Bitrate, r.Filesize, r.Error = w.Int64, h.Int64, br.Int64, size.Int64, msg.String
	r.Attempts, r.ClaimedNS = int(attempts), claimed.Int64
	return r, nil
}

func renditionsOf(ctx context.Context, q querier, assetID string) ([]StaticRendition, error) {
	rows, err := q.QueryContext(ctx, `SELECT `+renditionCols+` FROM static_renditions WHERE asset_id = $1 ORDER BY created_ns, id`, assetID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []StaticRendition
	for rows.Next() {
		r, err := scanRendition(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

func getRendition(ctx context.Context, q querier, id string) (StaticRendition, error) {
	r, err := scanRendition(q.QueryRowContext(ctx, `SELECT `+renditionCols+` FROM static_renditions WHERE id = $1`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return r, ErrRenditionNotFound
	}
	return r, err
}

// emitRendition writes a static rendition event: subject the rendition, Kafka key the live
// stream that recorded its asset (one stream's events stay in order on one partition).
func emitRendition(ctx context.Context, tx *sql.Tx, typ string, r StaticRendition) error {
	ev, err := events.New(Source, typ, r.ID, r.EnvironmentID, r.Event())
	if err != nil {
		return err
	}
	return outbox.AddKeyed(ctx, tx, events.TopicLivestreams, r.LiveStreamID, ev)
}

// insertRendition adds a preparing rendition of a; the caller emits
// asset.static_rendition.created (after the asset's event when the asset is new).
func insertRendition(ctx context.Context, tx *sql.Tx, a Asset, req RenditionRequest, legacy bool, now int64) (StaticRendition, error) {
	r := StaticRendition{ID: idgen.New(), AssetID: a.ID, EnvironmentID: a.EnvironmentID, LiveStreamID: a.LiveStreamID,
		Resolution: req.Resolution, Legacy: legacy, Passthrough: req.Passthrough, Status: RenditionPreparing}
	if _, err := tx.ExecContext(ctx, `INSERT INTO static_renditions (id, asset_id, environment_id, live_stream_id, resolution,
		legacy, passthrough, status, created_ns) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
		r.ID, r.AssetID, r.EnvironmentID, r.LiveStreamID, r.Resolution, r.Legacy, nullString(r.Passthrough), r.Status, now); err != nil {
		return r, err
	}
	return r, nil
}

// insertAssetSettingsRenditions adds the renditions new_asset_settings asks for to a new
// recording (events: the caller's).
func insertAssetSettingsRenditions(ctx context.Context, tx *sql.Tx, a Asset, nas *AssetSettings, now int64) error {
	reqs, legacy := nas.StaticRenditions, false
	if len(reqs) == 0 && nas.MP4Support != "" {
		res, _ := MP4SupportResolutions(nas.MP4Support)
		for _, r := range res {
			reqs = append(reqs, RenditionRequest{Resolution: r})
		}
		legacy = true
	}
	for i, req := range reqs {
		if _, err := insertRendition(ctx, tx, a, req, legacy, now+int64(i)); err != nil {
			return err
		}
	}
	return nil
}

// deleteRendition removes a rendition row and emits asset.static_rendition.deleted.
func deleteRendition(ctx context.Context, tx *sql.Tx, r StaticRendition) error {
	if _, err := tx.ExecContext(ctx, `DELETE FROM static_renditions WHERE id = $1`, r.ID); err != nil {
		return err
	}
	return emitRendition(ctx, tx, "asset.static_rendition.deleted", r)
}

// CreateStaticRendition adds a rendition to an asset of env (made once the asset is ready)
// and emits asset.static_rendition.created. An asset with that resolution already gives
// ErrRenditionExists; one with mp4_support renditions ErrMP4SupportConflict.
func (s *Store) CreateStaticRendition(ctx context.Context, env, assetID string, req RenditionRequest) (StaticRendition, error) {
	var r StaticRendition
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		a, err := getAsset(ctx, tx, env, assetID)
		if err != nil {
			return err
		}
		for _, cur := range a.Renditions {
			if cur.Legacy {
				return ErrMP4SupportConflict
			}
			if cur.Resolution == req.Resolution {
				return ErrRenditionExists
			}
		}
		if r, err = insertRendition(ctx, tx, a, req, false, time.Now().UnixNano()); err != nil {
			return err
		}
		return emitRendition(ctx, tx, "asset.static_rendition.created", r)
	})
	return r, err
}

// DeleteStaticRendition removes a rendition of an asset of env and emits
// asset.static_rendition.deleted; the caller removes its file.
func (s *Store) DeleteStaticRendition(ctx context.Context, env, assetID, id string) (StaticRendition, error) {
	var r StaticRendition
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		if _, err := getAsset(ctx, tx, env, assetID); err != nil {
			return err
		}
		var err error
		if r, err = getRendition(ctx, tx, id); err != nil {
			return err
		}
		if r.AssetID != assetID || r.Legacy {
			return ErrRenditionNotFound
		}
		return deleteRendition(ctx, tx, r)
	})
	return r, err
}

// SetMP4Support makes an asset's mp4_support renditions those of v (Mux's deprecated PUT
// .../mp4-support): renditions no longer asked for are deleted (returned: the caller removes
// their files), missing ones created, and asset.updated emitted. An asset with renditions of
// the static renditions API gives ErrMP4SupportConflict unless v is "none".
func (s *Store) SetMP4Support(ctx context.Context, env, assetID, v string) (Asset, []StaticRendition, error) {
	want, ok := MP4SupportResolutions(v)
	if !ok {
		return Asset{}, nil, ErrMP4SupportConflict
	}
	var out Asset
	var removed []StaticRendition
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		a, err := getAsset(ctx, tx, env, assetID)
		if err != nil {
			return err
		}
		have := map[string]bool{}
		for _, r := range a.Renditions {
			if !r.Legacy {
				if len(want) > 0 {
					return ErrMP4SupportConflict
				}
				continue
			}
			if !containsString(want, r.Resolution) {
				if err := deleteRendition(ctx, tx, r); err != nil {
					return err
				}
				removed = append(removed, r)
				continue
			}
			have[r.Resolution] = true
		}
		now := time.Now().UnixNano()
		for i, res := range want {
			if have[res] {
				continue
			}
			r, err := insertRendition(ctx, tx, a, RenditionRequest{Resolution: res}, true, now+int64(i))
			if err != nil {
				return err
			}
			if err := emitRendition(ctx, tx, "asset.static_rendition.created", r); err != nil {
				return err
			}
		}
		if out, err = getAsset(ctx, tx, env, assetID); err != nil {
			return err
		}
		return emitAsset(ctx, tx, "asset.updated", out)
	})
	return out, removed, err
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// RenditionJob is a claimed rendition with what the worker needs of its asset.
type RenditionJob struct {
	StaticRendition
	AssetStatus string
}

// ClaimRendition takes the oldest preparing rendition of a finished (ready or errored) asset
// whose lease is free or older than staleBefore, leasing it until the worker finishes or
// renews it (ok false: nothing to do). Its Attempts counts this claim.
func (s *Store) ClaimRendition(ctx context.Context, staleBefore time.Time) (job RenditionJob, ok bool, err error) {
	for try := 0; try < 3; try++ {
		var id, status string
		err = s.db.QueryRowContext(ctx, `SELECT r.id, a.status FROM static_renditions r JOIN assets a ON a.id = r.asset_id
			WHERE r.status = $1 AND a.status <> $2 AND (r.claimed_ns IS NULL OR r.claimed_ns < $3)
			ORDER BY r.created_ns, r.id LIMIT 1`, RenditionPreparing, AssetPreparing, staleBefore.UnixNano()).Scan(&id, &status)
		if errors.Is(err, sql.ErrNoRows) {
			return job, false, nil
		}
		if err != nil {
			return job, false, err
		}
		now := time.Now().UnixNano()
		res, err := s.db.ExecContext(ctx, `UPDATE static_renditions SET claimed_ns = $1, attempts = attempts + 1
			WHERE id = $2 AND status = $3 AND (claimed_ns IS NULL OR claimed_ns < $4)`, now, id, RenditionPreparing, staleBefore.UnixNano())
		if err != nil {
			return job, false, err
		}
		if n, err := res.RowsAffected(); err != nil {
			return job, false, err
		} else if n == 0 {
			continue // another worker took it
		}
		r, err := getRendition(ctx, s.db, id)
		if err != nil {
			return job, false, err
		}
		if r.ClaimedNS != now {
			continue
		}
		return RenditionJob{StaticRendition: r, AssetStatus: status}, true, nil
	}
	return job, false, nil
}

// RenewRendition extends the lease of a claimed rendition; false when the claim is lost (the
// rendition was deleted or another worker took it over).
func (s *Store) RenewRendition(ctx context.Context, r *StaticRendition) (bool, error) {
	now := time.Now().UnixNano()
	res, err := s.db.ExecContext(ctx, `UPDATE static_renditions SET claimed_ns = $1 WHERE id = $2 AND claimed_ns = $3 AND status = $4`,
		now, r.ID, r.ClaimedNS, RenditionPreparing)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	if err != nil || n == 0 {
		return false, err
	}
	r.ClaimedNS = now
	return true, nil
}

// RenditionResult is what the worker made of a rendition.
type RenditionResult struct {
	Status                 string // RenditionReady, RenditionSkipped or RenditionErrored
	Width, Height, Bitrate int64
	Filesize               int64
	Error                  string
}

// FinishRendition records the outcome of a claimed rendition and emits
// asset.static_rendition.<status>. It reports false, changing nothing, when the claim is lost.
func (s *Store) FinishRendition(ctx context.Context, r StaticRendition, out RenditionResult) (bool, error) {
	done := false
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE static_renditions SET status = $1, width = $2, height = $3, bitrate = $4, filesize = $5,
			error = $6, claimed_ns = NULL WHERE id = $7 AND claimed_ns = $8 AND status = $9`,
			out.Status, out.Width, out.Height, out.Bitrate, out.Filesize, nullString(nonEmpty(out.Error)), r.ID, r.ClaimedNS, RenditionPreparing)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return err
		}
		cur, err := getRendition(ctx, tx, r.ID)
		if err != nil {
			return err
		}
		done = true
		return emitRendition(ctx, tx, "asset.static_rendition."+out.Status, cur)
	})
	return done, err
}

func nonEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// ReadyRendition is the ready rendition of asset assetID whose file is name
// (ErrRenditionNotFound if none is ready).
func (s *Store) ReadyRendition(ctx context.Context, assetID, name string) (StaticRendition, error) {
	rs, err := renditionsOf(ctx, s.db, assetID)
	if err != nil {
		return StaticRendition{}, err
	}
	for _, r := range rs {
		if r.Name() == name && r.Status == RenditionReady {
			return r, nil
		}
	}
	return StaticRendition{}, ErrRenditionNotFound
}

// RenditionExists reports whether the rendition row is still there (the worker asks after a
// lost claim, to know whether to remove what it made).
func (s *Store) RenditionExists(ctx context.Context, id string) (bool, error) {
	_, err := getRendition(ctx, s.db, id)
	if errors.Is(err, ErrRenditionNotFound) {
		return false, nil
	}
	return err == nil, err
}
