package deliver

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/spacecast/spacecast/libs/timers"
)

// Timers is the deliveries' timer queue: libs/timers for claims, plus scheduling many members
// in one round trip for the dispatcher (same sorted set, same scores: unix ms).
type Timers struct {
	*timers.Queue
	rdb redis.UniversalClient
	key string
}

// NewTimers returns the queue stored at key.
func NewTimers(rdb redis.UniversalClient, key string) (*Timers, error) {
	q, err := timers.New(rdb, key)
	if err != nil {
		return nil, err
	}
	return &Timers{Queue: q, rdb: rdb, key: key}, nil
}

// Key is the sorted set's key.
func (t *Timers) Key() string { return t.key }

// Due is a member and when it is due.
type Due struct {
	Member string
	At     time.Time
}

// AddIfAbsent schedules each member unless it is already scheduled or leased (an event read
// again, or timers rebuilt from SQL, must not disturb a timer or a claim), in few round trips.
func (t *Timers) AddIfAbsent(ctx context.Context, ds ...Due) error {
	const chunk = 1000
	for len(ds) > 0 {
		n := min(chunk, len(ds))
		zs := make([]redis.Z, n)
		for i, d := range ds[:n] {
			zs[i] = redis.Z{Score: float64(d.At.UnixMilli()), Member: d.Member}
		}
		if err := t.rdb.ZAddNX(ctx, t.key, zs...).Err(); err != nil {
			return err
		}
		ds = ds[n:]
	}
	return nil
}
