package speaker

import (
	"fmt"
	"math"
	"slices"
	"time"
)

// Options tune a Detector. Zero fields take the defaults in brackets.
type Options struct {
	// SilenceLevel is the quietest level (in -dBov, 1–127) that still counts as sound: a packet
	// with a larger number is silence [50].
	SilenceLevel uint8
	// MinActiveRatio is the share of a tick's packets that must be sound for the tick to count
	// as speech, in (0, 1] [0.5].
	MinActiveRatio float64
	// StartAfter is how long speech must last before the participant becomes a speaker [400 ms].
	StartAfter time.Duration
	// StopAfter is how long a speaker must stay quiet before it stops being one [1.5 s].
	StopAfter time.Duration
	// Smoothing is the time constant of the loudness that orders speakers [500 ms].
	Smoothing time.Duration
	// OrderMargin is how much louder (as a fraction, ≥ 0) a speaker must be than the one ahead
	// of it to take its place [0.25].
	OrderMargin float64
	// MaxSpeakers caps the reported set [4].
	MaxSpeakers int
}

// Defaults used for zero Options fields.
const (
	DefaultSilenceLevel   = 50
	DefaultMinActiveRatio = 0.5
	DefaultStartAfter     = 400 * time.Millisecond
	DefaultStopAfter      = 1500 * time.Millisecond
	DefaultSmoothing      = 500 * time.Millisecond
	DefaultOrderMargin    = 0.25
	DefaultMaxSpeakers    = 4
)

// Detector decides the active speakers of one space. Not safe for concurrent use (see the
// package documentation).
type Detector struct {
	o        Options
	parts    map[string]*participant
	lastTick time.Time
	order    []string // the set last returned by Tick, loudest first
	scratch  []string
}

type participant struct {
	id string
	// since the previous tick
	packets, active int
	sumLoud         float64
	firstAt         time.Time // first packet of the window
	lastActiveAt    time.Time // last sound packet of the window
	// across ticks
	loudness    float64   // smoothed dB above SilenceLevel
	speechSince time.Time // start of the current run of speech ticks (zero: last tick was not speech)
	lastSpeech  time.Time
	speaking    bool
}

// New returns a Detector, or ErrBadOptions for values out of range.
func New(o Options) (*Detector, error) {
	switch {
	case o.SilenceLevel > 127:
		return nil, fmt.Errorf("%w: SilenceLevel %d > 127", ErrBadOptions, o.SilenceLevel)
	case o.MinActiveRatio < 0 || o.MinActiveRatio > 1 || math.IsNaN(o.MinActiveRatio):
		return nil, fmt.Errorf("%w: MinActiveRatio %v not in [0, 1]", ErrBadOptions, o.MinActiveRatio)
	case o.StartAfter < 0 || o.StopAfter < 0 || o.Smoothing < 0:
		return nil, fmt.Errorf("%w: negative duration", ErrBadOptions)
	case o.OrderMargin < 0 || math.IsNaN(o.OrderMargin) || math.IsInf(o.OrderMargin, 0):
		return nil, fmt.Errorf("%w: OrderMargin %v", ErrBadOptions, o.OrderMargin)
	case o.MaxSpeakers < 0:
		return nil, fmt.Errorf("%w: MaxSpeakers %d < 0", ErrBadOptions, o.MaxSpeakers)
	}
	if o.SilenceLevel == 0 {
		o.SilenceLevel = DefaultSilenceLevel
	}
	if o.MinActiveRatio == 0 {
		o.MinActiveRatio = DefaultMinActiveRatio
	}
	if o.StartAfter == 0 {
		o.StartAfter = DefaultStartAfter
	}
	if o.StopAfter == 0 {
		o.StopAfter = DefaultStopAfter
	}
	if o.Smoothing == 0 {
		o.Smoothing = DefaultSmoothing
	}
	if o.OrderMargin == 0 {
		o.OrderMargin = DefaultOrderMargin
	}
	if o.MaxSpeakers == 0 {
		o.MaxSpeakers = DefaultMaxSpeakers
	}
	return &Detector{o: o, parts: map[string]*participant{}}, nil
}

