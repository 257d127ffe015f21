package space

import (
	"testing"

	"github.com/spacecast/spacecast/services/sfu/internal/simulcast"
)

func TestAllocateLayers(t *testing.T) {
	camera := []simulcast.Layer{
		{RID: "f", Width: 1280, Height: 720, Bitrate: 1_000_000},
		{RID: "q", Width: 320, Height: 180, Bitrate: 150_000},
		{RID: "h", Width: 640, Height: 360, Bitrate: 500_000},
	}
	cams := func(n int) [][]simulcast.Layer {
		out := make([][]simulcast.Layer, n)
		for i := range out {
			out[i] = camera
		}
		return out
	}
	for _, c := range []struct {
		name               string
		total              uint64
		tracks             [][]simulcast.Layer
		singleVideo, audio int
		want               []string // the layer each track's Selector takes
	}{
		{"unknown estimate: smallest", 0, cams(2), 0, 2, []string{"q", "q"}},
		{"one camera, wide link: top", 3_000_000, cams(1), 0, 1, []string{"f"}},
		{"one camera, 700 kbit/s: middle", 700_000, cams(1), 0, 1, []string{"h"}},
		{"ten cameras on a link for one: mostly smallest", 1_500_000, cams(10), 0, 10, []string{"q", "q", "q", "q", "q", "q", "q", "q", "q", "q"}},
		{"ten cameras, 3.2 Mbit/s: one raised, the sum stays within the estimate", 3_200_000, cams(10), 0, 10,
			[]string{"h", "q", "q", "q", "q", "q", "q", "q", "q", "q"}},
		{"ten cameras, 6 Mbit/s: raised round robin", 6_000_000, cams(10), 0, 10,
			[]string{"h", "h", "h", "h", "h", "h", "h", "h", "q", "q"}},
		{"two cameras, 3 Mbit/s: both top", 3_000_000, cams(2), 0, 2, []string{"f", "f"}},
		{"two cameras, 1.6 Mbit/s: both middle before either top", 1_600_000, cams(2), 0, 2, []string{"h", "h"}},
		{"screenshare reserved first", 1_600_000, cams(2), 1, 2, []string{"h", "q"}},
		{"reserves above the estimate: smallest", 100_000, cams(2), 0, 2, []string{"q", "q"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			est := allocateLayers(c.total, c.tracks, c.singleVideo, c.audio)
			if len(est) != len(c.tracks) {
				t.Fatalf("%d estimates for %d tracks", len(est), len(c.tracks))
			}
			var sum uint64
			for i := range est {
				got := simulcast.Choose(c.tracks[i], est[i], 0, 0)
				if got != c.want[i] {
					t.Errorf("track %d: estimate %d takes %q, want %q (all: %v)", i, est[i], got, c.want[i], est)
				}
				for _, l := range c.tracks[i] {
					if l.RID == got {
						sum += l.Bitrate
					}
				}
			}
			if c.total > 0 && sum > c.total && c.want[0] != "q" {
				t.Errorf("chosen layers sum to %d bit/s, more than the estimate %d", sum, c.total)
			}
		})
	}
}
