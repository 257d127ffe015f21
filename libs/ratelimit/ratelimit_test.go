package ratelimit_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/redis/go-redis/v9"

	"github.com/spacecast/spacecast/libs/auth"
	"github.com/spacecast/spacecast/libs/envconfig"
	"github.com/spacecast/spacecast/libs/httpapi"
	"github.com/spacecast/spacecast/libs/ratelimit"
	"github.com/spacecast/spacecast/libs/testenv"
)

// clock is a settable test clock shared by limiter instances ("replicas").
type clock struct{ ms atomic.Int64 }

func newClock() *clock {
	c := &clock{}
	c.ms.Store(time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC).UnixMilli())
	return c
}
func (c *clock) Now() time.Time          { return time.UnixMilli(c.ms.Load()) }
func (c *clock) Advance(d time.Duration) { c.ms.Add(d.Milliseconds()) }

type tokens map[string]auth.TokenRecord

func (t tokens) LookupToken(_ context.Context, id string) (auth.TokenRecord, error) {
	if r, ok := t[id]; ok {
		return r, nil
	}
	return auth.TokenRecord{}, auth.ErrTokenNotFound
}

var testTokens = tokens{
	"alice": {ID: "alice", EnvironmentID: "env1", SecretHash: auth.HashSecret("s1"), Permissions: []string{auth.VideoRead, auth.VideoWrite}},
	"bob":   {ID: "bob", EnvironmentID: "env1", SecretHash: auth.HashSecret("s2"), Permissions: []string{auth.VideoRead, auth.VideoWrite}},
}
var secrets = map[string]string{"alice": "s1", "bob": "s2"}

