package auth_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/spacecast/spacecast/libs/auth"
	"github.com/spacecast/spacecast/libs/httpapi"
	"github.com/spacecast/spacecast/libs/testenv"
)

// lookup is a counting TokenLookup double: the cache in front of it is under test.
type lookup struct {
	mu      sync.Mutex
	recs    map[string]auth.TokenRecord
	err     error         // returned for every call when set
	gate    chan struct{} // when set, calls wait for it to close
	calls   atomic.Int32
	started chan string // receives each looked-up id, if set
}

func (l *lookup) LookupToken(ctx context.Context, id string) (auth.TokenRecord, error) {
	l.calls.Add(1)
	if l.started != nil {
		l.started <- id
	}
	l.mu.Lock()
	gate := l.gate
	l.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return auth.TokenRecord{}, ctx.Err()
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err != nil {
		return auth.TokenRecord{}, l.err
	}
	r, ok := l.recs[id]
	if !ok {
		return auth.TokenRecord{}, auth.ErrTokenNotFound
	}
	return r, nil
}

func (l *lookup) update(id string, f func(r *auth.TokenRecord)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	r := l.recs[id]
	f(&r)
	l.recs[id] = r
}

func newLookup() *lookup {
	return &lookup{recs: map[string]auth.TokenRecord{
		"reader": {ID: "reader", EnvironmentID: "env1", SecretHash: auth.HashSecret("s-reader"), Permissions: []string{auth.VideoRead}},
		"writer": {ID: "writer", EnvironmentID: "env1", SecretHash: auth.HashSecret("s-writer"), Permissions: []string{auth.VideoRead, auth.VideoWrite}},
		"admin":  {ID: "admin", EnvironmentID: "env0", SecretHash: auth.HashSecret("s-admin"), Admin: true},
		"old":    {ID: "old", EnvironmentID: "env1", SecretHash: auth.HashSecret("s-old"), Permissions: auth.AllPermissions, Revoked: true},
	}}
}

// clock is an injectable, settable time source.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func newClock() *clock { return &clock{now: time.Unix(1_900_000_000, 0)} }

// server mounts a protected group the way services do.
func server(t *testing.T, v *auth.Verifier) *httptest.Server {
	t.Helper()
	e := httpapi.NewServer(httpapi.Options{})
	g := e.Group("/video/v1", v.Middleware())
	whoami := func(c echo.Context) error {
		p := auth.PrincipalFrom(c)
		return httpapi.Data(c, http.StatusOK, map[string]any{"token": p.TokenID, "env": p.EnvironmentID, "admin": p.Admin, "perms": p.Permissions})
	}
	g.GET("/read", whoami, auth.Require(auth.VideoRead))
	g.POST("/write", whoami, auth.Require(auth.VideoWrite))
	g.GET("/system", whoami, auth.Require(auth.SystemWrite))
	g.GET("/admin", whoami, auth.RequireAdmin())
	s := httptest.NewServer(e)
	t.Cleanup(s.Close)
	return s
}

type result struct {
	status int
	body   string
	header http.Header
}

func call(t *testing.T, s *httptest.Server, method, path, id, secret string, basic bool) result {
	t.Helper()
	req, _ := http.NewRequest(method, s.URL+path, nil)
	if basic {
		req.SetBasicAuth(id, secret)
	}
	res, err := s.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return result{res.StatusCode, string(b), res.Header}
}

func envelopeType(t *testing.T, body string) string {
	t.Helper()
	var env struct {
		Error struct {
			Type     string   `json:"type"`
			Messages []string `json:"messages"`
		} `json:"error"`
	}
	if err := json.Unmarshal([]byte(body), &env); err != nil || len(env.Error.Messages) == 0 {
		t.Fatalf("not an error envelope: %s", body)
	}
	return env.Error.Type
}

