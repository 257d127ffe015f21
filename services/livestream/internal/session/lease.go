package session

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/spacecast/spacecast/libs/idgen"
)

// A lease is the right to change one live stream's recording: whoever holds it (an owner with
// its publisher, or an instance ending or sweeping the stream) is the only writer of the
// stream's recording and of its connected/disconnected state. Leases live in two keys of the
// {livestream} hash slot, so that scripts touch them atomically (also on Redis Cluster):
//
//	{prefix}{livestream}:leases       sorted set: stream id → lease expiry (unix ms)
//	{prefix}{livestream}:lease-tokens hash: stream id → holder's token
//
// No key expiry is used: a lease whose score has passed is free, and stays listed until it
// is taken or released, so the sweeper finds every stream whose holder died (the score says
// when it last renewed).

var (
	// acquireScript takes the lease of ARGV[1] for token ARGV[2] until ARGV[3]+ARGV[4] unless a
	// live lease exists; it returns {1, previous expiry or ""} or {0, expiry, holder's token}.
	acquireScript = redis.NewScript(`
local exp = redis.call('ZSCORE', KEYS[1], ARGV[1])
if exp and tonumber(exp) > tonumber(ARGV[3]) then return {0, exp, redis.call('HGET', KEYS[2], ARGV[1]) or ''} end
redis.call('ZADD', KEYS[1], tonumber(ARGV[3]) + tonumber(ARGV[4]), ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
return {1, exp or ''}
`)
	renewScript = redis.NewScript(`
if redis.call('HGET', KEYS[2], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('ZADD', KEYS[1], tonumber(ARGV[3]) + tonumber(ARGV[4]), ARGV[1])
return 1
`)
	releaseScript = redis.NewScript(`
if redis.call('HGET', KEYS[2], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
return 1
`)
)

func (m *Manager) leaseKeys() []string { return []string{m.leasesKey, m.tokensKey} }

// settlerPrefix starts the lease tokens of instances that only settle a stream (timers, the
// sweeper, EndNow): they hold a lease for a moment, and a publisher waits for them.
const settlerPrefix = "settle-"

func settlerToken() string { return settlerPrefix + idgen.New() }

// acquire takes stream id's lease. prev is the expiry of the lease that was there (its holder
// left without releasing it: it died), zero if none. When the lease is held, settling reports
// whether its holder is a settler.
func (m *Manager) acquire(ctx context.Context, id, token string) (ok bool, prev time.Time, err error) {
	ok, prev, _, err = m.tryAcquire(ctx, id, token)
	return ok, prev, err
}

func (m *Manager) tryAcquire(ctx context.Context, id, token string) (ok bool, prev time.Time, settling bool, err error) {
	now := time.Now().UnixMilli()
	res, err := acquireScript.Run(ctx, m.o.Redis, m.leaseKeys(), id, token, now, m.o.LockTTL.Milliseconds()).Slice()
	if err != nil || len(res) < 2 {
		return false, time.Time{}, false, err
	}
	if len(res) == 3 {
		holder, _ := res[2].(string)
		return false, time.Time{}, strings.HasPrefix(holder, settlerPrefix), nil
	}
	n, _ := res[0].(int64)
	if s, _ := res[1].(string); s != "" {
		if ms, err := strconv.ParseFloat(s, 64); err == nil {
			prev = time.UnixMilli(int64(ms))
		}
	}
	return n == 1, prev, false, nil
}

// renew extends the lease; false if token no longer holds it.
func (m *Manager) renew(ctx context.Context, id, token string) (bool, error) {
	n, err := renewScript.Run(ctx, m.o.Redis, m.leaseKeys(), id, token, time.Now().UnixMilli(), m.o.LockTTL.Milliseconds()).Int()
	return n == 1, err
}

func (m *Manager) release(id, token string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := releaseScript.Run(ctx, m.o.Redis, m.leaseKeys(), id, token).Err(); err != nil {
		m.log.Warn("releasing the stream lease", "live_stream_id", id, "err", err)
	}
}

// expiredLeases lists streams whose lease has passed without being released.
func (m *Manager) expiredLeases(ctx context.Context, limit int64) ([]redis.Z, error) {
	return m.o.Redis.ZRangeByScoreWithScores(ctx, m.leasesKey, &redis.ZRangeBy{
		Min: "-inf", Max: strconv.FormatInt(time.Now().UnixMilli(), 10), Count: limit}).Result()
}
