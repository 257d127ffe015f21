package loadtest

import (
	"errors"
	"testing"

	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"

	"github.com/spacecast/spacecast/services/sfu/internal/server"
	"github.com/spacecast/spacecast/services/sfu/internal/simulcast"
	"github.com/spacecast/spacecast/services/sfu/internal/space"
)

// Every frame's first packet names its layer after pion's VP8 packetizer (with and without
// picture ids); the other packets name none; key frames stay key frames of the given size.
func TestFrameLayerSurvivesPacketization(t *testing.T) {
	noise := make([]byte, 9000)
	for i := range noise {
		noise[i] = byte(i*7 + 3)
	}
	for _, pid := range []bool{false, true} {
		pk := rtp.NewPacketizer(1200, 96, 1, &codecs.VP8Payloader{EnablePictureID: pid}, rtp.NewFixedSequencer(1), 90000)
		for li := range 3 {
			for _, key := range []bool{true, false} {
				pkts := pk.Packetize(layerFrame(noise, 3000, li, 640, 360, key), 3000)
				if len(pkts) < 3 {
					t.Fatalf("%d packets for 3000 bytes", len(pkts))
				}
				if got := frameLayer(pkts[0].Payload); got != li {
					t.Fatalf("pid %v key %v: first packet layer %d, want %d", pid, key, got, li)
				}
				for _, p := range pkts[1:] {
					if got := frameLayer(p.Payload); got != noLayer {
						t.Fatalf("a continuation packet names layer %d", got)
					}
				}
				if simulcast.IsVP8Keyframe(pkts[0].Payload) != key {
					t.Fatalf("pid %v: key frame %v not recognised", pid, key)
				}
				if key {
					if w, h, _ := simulcast.VP8KeyframeSize(pkts[0].Payload); w != 640 || h != 360 {
						t.Fatalf("key frame size %dx%d", w, h)
					}
				}
			}
		}
	}
	if frameLayer([]byte{0x10, 0x11, 0, 0}) != noLayer || frameLayer(nil) != noLayer {
		t.Fatal("a short or unmarked frame names a layer")
	}
}

func TestSimulcastLayers(t *testing.T) {
	got, err := simulcastLayers(server.CameraLayers, 1_000_000)
	if err != nil {
		t.Fatal(err)
	}
	want := []layerSpec{{"q", 150_000, 320, 180}, {"h", 500_000, 640, 360}, {"f", 1_000_000, 1280, 720}}
	if len(got) != len(want) {
		t.Fatalf("%+v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("layer %d: %+v, want %+v", i, got[i], want[i])
		}
	}
	if _, err := simulcastLayers([]space.Encoding{}, 1_000_000); !errors.Is(err, ErrNoSimulcast) {
		t.Fatalf("no encodings: %v", err)
	}
}
