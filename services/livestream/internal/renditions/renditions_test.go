package renditions

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/spacecast/spacecast/services/livestream/internal/mp4"
	"github.com/spacecast/spacecast/services/livestream/internal/store"
)

// fakeStore hands out one job and records the outcome.
type fakeStore struct {
	mu       sync.Mutex
	job      *store.RenditionJob
	renewOK  bool
	exists   bool
	finished []store.RenditionResult
}

func (f *fakeStore) ClaimRendition(context.Context, time.Time) (store.RenditionJob, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.job == nil {
		return store.RenditionJob{}, false, nil
	}
	j := *f.job
	f.job = nil
	return j, true, nil
}

func (f *fakeStore) RenewRendition(context.Context, *store.StaticRendition) (bool, error) {
	return f.renewOK, nil
}

func (f *fakeStore) FinishRendition(_ context.Context, _ store.StaticRendition, out store.RenditionResult) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.finished = append(f.finished, out)
	return true, nil
}

func (f *fakeStore) RenditionExists(context.Context, string) (bool, error) { return f.exists, nil }

func (f *fakeStore) results() []store.RenditionResult {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]store.RenditionResult(nil), f.finished...)
}

// fakeMaker writes a file (or fails) after delay, honouring ctx.
type fakeMaker struct {
	err   error
	delay time.Duration
	calls int
}

func (m *fakeMaker) Make(ctx context.Context, _, outDir string, r mp4.Rendition) (string, error) {
	m.calls++
	select {
	case <-time.After(m.delay):
	case <-ctx.Done():
		return "", ctx.Err()
	}
	if m.err != nil {
		return "", m.err
	}
	name, _ := mp4.Name(r)
	os.MkdirAll(outDir, 0o755)
	p := filepath.Join(outDir, name)
	return p, os.WriteFile(p, []byte("mp4"), 0o644)
}

func (m *fakeMaker) Probe(context.Context, string) (mp4.Info, error) {
	return mp4.Info{Width: 320, Height: 240, Bitrate: 1000, Size: 3}, nil
}

type nopNotifier struct{}

func (nopNotifier) Notify() {}

func TestWorkerOutcomes(t *testing.T) {
	job := func(attempts int, assetStatus string) *store.RenditionJob {
		return &store.RenditionJob{StaticRendition: store.StaticRendition{ID: "r1", AssetID: "a1", Resolution: "highest",
			Status: store.RenditionPreparing, Attempts: attempts, ClaimedNS: 1}, AssetStatus: assetStatus}
	}
	cases := []struct {
		name      string
		job       *store.RenditionJob
		maker     *fakeMaker
		renewOK   bool
		want      string // status recorded ("" = nothing)
		makeCalls int
		fileLeft  bool
	}{
		{"ready", job(1, store.AssetReady), &fakeMaker{}, true, store.RenditionReady, 1, true},
		{"skipped", job(1, store.AssetReady), &fakeMaker{err: mp4.ErrSkipped}, true, store.RenditionSkipped, 1, false},
		{"ffmpeg fails", job(1, store.AssetReady), &fakeMaker{err: errors.New("boom")}, true, store.RenditionErrored, 1, false},
		{"errored asset", job(1, store.AssetErrored), &fakeMaker{}, true, store.RenditionErrored, 0, false},
		{"too many attempts", job(4, store.AssetReady), &fakeMaker{}, true, store.RenditionErrored, 0, false},
		{"claim lost while making", job(1, store.AssetReady), &fakeMaker{delay: 2 * time.Second}, false, "", 1, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			st := &fakeStore{job: c.job, renewOK: c.renewOK}
			w, err := New(Options{Store: st, Maker: c.maker, Relay: nopNotifier{}, Logger: slog.New(slog.DiscardHandler),
				Dir: dir, Lease: 300 * time.Millisecond, Poll: 20 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { _ = w.Run(ctx); close(done) }()
			deadline := time.Now().Add(10 * time.Second)
			for c.want != "" && len(st.results()) == 0 && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			if c.want == "" {
				time.Sleep(time.Second) // the lease is renewed (and refused) every 100 ms
			}
			cancel()
			<-done
			got := st.results()
			switch {
			case c.want == "" && len(got) != 0:
				t.Fatalf("recorded %v after the claim was lost", got)
			case c.want != "" && (len(got) != 1 || got[0].Status != c.want):
				t.Fatalf("recorded %v, want %s", got, c.want)
			}
			if c.maker.calls != c.makeCalls {
				t.Fatalf("ffmpeg ran %d times, want %d", c.maker.calls, c.makeCalls)
			}
			_, err = os.Stat(Path(dir, "a1", "r1", "highest.mp4"))
			if left := err == nil; left != c.fileLeft {
				t.Fatalf("file left = %v, want %v", left, c.fileLeft)
			}
			if c.want == store.RenditionReady && (got[0].Width != 320 || got[0].Filesize != 3) {
				t.Fatalf("ready without its measures: %+v", got[0])
			}
		})
	}
}
