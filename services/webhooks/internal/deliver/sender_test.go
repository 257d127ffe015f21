package deliver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spacecast/spacecast/libs/ssrf"
)

// TestGuardRunsAtConnectTime sends to names and addresses that resolve to refused addresses:
// the dialer refuses the address it is about to connect to, so no request reaches the server
// whatever the URL said (a name that resolves differently later — DNS rebinding — is checked
// on the address actually dialled).
func TestGuardRunsAtConnectTime(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { hits.Add(1) }))
	defer srv.Close()
	port := srv.URL[strings.LastIndex(srv.URL, ":"):]
	guard, err := ssrf.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	s := NewSender(guard, 2*time.Second)
	for _, u := range []string{srv.URL, "http://localhost" + port, "http://[::ffff:127.0.0.1]" + port} {
		res := s.Send(context.Background(), u, []byte("{}"), nil)
		if res.Err == nil || !errors.Is(res.Err, ssrf.ErrRefused) {
			t.Errorf("%s: err = %v, want ErrRefused", u, res.Err)
		}
	}
	// A zone made netip.Prefix.Contains false, so [::1%lo] passed the check and connected.
	if ln, err := net.Listen("tcp", "[::1]:0"); err == nil {
		srv6 := httptest.NewUnstartedServer(srv.Config.Handler)
		srv6.Listener = ln
		srv6.Start()
		defer srv6.Close()
		ifs, _ := net.Interfaces()
		for _, i := range ifs {
			if i.Flags&net.FlagLoopback == 0 {
				continue
			}
			u := fmt.Sprintf("http://[::1%%25%s]:%d/", i.Name, ln.Addr().(*net.TCPAddr).Port)
			if res := s.Send(context.Background(), u, []byte("{}"), nil); !errors.Is(res.Err, ssrf.ErrRefused) {
				t.Errorf("%s: err = %v, status %d; want ErrRefused", u, res.Err, res.Status)
			}
		}
	}
	if hits.Load() != 0 {
		t.Fatalf("%d requests reached a refused address", hits.Load())
	}
	allowed, _ := ssrf.New([]string{"127.0.0.0/8"})
	if res := NewSender(allowed, 2*time.Second).Send(context.Background(), srv.URL, []byte("{}"), nil); res.Err != nil || res.Status != 200 {
		t.Fatalf("allowlisted loopback: %+v", res)
	}
}

func TestRedirectsAreNotFollowed(t *testing.T) {
	var target atomic.Int32
	dst := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { target.Add(1) }))
	defer dst.Close()
	src := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, dst.URL, http.StatusTemporaryRedirect)
	}))
	defer src.Close()
	g, _ := ssrf.New([]string{"127.0.0.0/8"})
	res := NewSender(g, 2*time.Second).Send(context.Background(), src.URL, []byte("{}"), nil)
	if res.Status != 307 || target.Load() != 0 {
		t.Fatalf("status %d, target hit %d times", res.Status, target.Load())
	}
}