func newVerifier(t *testing.T, l auth.TokenLookup, o auth.VerifierOptions) *auth.Verifier {
	t.Helper()
	v, err := auth.NewVerifier(l, o)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestMiddleware(t *testing.T) {
	s := server(t, newVerifier(t, newLookup(), auth.VerifierOptions{}))
	tests := []struct {
		name         string
		method, path string
		id, secret   string
		noBasic      bool
		status       int
		typ          string
	}{
		{"reader reads", "GET", "/video/v1/read", "reader", "s-reader", false, 200, ""},
		{"writer writes", "POST", "/video/v1/write", "writer", "s-writer", false, 200, ""},
		{"admin reads", "GET", "/video/v1/read", "admin", "s-admin", false, 200, ""},
		{"admin writes", "POST", "/video/v1/write", "admin", "s-admin", false, 200, ""},
		{"admin has system:write", "GET", "/video/v1/system", "admin", "s-admin", false, 200, ""},
		{"admin route", "GET", "/video/v1/admin", "admin", "s-admin", false, 200, ""},
		{"reader cannot write", "POST", "/video/v1/write", "reader", "s-reader", false, 403, "forbidden"},
		{"writer lacks system:write", "GET", "/video/v1/system", "writer", "s-writer", false, 403, "forbidden"},
		{"non-admin on admin route", "GET", "/video/v1/admin", "writer", "s-writer", false, 403, "forbidden"},
		{"wrong secret", "GET", "/video/v1/read", "reader", "s-writer", false, 401, "unauthorized"},
		{"secret of another token", "GET", "/video/v1/read", "writer", "s-reader", false, 401, "unauthorized"},
		{"unknown id", "GET", "/video/v1/read", "ghost", "s-reader", false, 401, "unauthorized"},
		{"revoked", "GET", "/video/v1/read", "old", "s-old", false, 401, "unauthorized"},
		{"empty secret", "GET", "/video/v1/read", "reader", "", false, 401, "unauthorized"},
		{"empty id", "GET", "/video/v1/read", "", "s-reader", false, 401, "unauthorized"},
		{"huge id", "GET", "/video/v1/read", strings.Repeat("a", 200), "s-reader", false, 401, "unauthorized"},
		{"no credentials", "GET", "/video/v1/read", "", "", true, 401, "unauthorized"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := call(t, s, tt.method, tt.path, tt.id, tt.secret, !tt.noBasic)
			if r.status != tt.status {
				t.Fatalf("status %d, want %d: %s", r.status, tt.status, r.body)
			}
			if tt.status != 200 {
				if typ := envelopeType(t, r.body); typ != tt.typ {
					t.Fatalf("type %q, want %q", typ, tt.typ)
				}
				if strings.Contains(r.body, "s-reader") || strings.Contains(r.body, "s-writer") {
					t.Fatalf("a secret was echoed: %s", r.body)
				}
				return
			}
			var got struct {
				Data struct {
					Token string `json:"token"`
				} `json:"data"`
			}
			if err := json.Unmarshal([]byte(r.body), &got); err != nil || got.Data.Token != tt.id {
				t.Fatalf("principal %s, want token %s", r.body, tt.id)
			}
		})
	}
	t.Run("missing Basic asks for it", func(t *testing.T) {
		r := call(t, s, "GET", "/video/v1/read", "", "", false)
		if r.status != 401 || !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Basic ") {
			t.Fatalf("%d, WWW-Authenticate %q", r.status, r.header.Get("WWW-Authenticate"))
		}
		envelopeType(t, r.body)
	})
	t.Run("Bearer is not Basic", func(t *testing.T) {
		req, _ := http.NewRequest("GET", s.URL+"/video/v1/read", nil)
		req.Header.Set("Authorization", "Bearer reader:s-reader")
		res, err := s.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 401 {
			t.Fatalf("Bearer accepted: %d", res.StatusCode)
		}
	})
}

