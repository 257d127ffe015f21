package compositor

import "testing"

func solid(w, h int, c yuv) *frame {
	f := newFrame(w, h)
	f.fill(rect{0, 0, w, h}, c)
	return f
}

func lumaAt(f *frame, x, y int) byte { return f.Buf[y*f.W+x] }

func TestBlit(t *testing.T) {
	bg := yuv{16, 128, 128}
	red := rgbToYUV(255, 0, 0)
	tests := []struct {
		name       string
		srcW, srcH int
		r          rect
		crop       bool
		inside     [][2]int // points that must be the source colour
		outside    [][2]int // points that must stay background
	}{
		{"fit wide source into square letterboxes", 320, 180, rect{0, 0, 200, 200}, false,
			[][2]int{{100, 100}, {2, 100}, {198, 100}}, [][2]int{{100, 5}, {100, 195}}},
		{"fit tall source pillarboxes", 180, 320, rect{0, 0, 200, 200}, false,
			[][2]int{{100, 100}, {100, 2}}, [][2]int{{5, 100}, {195, 100}}},
		{"crop wide source fills square", 320, 180, rect{0, 0, 200, 200}, true,
			[][2]int{{100, 5}, {100, 195}, {5, 100}, {195, 100}}, nil},
		{"same size copies", 100, 100, rect{50, 50, 100, 100}, false,
			[][2]int{{50, 50}, {149, 149}}, [][2]int{{48, 48}, {151, 151}}},
		{"upscale", 50, 50, rect{0, 0, 200, 200}, true, [][2]int{{0, 0}, {199, 199}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dst := solid(256, 256, bg)
			var s scaler
			s.blit(dst, tt.r, solid(tt.srcW, tt.srcH, red), tt.crop)
			for _, p := range tt.inside {
				if got := lumaAt(dst, p[0], p[1]); got != red.Y {
					t.Errorf("at %v luma %d, want source %d", p, got, red.Y)
				}
			}
			for _, p := range tt.outside {
				if got := lumaAt(dst, p[0], p[1]); got != bg.Y {
					t.Errorf("at %v luma %d, want background %d", p, got, bg.Y)
				}
			}
			// nothing outside r is touched
			if got := lumaAt(dst, 255, 255); got != bg.Y && tt.r.X+tt.r.W < 255 {
				t.Errorf("outside r changed: %d", got)
			}
		})
	}
}

func TestPlaceholderDrawsName(t *testing.T) {
	f := solid(320, 180, yuv{16, 128, 128})
	r := rect{0, 0, 320, 180}
	placeholder(f, r, "Ada")
	bright, slate := 0, 0
	for _, l := range f.Buf[:320*180] {
		switch l {
		case textLuma:
			bright++
		case placeholderColour.Y:
			slate++
		}
	}
	if bright == 0 || slate == 0 || bright > slate {
		t.Fatalf("text pixels %d, tile pixels %d", bright, slate)
	}
	g := solid(320, 180, yuv{16, 128, 128})
	placeholder(g, r, "Bob")
	if string(g.Buf) == string(f.Buf) {
		t.Fatal("different names drew the same tile")
	}
}
