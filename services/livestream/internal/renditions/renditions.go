// Package renditions makes assets' static (MP4/M4A) renditions: one worker goroutine claims a
// preparing rendition of a finished asset from the store (a lease it renews while ffmpeg runs),
// makes the file next to the recording and records ready, skipped or errored. A worker killed
// mid-file leaves the row claimed; once the lease expires any instance makes it again (the
// file is written to a temporary name and renamed, so nothing half-written is ever served).
package renditions

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/spacecast/spacecast/services/livestream/internal/hls"
	"github.com/spacecast/spacecast/services/livestream/internal/mp4"
	"github.com/spacecast/spacecast/services/livestream/internal/store"
)

// Store is what the worker needs of the live stream store.
type Store interface {
	ClaimRendition(ctx context.Context, staleBefore time.Time) (store.RenditionJob, bool, error)
	RenewRendition(ctx context.Context, r *store.StaticRendition) (bool, error)
	FinishRendition(ctx context.Context, r store.StaticRendition, out store.RenditionResult) (bool, error)
	RenditionExists(ctx context.Context, id string) (bool, error)
}

// Maker makes and measures a rendition's file (a *mp4.Maker).
type Maker interface {
	Make(ctx context.Context, playlist, outDir string, r mp4.Rendition) (string, error)
	Probe(ctx context.Context, path string) (mp4.Info, error)
}

// Notifier is woken after a transaction that wrote events.
type Notifier interface{ Notify() }

var (
	_ Store = (*store.Store)(nil)
	_ Maker = (*mp4.Maker)(nil)
)

// Options configure a Worker.
type Options struct {
	Store  Store
	Maker  Maker
	Relay  Notifier
	Logger *slog.Logger
	Dir    string        // recordings: <Dir>/<asset id>/
	Lease  time.Duration // a claim not renewed for this long is taken over (30s)
	Poll   time.Duration // how often to look for work when not woken (1s)
	// MaxAttempts: a rendition claimed this many times without finishing (its worker died
	// each time) is errored (3).
	MaxAttempts int
}

// Worker makes static renditions; Run is its one goroutine.
type Worker struct {
	o    Options
	wake chan struct{}
}

// New checks the options.
func New(o Options) (*Worker, error) {
	if o.Store == nil || o.Maker == nil || o.Relay == nil || o.Logger == nil || o.Dir == "" {
		return nil, errors.New("renditions: Store, Maker, Relay, Logger and Dir are required")
	}
	if o.Lease <= 0 {
		o.Lease = 30 * time.Second
	}
	if o.Poll <= 0 {
		o.Poll = time.Second
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 3
	}
	return &Worker{o: o, wake: make(chan struct{}, 1)}, nil
}

// Path is where rendition id of asset assetID keeps its file name.
func Path(dir, assetID, id, name string) string {
	return filepath.Join(dir, assetID, "static", id, name)
}

// Remove deletes a rendition's file (a deleted rendition, or mp4_support turned off).
func (w *Worker) Remove(assetID, id string) error {
	return os.RemoveAll(filepath.Dir(Path(w.o.Dir, assetID, id, "x")))
}

// Wake makes the worker look for work now (a rendition was asked for).
func (w *Worker) Wake() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// Run makes renditions until ctx ends.
func (w *Worker) Run(ctx context.Context) error {
	t := time.NewTicker(w.o.Poll)
	defer t.Stop()
	for {
		for {
			job, ok, err := w.o.Store.ClaimRendition(ctx, time.Now().Add(-w.o.Lease))
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				w.o.Logger.Warn("claiming a static rendition", "err", err)
				break
			}
			if !ok {
				break
			}
			w.do(ctx, job)
			if ctx.Err() != nil {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-w.wake:
		}
	}
}

// made is the outcome of one ffmpeg run.
type made struct {
	path string
	err  error
}