func TestPrincipalAndCan(t *testing.T) {
	v := newVerifier(t, newLookup(), auth.VerifierOptions{})
	p, err := v.Authenticate(context.Background(), "writer", "s-writer")
	if err != nil {
		t.Fatal(err)
	}
	if p.TokenID != "writer" || p.EnvironmentID != "env1" || p.Admin || !p.Can(auth.VideoWrite) || p.Can(auth.SystemRead) {
		t.Fatalf("principal %+v", p)
	}
	admin := auth.Principal{Admin: true}
	for _, perm := range auth.AllPermissions {
		if !admin.Can(perm) {
			t.Fatalf("admin cannot %s", perm)
		}
	}
	if (auth.Principal{}).Can(auth.VideoRead) {
		t.Fatal("the zero principal has a permission")
	}
	_, err = v.Authenticate(context.Background(), "reader", "nope")
	if !errors.Is(err, httpapi.ErrUnauthorized) {
		t.Fatalf("wrong secret: %v, want ErrUnauthorized", err)
	}
}

func TestCacheServesWithinMaxAgeWithoutLookups(t *testing.T) {
	l := newLookup()
	clk := newClock()
	v := newVerifier(t, l, auth.VerifierOptions{Now: clk.Now, RefreshAfter: 2 * time.Second, MaxAge: 4 * time.Second})
	s := server(t, v)
	if r := call(t, s, "GET", "/video/v1/read", "reader", "s-reader", true); r.status != 200 {
		t.Fatalf("first request: %d %s", r.status, r.body)
	}
	if n := l.calls.Load(); n != 1 {
		t.Fatalf("%d lookups for the first request", n)
	}
	for i := 0; i < 1000; i++ {
		clk.Add(time.Millisecond) // 1 s in total: below RefreshAfter, no refresh at all
		if _, err := v.Authenticate(context.Background(), "reader", "s-reader"); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	if n := l.calls.Load(); n != 1 {
		t.Fatalf("1000 cached requests caused %d more lookups", n-1)
	}
	// Wrong secrets are checked against the cached record, not looked up again.
	for i := 0; i < 50; i++ {
		if _, err := v.Authenticate(context.Background(), "reader", "guess"); err == nil {
			t.Fatal("wrong secret accepted from the cache")
		}
	}
	if n := l.calls.Load(); n != 1 {
		t.Fatalf("wrong secrets caused %d lookups", n-1)
	}
}

// Between RefreshAfter and MaxAge a used record is refreshed in the background: requests never
// wait for the lookup, and many requests start one refresh.
func TestRefreshIsOffTheRequestPath(t *testing.T) {
	l := newLookup()
	clk := newClock()
	v := newVerifier(t, l, auth.VerifierOptions{Now: clk.Now, RefreshAfter: 2 * time.Second, MaxAge: 4 * time.Second})
	ctx := context.Background()
	if _, err := v.Authenticate(ctx, "reader", "s-reader"); err != nil {
		t.Fatal(err)
	}
	gate := make(chan struct{})
	l.mu.Lock()
	l.gate = gate // the keys service is now very slow
	l.mu.Unlock()
	clk.Add(3 * time.Second)
	done := make(chan error, 1)
	go func() {
		for i := 0; i < 200; i++ {
			if _, err := v.Authenticate(ctx, "reader", "s-reader"); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("requests waited for a background refresh")
	}
	testenv.Eventually(t, 10*time.Second, func() bool { return l.calls.Load() == 2 }, "one background refresh")
	// The refresh sees a revocation; once it lands, the token is refused.
	l.update("reader", func(r *auth.TokenRecord) { r.Revoked = true })
	close(gate)
	testenv.Eventually(t, 10*time.Second, func() bool {
		_, err := v.Authenticate(ctx, "reader", "s-reader")
		return err != nil
	}, "refreshed revocation applied")
	if n := l.calls.Load(); n != 2 {
		t.Fatalf("%d lookups, want 2 (one load, one refresh for 200 requests)", n)
	}
}

// A revoked token stops working once its cached record is older than MaxAge, even when no
// background refresh ran (RefreshAfter >= MaxAge disables them here).
func TestRevocationTakesEffectWithinMaxAge(t *testing.T) {
	for _, tt := range []struct {
		name         string
		refreshAfter time.Duration
	}{
		{"no background refresh", 4 * time.Second},
		{"defaults", 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			l := newLookup()
			clk := newClock()
			v := newVerifier(t, l, auth.VerifierOptions{Now: clk.Now, RefreshAfter: tt.refreshAfter})
			s := server(t, v)
			if r := call(t, s, "GET", "/video/v1/read", "reader", "s-reader", true); r.status != 200 {
				t.Fatalf("before revocation: %d", r.status)
			}
			l.update("reader", func(r *auth.TokenRecord) { r.Revoked = true })
			if tt.refreshAfter > 0 {
				clk.Add(4*time.Second - time.Millisecond)
				if r := call(t, s, "GET", "/video/v1/read", "reader", "s-reader", true); r.status != 200 {
					t.Fatalf("within MaxAge the cached record should still serve: %d", r.status)
				}
				clk.Add(time.Millisecond)
			} else {
				clk.Add(4 * time.Second) // the documented MaxAge
			}
			r := call(t, s, "GET", "/video/v1/read", "reader", "s-reader", true)
			if r.status != 401 || envelopeType(t, r.body) != "unauthorized" {
				t.Fatalf("revoked token after MaxAge: %d %s", r.status, r.body)
			}
		})
	}
}

func TestConcurrentFirstRequestsShareOneLookup(t *testing.T) {
	l := newLookup()
	l.gate = make(chan struct{})
	l.started = make(chan string, 100)
	v := newVerifier(t, l, auth.VerifierOptions{})
	const n = 50
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		go func() {
			_, err := v.Authenticate(context.Background(), "writer", "s-writer")
			errs <- err
		}()
	}
	<-l.started // the first lookup is in flight
	// Let the other callers reach the verifier while it is; a caller arriving after the gate
	// opens finds the record cached, so this pause only makes the test stronger, never flaky.
	time.Sleep(50 * time.Millisecond)
	close(l.gate)
	for i := 0; i < n; i++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if c := l.calls.Load(); c != 1 {
		t.Fatalf("%d concurrent first requests made %d lookups, want 1", n, c)
	}
}

