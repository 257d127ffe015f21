// Package ratelimit limits the REST requests of each access token with token buckets kept in
// Redis, so that every replica of every service draws from the same budget. Reads (GET, HEAD)
// and writes (everything else) have separate buckets. A bucket holds up to Burst requests and
// refills at PerSecond; one atomic Lua script takes a request and answers how many are left.
//
// When Redis cannot be reached the limiter fails open: the request passes, a warning is logged
// (at most every 10 s) and Redis is not asked again for a second, so an outage of the limiter's
// store costs the API neither its availability nor its latency.
package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/redis/go-redis/v9"

	"github.com/spacecast/spacecast/libs/envconfig"
	"github.com/spacecast/spacecast/libs/httpapi"
)

// Class is a request class with its own budget.
type Class string

// Classes.
const (
	Read  Class = "read"
	Write Class = "write"
)

// ClassOf returns the class of an HTTP method: GET and HEAD (and OPTIONS) read, the rest write.
func ClassOf(method string) Class {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return Read
	}
	return Write
}

// Budget is one class's bucket: PerSecond requests refill per second, up to Burst at once.
// PerSecond 0 turns the class's limit off.
type Budget struct {
	PerSecond int
	Burst     int
}

// Config is the limits per access token.
type Config struct {
	Reads  Budget // SPACECAST_RATE_LIMIT_READS_PER_SECOND (1000), SPACECAST_RATE_LIMIT_READ_BURST (2000)
	Writes Budget // SPACECAST_RATE_LIMIT_WRITES_PER_SECOND (100), SPACECAST_RATE_LIMIT_WRITE_BURST (200)
	// KeyPrefix starts every Redis key (SPACECAST_RATE_LIMIT_KEY_PREFIX, default "").
	KeyPrefix string
}

// Defaults.
var DefaultConfig = Config{Reads: Budget{PerSecond: 1000, Burst: 2000}, Writes: Budget{PerSecond: 100, Burst: 200}}

// LoadConfig reads the SPACECAST_RATE_LIMIT_* settings.
func LoadConfig(r *envconfig.Reader) Config {
	c := Config{
		Reads: Budget{
			PerSecond: r.Int("SPACECAST_RATE_LIMIT_READS_PER_SECOND", DefaultConfig.Reads.PerSecond),
			Burst:     r.Int("SPACECAST_RATE_LIMIT_READ_BURST", DefaultConfig.Reads.Burst),
		},
		Writes: Budget{
			PerSecond: r.Int("SPACECAST_RATE_LIMIT_WRITES_PER_SECOND", DefaultConfig.Writes.PerSecond),
			Burst:     r.Int("SPACECAST_RATE_LIMIT_WRITE_BURST", DefaultConfig.Writes.Burst),
		},
		KeyPrefix: r.String("SPACECAST_RATE_LIMIT_KEY_PREFIX", ""),
	}
	check := func(rate, burst string, b Budget) {
		if b.PerSecond < 0 {
			r.Fail(rate, "must be 0 (no limit) or more")
		}
		if b.PerSecond > 0 && b.Burst < 1 {
			r.Fail(burst, "must be at least 1 while the rate is set")
		}
	}
	check("SPACECAST_RATE_LIMIT_READS_PER_SECOND", "SPACECAST_RATE_LIMIT_READ_BURST", c.Reads)
	check("SPACECAST_RATE_LIMIT_WRITES_PER_SECOND", "SPACECAST_RATE_LIMIT_WRITE_BURST", c.Writes)
	return c
}

// Enabled reports whether any class is limited.
func (c Config) Enabled() bool { return c.Reads.PerSecond > 0 || c.Writes.PerSecond > 0 }

func (c Config) budget(cl Class) Budget {
	if cl == Read {
		return c.Reads
	}
	return c.Writes
}

// Options tune a Limiter.
type Options struct {
	Logger *slog.Logger
	// Now, when set, is the clock the buckets use (tests); by default Redis's own clock (TIME),
	// which every replica shares.
	Now func() time.Time
	// Timeout bounds each Redis call (default 250 ms); past it the request passes.
	Timeout time.Duration
}

// Decision is the outcome of taking one request from a bucket.
type Decision struct {
	Allowed    bool
	Limit      int           // the bucket's size (burst)
	Remaining  int           // whole requests left in the bucket
	RetryAfter time.Duration // when refused: until one request is available
	Reset      time.Time     // when the bucket is full again
}

