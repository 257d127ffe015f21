package simulcast

import (
	"slices"
	"testing"
	"time"

	"github.com/pion/rtp"
)

func TestVP8KeyframeSize(t *testing.T) {
	// 640x480 with scaling bits set on the height (they are not part of the size).
	key := append([]byte{0x10}, 0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0xe0, 0x41)
	if w, h, ok := VP8KeyframeSize(key); !ok || w != 640 || h != 480 {
		t.Fatalf("VP8KeyframeSize = %d %d %v", w, h, ok)
	}
	if _, _, ok := VP8KeyframeSize(key[:8]); ok {
		t.Fatal("truncated header accepted")
	}
	inter := append([]byte{0x10}, 0x11, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0xe0, 0x01)
	if _, _, ok := VP8KeyframeSize(inter); ok {
		t.Fatal("interframe accepted")
	}
	for _, rid := range rids {
		fr := readIVF(t, rid+".ivf")[0]
		p := append([]byte{0x10}, fr...)
		w, h, ok := VP8KeyframeSize(p)
		want := map[string][2]int{"q": {96, 54}, "h": {192, 108}, "f": {384, 216}}[rid]
		if !ok || w != want[0] || h != want[1] {
			t.Fatalf("%s.ivf: %dx%d %v, want %v", rid, w, h, ok, want)
		}
	}
}

func TestMeter(t *testing.T) {
	clk := &clock{t: time.Unix(1_700_000_000, 0)}
	m := NewMeter(clk.now)
	key := func(w, h int) []byte {
		return []byte{0x10, 0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, byte(w), byte(w >> 8), byte(h), byte(h >> 8)}
	}
	// q: 100 packets of 125 bytes per second = 100 kbit/s; f: 100 of 1000 bytes = 800 kbit/s.
	send := func(seconds int, rids ...string) {
		for range seconds * 100 {
			for _, rid := range rids {
				p := &rtp.Packet{Payload: make([]byte, map[string]int{"q": 125, "f": 1000}[rid])}
				m.Observe(rid, p)
			}
			clk.t = clk.t.Add(10 * time.Millisecond)
		}
	}
	m.Observe("q", &rtp.Packet{Payload: key(320, 180)})
	m.Observe("f", &rtp.Packet{Payload: key(1280, 720)})
	send(3, "q", "f")
	got := m.Layers()
	want := []Layer{{RID: "q", Width: 320, Height: 180, Bitrate: 100_000}, {RID: "f", Width: 1280, Height: 720, Bitrate: 800_000}}
	if !slices.EqualFunc(got, want, func(a, b Layer) bool {
		return a.RID == b.RID && a.Width == b.Width && a.Height == b.Height && a.Bitrate > b.Bitrate*95/100 && a.Bitrate < b.Bitrate*105/100
	}) {
		t.Fatalf("Layers() = %+v, want about %+v", got, want)
	}
	// f stops: gone after two windows.
	send(1, "q")
	if n := len(m.Layers()); n != 2 {
		t.Fatalf("f left after one second: %+v", m.Layers())
	}
	if got := m.LayersWithin(500 * time.Millisecond); len(got) != 1 || got[0].RID != "q" {
		t.Fatalf("LayersWithin(500ms) one second after f stopped = %+v", got)
	}
	send(2, "q")
	if got := m.Layers(); len(got) != 1 || got[0].RID != "q" {
		t.Fatalf("Layers() after f stopped = %+v", got)
	}
	m.Remove("q")
	if got := m.Layers(); len(got) != 0 {
		t.Fatalf("after Remove: %+v", got)
	}
}