func TestUnknownIDsAreCachedBriefly(t *testing.T) {
	l := newLookup()
	clk := newClock()
	v := newVerifier(t, l, auth.VerifierOptions{Now: clk.Now, NegativeTTL: time.Second})
	for i := 0; i < 100; i++ {
		if _, err := v.Authenticate(context.Background(), "ghost", "x"); !errors.Is(err, httpapi.ErrUnauthorized) {
			t.Fatalf("unknown id: %v", err)
		}
	}
	if c := l.calls.Load(); c != 1 {
		t.Fatalf("100 requests for one unknown id made %d lookups", c)
	}
	// A token created after that is usable once the negative entry expires.
	l.update("ghost", func(r *auth.TokenRecord) {
		*r = auth.TokenRecord{ID: "ghost", EnvironmentID: "env1", SecretHash: auth.HashSecret("x"), Permissions: []string{auth.VideoRead}}
	})
	clk.Add(time.Second)
	if _, err := v.Authenticate(context.Background(), "ghost", "x"); err != nil {
		t.Fatalf("new token after NegativeTTL: %v", err)
	}
}

func TestLookupFailureIsNotAnAuthentication(t *testing.T) {
	l := newLookup()
	l.err = errors.New("keys service unreachable")
	v := newVerifier(t, l, auth.VerifierOptions{})
	s := server(t, v)
	r := call(t, s, "GET", "/video/v1/read", "reader", "s-reader", true)
	if r.status == 200 {
		t.Fatal("request passed while the lookup failed")
	}
	if strings.Contains(r.body, "unreachable") {
		t.Fatalf("lookup error leaked: %s", r.body)
	}
	// Forget drops a cached record: the next request looks it up again.
	l.mu.Lock()
	l.err = nil
	l.mu.Unlock()
	if _, err := v.Authenticate(context.Background(), "reader", "s-reader"); err != nil {
		t.Fatal(err)
	}
	before := l.calls.Load()
	v.Forget("reader")
	if _, err := v.Authenticate(context.Background(), "reader", "s-reader"); err != nil {
		t.Fatal(err)
	}
	if l.calls.Load() != before+1 {
		t.Fatal("Forget did not drop the cached record")
	}
}