// Observe records the level (-dBov, as ParseAudioLevel returns it; values above 127 count as
// 127) of one audio packet of participantID received at at. It does not allocate for a
// participant already known.
func (d *Detector) Observe(participantID string, level uint8, at time.Time) {
	p := d.parts[participantID]
	if p == nil {
		p = &participant{id: participantID}
		d.parts[participantID] = p
	}
	if p.packets == 0 {
		p.firstAt = at
	}
	p.packets++
	if level <= d.o.SilenceLevel {
		p.active++
		p.lastActiveAt = at
		p.sumLoud += float64(d.o.SilenceLevel-level) + 1
	}
}

// Remove forgets a participant (it left, or its audio track ended). The next Tick no longer
// reports it and says changed if it was a speaker.
func (d *Detector) Remove(participantID string) {
	delete(d.parts, participantID)
}

// Tick closes the observation window that started at the previous Tick and returns the active
// speakers, loudest first, and whether that list differs (members or order) from the one the
// previous Tick returned. The returned slice is the Detector's: do not modify it; it stays
// valid (unchanged) until a Tick that reports changed.
func (d *Detector) Tick(at time.Time) (speakers []string, changed bool) {
	alpha := 1.0
	if !d.lastTick.IsZero() {
		dt := at.Sub(d.lastTick)
		if dt < 0 {
			dt = 0
		}
		alpha = 1 - math.Exp(-float64(dt)/float64(d.o.Smoothing))
	}
	d.lastTick = at

	for _, p := range d.parts {
		x := 0.0
		speech := false
		if p.packets > 0 {
			x = p.sumLoud / float64(p.packets)
			speech = float64(p.active) >= d.o.MinActiveRatio*float64(p.packets)
		}
		p.loudness += (x - p.loudness) * alpha
		if speech {
			if p.speechSince.IsZero() {
				p.speechSince = p.firstAt
			}
			p.lastSpeech = p.lastActiveAt
			if !p.speaking && p.lastActiveAt.Sub(p.speechSince) >= d.o.StartAfter {
				p.speaking = true
			}
		} else {
			p.speechSince = time.Time{}
			if p.speaking && at.Sub(p.lastSpeech) >= d.o.StopAfter {
				p.speaking = false
			}
		}
		p.packets, p.active, p.sumLoud = 0, 0, 0
	}

	// Previous speakers keep their places; newcomers join behind them, loudest first; then a
	// speaker overtakes the one ahead only when louder by the margin.
	next := d.scratch[:0]
	for _, id := range d.order {
		if p := d.parts[id]; p != nil && p.speaking {
			next = append(next, id)
		}
	}
	kept := len(next)
	for id, p := range d.parts {
		if p.speaking && !slices.Contains(next[:kept], id) {
			next = append(next, id)
		}
	}
	slices.SortFunc(next[kept:], func(a, b string) int { return d.compare(a, b) })
	for swapped := true; swapped; {
		swapped = false
		for i := 0; i+1 < len(next); i++ {
			ahead, behind := d.parts[next[i]].loudness, d.parts[next[i+1]].loudness
			if behind > ahead*(1+d.o.OrderMargin) {
				next[i], next[i+1] = next[i+1], next[i]
				swapped = true
			}
		}
	}
	if len(next) > d.o.MaxSpeakers {
		next = next[:d.o.MaxSpeakers]
	}
	d.scratch = next
	if slices.Equal(next, d.order) {
		return d.order, false
	}
	d.order = slices.Clone(next)
	return d.order, true
}

// compare orders louder first, then by id for a stable result.
func (d *Detector) compare(a, b string) int {
	la, lb := d.parts[a].loudness, d.parts[b].loudness
	switch {
	case la > lb:
		return -1
	case la < lb:
		return 1
	}
	if a < b {
		return -1
	}
	if a > b {
		return 1
	}
	return 0
}
