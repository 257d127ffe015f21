// Package rowcache keeps recently read rows in memory for the GET paths of a service, so that a
// hot resource is answered without SQL. It is correct only with its invalidations: the store
// that owns the rows calls Invalidate after every committed write of a row, and the service
// calls it for every event about the row that another replica wrote (e.g. from a tail of its
// own topic); MaxAge bounds what a missed invalidation can cost.
//
// A read that raced a write cannot put the old row back: Ticket is taken before the SQL read
// and Fill refuses the row when its id was invalidated after the ticket.
package rowcache

import (
	"errors"
	"sync"
	"time"
)

// Options size a cache.
type Options struct {
	MaxEntries int           // rows kept (default 50,000); beyond it arbitrary entries are dropped
	MaxAge     time.Duration // a row older than this is read again (default 30 s)
	Now        func() time.Time
}

// Cache maps ids to rows.
type Cache[V any] struct {
	o Options

	mu    sync.Mutex
	epoch uint64 // counts invalidations; tickets are epochs
	floor uint64 // tickets below this are refused (a tombstone newer than them was dropped)
	m     map[string]entry[V]
}

type entry[V any] struct {
	v       V
	dead    bool   // a tombstone: the row changed at epoch
	epoch   uint64 // for tombstones
	fetched time.Time
}

// New returns an empty cache.
func New[V any](o Options) (*Cache[V], error) {
	if o.MaxEntries < 0 || o.MaxAge < 0 {
		return nil, errors.New("rowcache: MaxEntries and MaxAge must not be negative")
	}
	if o.MaxEntries == 0 {
		o.MaxEntries = 50_000
	}
	if o.MaxAge == 0 {
		o.MaxAge = 30 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Cache[V]{o: o, m: map[string]entry[V]{}}, nil
}

// Get returns the cached row of id.
func (c *Cache[V]) Get(id string) (V, bool) {
	c.mu.Lock()
	e, ok := c.m[id]
	c.mu.Unlock()
	if !ok || e.dead || c.o.Now().Sub(e.fetched) >= c.o.MaxAge {
		var zero V
		return zero, false
	}
	return e.v, true
}

// Ticket is taken before reading a row from SQL; pass it to Fill.
func (c *Cache[V]) Ticket() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.epoch
}

// Fill caches v as id's row unless id was invalidated after ticket was taken.
func (c *Cache[V]) Fill(id string, v V, ticket uint64) {
	now := c.o.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if ticket < c.floor {
		return
	}
	if e, ok := c.m[id]; ok && e.dead && e.epoch > ticket {
		return
	}
	c.makeRoom(id)
	c.m[id] = entry[V]{v: v, fetched: now}
}

// Invalidate forgets id's row; reads that started before it cannot fill the old row back.
func (c *Cache[V]) Invalidate(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.epoch++
	c.makeRoom(id)
	c.m[id] = entry[V]{dead: true, epoch: c.epoch}
}

// Len is the number of entries, tombstones included.
func (c *Cache[V]) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}

// makeRoom drops an arbitrary entry when the cache is full and id is not in it. Dropping a
// tombstone raises the floor, so no read older than it can fill anything.
func (c *Cache[V]) makeRoom(id string) {
	if _, ok := c.m[id]; ok || len(c.m) < c.o.MaxEntries {
		return
	}
	for k, e := range c.m {
		if e.dead && e.epoch > c.floor {
			c.floor = e.epoch
		}
		delete(c.m, k)
		return
	}
}
