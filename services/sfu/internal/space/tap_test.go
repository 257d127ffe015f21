package space

import (
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/spacecast/spacecast/services/sfu/internal/simulcast"
)

// tapRecorder is a Tap that keeps the tracks offered and every packet its sinks get.
type tapRecorder struct {
	mu     sync.Mutex
	tracks []TapTrack
	pkts   []rtp.Packet
}

func (r *tapRecorder) TrackAdded(t TapTrack) TapSink {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.tracks = append(r.tracks, t)
	return r
}
func (r *tapRecorder) TrackRemoved(string, string)     {}
func (r *tapRecorder) TrackMuted(string, string, bool) {}
func (r *tapRecorder) ParticipantLeft(string)          {}
func (r *tapRecorder) ActiveSpeaker(string)            {}

func (r *tapRecorder) WriteRTP(p *rtp.Packet) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pkts = append(r.pkts, *p.Clone())
	return nil
}

// take returns and forgets the packets received so far.
func (r *tapRecorder) take() []rtp.Packet {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.pkts
	r.pkts = nil
	return out
}

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// tapRig is one simulcast camera with layers q, h and f (320x180, 640x360, 1280x720 as their
// VP8 keyframes say) in a space whose tap is a tapRecorder.
type tapRig struct {
	t    *testing.T
	s    *Space
	tr   *track
	tap  *tapRecorder
	clk  *fakeClock
	seq  map[string]uint16
	ts   map[string]uint32
	size map[string][2]int
}

var tapRIDs = []string{"q", "h", "f"}

func newTapRig(t *testing.T) *tapRig {
	clk := &fakeClock{t: time.Now()}
	s := &Space{log: slog.New(slog.DiscardHandler), tap: &tapRecorder{}}
	tr := &track{info: Track{TID: "cam", Type: KindVideo, Source: "camera"}, owner: &peer{m: Member{ConnectionID: "c1"}},
		layered: true, codec: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, meter: simulcast.NewMeter(clk.now)}
	return &tapRig{t: t, s: s, tr: tr, tap: s.tap.(*tapRecorder), clk: clk,
		seq: map[string]uint16{"q": 100, "h": 20000, "f": 40000}, ts: map[string]uint32{"q": 1, "h": 1e6, "f": 2e6},
		size: map[string][2]int{"q": {320, 180}, "h": {640, 360}, "f": {1280, 720}}}
}

// frame sends one single-packet frame of each of rids (a keyframe with key), its last payload
// byte naming the layer, and moves the clock on a frame (33 ms).
func (r *tapRig) frame(key bool, rids ...string) {
	for _, rid := range rids {
		payload := []byte{0x10, 0x11, 0, 0, 0, 0, 0, 0, 0, 0, 0}
		if key {
			w, h := r.size[rid][0], r.size[rid][1]
			payload = []byte{0x10, 0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, byte(w), byte(w >> 8), byte(h), byte(h >> 8)}
		}
		payload = append(payload, rid[0])
		r.tr.layerToTap(rid, &rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: r.seq[rid],
			Timestamp: r.ts[rid], Marker: true}, Payload: payload})
		r.seq[rid]++
		r.ts[rid] += 3000
	}
	r.clk.add(33 * time.Millisecond)
}

func (r *tapRig) tick() { r.s.tickTap(r.tr, r.tr.tapL.Load(), r.clk.now()) }

// layersOf names the layer of each packet the tap got, checking that they form one stream
// (sequence numbers go up by one) that changes layer only at a keyframe.
func (r *tapRig) layersOf(pkts []rtp.Packet, prevSeq *uint16, prevRID *byte) []string {
	r.t.Helper()
	var out []string
	for _, p := range pkts {
		rid := p.Payload[len(p.Payload)-1]
		if *prevRID != 0 && p.SequenceNumber != *prevSeq+1 {
			r.t.Fatalf("tap stream jumps from seq %d to %d", *prevSeq, p.SequenceNumber)
		}
		if rid != *prevRID && !simulcast.IsVP8Keyframe(p.Payload) {
			r.t.Fatalf("tap stream changes to layer %c without a keyframe", rid)
		}
		if rid != *prevRID {
			out = append(out, string(rid))
		}
		*prevSeq, *prevRID = p.SequenceNumber, rid
	}
	return out
}

