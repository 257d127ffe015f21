package compositor

import "testing"

func TestArrange(t *testing.T) {
	ids := func(n int) []string {
		out := []string{"a", "b", "c", "d", "e", "f", "g"}
		return out[:n]
	}
	tests := []struct {
		name         string
		layout       Layout
		n            int
		main, screen string
		w, h         int
		// want: per id, the rect's centre must fall in this region of the picture
		// (col,row of a cols×rows split) and whether cropped
		cols, rows int
		cells      map[string][2]int
		crop       map[string]bool
		big        string   // id whose rect must be the largest
		centred    []string // these tiles, together, are centred horizontally
	}{
		{name: "gallery 1 fills", layout: LayoutGallery, n: 1, w: 1280, h: 720, cols: 1, rows: 1,
			cells: map[string][2]int{"a": {0, 0}}, crop: map[string]bool{"a": false}},
		{name: "gallery 2 side by side", layout: LayoutGallery, n: 2, w: 1280, h: 720, cols: 2, rows: 1,
			cells: map[string][2]int{"a": {0, 0}, "b": {1, 0}}},
		{name: "gallery 2 portrait stacks", layout: LayoutGallery, n: 2, w: 720, h: 1280, cols: 1, rows: 2,
			cells: map[string][2]int{"a": {0, 0}, "b": {0, 1}}},
		{name: "gallery 4 grid", layout: LayoutGallery, n: 4, w: 1280, h: 720, cols: 2, rows: 2,
			cells: map[string][2]int{"a": {0, 0}, "b": {1, 0}, "c": {0, 1}, "d": {1, 1}}},
		{name: "gallery 3 last row centred", layout: LayoutGallery, n: 3, w: 1280, h: 720, cols: 2, rows: 2,
			cells: map[string][2]int{"a": {0, 0}, "b": {1, 0}}, centred: []string{"c"}},
		{name: "crop 4 grid cropped", layout: LayoutCrop, n: 4, w: 1280, h: 720, cols: 2, rows: 2,
			cells: map[string][2]int{"a": {0, 0}, "d": {1, 1}}, crop: map[string]bool{"a": true, "d": true}},
		{name: "gallery 5 3x2", layout: LayoutGallery, n: 5, w: 1280, h: 720, cols: 3, rows: 2,
			cells: map[string][2]int{"a": {0, 0}, "b": {1, 0}, "c": {2, 0}}, centred: []string{"d", "e"}},
		{name: "speaker c large", layout: LayoutActiveSpeaker, n: 3, main: "c", w: 1280, h: 720, cols: 3, rows: 5,
			cells: map[string][2]int{"c": {1, 1}, "a": {1, 4}, "b": {1, 4}}, centred: []string{"a", "b"}, big: "c", crop: map[string]bool{"c": true}},
		{name: "speaker unknown takes first", layout: LayoutActiveSpeaker, n: 2, main: "zz", w: 1280, h: 720, cols: 1, rows: 5,
			cells: map[string][2]int{"a": {0, 1}, "b": {0, 4}}, big: "a"},
		{name: "screenshare wins in gallery", layout: LayoutGallery, n: 3, screen: "b", w: 1280, h: 720, cols: 3, rows: 5,
			cells: map[string][2]int{"b": {1, 1}, "a": {1, 4}, "c": {1, 4}}, big: "b", crop: map[string]bool{"b": false}},
		{name: "screenshare wins over speaker", layout: LayoutActiveSpeaker, n: 3, main: "a", screen: "c", w: 1280, h: 720, cols: 3, rows: 5,
			cells: map[string][2]int{"c": {1, 1}}, big: "c"},
		{name: "absent screenshare ignored", layout: LayoutGallery, n: 2, screen: "x", w: 1280, h: 720, cols: 2, rows: 1,
			cells: map[string][2]int{"a": {0, 0}, "b": {1, 0}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ps := arrange(tt.layout, ids(tt.n), tt.main, tt.screen, tt.w, tt.h)
			if len(ps) != tt.n {
				t.Fatalf("%d placements, want %d", len(ps), tt.n)
			}
			by := map[string]placement{}
			for _, p := range ps {
				r := p.R
				if r.X < 0 || r.Y < 0 || r.W <= 0 || r.H <= 0 || r.X+r.W > tt.w || r.Y+r.H > tt.h {
					t.Errorf("%s: rect %+v outside %dx%d", p.ID, r, tt.w, tt.h)
				}
				if r.X%2+r.Y%2+r.W%2+r.H%2 != 0 {
					t.Errorf("%s: rect %+v not even", p.ID, r)
				}
				for _, q := range by {
					if overlap(q.R, r) {
						t.Errorf("%s overlaps %s", p.ID, q.ID)
					}
				}
				by[p.ID] = p
			}
			for id, cell := range tt.cells {
				p, ok := by[id]
				if !ok {
					t.Fatalf("%s not placed", id)
				}
				cx, cy := p.R.X+p.R.W/2, p.R.Y+p.R.H/2
				gc, gr := cx*tt.cols/tt.w, cy*tt.rows/tt.h
				if gc != cell[0] || gr != cell[1] {
					t.Errorf("%s centre (%d,%d) in cell (%d,%d), want %v", id, cx, cy, gc, gr, cell)
				}
			}
			for id, c := range tt.crop {
				if by[id].Crop != c {
					t.Errorf("%s crop %v, want %v", id, by[id].Crop, c)
				}
			}
			if len(tt.centred) > 0 {
				left, right := tt.w, 0
				for _, id := range tt.centred {
					left, right = min(left, by[id].R.X), max(right, by[id].R.X+by[id].R.W)
				}
				if d := left - (tt.w - right); d < -4 || d > 4 {
					t.Errorf("%v span %d..%d not centred in %d", tt.centred, left, right, tt.w)
				}
			}
			if tt.big != "" {
				for _, p := range ps {
					if p.ID != tt.big && p.R.W*p.R.H >= by[tt.big].R.W*by[tt.big].R.H {
						t.Errorf("%s not larger than %s", tt.big, p.ID)
					}
				}
			}
		})
	}
}

