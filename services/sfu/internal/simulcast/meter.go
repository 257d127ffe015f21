package simulcast

import (
	"slices"
	"sync"
	"time"

	"github.com/pion/rtp"
)

// Meter measures the layers of one simulcast publication from the packets the SFU receives:
// each layer's bitrate (payload bits over the last complete one-second window) and, for VP8,
// its resolution from its key frames. Layers gives what Choose and Selector take. Safe for
// concurrent use: Observe is called by each layer's read goroutine, Layers by the space owner.
type Meter struct {
	now    func() time.Time
	mu     sync.Mutex
	layers map[string]*metered
}

type metered struct {
	width, height int
	windowStart   time.Time
	windowBytes   uint64
	rate          uint64 // bits/s of the last complete window
	measured      bool
	last          time.Time // last packet
}

// MeterWindow is the averaging window of a Meter; a layer without packets for two windows is
// left out of Layers (the publisher stopped sending it, e.g. for lack of uplink bandwidth).
const MeterWindow = time.Second

// NewMeter returns a Meter reading the time from now (nil: time.Now).
func NewMeter(now func() time.Time) *Meter {
	if now == nil {
		now = time.Now
	}
	return &Meter{now: now, layers: map[string]*metered{}}
}

// Observe counts a packet of layer rid. It allocates only for a new layer.
func (m *Meter) Observe(rid string, pkt *rtp.Packet) {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	l := m.layers[rid]
	if l == nil {
		l = &metered{windowStart: now}
		m.layers[rid] = l
	}
	if el := now.Sub(l.windowStart); el >= MeterWindow {
		l.rate = uint64(float64(l.windowBytes*8) / el.Seconds())
		l.measured = true
		l.windowStart, l.windowBytes = now, 0
	}
	l.windowBytes += uint64(len(pkt.Payload))
	l.last = now
	if w, h, ok := VP8KeyframeSize(pkt.Payload); ok {
		l.width, l.height = w, h
	}
}

// Remove forgets layer rid (its track ended).
func (m *Meter) Remove(rid string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.layers, rid)
}

// Layers returns the layers that received packets within the last two windows, smallest first.
// A layer younger than one window reports the rate of its partial window.
func (m *Meter) Layers() []Layer { return m.LayersWithin(2 * MeterWindow) }

// LayersWithin is Layers for the layers that received a packet within d (a caller that must
// notice a stopped layer sooner than two windows).
func (m *Meter) LayersWithin(d time.Duration) []Layer {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Layer, 0, len(m.layers))
	for rid, l := range m.layers {
		if now.Sub(l.last) > d {
			continue
		}
		rate := l.rate
		if !l.measured {
			if el := now.Sub(l.windowStart); el > 0 {
				rate = uint64(float64(l.windowBytes*8) / el.Seconds())
			}
		}
		out = append(out, Layer{RID: rid, Width: l.width, Height: l.height, Bitrate: rate})
	}
	slices.SortFunc(out, func(a, b Layer) int {
		switch {
		case less(a, b):
			return -1
		case less(b, a):
			return 1
		}
		return 0
	})
	return out
}