// TestTapLayerChoice: the tap takes the smallest arriving layer at least as large as the size
// the tap shows the camera at, else the largest arriving; unknown size: the largest.
func TestTapLayerChoice(t *testing.T) {
	for _, tc := range []struct {
		name     string
		arriving []string
		w, h     int
		want     string
	}{
		{"no view told: the largest, after the wait", tapRIDs, 0, 0, "f"},
		{"gallery tile of two at 1280x720 (618x348)", tapRIDs, 618, 348, "h"},
		{"exactly a layer's size", tapRIDs, 640, 360, "h"},
		{"a pixel more than h", tapRIDs, 641, 360, "f"},
		{"strip tile", tapRIDs, 242, 136, "q"},
		{"tiny", tapRIDs, 16, 9, "q"},
		{"active speaker's main area", tapRIDs, 1024, 576, "f"},
		{"larger than every layer: the largest", tapRIDs, 1920, 1080, "f"},
		{"f not sent: h is the largest arriving", []string{"q", "h"}, 1024, 576, "h"},
		{"only q sent (small capture)", []string{"q"}, 618, 348, "q"},
		{"h not sent: the next larger covers", []string{"q", "f"}, 618, 348, "f"},
		{"portrait view of a landscape camera", tapRIDs, 360, 202, "h"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newTapRig(t)
			r.frame(true, tc.arriving...)
			r.s.tapTrack(r.tr)
			if len(r.tap.tracks) != 1 || r.tap.tracks[0].View == nil || r.tap.tracks[0].Keyframe == nil {
				t.Fatalf("tap offered %+v, want one track with View and Keyframe", r.tap.tracks)
			}
			// No layer before the tap told its view (or gave up waiting for it).
			r.tick()
			r.frame(true, tc.arriving...)
			if got := r.tap.take(); len(got) != 0 {
				t.Fatalf("the tap got %d packets before it told its view", len(got))
			}
			if tc.w == 0 {
				for range tapViewWait / (33 * time.Millisecond) {
					r.frame(false, tc.arriving...)
				}
			} else {
				r.tap.tracks[0].View(tc.w, tc.h)
			}
			r.tick()
			r.frame(false, tc.arriving...)
			r.frame(true, tc.arriving...)
			r.frame(false, tc.arriving...)
			var seq uint16
			var rid byte
			if got := r.layersOf(r.tap.take(), &seq, &rid); len(got) != 1 || got[0] != tc.want {
				t.Fatalf("tap got layers %v, want %s", got, tc.want)
			}
		})
	}
}

// TestTapFollowsViewAndLayers: one tap stream through a view change, a layer that stops and
// the same layer coming back; every change at a keyframe of the new layer.
func TestTapFollowsViewAndLayers(t *testing.T) {
	r := newTapRig(t)
	r.frame(true, tapRIDs...)
	r.s.tapTrack(r.tr)
	view := r.tap.tracks[0].View
	view(618, 348)
	var seq uint16
	var prev byte
	var seen []string
	// run sends frames of rids for d, a keyframe every 10 frames, ticking every 200 ms.
	run := func(d time.Duration, rids ...string) {
		for i := 0; time.Duration(i)*33*time.Millisecond < d; i++ {
			r.frame(i%10 == 0, rids...)
			if i%6 == 0 {
				r.tick()
			}
		}
		seen = append(seen, r.layersOf(r.tap.take(), &seq, &prev)...)
	}
	run(time.Second, tapRIDs...)
	if seen[len(seen)-1] != "h" {
		t.Fatalf("618x348: layers %v, want h", seen)
	}
	view(1024, 576) // this camera became the active speaker
	run(time.Second, tapRIDs...)
	if seen[len(seen)-1] != "f" {
		t.Fatalf("1024x576: layers %v, want f", seen)
	}
	run(2*time.Second, "q", "h") // f stops (the publisher's bandwidth dropped)
	if seen[len(seen)-1] != "h" {
		t.Fatalf("f stopped: layers %v, want h", seen)
	}
	run(5*time.Second, tapRIDs...) // f is back: taken again after the hold
	if seen[len(seen)-1] != "f" {
		t.Fatalf("f back: layers %v, want f", seen)
	}
	view(242, 136)
	run(time.Second, tapRIDs...)
	if want := []string{"h", "f", "h", "f", "q"}; len(seen) < len(want) || !equalTail(seen, want) {
		t.Fatalf("layers %v, want them to end with %v", seen, want)
	}
	// A decoder's keyframe request goes to the layer the tap gets.
	if rid := r.tr.tapL.Load().fw.Current(); rid != "q" {
		t.Fatalf("forwarding %q, want q", rid)
	}
}

func equalTail(got, want []string) bool {
	got = got[len(got)-len(want):]
	for i := range want {
		if got[i] != want[i] {
			return false
		}
	}
	return true
}
