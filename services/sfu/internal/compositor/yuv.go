package compositor

// frame is a planar YUV 4:2:0 picture (yuv420p: W×H luma, then two W/2×H/2 chroma planes)
// in one buffer, the layout ffmpeg's rawvideo and yuv4mpegpipe use.
type frame struct {
	W, H int
	Buf  []byte
}

func newFrame(w, h int) *frame { return &frame{W: w, H: h, Buf: make([]byte, w*h*3/2)} }

func (f *frame) planes() (y, u, v []byte) {
	n := f.W * f.H
	return f.Buf[:n], f.Buf[n : n+n/4], f.Buf[n+n/4 : n+n/2]
}

// yuv is one colour in BT.601 limited range.
type yuv struct{ Y, U, V byte }

// rgbToYUV converts 8-bit RGB to BT.601 limited-range YUV (what ffmpeg's default
// rgb→yuv420p conversion produces).
func rgbToYUV(r, g, b int) yuv {
	y := (66*r+129*g+25*b+128)>>8 + 16
	u := (-38*r-74*g+112*b+128)>>8 + 128
	v := (112*r-94*g-18*b+128)>>8 + 128
	return yuv{clampByte(y), clampByte(u), clampByte(v)}
}

func clampByte(v int) byte {
	if v < 0 {
		return 0
	}
	if v > 255 {
		return 255
	}
	return byte(v)
}

// fill paints r with c. r must be even-aligned and inside f.
func (f *frame) fill(r rect, c yuv) {
	y, u, v := f.planes()
	for row := r.Y; row < r.Y+r.H; row++ {
		line := y[row*f.W+r.X : row*f.W+r.X+r.W]
		for i := range line {
			line[i] = c.Y
		}
	}
	cw := f.W / 2
	for row := r.Y / 2; row < (r.Y+r.H)/2; row++ {
		lu := u[row*cw+r.X/2 : row*cw+(r.X+r.W)/2]
		lv := v[row*cw+r.X/2 : row*cw+(r.X+r.W)/2]
		for i := range lu {
			lu[i] = c.U
			lv[i] = c.V
		}
	}
}

// copyFrom copies src (same size) into f.
func (f *frame) copyFrom(src *frame) { copy(f.Buf, src.Buf) }

// scaler holds scratch index tables so drawing a tile allocates nothing in steady state.
type scaler struct{ xs, xsc []int }

// blit draws src into r of dst: fitted (aspect preserved, centred, the rest of r left as
// is) or cropped (the centre of src that has r's aspect, scaled to fill r). Sampling is
// nearest-neighbour; src was already scaled by ffmpeg near the tile size.
func (s *scaler) blit(dst *frame, r rect, src *frame, crop bool) {
	if src.W == 0 || src.H == 0 || r.W == 0 || r.H == 0 {
		return
	}
	sx, sy, sw, sh := 0, 0, src.W, src.H
	d := r
	if crop {
		// source window with r's aspect
		if sw*r.H > r.W*sh { // source wider: cut the sides
			nw := sh * r.W / r.H
			sx, sw = (sw-nw)/2, nw
		} else {
			nh := sw * r.H / r.W
			sy, sh = (sh-nh)/2, nh
		}
	} else {
		if sw*r.H > r.W*sh { // source wider: full width, bars above and below
			nh := even(r.W * sh / sw)
			d = rect{r.X, r.Y + even((r.H-nh)/2), r.W, nh}
		} else {
			nw := even(r.H * sw / sh)
			d = rect{r.X + even((r.W-nw)/2), r.Y, nw, r.H}
		}
	}
	sx, sy = even(sx), even(sy)
	sw, sh = max(2, even(sw)), max(2, even(sh))
	if d.W <= 0 || d.H <= 0 {
		return
	}
	dy, du, dv := dst.planes()
	py, pu, pv := src.planes()
	s.plane(dy, dst.W, d.X, d.Y, d.W, d.H, py, src.W, sx, sy, sw, sh, &s.xs)
	cdw, csw := dst.W/2, src.W/2
	s.plane(du, cdw, d.X/2, d.Y/2, d.W/2, d.H/2, pu, csw, sx/2, sy/2, sw/2, sh/2, &s.xsc)
	s.plane(dv, cdw, d.X/2, d.Y/2, d.W/2, d.H/2, pv, csw, sx/2, sy/2, sw/2, sh/2, &s.xsc)
}

func (s *scaler) plane(dst []byte, dstride, dx, dy, dw, dh int, src []byte, sstride, sx, sy, sw, sh int, xs *[]int) {
	if dw == sw && dh == sh {
		for row := 0; row < dh; row++ {
			copy(dst[(dy+row)*dstride+dx:(dy+row)*dstride+dx+dw], src[(sy+row)*sstride+sx:])
		}
		return
	}
	if cap(*xs) < dw {
		*xs = make([]int, dw)
	}
	tab := (*xs)[:dw]
	for i := range tab {
		tab[i] = sx + i*sw/dw
	}
	for row := 0; row < dh; row++ {
		srow := src[(sy+row*sh/dh)*sstride:]
		drow := dst[(dy+row)*dstride+dx : (dy+row)*dstride+dx+dw]
		for i, x := range tab {
			drow[i] = srow[x]
		}
	}
}

// placeholder paints r as a muted/absent-video tile: a flat dark tile with the display
// name in the middle.
func placeholder(dst *frame, r rect, name string) {
	dst.fill(r, placeholderColour)
	drawText(dst, r, name, textLuma)
}

var (
	placeholderColour = yuv{Y: 48, U: 136, V: 124} // dark slate
	textLuma          = byte(235)
	defaultBackground = yuv{Y: 16, U: 128, V: 128} // black
)