func overlap(a, b rect) bool {
	return a.X < b.X+b.W && b.X < a.X+a.W && a.Y < b.Y+b.H && b.Y < a.Y+a.H
}

func TestArrangeEmpty(t *testing.T) {
	if ps := arrange(LayoutGallery, nil, "", "", 640, 360); len(ps) != 0 {
		t.Fatalf("placements for no tiles: %v", ps)
	}
}

// TestShownSize: the pixels of a picture a tile shows, fitted or cropped, capped by what the
// decoder's box gives.
func TestShownSize(t *testing.T) {
	const wide = 16.0 / 9
	for _, tc := range []struct {
		name       string
		p          placement
		boxW, boxH int
		aspect     float64
		w, h       int
	}{
		{"gallery of two at 1280x720, fitted", placement{R: rect{8, 8, 628, 704}}, 640, 360, wide, 628, 353},
		{"gallery of four at 1280x720", placement{R: rect{8, 8, 628, 348}}, 640, 360, wide, 619, 348},
		{"one tile: the box caps it", placement{R: rect{0, 0, 1280, 720}}, 640, 360, wide, 640, 360},
		{"cropped into a tall tile: the box caps it", placement{R: rect{8, 8, 628, 704}, Crop: true}, 640, 360, wide, 640, 360},
		{"cropped, box large enough", placement{R: rect{0, 0, 400, 400}, Crop: true}, 1280, 576, wide, 711, 400},
		{"active speaker's main area", placement{R: rect{0, 0, 1280, 568}, Crop: true}, 1280, 576, wide, 1024, 576},
		{"active speaker's strip", placement{R: rect{0, 0, 240, 136}, Crop: true}, 1280, 576, wide, 242, 136},
		{"4:3 camera fitted", placement{R: rect{0, 0, 628, 704}}, 640, 360, 4.0 / 3, 480, 360},
		{"portrait picture, gallery of two stacked", placement{R: rect{8, 14, 704, 612}}, 360, 640, wide, 360, 203},
		{"no aspect", placement{R: rect{0, 0, 100, 100}}, 640, 360, 0, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if w, h := shownSize(tc.p, tc.boxW, tc.boxH, tc.aspect); w != tc.w || h != tc.h {
				t.Fatalf("shownSize = %dx%d, want %dx%d", w, h, tc.w, tc.h)
			}
		})
	}
}
