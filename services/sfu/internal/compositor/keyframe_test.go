package compositor

import (
	"testing"
	"time"

	"github.com/pion/rtp"
)

func vp8Payload(key, start bool) []byte {
	// VP8 payload descriptor: X=0, S bit, PID 0; then the first byte of the frame header,
	// whose low bit is 0 for a keyframe
	d := byte(0)
	if start {
		d = 0x10
	}
	f := byte(0x01)
	if key {
		f = 0x00
	}
	return []byte{d, f, 0, 0}
}

func TestKeyframeWatch(t *testing.T) {
	t0 := time.Unix(1000, 0)
	type pkt struct {
		seq        uint16
		key, start bool
		at         time.Duration
		ask        bool
	}
	tests := []struct {
		name string
		pkts []pkt
	}{
		{"asks until the first keyframe, once per interval", []pkt{
			{seq: 1, start: true, at: 0, ask: true},
			{seq: 2, at: 100 * time.Millisecond, ask: false},
			{seq: 3, start: true, at: 600 * time.Millisecond, ask: true},
			{seq: 4, key: true, start: true, at: 700 * time.Millisecond, ask: false},
			{seq: 5, at: 2 * time.Second, ask: false},
		}},
		{"a gap asks again until the next keyframe", []pkt{
			{seq: 10, key: true, start: true, ask: false},
			{seq: 11, at: 10 * time.Millisecond, ask: false},
			{seq: 13, at: 20 * time.Millisecond, ask: true},
			{seq: 14, at: 30 * time.Millisecond, ask: false},
			{seq: 15, at: 600 * time.Millisecond, ask: true},
			{seq: 16, key: true, start: true, at: 700 * time.Millisecond, ask: false},
			{seq: 17, at: 2 * time.Second, ask: false},
		}},
		{"sequence wrap is no gap", []pkt{
			{seq: 65535, key: true, start: true, ask: false},
			{seq: 0, at: 10 * time.Millisecond, ask: false},
			{seq: 1, at: 20 * time.Millisecond, ask: false},
		}},
		{"a late (reordered) packet is no gap", []pkt{
			{seq: 20, key: true, start: true, ask: false},
			{seq: 21, at: 10 * time.Millisecond, ask: false},
			{seq: 21, at: 20 * time.Millisecond, ask: false},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := &keyframeWatch{codec: codecVP8, interval: 500 * time.Millisecond}
			for i, p := range tt.pkts {
				got := k.observe(&rtp.Packet{Header: rtp.Header{SequenceNumber: p.seq}, Payload: vp8Payload(p.key, p.start)}, t0.Add(p.at))
				if got != p.ask {
					t.Fatalf("packet %d (seq %d): ask %v, want %v", i, p.seq, got, p.ask)
				}
			}
		})
	}
}

// TestKeyframeWatchUntilDecoded: a keyframe the decoder lost (no picture decodeStall later)
// is asked for again once per decodeStall, and no more once the decoder produced a picture.
func TestKeyframeWatchUntilDecoded(t *testing.T) {
	t0 := time.Unix(1000, 0)
	pictured := false
	k := &keyframeWatch{codec: codecVP8, interval: 500 * time.Millisecond, decoded: func() bool { return pictured }}
	steps := []struct {
		seq        uint16
		key, start bool
		at         time.Duration
		pictured   bool
		ask        bool
	}{
		{seq: 1, key: true, start: true, at: 0, ask: false},
		{seq: 2, start: true, at: 100 * time.Millisecond, ask: false},
		{seq: 3, start: true, at: 1500 * time.Millisecond, ask: false},
		{seq: 4, start: true, at: 2100 * time.Millisecond, ask: true},
		{seq: 5, start: true, at: 2500 * time.Millisecond, ask: false},
		{seq: 6, start: true, at: 4200 * time.Millisecond, ask: true},
		{seq: 7, key: true, start: true, at: 4300 * time.Millisecond, ask: false},
		{seq: 8, start: true, at: 4400 * time.Millisecond, pictured: true, ask: false},
		{seq: 9, start: true, at: 9 * time.Second, pictured: true, ask: false},
	}
	for i, s := range steps {
		pictured = s.pictured
		if got := k.observe(&rtp.Packet{Header: rtp.Header{SequenceNumber: s.seq}, Payload: vp8Payload(s.key, s.start)}, t0.Add(s.at)); got != s.ask {
			t.Fatalf("step %d (seq %d): ask %v, want %v", i, s.seq, got, s.ask)
		}
	}
}

func TestIsKeyframeH264(t *testing.T) {
	tests := []struct {
		name    string
		payload []byte
		want    bool
	}{
		{"idr", []byte{0x65, 0x88}, true},
		{"sps", []byte{0x67, 0x42}, true},
		{"non-idr", []byte{0x41, 0x9a}, false},
		{"stap-a with sps", []byte{0x78, 0, 2, 0x67, 0x42, 0, 2, 0x68, 0xce}, true},
		{"stap-a without", []byte{0x78, 0, 2, 0x06, 0x05}, false},
		{"fu-a idr start", []byte{0x7c, 0x85, 1}, true},
		{"fu-a idr middle", []byte{0x7c, 0x05, 1}, false},
		{"short", []byte{0x65}, false},
	}
	for _, tt := range tests {
		if got := isKeyframe(codecH264, tt.payload); got != tt.want {
			t.Errorf("%s: %v", tt.name, got)
		}
	}
}