// replica is one service instance: an API server with its own limiter on the shared Redis.
func replica(t *testing.T, rdb redis.UniversalClient, cfg ratelimit.Config, clk *clock) *httptest.Server {
	t.Helper()
	lim, err := ratelimit.New(rdb, cfg, ratelimit.Options{Logger: testenv.Logger(t), Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	return serve(t, lim)
}

// serve is an API server limited by lim.
func serve(t *testing.T, lim *ratelimit.Limiter) *httptest.Server {
	t.Helper()
	v, err := auth.NewVerifier(testTokens, auth.VerifierOptions{})
	if err != nil {
		t.Fatal(err)
	}
	e := httpapi.NewServer(httpapi.Options{RateLimiter: lim})
	g := e.Group("/video/v1", v.Middleware())
	g.GET("/things", func(c echo.Context) error { return httpapi.Data(c, http.StatusOK, []string{}) })
	g.POST("/things", func(c echo.Context) error { return httpapi.Data(c, http.StatusCreated, map[string]string{}) })
	s := httptest.NewServer(e)
	t.Cleanup(s.Close)
	return s
}

type answer struct {
	status                         int
	limit, remaining, reset, retry string
	errType                        string
}

func call(t *testing.T, s *httptest.Server, method, token string) answer {
	t.Helper()
	req, _ := http.NewRequest(method, s.URL+"/video/v1/things", nil)
	if token != "" {
		req.SetBasicAuth(token, secrets[token])
	}
	res, err := s.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	a := answer{status: res.StatusCode, limit: res.Header.Get("X-RateLimit-Limit"), remaining: res.Header.Get("X-RateLimit-Remaining"),
		reset: res.Header.Get("X-RateLimit-Reset"), retry: res.Header.Get("Retry-After")}
	if res.StatusCode >= 400 {
		var env struct {
			Error struct {
				Type     string   `json:"type"`
				Messages []string `json:"messages"`
			} `json:"error"`
		}
		if err := json.Unmarshal(b, &env); err != nil || len(env.Error.Messages) == 0 {
			t.Fatalf("%d without an error envelope: %s", res.StatusCode, b)
		}
		a.errType = env.Error.Type
	}
	return a
}

func config(prefix string) ratelimit.Config {
	return ratelimit.Config{Reads: ratelimit.Budget{PerSecond: 10, Burst: 4}, Writes: ratelimit.Budget{PerSecond: 2, Burst: 3}, KeyPrefix: prefix}
}

func TestBurstThen429WithHeaders(t *testing.T) {
	rdb, prefix := testenv.Redis(t)
	clk := newClock()
	t.Run("redis", func(t *testing.T) { checkBurst(t, replica(t, rdb, config(prefix), clk), clk) })
	t.Run("local", func(t *testing.T) {
		clk := newClock()
		lim, err := ratelimit.NewLocal(config(""), ratelimit.Options{Now: clk.Now})
		if err != nil {
			t.Fatal(err)
		}
		checkBurst(t, serve(t, lim), clk)
	})
}

func checkBurst(t *testing.T, s *httptest.Server, clk *clock) {
	wantReset := strconv.FormatInt(clk.Now().Add(1500*time.Millisecond).Unix()+1, 10) // 3 tokens at 2/s, rounded up
	for i := 0; i < 3; i++ {
		a := call(t, s, http.MethodPost, "alice")
		if a.status != http.StatusCreated {
			t.Fatalf("write %d: %+v", i+1, a)
		}
		if a.limit != "3" || a.remaining != strconv.Itoa(2-i) || a.reset == "" || a.retry != "" {
			t.Fatalf("write %d headers: %+v", i+1, a)
		}
	}
	a := call(t, s, http.MethodPost, "alice")
	if a.status != http.StatusTooManyRequests || a.errType != "rate_limited" {
		t.Fatalf("4th write in the burst: %+v, want 429 rate_limited", a)
	}
	if a.retry != "1" || a.limit != "3" || a.remaining != "0" || a.reset != wantReset {
		t.Fatalf("429 headers %+v, want Retry-After 1, limit 3, remaining 0, reset %s", a, wantReset)
	}
	// Reads have their own budget.
	for i := 0; i < 4; i++ {
		if a := call(t, s, http.MethodGet, "alice"); a.status != http.StatusOK || a.limit != "4" || a.remaining != strconv.Itoa(3-i) {
			t.Fatalf("read %d after the writes ran out: %+v", i+1, a)
		}
	}
	if a := call(t, s, http.MethodGet, "alice"); a.status != http.StatusTooManyRequests || a.limit != "4" {
		t.Fatalf("5th read: %+v", a)
	}
	// Another token has its own buckets.
	if a := call(t, s, http.MethodPost, "bob"); a.status != http.StatusCreated || a.remaining != "2" {
		t.Fatalf("another token: %+v", a)
	}
	// Unauthenticated requests are refused before any budget is spent, without limit headers.
	if a := call(t, s, http.MethodGet, ""); a.status != http.StatusUnauthorized || a.limit != "" {
		t.Fatalf("no credentials: %+v", a)
	}
}

func TestReplicasShareTheBucket(t *testing.T) {
	rdb, prefix := testenv.Redis(t)
	clk := newClock()
	cfg := config(prefix)
	a, b := replica(t, rdb, cfg, clk), replica(t, rdb, cfg, clk)
	if r := call(t, a, http.MethodPost, "alice"); r.status != http.StatusCreated || r.remaining != "2" {
		t.Fatalf("replica A: %+v", r)
	}
	if r := call(t, b, http.MethodPost, "alice"); r.status != http.StatusCreated || r.remaining != "1" {
		t.Fatalf("replica B sees A's request: %+v", r)
	}
	if r := call(t, a, http.MethodPost, "alice"); r.status != http.StatusCreated || r.remaining != "0" {
		t.Fatalf("replica A: %+v", r)
	}
	if r := call(t, b, http.MethodPost, "alice"); r.status != http.StatusTooManyRequests {
		t.Fatalf("replica B after the shared burst: %+v", r)
	}

	// Concurrent requests on both replicas never pass more than the burst.
	var passed atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := a
			if i%2 == 1 {
				s = b
			}
			if r := call(t, s, http.MethodPost, "bob"); r.status == http.StatusCreated {
				passed.Add(1)
			}
		}()
	}
	wg.Wait()
	if n := passed.Load(); n != 3 {
		t.Fatalf("%d concurrent writes passed on two replicas, want exactly the burst of 3", n)
	}
}

