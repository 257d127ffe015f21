// Package timers is a durable timer queue in a Redis sorted set scored by due time (unix ms).
// Claims are atomic (one Lua script), so a due timer is handed to one replica at a time; a
// claimed timer is leased, and comes back if its claimer does not call Done before the lease
// ends, so a crash between claim and effect loses nothing. No key expiry is relied on.
package timers

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// claimScript takes up to ARGV[3] members due at ARGV[1] and re-scores them to ARGV[2].
var claimScript = redis.NewScript(`
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
for _, m in ipairs(due) do
  redis.call('ZADD', KEYS[1], 'XX', ARGV[2], m)
end
return due
`)

// claimNextScript is claimScript that also returns, last, the earliest score left in the set
// after the claim (an empty string when the set is empty).
var claimNextScript = redis.NewScript(`
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
for _, m in ipairs(due) do
  redis.call('ZADD', KEYS[1], 'XX', ARGV[2], m)
end
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
due[#due + 1] = first[2] or ''
return due
`)

// Queue is one sorted set of timers.
type Queue struct {
	rdb redis.UniversalClient
	key string
}

// New returns a queue stored at key (use a hash-tagged key such as "{livestream}:timers").
func New(rdb redis.UniversalClient, key string) (*Queue, error) {
	if rdb == nil || key == "" {
		return nil, errors.New("timers: redis client and key are required")
	}
	return &Queue{rdb: rdb, key: key}, nil
}

// Schedule adds member due at due, or moves it there.
func (q *Queue) Schedule(ctx context.Context, member string, due time.Time) error {
	return q.rdb.ZAdd(ctx, q.key, redis.Z{Score: float64(due.UnixMilli()), Member: member}).Err()
}

// ScheduleAll is Schedule for many timers, in one round trip per 1,000.
func (q *Queue) ScheduleAll(ctx context.Context, ts ...Timer) error {
	return q.zadd(ctx, q.rdb.ZAdd, ts)
}

// ScheduleIfAbsent adds member due at due unless it is already scheduled (or leased), for
// rebuilding timers from a durable record without disturbing claims in flight.
func (q *Queue) ScheduleIfAbsent(ctx context.Context, member string, due time.Time) error {
	return q.ScheduleAllIfAbsent(ctx, Timer{Member: member, Due: due})
}

// Timer is a member and when it is due.
type Timer struct {
	Member string
	Due    time.Time
}

// ScheduleAllIfAbsent is ScheduleIfAbsent for many timers, in one round trip per 1,000.
func (q *Queue) ScheduleAllIfAbsent(ctx context.Context, ts ...Timer) error {
	return q.zadd(ctx, q.rdb.ZAddNX, ts)
}

func (q *Queue) zadd(ctx context.Context, add func(context.Context, string, ...redis.Z) *redis.IntCmd, ts []Timer) error {
	const chunk = 1000
	for len(ts) > 0 {
		n := min(chunk, len(ts))
		zs := make([]redis.Z, n)
		for i, t := range ts[:n] {
			zs[i] = redis.Z{Score: float64(t.Due.UnixMilli()), Member: t.Member}
		}
		if err := add(ctx, q.key, zs...).Err(); err != nil {
			return err
		}
		ts = ts[n:]
	}
	return nil
}

// Cancel removes member; it reports whether it was there.
func (q *Queue) Cancel(ctx context.Context, member string) (bool, error) {
	n, err := q.rdb.ZRem(ctx, q.key, member).Result()
	return n > 0, err
}

// Due returns when member is due, and false if it is not scheduled.
func (q *Queue) Due(ctx context.Context, member string) (time.Time, bool, error) {
	s, err := q.rdb.ZScore(ctx, q.key, member).Result()
	if errors.Is(err, redis.Nil) {
		return time.Time{}, false, nil
	}
	if err != nil {
		return time.Time{}, false, err
	}
	return time.UnixMilli(int64(s)), true, nil
}

// Claim atomically takes up to limit members due at now and leases them until now+lease.
func (q *Queue) Claim(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]string, error) {
	if lease <= 0 || limit <= 0 {
		return nil, ErrBadArgs
	}
	res, err := claimScript.Run(ctx, q.rdb, []string{q.key}, now.UnixMilli(), now.Add(lease).UnixMilli(), limit).StringSlice()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	return res, err
}

// ClaimNext is Claim that also returns when the earliest timer left in the queue is due (the
// ones just claimed included, at the end of their lease), zero if the queue is empty, in the
// same round trip: a poller can sleep until then instead of polling on a fixed period.
func (q *Queue) ClaimNext(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]string, time.Time, error) {
	if lease <= 0 || limit <= 0 {
		return nil, time.Time{}, ErrBadArgs
	}
	res, err := claimNextScript.Run(ctx, q.rdb, []string{q.key}, now.UnixMilli(), now.Add(lease).UnixMilli(), limit).StringSlice()
	if err != nil || len(res) == 0 {
		return nil, time.Time{}, err
	}
	due, last := res[:len(res)-1], res[len(res)-1]
	var next time.Time
	if last != "" {
		ms, err := strconv.ParseFloat(last, 64)
		if err != nil {
			return nil, time.Time{}, fmt.Errorf("timers: score %q: %w", last, err)
		}
		next = time.UnixMilli(int64(ms))
	}
	return due, next, nil
}

// Extend moves the leases of claimed members to until, in one round trip per 1,000: a
// claimer holding timers longer than their lease keeps them. A member no longer in the queue
// (done meanwhile) is not added back.
func (q *Queue) Extend(ctx context.Context, until time.Time, members ...string) error {
	ts := make([]Timer, len(members))
	for i, m := range members {
		ts[i] = Timer{Member: m, Due: until}
	}
	return q.zadd(ctx, q.rdb.ZAddXX, ts)
}

// Done removes a claimed member once its effect is durable.
func (q *Queue) Done(ctx context.Context, member string) error {
	return q.rdb.ZRem(ctx, q.key, member).Err()
}

// DoneAll is Done for every member of done and Schedule for every timer of again, in one
// round trip (for up to 1,000 of each): the end of a batch of attempts.
func (q *Queue) DoneAll(ctx context.Context, done []string, again ...Timer) error {
	if len(done) == 0 && len(again) == 0 {
		return nil
	}
	const chunk = 1000
	pipe := q.rdb.Pipeline()
	for rest := done; len(rest) > 0; {
		n := min(chunk, len(rest))
		ms := make([]any, n)
		for i, m := range rest[:n] {
			ms[i] = m
		}
		pipe.ZRem(ctx, q.key, ms...)
		rest = rest[n:]
	}
	for rest := again; len(rest) > 0; {
		n := min(chunk, len(rest))
		zs := make([]redis.Z, n)
		for i, t := range rest[:n] {
			zs[i] = redis.Z{Score: float64(t.Due.UnixMilli()), Member: t.Member}
		}
		pipe.ZAdd(ctx, q.key, zs...)
		rest = rest[n:]
	}
	_, err := pipe.Exec(ctx)
	return err
}

// Len returns how many timers are pending (claimed or not).
func (q *Queue) Len(ctx context.Context) (int64, error) { return q.rdb.ZCard(ctx, q.key).Result() }
