package space

import "testing"

func TestLayerShare(t *testing.T) {
	for _, c := range []struct {
		name                        string
		total                       uint64
		layered, singleVideo, audio int
		want                        uint64
	}{
		{"unknown estimate stays unknown", 0, 3, 0, 3, 0},
		{"one camera gets all but its audio", 2_064_000, 1, 0, 1, 2_000_000},
		{"ten cameras share", 10_640_000, 10, 0, 10, 1_000_000},
		{"screenshare takes a share", 3_128_000, 2, 1, 2, 1_000_000},
		{"audio eats everything", 100_000, 2, 0, 2, 1},
		{"no layered track", 5_000_000, 0, 2, 2, 5_000_000},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := layerShare(c.total, c.layered, c.singleVideo, c.audio); got != c.want {
				t.Fatalf("layerShare(%d, %d, %d, %d) = %d, want %d", c.total, c.layered, c.singleVideo, c.audio, got, c.want)
			}
		})
	}
}