func TestRefill(t *testing.T) {
	rdb, prefix := testenv.Redis(t)
	clk := newClock()
	lim, err := ratelimit.New(rdb, config(prefix), ratelimit.Options{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	checkRefill(t, lim, clk)
	// The key carries a hash tag and expires once the bucket would be full again.
	ttl, err := rdb.PTTL(context.Background(), lim.Key("alice", ratelimit.Write)).Result()
	if err != nil || ttl <= 0 || ttl > 3*time.Second {
		t.Fatalf("bucket key TTL %v (%v), want > 0 and <= 1.5 s + 1 s", ttl, err)
	}
	if k := lim.Key("alice", ratelimit.Write); !strings.Contains(k, "{ratelimit:alice}") {
		t.Fatalf("key %q has no hash tag", k)
	}
}

func TestLocalRefill(t *testing.T) {
	clk := newClock()
	lim, err := ratelimit.NewLocal(config(""), ratelimit.Options{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	checkRefill(t, lim, clk)
}

func checkRefill(t *testing.T, lim *ratelimit.Limiter, clk *clock) {
	t.Helper()
	ctx := context.Background()
	take := func() ratelimit.Decision {
		t.Helper()
		d, err := lim.Take(ctx, "alice", ratelimit.Write)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	for i := 0; i < 3; i++ {
		take()
	}
	d := take()
	if d.Allowed || d.RetryAfter != 500*time.Millisecond {
		t.Fatalf("empty bucket: %+v, want refused with retry after 500ms (2/s)", d)
	}
	clk.Advance(499 * time.Millisecond)
	if d := take(); d.Allowed {
		t.Fatalf("1 ms before a token is back: %+v", d)
	}
	clk.Advance(time.Millisecond)
	if d := take(); !d.Allowed || d.Remaining != 0 {
		t.Fatalf("after 500 ms at 2/s: %+v, want one request allowed", d)
	}
	// A long pause refills to the burst, not beyond.
	clk.Advance(time.Hour)
	for i := 0; i < 3; i++ {
		if d := take(); !d.Allowed || d.Remaining != 2-i {
			t.Fatalf("after an hour, take %d: %+v", i+1, d)
		}
	}
	if d := take(); d.Allowed {
		t.Fatalf("the bucket held more than its burst: %+v", d)
	}
}

func TestRedisClockByDefault(t *testing.T) {
	// Without an injected clock the buckets use Redis's TIME, which every replica shares.
	rdb, prefix := testenv.Redis(t)
	lim, err := ratelimit.New(rdb, ratelimit.Config{Writes: ratelimit.Budget{PerSecond: 1, Burst: 1}, KeyPrefix: prefix}, ratelimit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	d, err := lim.Take(context.Background(), "alice", ratelimit.Write)
	if err != nil || !d.Allowed {
		t.Fatalf("first: %+v %v", d, err)
	}
	if d.Reset.Before(time.Now().Add(-time.Minute)) || d.Reset.After(time.Now().Add(time.Minute)) {
		t.Fatalf("reset %v is not near now: the script did not use a wall clock", d.Reset)
	}
	if d, err := lim.Take(context.Background(), "alice", ratelimit.Write); err != nil || d.Allowed {
		t.Fatalf("second within a second: %+v %v", d, err)
	}
	// Reads are unlimited in this config.
	if d, err := lim.Take(context.Background(), "alice", ratelimit.Read); err != nil || !d.Allowed || d.Limit != 0 {
		t.Fatalf("unlimited class: %+v %v", d, err)
	}
}

func TestFailsOpenWithoutRedis(t *testing.T) {
	dead := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1})
	t.Cleanup(func() { dead.Close() })
	logs := &syncBuf{}
	lim, err := ratelimit.New(dead, config("x:"), ratelimit.Options{Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	v, _ := auth.NewVerifier(testTokens, auth.VerifierOptions{})
	e := httpapi.NewServer(httpapi.Options{RateLimiter: lim})
	g := e.Group("/video/v1", v.Middleware())
	g.POST("/things", func(c echo.Context) error { return httpapi.Data(c, http.StatusCreated, map[string]string{}) })
	s := httptest.NewServer(e)
	t.Cleanup(s.Close)
	for i := 0; i < 10; i++ { // more than the burst of 3
		if a := call(t, s, http.MethodPost, "alice"); a.status != http.StatusCreated {
			t.Fatalf("request %d with Redis down: %+v, want it to pass", i+1, a)
		}
	}
	if n := strings.Count(logs.String(), "rate limiter cannot reach Redis"); n != 1 {
		t.Fatalf("fail-open warning logged %d times for 10 requests, want once:\n%s", n, logs.String())
	}
}

type syncBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func TestFailsOpenQuicklyOnAHungRedis(t *testing.T) {
	// A Redis that accepts connections and never answers.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
		}
	}()
	hung := redis.NewClient(&redis.Options{Addr: ln.Addr().String(), MaxRetries: -1})
	t.Cleanup(func() { hung.Close() })
	lim, err := ratelimit.New(hung, config("x:"), ratelimit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s := serve(t, lim)
	for i := 0; i < 5; i++ {
		start := time.Now()
		if a := call(t, s, http.MethodPost, "alice"); a.status != http.StatusCreated {
			t.Fatalf("request %d with Redis hung: %+v, want it to pass", i+1, a)
		}
		// Generous bound: the limiter waits 250 ms; the Redis client alone would wait its 3 s read timeout.
		if took := time.Since(start); took > 1500*time.Millisecond {
			t.Fatalf("request %d took %v with Redis hung", i+1, took)
		}
	}
}

func TestLoadConfig(t *testing.T) {
	tests := []struct {
		env  map[string]string
		want ratelimit.Config
		bad  string
	}{
		{env: nil, want: ratelimit.DefaultConfig},
		{env: map[string]string{"SPACECAST_RATE_LIMIT_WRITES_PER_SECOND": "0", "SPACECAST_RATE_LIMIT_READS_PER_SECOND": "0"},
			want: ratelimit.Config{Reads: ratelimit.Budget{Burst: 2000}, Writes: ratelimit.Budget{Burst: 200}}},
		{env: map[string]string{"SPACECAST_RATE_LIMIT_WRITES_PER_SECOND": "5", "SPACECAST_RATE_LIMIT_WRITE_BURST": "10"},
			want: ratelimit.Config{Reads: ratelimit.DefaultConfig.Reads, Writes: ratelimit.Budget{PerSecond: 5, Burst: 10}}},
		{env: map[string]string{"SPACECAST_RATE_LIMIT_WRITES_PER_SECOND": "-1"}, bad: "SPACECAST_RATE_LIMIT_WRITES_PER_SECOND"},
		{env: map[string]string{"SPACECAST_RATE_LIMIT_READ_BURST": "0"}, bad: "SPACECAST_RATE_LIMIT_READ_BURST"},
		{env: map[string]string{"SPACECAST_RATE_LIMIT_READS_PER_SECOND": "lots"}, bad: "SPACECAST_RATE_LIMIT_READS_PER_SECOND"},
	}
	for _, tt := range tests {
		r := envconfig.FromMap(tt.env)
		got := ratelimit.LoadConfig(r)
		err := r.Err()
		if tt.bad != "" {
			if err == nil || !strings.Contains(err.Error(), tt.bad) {
				t.Errorf("%v: error %v, want one naming %s", tt.env, err, tt.bad)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("%v: %+v %v, want %+v", tt.env, got, err, tt.want)
		}
	}
	if (ratelimit.Config{}).Enabled() || !ratelimit.DefaultConfig.Enabled() {
		t.Error("Enabled")
	}
}

// BenchmarkTake measures one limiter decision (one script call) on the test Redis
// (SPACECAST_TEST_REDIS_URL, else the embedded miniredis the dev mode uses).
//
//	go test -run '^$' -bench Take ./ratelimit/
func BenchmarkTake(b *testing.B) {
	cfg := ratelimit.Config{Writes: ratelimit.Budget{PerSecond: 1 << 30, Burst: 1 << 30}}
	rdb, prefix := testenv.Redis(b)
	cfg.KeyPrefix = prefix
	redisLim, err := ratelimit.New(rdb, cfg, ratelimit.Options{})
	if err != nil {
		b.Fatal(err)
	}
	localLim, err := ratelimit.NewLocal(cfg, ratelimit.Options{})
	if err != nil {
		b.Fatal(err)
	}
	for name, lim := range map[string]*ratelimit.Limiter{"redis": redisLim, "local": localLim} {
		b.Run(name, func(b *testing.B) {
			ctx := context.Background()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if d, err := lim.Take(ctx, "alice", ratelimit.Write); err != nil || !d.Allowed {
						b.Fatalf("%+v %v", d, err)
					}
				}
			})
		})
	}
}
