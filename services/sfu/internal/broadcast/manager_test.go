package broadcast

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/spacecast/spacecast/libs/auth"
	"github.com/spacecast/spacecast/services/sfu/internal/compositor"
	"github.com/spacecast/spacecast/services/sfu/internal/space"
)

type fakeHost struct {
	mu    sync.Mutex
	tap   space.Tap
	on    []bool
	other bool
}

func (h *fakeHost) SetTap(t space.Tap) { h.mu.Lock(); h.tap = t; h.mu.Unlock() }
func (h *fakeHost) SetBroadcasting(on bool) {
	h.mu.Lock()
	h.on = append(h.on, on)
	h.mu.Unlock()
}
func (h *fakeHost) state() (space.Tap, []bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.tap, append([]bool(nil), h.on...)
}

type fakeIngest struct {
	mu    sync.Mutex
	fails int
	calls int
}

func (f *fakeIngest) Ingest(ctx context.Context, id string) (Ingest, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.calls <= f.fails {
		return Ingest{}, ErrNotActive
	}
	return Ingest{RTMPURL: "rtmp://127.0.0.1:1935/app/", StreamKey: "key-" + id, Layout: "crop", Resolution: "1280x720"}, nil
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestManagerStartsAndStops(t *testing.T) {
	host := &fakeHost{}
	ing := &fakeIngest{fails: 2}
	var mu sync.Mutex
	var opts []compositor.Options
	var comps []*fakeComp
	m, err := NewManager(ManagerConfig{Ingest: ing, Logger: slog.Default(),
		Hosted: func(id string) Host {
			if id == "sp1" {
				return host
			}
			return nil
		},
		NewCompositor: func(o compositor.Options) (Compositor, error) {
			mu.Lock()
			defer mu.Unlock()
			opts = append(opts, o)
			c := &fakeComp{pkts: map[string]int{}, done: make(chan struct{})}
			comps = append(comps, c)
			return c, nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	m.Active("elsewhere", "b0") // not hosted here: nothing
	m.Active("sp1", "b1")
	m.Active("sp1", "b1") // redelivered: still one
	waitFor(t, "the tap", func() bool { tap, _ := host.state(); return tap != nil })
	mu.Lock()
	if len(opts) != 1 {
		t.Fatalf("compositors started: %d", len(opts))
	}
	o := opts[0]
	mu.Unlock()
	if o.RTMPURL != "rtmp://127.0.0.1:1935/app/key-b1" || o.Width != 1280 || o.Height != 720 || o.Layout != compositor.LayoutCrop || o.FPS != 30 {
		t.Errorf("compositor options: %+v", o)
	}
	if _, on := host.state(); len(on) != 1 || !on[0] {
		t.Errorf("broadcasting states: %v", on)
	}
	m.Idle("sp1", "other") // not this broadcast
	if tap, _ := host.state(); tap == nil {
		t.Fatal("an idle of another broadcast stopped this one")
	}
	m.Idle("sp1", "b1")
	tap, on := host.state()
	if tap != nil || len(on) != 2 || on[1] {
		t.Errorf("after idle: tap %v, states %v", tap, on)
	}
	comps[0].waitCalls(t, []string{"close"})
}

func TestManagerCompositorFailureStops(t *testing.T) {
	host := &fakeHost{}
	var c *fakeComp
	m, err := NewManager(ManagerConfig{Ingest: &fakeIngest{}, Logger: slog.Default(), Hosted: func(string) Host { return host },
		NewCompositor: func(o compositor.Options) (Compositor, error) {
			c = &fakeComp{pkts: map[string]int{}, done: make(chan struct{})}
			return c, nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	m.Active("sp1", "b1")
	waitFor(t, "the tap", func() bool { tap, _ := host.state(); return tap != nil })
	close(c.done)
	waitFor(t, "the stop", func() bool { tap, on := host.state(); return tap == nil && len(on) == 2 && !on[1] })
}

func TestHTTPIngest(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get(auth.InternalAuthHeader) != "s3cret" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		switch r.URL.Path {
		case "/internal/v1/broadcasts/b1/ingest":
			_, _ = w.Write([]byte(`{"data":{"rtmp_url":"rtmp://h/app","stream_key":"k","layout":"gallery","resolution":"720x720"}}`))
		default:
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	defer srv.Close()
	h, err := NewHTTPIngest(srv.URL, "s3cret")
	if err != nil {
		t.Fatal(err)
	}
	in, err := h.Ingest(context.Background(), "b1")
	if err != nil || in.RTMPURL != "rtmp://h/app" || in.StreamKey != "k" || in.Resolution != "720x720" {
		t.Errorf("ingest: %+v %v", in, err)
	}
	if _, err := h.Ingest(context.Background(), "b2"); err != ErrNotActive {
		t.Errorf("unknown broadcast: %v", err)
	}
	bad, _ := NewHTTPIngest(srv.URL, "wrong")
	if _, err := bad.Ingest(context.Background(), "b1"); err == nil {
		t.Error("a wrong secret was accepted")
	}
	if _, err := NewHTTPIngest("ftp://x", "s"); err == nil {
		t.Error("bad URL accepted")
	}
}
