package loadtest

import (
	"math/bits"
	"sort"
	"sync"
	"time"
)

// trackStats counts one subscriber track's packets in the window. The track's reader
// goroutine calls add; the step's goroutine opens and closes the window and reads first.
type trackStats struct {
	subscriber int  // index of the subscriber in its step
	publisher  int  // index of the publisher whose track it is (-1: unknown)
	video      bool // a camera track (else a microphone)

	mu       sync.Mutex
	counting bool
	seen     map[uint32]struct{} // extended sequence numbers
	cycles   uint32
	lastSeq  uint16
	started  bool
	packets  int
	bytes    int
	layers   uint8 // bit i: a frame of simulcast layer i arrived in the window
	layer    int   // the layer of the last marked frame (noLayer: none yet)
	switches int   // changes of layer between marked frames in the window
	first    time.Duration
	hasFirst bool
}

func newTrackStats(subscriber, publisher int, video bool) *trackStats {
	return &trackStats{subscriber: subscriber, publisher: publisher, video: video, layer: noLayer}
}

// add counts one RTP packet of size bytes; layer is the simulcast layer a frame-starting
// packet is marked with (noLayer otherwise).
func (s *trackStats) add(seq uint16, size, layer int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started && seq < 0x1000 && s.lastSeq > 0xf000 {
		s.cycles++
	}
	if !s.started || (seq-s.lastSeq) < 0x8000 {
		s.lastSeq = seq
	}
	s.started = true
	if s.counting {
		ext := s.cycles<<16 | uint32(seq)
		s.seen[ext] = struct{}{}
		s.packets++
		s.bytes += size
		if layer >= 0 && layer < 8 {
			s.layers |= 1 << layer
		}
	}
	if layer >= 0 && layer < 8 {
		if s.counting && s.layer != noLayer && layer != s.layer {
			s.switches++
		}
		s.layer = layer
	}
}

// firstFrame records the time to the track's first key frame (only the first call counts);
// it reports whether this was the first.
func (s *trackStats) firstFrame(d time.Duration) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.hasFirst {
		return false
	}
	s.first, s.hasFirst = d, true
	return true
}

// windowCounts are one track's counts over the window.
type windowCounts struct {
	expected, got, packets, bytes int
	layers                        uint8
	switches                      int // layer changes in the window
	last                          int // the last marked layer (noLayer: none)
}

// window(true) opens the window; window(false) closes it and returns its counts.
func (s *trackStats) window(on bool) windowCounts {
	s.mu.Lock()
	defer s.mu.Unlock()
	if on {
		s.counting, s.seen, s.packets, s.bytes, s.layers, s.switches = true, map[uint32]struct{}{}, 0, 0, 0, 0
		return windowCounts{last: noLayer}
	}
	s.counting = false
	if len(s.seen) == 0 {
		return windowCounts{last: noLayer}
	}
	lo, hi := ^uint32(0), uint32(0)
	for k := range s.seen {
		lo, hi = min(lo, k), max(hi, k)
	}
	return windowCounts{expected: int(hi - lo + 1), got: len(s.seen), packets: s.packets, bytes: s.bytes, layers: s.layers,
		switches: s.switches, last: s.lastMarked()}
}

// lastMarked is the last marked layer if one arrived in the window. Callers hold mu.
func (s *trackStats) lastMarked() int {
	if s.layers == 0 {
		return noLayer
	}
	return s.layer
}

// trackResult is one subscriber track after the window.
type trackResult struct {
	subscriber, publisher int
	video                 bool
	windowCounts
	first    time.Duration
	hasFirst bool
}

func (s *trackStats) result() trackResult {
	c := s.window(false)
	s.mu.Lock()
	defer s.mu.Unlock()
	return trackResult{subscriber: s.subscriber, publisher: s.publisher, video: s.video, windowCounts: c, first: s.first, hasFirst: s.hasFirst}
}

// Summary aggregates the tracks of one step.
type Summary struct {
	Tracks, VideoTracks int
	// Per subscriber-track loss in the window, percent (tracks that received nothing in the
	// window are left out of these and counted in Silent).
	LossP50, LossMax float64
	LossTotal        float64 // all tracks' lost packets / expected
	Silent           int     // tracks without a packet in the window
	Packets, Bytes   int
	// Join → first key frame, per video track.
	FirstP50, FirstP95 time.Duration
	NoFrame            int // expected video tracks (subscribers × publishers) without a first frame
	// Subscriber × publisher pairs with no video track or with more than one.
	MissingVideo, ExtraVideo int
	// Simulcast: video tracks that got frames of exactly one layer in the window, of more
	// than one (a switch), or of none that was marked; OnlyLayer[i] of those with one layer
	// got layer i (0 = the smallest).
	OneLayer, Switched, Unmarked int
	OnlyLayer                    [8]int
	// Layer changes per video track in the window: all tracks' sum and the most of one
	// track (a forwarder mixing layers would change on nearly every frame), and how many
	// tracks ended the window on each layer.
	Switches, SwitchesMax int
	LastLayer             [8]int
}

// summarize aggregates the tracks of subscribers subscribers each expecting one camera and
// one microphone from each of publishers publishers.
func summarize(tracks []trackResult, subscribers, publishers int) Summary {
	var s Summary
	var losses []float64
	var firsts []time.Duration
	var expected, got int
	videoPairs := map[[2]int]int{}
	for _, t := range tracks {
		s.Tracks++
		s.Packets += t.packets
		s.Bytes += t.bytes
		expected += t.expected
		got += t.got
		if t.expected == 0 {
			s.Silent++
		} else {
			losses = append(losses, 100*float64(t.expected-t.got)/float64(t.expected))
		}
		if !t.video {
			continue
		}
		s.VideoTracks++
		videoPairs[[2]int{t.subscriber, t.publisher}]++
		if t.hasFirst {
			firsts = append(firsts, t.first)
		}
		s.Switches += t.switches
		s.SwitchesMax = max(s.SwitchesMax, t.switches)
		if t.last >= 0 && t.last < 8 {
			s.LastLayer[t.last]++
		}
		switch bits.OnesCount8(t.layers) {
		case 0:
			s.Unmarked++
		case 1:
			s.OneLayer++
			s.OnlyLayer[bits.TrailingZeros8(t.layers)]++
		default:
			s.Switched++
		}
	}
	for sub := range subscribers {
		for pub := range publishers {
			switch n := videoPairs[[2]int{sub, pub}]; {
			case n == 0:
				s.MissingVideo++
			case n > 1:
				s.ExtraVideo++
			}
		}
	}
	if expected > 0 {
		s.LossTotal = 100 * float64(expected-got) / float64(expected)
	}
	sort.Float64s(losses)
	if len(losses) > 0 {
		s.LossP50 = losses[len(losses)/2]
		s.LossMax = losses[len(losses)-1]
	}
	sort.Slice(firsts, func(i, j int) bool { return firsts[i] < firsts[j] })
	if len(firsts) > 0 {
		s.FirstP50 = firsts[len(firsts)/2].Round(time.Millisecond)
		s.FirstP95 = firsts[min(len(firsts)-1, len(firsts)*95/100)].Round(time.Millisecond)
	}
	s.NoFrame = max(0, subscribers*publishers-len(firsts))
	return s
}