// do makes one claimed rendition: ffmpeg runs in its own goroutine while this one renews the
// lease, and only this one touches the claim.
func (w *Worker) do(ctx context.Context, job store.RenditionJob) {
	r := job.StaticRendition
	log := w.o.Logger.With("asset_id", r.AssetID, "static_rendition_id", r.ID, "resolution", r.Resolution)
	switch {
	case job.AssetStatus != store.AssetReady:
		w.finish(ctx, log, r, store.RenditionResult{Status: store.RenditionErrored, Error: "the asset is " + job.AssetStatus})
		return
	case r.Attempts > w.o.MaxAttempts:
		w.finish(ctx, log, r, store.RenditionResult{Status: store.RenditionErrored,
			Error: fmt.Sprintf("gave up after %d attempts", r.Attempts-1)})
		return
	}
	outDir := filepath.Dir(Path(w.o.Dir, r.AssetID, r.ID, r.Name()))
	playlist := filepath.Join(w.o.Dir, r.AssetID, hls.VODPlaylist)
	mctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan made, 1)
	start := time.Now()
	go func() {
		p, err := w.o.Maker.Make(mctx, playlist, outDir, mp4.Rendition(r.Resolution))
		done <- made{p, err}
	}()
	renew := time.NewTicker(w.o.Lease / 3)
	defer renew.Stop()
	var res made
	for waiting := true; waiting; {
		select {
		case res = <-done:
			waiting = false
		case <-renew.C:
			ok, err := w.o.Store.RenewRendition(ctx, &r)
			if err != nil {
				log.Warn("renewing a static rendition's lease", "err", err)
				continue
			}
			if !ok { // deleted, or taken over: stop and leave it to its new owner
				cancel()
				<-done
				w.lost(ctx, log, r, outDir)
				return
			}
		}
	}
	if ctx.Err() != nil {
		return // shutting down: the lease expires and the rendition is made again
	}
	var out store.RenditionResult
	switch {
	case errors.Is(res.err, mp4.ErrSkipped):
		out = store.RenditionResult{Status: store.RenditionSkipped, Error: res.err.Error()}
	case res.err != nil:
		out = store.RenditionResult{Status: store.RenditionErrored, Error: truncate(res.err.Error(), 1000)}
	default:
		info, err := w.o.Maker.Probe(ctx, res.path)
		if err != nil {
			out = store.RenditionResult{Status: store.RenditionErrored, Error: truncate(err.Error(), 1000)}
			break
		}
		out = store.RenditionResult{Status: store.RenditionReady, Width: int64(info.Width), Height: int64(info.Height),
			Bitrate: info.Bitrate, Filesize: info.Size}
	}
	if out.Status != store.RenditionReady {
		os.RemoveAll(outDir)
	}
	log.Info("static rendition made", "status", out.Status, "took", time.Since(start).Round(time.Millisecond), "error", out.Error)
	if !w.finish(ctx, log, r, out) {
		w.lost(ctx, log, r, outDir)
	}
}

// finish records the outcome; false when the claim was lost meanwhile.
func (w *Worker) finish(ctx context.Context, log *slog.Logger, r store.StaticRendition, out store.RenditionResult) bool {
	ok, err := w.o.Store.FinishRendition(ctx, r, out)
	if err != nil {
		log.Warn("recording a static rendition's outcome", "err", err)
		return true // the lease expires and it is made again
	}
	if ok {
		w.o.Relay.Notify()
	}
	return ok
}

// lost cleans up after a claim that is no longer ours: if the rendition (or its asset) was
// deleted meanwhile, what was made goes too, and the asset's directory if nothing is left.
func (w *Worker) lost(ctx context.Context, log *slog.Logger, r store.StaticRendition, outDir string) {
	exists, err := w.o.Store.RenditionExists(ctx, r.ID)
	if err != nil || exists {
		return // taken over by another worker: its file
	}
	log.Info("static rendition deleted while it was made")
	os.RemoveAll(outDir)
	os.Remove(filepath.Dir(outDir))               // <asset>/static, if empty
	os.Remove(filepath.Dir(filepath.Dir(outDir))) // <asset>, if the asset is gone and it is empty
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
