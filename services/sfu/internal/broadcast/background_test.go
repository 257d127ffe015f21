package broadcast

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/spacecast/spacecast/libs/ssrf"
	"github.com/spacecast/spacecast/services/sfu/internal/compositor"
)

func TestHTTPBackground(t *testing.T) {
	big := bytes.Repeat([]byte{1}, compositor.MaxBackgroundBytes+1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ok.png":
			_, _ = w.Write([]byte("image"))
		case "/big":
			w.Header().Set("Content-Length", "")
			_, _ = w.Write(big)
		case "/redirect":
			http.Redirect(w, r, "http://169.254.169.254/latest/meta-data", http.StatusFound)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	open, err := ssrf.New([]string{"127.0.0.0/8"})
	if err != nil {
		t.Fatal(err)
	}
	strict, err := ssrf.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		guard *ssrf.Guard
		url   string
		want  string // body, or "" for ErrBackgroundFetch
	}{
		{"allowed loopback", open, srv.URL + "/ok.png", "image"},
		{"loopback refused by the SSRF rules", strict, srv.URL + "/ok.png", ""},
		{"metadata address", open, "http://169.254.169.254/x.png", ""},
		{"redirect to a refused address", open, srv.URL + "/redirect", ""},
		{"not found", open, srv.URL + "/missing", ""},
		{"larger than the cap", open, srv.URL + "/big", ""},
		{"not http", open, "file:///etc/passwd", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := NewHTTPBackground(tc.guard)
			if err != nil {
				t.Fatal(err)
			}
			got, err := f.Fetch(context.Background(), tc.url)
			if tc.want == "" {
				if !errors.Is(err, ErrBackgroundFetch) {
					t.Fatalf("Fetch = %q, %v; want ErrBackgroundFetch", got, err)
				}
				return
			}
			if err != nil || string(got) != tc.want {
				t.Fatalf("Fetch = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
	if _, err := NewHTTPBackground(nil); err == nil {
		t.Fatal("NewHTTPBackground(nil) succeeded")
	}
}

type bgIngest struct{ bg string }

func (b bgIngest) Ingest(context.Context, string) (Ingest, error) {
	return Ingest{RTMPURL: "rtmp://127.0.0.1:1935/app", StreamKey: "k", Layout: "gallery", Resolution: "1280x720", Background: &b.bg}, nil
}

type bgFetch map[string][]byte

func (f bgFetch) Fetch(_ context.Context, url string) ([]byte, error) {
	if b, ok := f[url]; ok {
		return b, nil
	}
	return nil, ErrBackgroundFetch
}

// TestManagerBackground: a fetched background goes to the compositor; one that cannot be
// fetched, or that the compositor cannot decode, leaves the broadcast running without it.
func TestManagerBackground(t *testing.T) {
	fetch := bgFetch{"https://img.example/ok.png": []byte("png"), "https://img.example/bad.png": []byte("not an image")}
	for _, tc := range []struct {
		name, url string
		fetcher   BackgroundFetcher
		want      []bool // per NewCompositor call: was a background given
	}{
		{"fetched", "https://img.example/ok.png", fetch, []bool{true}},
		{"unreachable", "https://img.example/missing.png", fetch, []bool{false}},
		{"undecodable", "https://img.example/bad.png", fetch, []bool{true, false}},
		{"no fetcher", "https://img.example/ok.png", nil, []bool{false}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			host := &fakeHost{}
			var mu sync.Mutex
			var got []bool
			m, err := NewManager(ManagerConfig{Ingest: bgIngest{tc.url}, Logger: slog.Default(), Backgrounds: tc.fetcher,
				Hosted: func(string) Host { return host },
				NewCompositor: func(o compositor.Options) (Compositor, error) {
					mu.Lock()
					defer mu.Unlock()
					got = append(got, o.Background != nil)
					if o.Background != nil {
						b, _ := io.ReadAll(o.Background)
						if string(b) != "png" {
							return nil, compositor.ErrBackground
						}
					}
					return &fakeComp{pkts: map[string]int{}, done: make(chan struct{})}, nil
				}})
			if err != nil {
				t.Fatal(err)
			}
			m.Active("sp1", "b1")
			waitFor(t, "the broadcast", func() bool { tap, _ := host.state(); return tap != nil })
			mu.Lock()
			defer mu.Unlock()
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("backgrounds given = %v, want %v", got, tc.want)
			}
		})
	}
}