// Limiter takes requests from per-token buckets in Redis (or, from NewLocal, in memory).
type Limiter struct {
	buckets buckets
	cfg     Config
	o       Options
	log     *slog.Logger

	backoffUntil atomic.Int64 // unix ns: Redis failed, pass without asking until then
	lastWarn     atomic.Int64 // unix ns of the last fail-open warning
}

var _ httpapi.RateLimiter = (*Limiter)(nil)

// buckets is where the buckets live; take takes one request from key's bucket of budget b at
// nowMs (0: the store's own clock) and answers {allowed, remaining, retry_ms, full_ms, now_ms}.
type buckets interface {
	take(ctx context.Context, key string, b Budget, nowMs int64) ([]int64, error)
}

// New returns a limiter whose buckets live in rdb, shared by every replica.
func New(rdb redis.UniversalClient, cfg Config, o Options) (*Limiter, error) {
	if rdb == nil {
		return nil, errors.New("ratelimit: a Redis client is required")
	}
	return newLimiter(redisBuckets{rdb}, cfg, o)
}

// NewLocal returns a limiter whose buckets live in this process: for a single process that
// serves every service (the dev mode), where the embedded Redis runs each Lua script in a fresh
// interpreter (~0.3 ms of CPU per request, measured).
func NewLocal(cfg Config, o Options) (*Limiter, error) {
	return newLimiter(&localBuckets{m: map[string]*localBucket{}}, cfg, o)
}