func TestNewVerifierNeedsLookup(t *testing.T) {
	if _, err := auth.NewVerifier(nil, auth.VerifierOptions{}); err == nil {
		t.Fatal("nil lookup accepted")
	}
}

func TestHTTPLookup(t *testing.T) {
	rec := auth.TokenRecord{ID: "tok/1", EnvironmentID: "env1", SecretHash: auth.HashSecret("sec"), Permissions: []string{auth.VideoRead}, Admin: true}
	var mu sync.Mutex
	var paths, secrets []string
	ks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		paths = append(paths, r.URL.EscapedPath())
		secrets = append(secrets, r.Header.Get(auth.InternalAuthHeader))
		mu.Unlock()
		if r.Header.Get(auth.InternalAuthHeader) != "internal-secret" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		switch r.URL.Path {
		case "/internal/v1/access-tokens/tok/1":
			_ = json.NewEncoder(w).Encode(map[string]any{"data": rec})
		case "/internal/v1/environments/env1":
			_ = json.NewEncoder(w).Encode(map[string]any{"data": auth.Environment{ID: "env1", Name: "Production"}})
		case "/internal/v1/access-tokens/boom":
			w.WriteHeader(http.StatusInternalServerError)
		case "/internal/v1/access-tokens/garbled":
			_, _ = w.Write([]byte("{not json"))
		default:
			http.NotFound(w, r)
		}
	}))
	defer ks.Close()
	h, err := auth.NewHTTPLookup(ks.URL+"/", "internal-secret")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	got, err := h.LookupToken(ctx, "tok/1")
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != rec.ID || string(got.SecretHash) != string(rec.SecretHash) || !got.Admin || len(got.Permissions) != 1 {
		t.Fatalf("token record %+v, want %+v", got, rec)
	}
	mu.Lock()
	if paths[0] != "/internal/v1/access-tokens/tok%2F1" || secrets[0] != "internal-secret" {
		t.Fatalf("request path %q (id must be escaped), internal header %q", paths[0], secrets[0])
	}
	mu.Unlock()
	if _, err := h.LookupToken(ctx, "missing"); !errors.Is(err, auth.ErrTokenNotFound) {
		t.Fatalf("404: %v, want ErrTokenNotFound", err)
	}
	for _, id := range []string{"boom", "garbled"} {
		if _, err := h.LookupToken(ctx, id); err == nil || errors.Is(err, auth.ErrTokenNotFound) {
			t.Fatalf("%s: %v, want a failure that is not 'not found'", id, err)
		}
	}
	env, err := h.LookupEnvironment(ctx, "env1")
	if err != nil || env.Name != "Production" {
		t.Fatalf("environment: %+v, %v", env, err)
	}
	if _, err := h.LookupEnvironment(ctx, "nope"); !errors.Is(err, auth.ErrEnvironmentNotFound) {
		t.Fatalf("environment 404: %v", err)
	}
	// Wrong internal secret: a failure, never "not found" (which would be cached as such).
	bad, _ := auth.NewHTTPLookup(ks.URL, "wrong")
	if _, err := bad.LookupToken(ctx, "tok/1"); err == nil || errors.Is(err, auth.ErrTokenNotFound) {
		t.Fatalf("wrong internal secret: %v", err)
	}
	// The verifier works end to end over HTTP.
	v := newVerifier(t, h, auth.VerifierOptions{})
	if p, err := v.Authenticate(ctx, "tok/1", "sec"); err != nil || p.EnvironmentID != "env1" {
		t.Fatalf("authenticate over HTTP: %+v, %v", p, err)
	}
	if _, err := auth.NewHTTPLookup("", "x"); err == nil {
		t.Fatal("empty keys URL accepted")
	}
}
