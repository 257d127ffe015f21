package compositor

import (
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"strings"
)

// Layout names how tiles are arranged.
type Layout string

// The layouts of Mux's broadcasts.
const (
	// LayoutGallery: a grid of everyone, each picture fitted (aspect preserved) in its cell.
	LayoutGallery Layout = "gallery"
	// LayoutActiveSpeaker: the current speaker large, the others small in a strip.
	LayoutActiveSpeaker Layout = "active-speaker"
	// LayoutCrop: a grid of everyone, each picture cropped to fill its cell.
	LayoutCrop Layout = "crop"
)

// ParseLayout checks a layout name ("" means gallery).
func ParseLayout(s string) (Layout, error) {
	switch Layout(s) {
	case "":
		return LayoutGallery, nil
	case LayoutGallery, LayoutActiveSpeaker, LayoutCrop:
		return Layout(s), nil
	}
	return "", fmt.Errorf("%w: %q", ErrBadLayout, s)
}

// x264 presets accepted for Options.Preset.
var presets = map[string]bool{
	"ultrafast": true, "superfast": true, "veryfast": true, "faster": true, "fast": true,
	"medium": true, "slow": true, "slower": true, "veryslow": true,
}

// MaxBackgroundBytes caps a background image (Options.Background, SetBackground).
const MaxBackgroundBytes = 8 << 20

// Options configures a Compositor. Zero values take the defaults noted.
type Options struct {
	// Width and Height of the output picture, even, 64..3840 (default 1920x1080).
	Width, Height int
	// FPS of the output, 1..60 (default 30).
	FPS int
	// Layout (default gallery). SetLayout changes it later.
	Layout Layout
	// Preset is libx264's preset (default veryfast).
	Preset string
	// VideoBitrate in bits/s (default: 4 Mb/s at 1080p, scaled by pixel count, at least 500 kb/s).
	VideoBitrate int
	// AudioBitrate in bits/s for AAC (default 128 kb/s).
	AudioBitrate int
	// RTMPURL is where the encoder publishes: rtmp://host[:port]/app/key (required).
	RTMPURL string
	// Background, if set, is an image (any format ffmpeg reads) drawn behind the tiles,
	// scaled to cover the picture. At most MaxBackgroundBytes are read. Fetching it is the
	// caller's job.
	Background io.Reader
	// RequestKeyframe, if set, is called with a video id when its decoder needs a keyframe:
	// until the first one arrives (the compositor joins mid-stream) and after a packet was
	// lost, at most every 500 ms per track. The wiring sends a PLI to the publisher. It is
	// called from the track's own goroutine and must not block.
	RequestKeyframe func(id string)
	// VideoSize, if set, is told for each video id the size in pixels its picture is shown
	// at (as fitted or cropped into its tile, but no larger than its decoder's output), when
	// the video is added and whenever that changes (layout, tiles coming and going, active
	// speaker, screenshare, the first decoded picture's aspect). The wiring picks the
	// simulcast layer to feed from it. It is called on the compositor's goroutine and must
	// not block.
	VideoSize func(id string, width, height int)
	// FFmpeg is the ffmpeg binary (default "ffmpeg" from PATH).
	FFmpeg string
	// Logger (default slog.Default()).
	Logger *slog.Logger
}

func (o *Options) defaults() error {
	if o.Width == 0 && o.Height == 0 {
		o.Width, o.Height = 1920, 1080
	}
	if o.Width < 64 || o.Height < 64 || o.Width > 3840 || o.Height > 3840 || o.Width%2 != 0 || o.Height%2 != 0 {
		return fmt.Errorf("%w: size %dx%d (even, 64..3840)", ErrBadOptions, o.Width, o.Height)
	}
	if o.FPS == 0 {
		o.FPS = 30
	}
	if o.FPS < 1 || o.FPS > 60 {
		return fmt.Errorf("%w: fps %d (1..60)", ErrBadOptions, o.FPS)
	}
	l, err := ParseLayout(string(o.Layout))
	if err != nil {
		return err
	}
	o.Layout = l
	if o.Preset == "" {
		o.Preset = "veryfast"
	}
	if !presets[o.Preset] {
		return fmt.Errorf("%w: x264 preset %q", ErrBadOptions, o.Preset)
	}
	if o.VideoBitrate == 0 {
		o.VideoBitrate = max(500_000, int(int64(4_000_000)*int64(o.Width*o.Height)/(1920*1080)))
	}
	if o.VideoBitrate < 100_000 || o.VideoBitrate > 50_000_000 {
		return fmt.Errorf("%w: video bitrate %d", ErrBadOptions, o.VideoBitrate)
	}
	if o.AudioBitrate == 0 {
		o.AudioBitrate = 128_000
	}
	if o.AudioBitrate < 32_000 || o.AudioBitrate > 320_000 {
		return fmt.Errorf("%w: audio bitrate %d", ErrBadOptions, o.AudioBitrate)
	}
	u, err := url.Parse(o.RTMPURL)
	if err != nil || (u.Scheme != "rtmp" && u.Scheme != "rtmps") || u.Host == "" || strings.Trim(u.Path, "/") == "" {
		return fmt.Errorf("%w: RTMP URL %q (rtmp://host/app/key)", ErrBadOptions, o.RTMPURL)
	}
	if o.FFmpeg == "" {
		o.FFmpeg = "ffmpeg"
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return nil
}
