package transcode

import (
	"reflect"
	"testing"
)

func TestPlan(t *testing.T) {
	for _, c := range []struct {
		w, h  int
		tier  string
		rungs []string
		keep  bool
	}{
		{1920, 1080, "1080p", []string{"720p", "480p", "360p"}, true},
		{1280, 720, "1080p", []string{"480p", "360p"}, true},
		{960, 540, "", []string{"480p", "360p"}, true},
		{640, 360, "1080p", nil, true},
		{2560, 1440, "1080p", []string{"1080p", "720p", "480p", "360p"}, false}, // source above the tier: not listed
		{2560, 1440, "1440p", []string{"1080p", "720p", "480p", "360p"}, true},
		{3840, 2160, "2160p", []string{"1080p", "720p", "480p", "360p"}, true},
		{0, 0, "1080p", nil, true},
	} {
		rungs, keep := Plan(c.w, c.h, c.tier)
		var names []string
		for _, r := range rungs {
			names = append(names, r.Name)
			if r.Width%2 != 0 || r.Width*c.h/c.w < r.Height-2 {
				t.Errorf("%dx%d: rung %+v keeps neither the aspect ratio nor an even width", c.w, c.h, r)
			}
		}
		if !reflect.DeepEqual(names, c.rungs) || keep != c.keep {
			t.Errorf("Plan(%d, %d, %q) = %v keep %v, want %v keep %v", c.w, c.h, c.tier, names, keep, c.rungs, c.keep)
		}
	}
	if r, _ := Plan(1920, 1080, "1080p"); r[0].Width != 1280 || r[1].Width != 854 || r[2].Width != 640 {
		t.Errorf("widths %+v", r)
	}
}
