package compositor

import (
	"errors"
	"testing"
)

func TestOptionsRejected(t *testing.T) {
	ok := Options{Width: 640, Height: 360, RTMPURL: "rtmp://127.0.0.1:1935/app/key"}
	tests := []struct {
		name string
		mod  func(*Options)
		want error
	}{
		{"odd width", func(o *Options) { o.Width = 641 }, ErrBadOptions},
		{"too small", func(o *Options) { o.Height = 32 }, ErrBadOptions},
		{"too large", func(o *Options) { o.Width = 7680 }, ErrBadOptions},
		{"fps", func(o *Options) { o.FPS = 240 }, ErrBadOptions},
		{"layout", func(o *Options) { o.Layout = "mosaic" }, ErrBadLayout},
		{"preset", func(o *Options) { o.Preset = "warp" }, ErrBadOptions},
		{"no url", func(o *Options) { o.RTMPURL = "" }, ErrBadOptions},
		{"http url", func(o *Options) { o.RTMPURL = "http://x/app/key" }, ErrBadOptions},
		{"no key", func(o *Options) { o.RTMPURL = "rtmp://x" }, ErrBadOptions},
		{"audio bitrate", func(o *Options) { o.AudioBitrate = 1 }, ErrBadOptions},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := ok
			tt.mod(&o)
			c, err := New(o)
			if !errors.Is(err, tt.want) {
				if c != nil {
					_ = c.Close()
				}
				t.Fatalf("New: %v, want %v", err, tt.want)
			}
		})
	}
	o := ok
	if err := o.defaults(); err != nil || o.FPS != 30 || o.Layout != LayoutGallery || o.Preset != "veryfast" {
		t.Fatalf("defaults: %v %+v", err, o)
	}
}

func TestParseCodec(t *testing.T) {
	for s, want := range map[string]codecKind{"VP8": codecVP8, "video/VP8": codecVP8, "h264": codecH264, "video/H264": codecH264} {
		if got, err := parseCodec(s); err != nil || got != want {
			t.Errorf("%s: %v %v", s, got, err)
		}
	}
	for _, s := range []string{"", "VP9", "video/AV1", "opus"} {
		if _, err := parseCodec(s); !errors.Is(err, ErrUnsupportedCodec) {
			t.Errorf("%q: %v", s, err)
		}
	}
}

func TestParseY4MHeader(t *testing.T) {
	w, h, err := parseY4MHeader("YUV4MPEG2 W320 H180 F30:1 Ip A1:1 C420jpeg XYSCSS=420JPEG\n")
	if err != nil || w != 320 || h != 180 {
		t.Fatalf("%d %d %v", w, h, err)
	}
	for _, bad := range []string{"RIFF", "YUV4MPEG2 W0 H2", "YUV4MPEG2 W3 H2 C420", "YUV4MPEG2 W320 H180 C444"} {
		if _, _, err := parseY4MHeader(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
