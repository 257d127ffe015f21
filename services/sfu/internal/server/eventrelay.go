package server

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spacecast/spacecast/libs/events"
	"github.com/spacecast/spacecast/libs/kafkabus"
	"github.com/spacecast/spacecast/services/sfu/internal/registry"
)

// Publisher sends messages to the broker, returning once they are acknowledged.
type Publisher interface {
	Publish(ctx context.Context, msgs ...kafkabus.Message) error
}

var _ Publisher = (*kafkabus.Producer)(nil)

// Relay tuning.
const (
	relayBatch  = 200              // events per publish
	relayLease  = 10 * time.Second // a space's relay lock, renewed on every batch
	relayRetry  = time.Second      // spaces locked by another relay or failing are retried this often
	relayRescan = 30 * time.Second // the node's space list is read again this often (a safety net: appends notify the relay)
)

// eventRelay publishes the event streams of the spaces in this node's list
// ({node:N}:spaces: where it has participants, where it appended events, and the spaces of
// dead nodes it cleaned up) to spacecast.rtc, oldest first, and deletes what the broker
// acknowledged: at least once, in order per space (one relay at a time per space, through
// the space's relay lock). A space whose stream is empty and that this node no longer hosts
// leaves the list. One goroutine (run) owns it; Notify and Flush talk to it.
type eventRelay struct {
	node string
	reg  *registry.Registry
	pub  Publisher
	log  *slog.Logger
	// idle is called when a space's stream is empty: it drops the space from the node's list
	// unless the node still hosts it.
	idle func(ctx context.Context, space string)

	wake     chan string
	overflow atomic.Bool // a Notify found wake full: rescan the list
	flush    chan flushReq
	halt     chan struct{} // closed by Halt: the relay stops as in a crash
	haltOnce sync.Once
}

type flushReq struct {
	ctx   context.Context
	reply chan int // spaces still holding events
}

func newEventRelay(node string, reg *registry.Registry, pub Publisher, log *slog.Logger, idle func(context.Context, string)) *eventRelay {
	return &eventRelay{node: node, reg: reg, pub: pub, log: log.With("component", "event-relay"), idle: idle,
		wake: make(chan string, 1024), flush: make(chan flushReq), halt: make(chan struct{})}
}

// Halt stops the relay without publishing anything more (tests play a crash with it).
func (r *eventRelay) Halt() { r.haltOnce.Do(func() { close(r.halt) }) }

// Notify tells the relay that space's stream has new events (or may be empty now).
func (r *eventRelay) Notify(space string) {
	select {
	case r.wake <- space:
	default:
		r.overflow.Store(true)
	}
}

// Flush publishes every event of the node's spaces, returning how many spaces still hold
// events when ctx ends first (or the relay is not running).
func (r *eventRelay) Flush(ctx context.Context) (int, error) {
	req := flushReq{ctx: ctx, reply: make(chan int, 1)}
	select {
	case r.flush <- req:
	case <-r.halt:
		return -1, ErrHalted
	case <-ctx.Done():
		return -1, ctx.Err()
	}
	select {
	case n := <-req.reply:
		return n, nil
	case <-ctx.Done():
		return -1, ctx.Err()
	}
}

type drainResult int

const (
	drained drainResult = iota // the stream is empty
	locked                     // another relay holds the space
	failed                     // Redis or the broker failed
)

// run is the relay's loop, until ctx ends.
func (r *eventRelay) run(ctx context.Context) {
	dirty := map[string]bool{} // to drain now
	later := map[string]bool{} // locked elsewhere or failing: retried every relayRetry
	r.rescan(ctx, dirty)
	tick := time.NewTicker(relayRetry)
	defer tick.Stop()
	scanned := time.Now()
	failing := false
	for {
		select {
		case <-r.halt:
			return
		default:
		}
		for sp := range dirty {
			delete(dirty, sp)
			switch res := r.drain(ctx, sp); res {
			case drained:
				delete(later, sp)
				failing = false
			case locked:
				later[sp] = true
			case failed:
				later[sp] = true
				if !failing && ctx.Err() == nil {
					r.log.Warn("publishing events failed; they stay in Redis and are retried", "space_id", sp)
				}
				failing = true
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-r.halt:
			return
		case sp := <-r.wake:
			dirty[sp] = true
			for n := len(r.wake); n > 0; n-- {
				dirty[<-r.wake] = true
			}
		case <-tick.C:
			for sp := range later {
				dirty[sp] = true
			}
			if r.overflow.Swap(false) || time.Since(scanned) >= relayRescan {
				r.rescan(ctx, dirty)
				scanned = time.Now()
			}
		case req := <-r.flush:
			req.reply <- r.flushAll(ctx, req.ctx, later)
		}
	}
}

// rescan adds every space of the node's list to dirty.
func (r *eventRelay) rescan(ctx context.Context, dirty map[string]bool) {
	spaces, err := r.reg.NodeSpaces(ctx, r.node)
	if err != nil {
		if ctx.Err() == nil {
			r.log.Warn("reading the node's spaces failed", "err", err)
		}
		return
	}
	for _, sp := range spaces {
		dirty[sp] = true
	}
}

// flushAll drains every space of the node's list (and later) until all are empty or reqCtx
// ends, and returns how many are not.
func (r *eventRelay) flushAll(ctx, reqCtx context.Context, later map[string]bool) int {
	pending := map[string]bool{}
	for sp := range later {
		pending[sp] = true
	}
	r.rescan(ctx, pending)
	for len(r.wake) > 0 {
		pending[<-r.wake] = true
	}
	for {
		for sp := range pending {
			if r.drain(ctx, sp) == drained {
				delete(pending, sp)
				delete(later, sp)
			}
		}
		if len(pending) == 0 || reqCtx.Err() != nil || ctx.Err() != nil {
			for sp := range pending {
				later[sp] = true
			}
			return len(pending)
		}
		select {
		case <-reqCtx.Done():
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// drain publishes space's stream batch by batch until it is empty.
func (r *eventRelay) drain(ctx context.Context, space string) drainResult {
	for {
		evs, held, err := r.reg.TakeEvents(ctx, space, r.node, relayLease, relayBatch)
		if err != nil {
			return failed
		}
		if !held {
			return locked
		}
		if len(evs) == 0 {
			r.idle(ctx, space)
			return drained
		}
		msgs := make([]kafkabus.Message, len(evs))
		ids := make([]string, len(evs))
		for i, ev := range evs {
			// Every SFU event's subject (its record key) is its space.
			msgs[i] = kafkabus.Message{Topic: events.TopicRTC, Key: []byte(space), Value: ev.JSON}
			ids[i] = ev.ID
		}
		if err := r.pub.Publish(ctx, msgs...); err != nil {
			return failed
		}
		left, err := r.reg.AckEvents(ctx, space, r.node, ids)
		if err != nil {
			return failed // published again later: consumers drop the duplicates by event id
		}
		if left == 0 {
			r.idle(ctx, space)
			return drained
		}
	}
}