func newLimiter(bs buckets, cfg Config, o Options) (*Limiter, error) {
	for _, b := range []Budget{cfg.Reads, cfg.Writes} {
		if b.PerSecond < 0 || (b.PerSecond > 0 && b.Burst < 1) {
			return nil, fmt.Errorf("ratelimit: bad budget %+v: rate must be >= 0 and burst >= 1", b)
		}
	}
	if o.Timeout <= 0 {
		o.Timeout = 250 * time.Millisecond
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Limiter{buckets: bs, cfg: cfg, o: o, log: log.With("component", "ratelimit")}, nil
}

// bucket takes one request from the bucket in KEYS[1]. ARGV: rate per second, burst, now in
// unix ms (0: Redis's clock). It returns {allowed, remaining, retry_ms, full_ms, now_ms}.
// Tokens and their timestamp live in a hash; the key expires once the bucket would be full
// again, when it is indistinguishable from a missing one.
var bucket = redis.NewScript(`
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
if now == nil or now <= 0 then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local b = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(b[1])
local ts = tonumber(b[2])
if tokens == nil or ts == nil then
  tokens = burst
  ts = now
end
if tokens > burst then
  tokens = burst
end
if now > ts then
  tokens = math.min(burst, tokens + (now - ts) * rate / 1000)
  ts = now
end
local allowed = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(ts))
local full_ms = math.ceil((burst - tokens) * 1000 / rate)
redis.call('PEXPIRE', KEYS[1], full_ms + 1000)
local retry_ms = 0
if allowed == 0 then
  retry_ms = math.ceil((1 - tokens) * 1000 / rate)
end
return {allowed, math.floor(tokens), retry_ms, full_ms, now}
`)

// Key is the Redis key of key's bucket of class cl; the hash tag keeps a token's buckets on
// one Redis Cluster slot.
func (l *Limiter) Key(key string, cl Class) string {
	return l.cfg.KeyPrefix + "{ratelimit:" + key + "}:" + string(cl)
}

// Take takes one request of class cl for key. A class without a limit always allows, with
// Limit 0.
func (l *Limiter) Take(ctx context.Context, key string, cl Class) (Decision, error) {
	b := l.cfg.budget(cl)
	if b.PerSecond <= 0 {
		return Decision{Allowed: true}, nil
	}
	var now int64
	if l.o.Now != nil {
		now = l.o.Now().UnixMilli()
	}
	ctx, cancel := context.WithTimeout(ctx, l.o.Timeout)
	defer cancel()
	res, err := l.buckets.take(ctx, l.Key(key, cl), b, now)
	if err != nil {
		return Decision{}, fmt.Errorf("ratelimit: %w", err)
	}
	if len(res) != 5 {
		return Decision{}, fmt.Errorf("ratelimit: script answered %v", res)
	}
	at := time.UnixMilli(res[4])
	return Decision{
		Allowed:    res[0] == 1,
		Limit:      b.Burst,
		Remaining:  int(res[1]),
		RetryAfter: time.Duration(res[2]) * time.Millisecond,
		Reset:      at.Add(time.Duration(res[3]) * time.Millisecond),
	}, nil
}

// Limit implements httpapi.RateLimiter: it takes the request from its class's bucket, sets
// X-RateLimit-Limit, X-RateLimit-Remaining and X-RateLimit-Reset (unix seconds when the bucket
// is full again), and refuses an empty bucket with 429 rate_limited and Retry-After (seconds).
func (l *Limiter) Limit(c echo.Context, key string) error {
	if until := l.backoffUntil.Load(); until != 0 && time.Now().UnixNano() < until {
		return nil
	}
	cl := ClassOf(c.Request().Method)
	d, err := l.Take(c.Request().Context(), key, cl)
	if err != nil {
		if c.Request().Context().Err() != nil {
			return nil // the client went away; nothing to decide
		}
		now := time.Now()
		l.backoffUntil.Store(now.Add(time.Second).UnixNano())
		if last := l.lastWarn.Load(); now.UnixNano()-last >= int64(10*time.Second) && l.lastWarn.CompareAndSwap(last, now.UnixNano()) {
			l.log.Warn("rate limiter cannot reach Redis: requests pass unlimited", "err", err)
		}
		return nil
	}
	if d.Limit == 0 {
		return nil
	}
	h := c.Response().Header()
	h.Set("X-RateLimit-Limit", strconv.Itoa(d.Limit))
	h.Set("X-RateLimit-Remaining", strconv.Itoa(d.Remaining))
	h.Set("X-RateLimit-Reset", strconv.FormatInt(int64(math.Ceil(float64(d.Reset.UnixMilli())/1000)), 10))
	if d.Allowed {
		return nil
	}
	secs := int(math.Ceil(d.RetryAfter.Seconds()))
	if secs < 1 {
		secs = 1
	}
	h.Set("Retry-After", strconv.Itoa(secs))
	return httpapi.New(httpapi.ErrRateLimited, fmt.Sprintf("this access token has used its %s budget (%d per second, bursts of %d): retry after %d s",
		cl, l.cfg.budget(cl).PerSecond, d.Limit, secs))
}

type redisBuckets struct{ rdb redis.UniversalClient }

func (r redisBuckets) take(ctx context.Context, key string, b Budget, nowMs int64) ([]int64, error) {
	// go-redis bounds a read by its own ReadTimeout (3 s by default), not by ctx, unless the
	// client was built with ContextTimeoutEnabled: wait for the answer only until ctx ends, so
	// a hung Redis costs a request the limiter's Timeout, not the client's.
	type answer struct {
		res []int64
		err error
	}
	done := make(chan answer, 1)
	go func() {
		res, err := bucket.Run(ctx, r.rdb, []string{key}, b.PerSecond, b.Burst, nowMs).Int64Slice()
		done <- answer{res, err}
	}()
	select {
	case a := <-done:
		return a.res, a.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// localBuckets is the in-process store: the same arithmetic as the script, under one mutex
// (each take is a few arithmetic operations).
type localBuckets struct {
	mu        sync.Mutex
	m         map[string]*localBucket
	lastSweep int64
}

type localBucket struct {
	tokens float64
	ts     int64 // ms
	fullAt int64 // ms: full again (and forgettable) from then on
}

func (lb *localBuckets) take(_ context.Context, key string, b Budget, nowMs int64) ([]int64, error) {
	if nowMs <= 0 {
		nowMs = time.Now().UnixMilli()
	}
	rate, burst := float64(b.PerSecond), float64(b.Burst)
	lb.mu.Lock()
	defer lb.mu.Unlock()
	if nowMs-lb.lastSweep > 10_000 || len(lb.m) > 100_000 {
		for k, bk := range lb.m {
			if bk.fullAt <= nowMs {
				delete(lb.m, k)
			}
		}
		lb.lastSweep = nowMs
	}
	bk := lb.m[key]
	if bk == nil {
		bk = &localBucket{tokens: burst, ts: nowMs}
		lb.m[key] = bk
	}
	bk.tokens = math.Min(bk.tokens, burst)
	if nowMs > bk.ts {
		bk.tokens = math.Min(burst, bk.tokens+float64(nowMs-bk.ts)*rate/1000)
		bk.ts = nowMs
	}
	var allowed, retry int64
	if bk.tokens >= 1 {
		bk.tokens--
		allowed = 1
	} else {
		retry = int64(math.Ceil((1 - bk.tokens) * 1000 / rate))
	}
	full := int64(math.Ceil((burst - bk.tokens) * 1000 / rate))
	bk.fullAt = nowMs + full
	return []int64{allowed, int64(math.Floor(bk.tokens)), retry, full, nowMs}, nil
}
