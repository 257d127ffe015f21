package simulcast

import (
	"testing"

	"github.com/pion/rtp/codecs"
)

// vp8Key is the start of a VP8 key frame: payload header (P=0, show_frame) and start code.
var vp8Key = []byte{0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0xe0, 0x01}

func TestIsVP8Keyframe(t *testing.T) {
	cat := func(parts ...[]byte) []byte {
		var b []byte
		for _, p := range parts {
			b = append(b, p...)
		}
		return b
	}
	tests := []struct {
		name    string
		payload []byte
		want    bool
	}{
		{"plain descriptor, key frame", cat([]byte{0x10}, vp8Key), true},
		{"7-bit picture id", cat([]byte{0x90, 0x80, 0x05}, vp8Key), true},
		{"15-bit picture id", cat([]byte{0x90, 0x80, 0x81, 0x05}, vp8Key), true},
		{"picture id, tl0picidx, tid", cat([]byte{0x90, 0xe0, 0x81, 0x05, 0x07, 0x40}, vp8Key), true},
		{"K bit only", cat([]byte{0x90, 0x10, 0x40}, vp8Key), true},
		{"interframe (P=1)", cat([]byte{0x10, 0x11, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0, 0, 0}), false},
		{"not start of partition", cat([]byte{0x00}, vp8Key), false},
		{"partition 1", cat([]byte{0x11}, vp8Key), false},
		{"no start code", cat([]byte{0x10, 0x10, 0x02, 0x00, 0x00, 0x00, 0x00}), false},
		{"truncated after descriptor", []byte{0x90, 0x80}, false},
		{"truncated header", []byte{0x10, 0x10, 0x02}, false},
		{"15-bit picture id misread as 7-bit would hit the start code", cat([]byte{0x90, 0x80, 0x81}, vp8Key), false},
		{"empty", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := IsVP8Keyframe(tt.payload); got != tt.want {
				t.Fatalf("IsVP8Keyframe(%x) = %v", tt.payload, got)
			}
		})
	}
}

// TestIsVP8KeyframePionPayloader: the first packet pion's VP8 payloader makes of a key frame
// is one, the others are not.
func TestIsVP8KeyframePionPayloader(t *testing.T) {
	frame := make([]byte, 3000)
	copy(frame, []byte{0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0xe0, 0x01})
	for _, pid := range []bool{false, true} {
		p := &codecs.VP8Payloader{EnablePictureID: pid}
		pkts := p.Payload(1200, frame)
		if len(pkts) < 3 {
			t.Fatalf("%d packets", len(pkts))
		}
		for i, pk := range pkts {
			if got := IsVP8Keyframe(pk); got != (i == 0) {
				t.Fatalf("pictureID=%v packet %d: %v", pid, i, got)
			}
		}
		inter := append([]byte{0x11}, frame[1:]...)
		if IsVP8Keyframe(p.Payload(1200, inter)[0]) {
			t.Fatalf("interframe seen as key frame")
		}
	}
}

func TestIsH264Keyframe(t *testing.T) {
	tests := []struct {
		name    string
		payload []byte
		want    bool
	}{
		{"IDR", []byte{0x65, 0x88, 0x84}, true},
		{"SPS", []byte{0x67, 0x42, 0x00, 0x1f}, true},
		{"PPS", []byte{0x68, 0xce}, false},
		{"non-IDR slice", []byte{0x41, 0x9a}, false},
		{"STAP-A SPS PPS", []byte{0x78, 0x00, 0x02, 0x67, 0x42, 0x00, 0x02, 0x68, 0xce}, true},
		{"STAP-A PPS then IDR", []byte{0x78, 0x00, 0x02, 0x68, 0xce, 0x00, 0x02, 0x65, 0x88}, true},
		{"STAP-A SEI only", []byte{0x78, 0x00, 0x02, 0x06, 0x05}, false},
		{"STAP-A truncated size", []byte{0x78, 0x00, 0x09, 0x67}, false},
		{"STAP-A zero size", []byte{0x78, 0x00, 0x00, 0x67}, false},
		{"FU-A start IDR", []byte{0x7c, 0x85, 0x88}, true},
		{"FU-A middle IDR", []byte{0x7c, 0x05, 0x88}, false},
		{"FU-A start non-IDR", []byte{0x7c, 0x81, 0x9a}, false},
		{"FU-A truncated", []byte{0x7c}, false},
		{"empty", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := IsH264Keyframe(tt.payload); got != tt.want {
				t.Fatalf("IsH264Keyframe(%x) = %v", tt.payload, got)
			}
		})
	}
}

func TestKeyframeDetector(t *testing.T) {
	for mime, ok := range map[string]bool{"video/VP8": true, "video/vp8": true, "video/H264": true, "video/VP9": false, "audio/opus": false, "": false} {
		if got := KeyframeDetector(mime) != nil; got != ok {
			t.Errorf("KeyframeDetector(%q) != nil: %v", mime, got)
		}
	}
}

func FuzzIsVP8Keyframe(f *testing.F) {
	f.Add(append([]byte{0x90, 0xe0, 0x81, 0x05, 0x07, 0x40}, vp8Key...))
	f.Add([]byte{0x10})
	f.Fuzz(func(t *testing.T, b []byte) {
		if IsVP8Keyframe(b) {
			// A key frame's first packet starts a partition 0 and has the start code.
			if b[0]&0x10 == 0 || b[0]&0x07 != 0 || len(b) < 7 {
				t.Fatalf("accepted %x", b)
			}
		}
	})
}

func FuzzIsH264Keyframe(f *testing.F) {
	f.Add([]byte{0x78, 0x00, 0x02, 0x68, 0xce, 0x00, 0x02, 0x65, 0x88})
	f.Add([]byte{0x7c, 0x85, 0x88})
	f.Fuzz(func(t *testing.T, b []byte) {
		if IsH264Keyframe(b) {
			switch b[0] & 0x1f {
			case naluIDR, naluSPS, naluSTAPA, naluFUA:
			default:
				t.Fatalf("accepted NAL type %d", b[0]&0x1f)
			}
		}
	})
}
