package simulcast

import (
	"errors"
	"testing"
	"time"
)

// Mux Spaces' camera encodings for a 1280x720 capture.
var qhf = []Layer{
	{RID: "f", Width: 1280, Height: 720, Bitrate: 1_500_000},
	{RID: "q", Width: 320, Height: 180, Bitrate: 150_000},
	{RID: "h", Width: 640, Height: 360, Bitrate: 500_000},
}

func TestChoose(t *testing.T) {
	tests := []struct {
		name   string
		layers []Layer
		est    uint64
		w, h   int
		want   string
	}{
		{"no layers", nil, 1e6, 0, 0, ""},
		{"unknown size, plenty of bandwidth: largest", qhf, 10_000_000, 0, 0, "f"},
		{"unknown size, fits h with headroom", qhf, 600_000, 0, 0, "h"},
		{"h without headroom does not fit", qhf, 550_000, 0, 0, "q"},
		{"nothing fits: smallest", qhf, 50_000, 0, 0, "q"},
		{"small render: smallest covering", qhf, 10_000_000, 300, 170, "q"},
		{"render just above q", qhf, 10_000_000, 321, 180, "h"},
		{"render 640x360 exactly", qhf, 10_000_000, 640, 360, "h"},
		{"large render, bandwidth for h only", qhf, 1_000_000, 1280, 720, "h"},
		{"larger than any layer: largest that fits", qhf, 10_000_000, 1920, 1080, "f"},
		{"only width known counts as unknown", qhf, 10_000_000, 300, 0, "f"},
		{"unknown bitrates always fit", []Layer{{RID: "a", Width: 320, Height: 180}, {RID: "b", Width: 640, Height: 360}}, 1, 0, 0, "b"},
		{"unknown sizes: by bitrate", []Layer{{RID: "lo", Bitrate: 100_000}, {RID: "hi", Bitrate: 900_000}}, 2_000_000, 0, 0, "hi"},
		{"single layer", []Layer{{RID: "x", Width: 640, Height: 360, Bitrate: 9e6}}, 1, 640, 360, "x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Choose(tt.layers, tt.est, tt.w, tt.h); got != tt.want {
				t.Fatalf("Choose(est %d, %dx%d) = %q, want %q", tt.est, tt.w, tt.h, got, tt.want)
			}
		})
	}
}

func TestSelector(t *testing.T) {
	type step struct {
		ms      int
		est     uint64
		w, h    int
		want    string
		changed bool
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"first update chooses at once", []step{{0, 10e6, 0, 0, "f", true}, {100, 10e6, 0, 0, "f", false}}},
		{"down after DownAfter", []step{
			{0, 10e6, 0, 0, "f", true},
			{100, 300_000, 0, 0, "f", false},
			{400, 300_000, 0, 0, "f", false},
			{600, 300_000, 0, 0, "q", true},
		}},
		{"a short dip does not switch down", []step{
			{0, 10e6, 0, 0, "f", true},
			{100, 300_000, 0, 0, "f", false},
			{300, 10e6, 0, 0, "f", false},
			{700, 300_000, 0, 0, "f", false},
			{1100, 300_000, 0, 0, "f", false},
			{1200, 300_000, 0, 0, "q", true},
		}},
		{"up only after UpAfter", []step{
			{0, 300_000, 0, 0, "q", true},
			{100, 10e6, 0, 0, "q", false},
			{3000, 10e6, 0, 0, "q", false},
			{3100, 10e6, 0, 0, "f", true},
		}},
		{"stays on a layer that fits the whole estimate but not the headroom", []step{
			{0, 2_000_000, 0, 0, "f", true},
			{100, 1_600_000, 0, 0, "f", false}, // 1.5M > 0.85*1.6M, but ≤ 1.6M
			{5000, 1_600_000, 0, 0, "f", false},
			{5100, 1_400_000, 0, 0, "f", false},
			{5700, 1_400_000, 0, 0, "h", true},
		}},
		{"rendered size shrinks: down", []step{
			{0, 10e6, 1280, 720, "f", true},
			{100, 10e6, 320, 180, "f", false},
			{700, 10e6, 320, 180, "q", true},
		}},
		{"pending target changes restart the hold", []step{
			{0, 10e6, 0, 0, "f", true},
			{100, 550_000, 0, 0, "f", false}, // wants q
			{400, 700_000, 0, 0, "f", false}, // now wants h: hold restarts
			{700, 700_000, 0, 0, "f", false},
			{900, 700_000, 0, 0, "h", true},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := NewSelector(SelectorOptions{})
			if err != nil {
				t.Fatal(err)
			}
			t0 := time.Unix(1_700_000_000, 0)
			for _, st := range tt.steps {
				rid, changed := s.Update(qhf, st.est, st.w, st.h, t0.Add(time.Duration(st.ms)*time.Millisecond))
				if rid != st.want || changed != st.changed || s.Current() != rid {
					t.Fatalf("at %d ms (est %d): %q changed=%v, want %q changed=%v", st.ms, st.est, rid, changed, st.want, st.changed)
				}
			}
		})
	}
}

func TestSelectorLayerVanishes(t *testing.T) {
	s, err := NewSelector(SelectorOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Unix(1_700_000_000, 0)
	if rid, _ := s.Update(qhf, 10e6, 0, 0, t0); rid != "f" {
		t.Fatal(rid)
	}
	// The publisher stopped sending f: the choice among the rest is immediate.
	if rid, changed := s.Update(qhf[1:], 10e6, 0, 0, t0.Add(time.Millisecond)); rid != "h" || !changed {
		t.Fatalf("%q %v", rid, changed)
	}
}

func TestNewSelectorBadOptions(t *testing.T) {
	for _, o := range []SelectorOptions{{UpAfter: -1}, {DownAfter: -1}} {
		if _, err := NewSelector(o); !errors.Is(err, ErrBadOptions) {
			t.Errorf("NewSelector(%+v): %v", o, err)
		}
	}
}
