package images

import (
	"errors"
	"net/url"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		file, query string
		ok          bool
		filters     string
	}{
		{"thumbnail.jpg", "", true, "null"},
		{"thumbnail.png", "width=160", true, "scale=160:-2"},
		{"thumbnail.webp", "height=90", true, "scale=-2:90"},
		{"thumbnail.jpg", "width=100&height=100", true, "scale=100:100:force_original_aspect_ratio=decrease"},
		{"thumbnail.jpg", "width=100&height=100&fit_mode=pad", true, "scale=100:100:force_original_aspect_ratio=decrease,pad=100:100:(ow-iw)/2:(oh-ih)/2"},
		{"thumbnail.jpg", "width=100&height=50&fit_mode=crop", true, "scale=100:50:force_original_aspect_ratio=increase,crop=100:50"},
		{"thumbnail.jpg", "width=100&height=50&fit_mode=stretch&flip_h=true&rotate=90", true, "scale=100:50,setsar=1,hflip,transpose=clock"},
		{"thumbnail.jpg", "time=5.5", true, "null"},
		{"animated.gif", "", true, "fps=15,scale=320:-2,split[a][b];[a]palettegen=stats_mode=diff[p];[b][p]paletteuse"},
		{"animated.webp", "start=2&end=4&fps=10&width=200", true, "fps=10,scale=200:-2"},
		// Bad input.
		{"thumbnail.bmp", "", false, ""},
		{"animated.png", "", false, ""},
		{"thumbnail", "", false, ""},
		{"storyboard.jpg", "", false, ""},
		{"thumbnail.jpg", "time=-1", false, ""},
		{"thumbnail.jpg", "time=abc", false, ""},
		{"thumbnail.jpg", "time=NaN", false, ""},
		{"thumbnail.jpg", "width=0", false, ""},
		{"thumbnail.jpg", "width=5000", false, ""},
		{"thumbnail.jpg", "width=1.5", false, ""},
		{"thumbnail.jpg", "fit_mode=pad", false, ""},
		{"thumbnail.jpg", "width=10&height=10&fit_mode=smartcrop", false, ""},
		{"thumbnail.jpg", "width=10&height=10&fit_mode=zoom", false, ""},
		{"thumbnail.jpg", "rotate=45", false, ""},
		{"thumbnail.jpg", "flip_v=yes", false, ""},
		{"thumbnail.jpg", "fps=10", false, ""},
		{"thumbnail.jpg", "time=1&time=2", false, ""},
		{"animated.gif", "start=5&end=4", false, ""},
		{"animated.gif", "start=0&end=11", false, ""},
		{"animated.gif", "fps=31", false, ""},
		{"animated.gif", "width=641", false, ""},
		{"animated.gif", "time=3", false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.file+"?"+tt.query, func(t *testing.T) {
			q, err := url.ParseQuery(tt.query)
			if err != nil {
				t.Fatal(err)
			}
			r, err := Parse(tt.file, q)
			if !tt.ok {
				if !errors.Is(err, ErrBadRequest) {
					t.Fatalf("Parse = %+v, %v; want ErrBadRequest", r, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := r.filters(); got != tt.filters {
				t.Fatalf("filters = %q, want %q", got, tt.filters)
			}
		})
	}
}

func TestAnimatedDefaults(t *testing.T) {
	r, err := Parse("animated.gif", url.Values{"start": {"3"}})
	if err != nil {
		t.Fatal(err)
	}
	if r.Start != 3 || r.End != 8 || r.FPS != 15 || r.Width != 320 || !r.HasStart {
		t.Fatalf("defaults %+v", r)
	}
}
