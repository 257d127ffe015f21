package space

import (
	"sync"
	"time"

	"github.com/pion/rtp"
)

// continuity keeps a single-layer track's outgoing RTP one continuous stream when its source
// changes (the publisher reconnected and publishes the same tid on a new connection, with a
// new SSRC, sequence numbering and timestamp base): after a rebase, the new source's first
// packet continues the sequence numbers by one and the timestamps by the elapsed wall time.
// Without it a subscriber's browser sees the numbers jump by a random amount and drops the
// resumed media as old (about half of the time) or waits on a huge gap.
//
// The pump goroutine of the current source calls rewrite; attach (owner goroutine) calls
// rebase. A mutex guards the state because an old pump may still be finishing its last packet.
type continuity struct {
	clockRate uint32
	now       func() time.Time

	mu      sync.Mutex
	gen     uint64 // the source generation the offsets are for
	started bool   // a packet was written: lastSeq/lastTS/lastAt are valid
	seqOff  uint16
	tsOff   uint32
	lastSeq uint16
	lastTS  uint32
	lastAt  time.Time
}

func newContinuity(clockRate uint32, now func() time.Time) *continuity {
	if clockRate == 0 {
		clockRate = 90000
	}
	if now == nil {
		now = time.Now
	}
	return &continuity{clockRate: clockRate, now: now}
}

// rewrite renumbers pkt (of source generation gen) in place; false when pkt belongs to an
// older source than one already forwarded (drop it).
func (c *continuity) rewrite(gen uint64, pkt *rtp.Packet) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case gen < c.gen:
		return false
	case gen > c.gen:
		c.gen = gen
		if c.started {
			c.seqOff = c.lastSeq + 1 - pkt.SequenceNumber
			ticks := uint32(1)
			if t := c.now().Sub(c.lastAt).Seconds() * float64(c.clockRate); t >= 1 && t < 1<<31 {
				ticks = uint32(t)
			}
			c.tsOff = c.lastTS + ticks - pkt.Timestamp
		}
	}
	pkt.SequenceNumber += c.seqOff
	pkt.Timestamp += c.tsOff
	// Retransmissions and reordering keep lastSeq at the highest number written.
	if !c.started || int16(pkt.SequenceNumber-c.lastSeq) > 0 {
		c.lastSeq, c.lastTS = pkt.SequenceNumber, pkt.Timestamp
		c.lastAt = c.now()
	}
	c.started = true
	return true
}
