package compositor

import "math"

// rect is a picture region in output pixels; X, Y, W, H are even so chroma planes align.
type rect struct{ X, Y, W, H int }

// placement says where one tile goes and whether its picture is fitted (aspect preserved,
// background around it) or cropped to fill the rect.
type placement struct {
	ID   string
	R    rect
	Crop bool
}

// arrange lays out ids (in join order) on a w×h picture. main is the id shown large in the
// active-speaker layout (or "" for the first); screen, when it names a tile, takes the main
// area in every layout, fitted, with the others in a strip.
func arrange(l Layout, ids []string, main, screen string, w, h int) []placement {
	if len(ids) == 0 {
		return nil
	}
	if !contains(ids, screen) {
		screen = ""
	}
	switch {
	case screen != "":
		return mainAndStrip(ids, screen, false, l == LayoutCrop || l == LayoutActiveSpeaker, w, h)
	case l == LayoutActiveSpeaker:
		if !contains(ids, main) {
			main = ids[0]
		}
		return mainAndStrip(ids, main, true, true, w, h)
	default:
		return grid(ids, l == LayoutCrop, w, h)
	}
}

func contains(ids []string, id string) bool {
	for _, x := range ids {
		if x == id && id != "" {
			return true
		}
	}
	return false
}

func gap(w, h int) int { return even(min(w, h) / 90) }

func even(v int) int { return v &^ 1 }

// grid: as square as the picture allows (more columns on a landscape picture, more rows on
// a portrait one); an incomplete last row is centred.
func grid(ids []string, crop bool, w, h int) []placement {
	n := len(ids)
	g := gap(w, h)
	long := int(math.Ceil(math.Sqrt(float64(n))))
	short := (n + long - 1) / long
	cols, rows := long, short
	if h > w {
		cols, rows = short, long
	}
	cw := even((w - g*(cols+1)) / cols)
	ch := even((h - g*(rows+1)) / rows)
	// centre the whole grid
	x0 := even((w - (cols*cw + (cols-1)*g)) / 2)
	y0 := even((h - (rows*ch + (rows-1)*g)) / 2)
	out := make([]placement, 0, n)
	for i, id := range ids {
		r, c := i/cols, i%cols
		inRow := cols
		if r == rows-1 && n%cols != 0 {
			inRow = n % cols
		}
		shift := even((cols - inRow) * (cw + g) / 2)
		out = append(out, placement{ID: id, Crop: crop, R: rect{
			X: x0 + shift + c*(cw+g), Y: y0 + r*(ch+g), W: cw, H: ch,
		}})
	}
	return out
}

// mainAndStrip: main large on top, the others in a row of small tiles along the bottom.
func mainAndStrip(ids []string, main string, mainCrop, stripCrop bool, w, h int) []placement {
	g := gap(w, h)
	if len(ids) == 1 {
		return []placement{{ID: main, Crop: mainCrop, R: rect{0, 0, w, h}}}
	}
	others := make([]string, 0, len(ids)-1)
	for _, id := range ids {
		if id != main {
			others = append(others, id)
		}
	}
	stripH := even(h / 5)
	if h > w {
		stripH = even(h / 6)
	}
	mainH := h - stripH - g
	out := []placement{{ID: main, Crop: mainCrop, R: rect{0, 0, w, even(mainH)}}}
	n := len(others)
	th := stripH - g
	tw := even(min((w-g*(n+1))/n, th*16/9))
	x0 := even((w - (n*tw + (n-1)*g)) / 2)
	y := h - stripH
	for i, id := range others {
		out = append(out, placement{ID: id, Crop: stripCrop, R: rect{x0 + i*(tw+g), even(y), tw, even(th)}})
	}
	return out
}

// decodeBox is the size a video track is decoded at: the largest tile it is likely to
// take, so the Go compositor mostly scales down. Layout changes do not restart decoders.
func decodeBox(l Layout, w, h int) (int, int) {
	if l == LayoutActiveSpeaker {
		return even(w), even(h - h/5)
	}
	return even(w / 2), even(h / 2)
}

// shownSize is how many pixels of a picture of aspect (width/height) tile p shows: the
// picture fitted into the tile, or scaled to cover it when cropped (of which the tile shows
// a part, at that scale), but no more than the decoder gives when it fits the picture into
// boxW×boxH. A source at least this large is drawn without being scaled up.
func shownSize(p placement, boxW, boxH int, aspect float64) (int, int) {
	if aspect <= 0 || p.R.W <= 0 || p.R.H <= 0 {
		return 0, 0
	}
	tw, th := float64(p.R.W), float64(p.R.H)
	w := math.Min(tw, th*aspect)
	if p.Crop {
		w = math.Max(tw, th*aspect)
	}
	if boxW > 0 && boxH > 0 {
		w = math.Min(w, math.Min(float64(boxW), float64(boxH)*aspect))
	}
	return int(math.Round(w)), int(math.Round(w / aspect))
}
