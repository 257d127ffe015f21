package simulcast

import (
	"fmt"
	"time"
)

// Layer is one simulcast encoding of a published track as the SFU knows it: its RID, its
// resolution (0 when not known yet) and its bitrate in bits/s (0 when not known: it then always
// fits the estimate).
type Layer struct {
	RID           string
	Width, Height int
	Bitrate       uint64
}

// Headroom is the share of the bandwidth estimate a layer may use when it is chosen: the rest
// is left for audio, retransmissions and the estimate's own error.
const Headroom = 0.85

// less orders layers from the smallest (area, then bitrate, then RID) to the largest.
func less(a, b Layer) bool {
	if aa, ba := a.Width*a.Height, b.Width*b.Height; aa != ba {
		return aa < ba
	}
	if a.Bitrate != b.Bitrate {
		return a.Bitrate < b.Bitrate
	}
	return a.RID < b.RID
}

func fits(l Layer, estimateBps uint64, headroom float64) bool {
	return l.Bitrate == 0 || float64(l.Bitrate) <= float64(estimateBps)*headroom
}

// Choose returns the RID of the layer to forward to a subscriber: the smallest layer that
// covers the rendered size (width and height at least the rendered ones) among those whose
// bitrate fits Headroom of estimateBps; if none of those covers it, the largest that fits; if
// none fits, the smallest layer (a subscriber always gets something). A rendered size ≤ 0 in
// either dimension means unknown: the largest layer that fits. "" for no layers. The order of
// layers does not matter and the slice is not modified.
func Choose(layers []Layer, estimateBps uint64, renderWidth, renderHeight int) string {
	return choose(layers, estimateBps, renderWidth, renderHeight, Headroom)
}

func choose(layers []Layer, estimateBps uint64, rw, rh int, headroom float64) string {
	if len(layers) == 0 {
		return ""
	}
	known := rw > 0 && rh > 0
	smallest, largestFit, cover := -1, -1, -1
	for i, l := range layers {
		if smallest < 0 || less(l, layers[smallest]) {
			smallest = i
		}
		if !fits(l, estimateBps, headroom) {
			continue
		}
		if largestFit < 0 || less(layers[largestFit], l) {
			largestFit = i
		}
		if known && l.Width >= rw && l.Height >= rh && (cover < 0 || less(l, layers[cover])) {
			cover = i
		}
	}
	switch {
	case cover >= 0:
		return layers[cover].RID
	case largestFit >= 0:
		return layers[largestFit].RID
	}
	return layers[smallest].RID
}

// rank is the position of rid in the small-to-large order of layers, -1 if absent.
func rank(layers []Layer, rid string) int {
	idx := -1
	for i, l := range layers {
		if l.RID == rid {
			idx = i
		}
	}
	if idx < 0 {
		return -1
	}
	r := 0
	for _, l := range layers {
		if less(l, layers[idx]) {
			r++
		}
	}
	return r
}

// SelectorOptions tune a Selector. Zero fields take the defaults in brackets.
type SelectorOptions struct {
	// UpAfter is how long a larger layer must stay the choice before switching up [3 s].
	UpAfter time.Duration
	// DownAfter is how long a smaller layer must stay the choice before switching down [500 ms].
	DownAfter time.Duration
}

// Selector adds hysteresis to Choose for one subscriber's view of one track, so a wobbling
// estimate does not switch layers back and forth: it switches up only after the larger choice
// held for UpAfter, and down only when the current layer no longer fits even the whole
// estimate (not just Headroom of it) or no longer is needed for the rendered size, held for
// DownAfter. Not safe for concurrent use (the space owner's goroutine calls it).
type Selector struct {
	o            SelectorOptions
	current      string
	pending      string
	pendingSince time.Time
}

// NewSelector returns a Selector with no current layer, or ErrBadOptions.
func NewSelector(o SelectorOptions) (*Selector, error) {
	if o.UpAfter < 0 || o.DownAfter < 0 {
		return nil, fmt.Errorf("%w: negative hold time", ErrBadOptions)
	}
	if o.UpAfter == 0 {
		o.UpAfter = 3 * time.Second
	}
	if o.DownAfter == 0 {
		o.DownAfter = 500 * time.Millisecond
	}
	return &Selector{o: o}, nil
}

// Current is the layer last returned by Update ("" before the first).
func (s *Selector) Current() string { return s.current }

// Update feeds the current estimate and rendered size at time at and returns the layer to
// forward and whether it changed. The first Update (or one after the current layer vanished
// from layers) chooses at once.
func (s *Selector) Update(layers []Layer, estimateBps uint64, renderWidth, renderHeight int, at time.Time) (rid string, changed bool) {
	want := Choose(layers, estimateBps, renderWidth, renderHeight)
	cur := rank(layers, s.current)
	if cur < 0 {
		s.pending = ""
		changed = want != s.current
		s.current = want
		return want, changed
	}
	w := rank(layers, want)
	if w < cur {
		// Stay while the current layer still fits the whole estimate for this size.
		if rank(layers, choose(layers, estimateBps, renderWidth, renderHeight, 1)) >= cur {
			want, w = s.current, cur
		}
	}
	if w == cur {
		s.pending = ""
		return s.current, false
	}
	if s.pending != want {
		s.pending, s.pendingSince = want, at
	}
	hold := s.o.DownAfter
	if w > cur {
		hold = s.o.UpAfter
	}
	if at.Sub(s.pendingSince) < hold {
		return s.current, false
	}
	s.current, s.pending = want, ""
	return want, true
}
