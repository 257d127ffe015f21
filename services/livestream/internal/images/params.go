package images

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// Kind is what an image request makes.
type Kind int

const (
	Thumbnail Kind = iota // thumbnail.{jpg,png,webp}: one frame
	Animated              // animated.{gif,webp}: a clip
)

// Limits of Mux's image API that Spacecast keeps.
const (
	MaxThumbnailSide = 4096
	MaxAnimatedSide  = 640
	MaxAnimatedSpan  = 10.0 // seconds from start to end
	MaxFPS           = 30
	defaultAnimWidth = 320
	defaultAnimSpan  = 5.0
	defaultFPS       = 15
)

// Fit modes of a thumbnail given both width and height.
const (
	FitPreserve = "preserve" // fits inside width×height, aspect ratio kept (the default)
	FitStretch  = "stretch"  // exactly width×height, distorted
	FitCrop     = "crop"     // fills width×height, the overflow cut off around the centre
	FitPad      = "pad"      // fits inside width×height, black bars fill the rest
)

// Request is one parsed image request.
type Request struct {
	Kind   Kind
	Format string // jpg, png, webp (thumbnail); gif, webp (animated)

	// Thumbnail.
	Time    float64 // seconds into the recording; HasTime false: the asset's middle, a live stream's latest keyframe
	HasTime bool
	Height  int // 0: from width and the aspect ratio (or the source's)
	FitMode string
	FlipV   bool
	FlipH   bool
	Rotate  int // 0, 90, 180, 270 (clockwise)

	// Both.
	Width int // 0: the source's (thumbnail), 320 (animated)

	// Animated.
	Start, End float64
	HasStart   bool // live streams: without start/end the clip is the latest seconds
	FPS        int
}

// Parse reads {name}.{ext} and the query of an image request. Errors wrap ErrBadRequest.
func Parse(file string, q url.Values) (Request, error) {
	name, ext, ok := strings.Cut(file, ".")
	if !ok {
		return Request{}, fmt.Errorf("%w: want thumbnail.{jpg,png,webp} or animated.{gif,webp}", ErrBadRequest)
	}
	var r Request
	switch {
	case name == "thumbnail" && (ext == "jpg" || ext == "png" || ext == "webp"):
		r.Kind = Thumbnail
	case name == "animated" && (ext == "gif" || ext == "webp"):
		r.Kind = Animated
	default:
		return Request{}, fmt.Errorf("%w: no image %q: want thumbnail.{jpg,png,webp} or animated.{gif,webp}", ErrBadRequest, file)
	}
	r.Format = ext
	allowed := map[string]bool{"width": true, "height": true, "token": true}
	if r.Kind == Thumbnail {
		for _, k := range []string{"time", "fit_mode", "flip_v", "flip_h", "rotate"} {
			allowed[k] = true
		}
	} else {
		for _, k := range []string{"start", "end", "fps"} {
			allowed[k] = true
		}
	}
	for k, v := range q {
		if !allowed[k] {
			return Request{}, fmt.Errorf("%w: unknown parameter %q for %s", ErrBadRequest, k, file)
		}
		if len(v) != 1 {
			return Request{}, fmt.Errorf("%w: parameter %q given %d times", ErrBadRequest, k, len(v))
		}
	}
	var err error
	side := MaxThumbnailSide
	if r.Kind == Animated {
		side = MaxAnimatedSide
	}
	if r.Width, err = intParam(q, "width", 1, side); err != nil {
		return Request{}, err
	}
	if r.Height, err = intParam(q, "height", 1, side); err != nil {
		return Request{}, err
	}
	if r.Kind == Thumbnail {
		return r, r.parseThumbnail(q)
	}
	return r, r.parseAnimated(q)
}

func (r *Request) parseThumbnail(q url.Values) error {
	var err error
	if q.Has("time") {
		if r.Time, err = floatParam(q, "time", 0, 1e7); err != nil {
			return err
		}
		r.HasTime = true
	}
	r.FitMode = FitPreserve
	if q.Has("fit_mode") {
		switch m := q.Get("fit_mode"); m {
		case FitPreserve, FitStretch, FitCrop, FitPad:
			r.FitMode = m
		case "smartcrop":
			return fmt.Errorf("%w: fit_mode smartcrop is not supported by Spacecast: use crop, pad, stretch or preserve", ErrBadRequest)
		default:
			return fmt.Errorf("%w: fit_mode %q: want preserve, stretch, crop or pad", ErrBadRequest, m)
		}
		if r.FitMode != FitPreserve && (r.Width == 0 || r.Height == 0) {
			return fmt.Errorf("%w: fit_mode %s needs both width and height", ErrBadRequest, r.FitMode)
		}
	}
	if r.FlipV, err = boolParam(q, "flip_v"); err != nil {
		return err
	}
	if r.FlipH, err = boolParam(q, "flip_h"); err != nil {
		return err
	}
	if q.Has("rotate") {
		switch v := q.Get("rotate"); v {
		case "0", "90", "180", "270":
			r.Rotate, _ = strconv.Atoi(v)
		default:
			return fmt.Errorf("%w: rotate %q: want 90, 180 or 270", ErrBadRequest, v)
		}
	}
	return nil
}

func (r *Request) parseAnimated(q url.Values) error {
	var err error
	if r.Width == 0 && r.Height == 0 {
		r.Width = defaultAnimWidth
	}
	r.Start, r.End = 0, defaultAnimSpan
	if q.Has("start") {
		if r.Start, err = floatParam(q, "start", 0, 1e7); err != nil {
			return err
		}
		r.HasStart = true
		r.End = r.Start + defaultAnimSpan
	}
	if q.Has("end") {
		if r.End, err = floatParam(q, "end", 0, 1e7); err != nil {
			return err
		}
		r.HasStart = true
	}
	if r.End <= r.Start {
		return fmt.Errorf("%w: end (%g) must be after start (%g)", ErrBadRequest, r.End, r.Start)
	}
	if r.End-r.Start > MaxAnimatedSpan {
		return fmt.Errorf("%w: end - start is %gs, at most %gs", ErrBadRequest, r.End-r.Start, MaxAnimatedSpan)
	}
	r.FPS = defaultFPS
	if q.Has("fps") {
		if r.FPS, err = intParam(q, "fps", 1, MaxFPS); err != nil {
			return err
		}
	}
	return nil
}

// Key is the request's canonical form (the cache key's part that comes from the request).
func (r Request) Key() string {
	if r.Kind == Thumbnail {
		return fmt.Sprintf("thumbnail.%s?time=%g,%t&w=%d&h=%d&fit=%s&fv=%t&fh=%t&rot=%d",
			r.Format, r.Time, r.HasTime, r.Width, r.Height, r.FitMode, r.FlipV, r.FlipH, r.Rotate)
	}
	return fmt.Sprintf("animated.%s?start=%g&end=%g,%t&w=%d&h=%d&fps=%d", r.Format, r.Start, r.End, r.HasStart, r.Width, r.Height, r.FPS)
}

func intParam(q url.Values, k string, lo, hi int) (int, error) {
	if !q.Has(k) {
		return 0, nil
	}
	n, err := strconv.Atoi(q.Get(k))
	if err != nil || n < lo || n > hi {
		return 0, fmt.Errorf("%w: %s %q: want a whole number from %d to %d", ErrBadRequest, k, q.Get(k), lo, hi)
	}
	return n, nil
}

func floatParam(q url.Values, k string, lo, hi float64) (float64, error) {
	f, err := strconv.ParseFloat(q.Get(k), 64)
	if err != nil || f != f || f < lo || f > hi {
		return 0, fmt.Errorf("%w: %s %q: want seconds from %g", ErrBadRequest, k, q.Get(k), lo)
	}
	return f, nil
}

func boolParam(q url.Values, k string) (bool, error) {
	switch v := q.Get(k); v {
	case "", "false":
		return false, nil
	case "true":
		return true, nil
	default:
		return false, fmt.Errorf("%w: %s %q: want true or false", ErrBadRequest, k, v)
	}
}

// filters is the ffmpeg video filter chain of a request.
func (r Request) filters() string {
	var f []string
	if r.Kind == Animated {
		f = append(f, fmt.Sprintf("fps=%d", r.FPS))
	}
	w, h := r.Width, r.Height
	switch {
	case w == 0 && h == 0:
	case h == 0:
		f = append(f, fmt.Sprintf("scale=%d:-2", w))
	case w == 0:
		f = append(f, fmt.Sprintf("scale=-2:%d", h))
	case r.FitMode == FitStretch:
		f = append(f, fmt.Sprintf("scale=%d:%d,setsar=1", w, h))
	case r.FitMode == FitCrop:
		f = append(f, fmt.Sprintf("scale=%d:%d:force_original_aspect_ratio=increase,crop=%d:%d", w, h, w, h))
	case r.FitMode == FitPad:
		f = append(f, fmt.Sprintf("scale=%d:%d:force_original_aspect_ratio=decrease,pad=%d:%d:(ow-iw)/2:(oh-ih)/2", w, h, w, h))
	default: // preserve
		f = append(f, fmt.Sprintf("scale=%d:%d:force_original_aspect_ratio=decrease", w, h))
	}
	if r.FlipV {
		f = append(f, "vflip")
	}
	if r.FlipH {
		f = append(f, "hflip")
	}
	switch r.Rotate {
	case 90:
		f = append(f, "transpose=clock")
	case 180:
		f = append(f, "hflip,vflip")
	case 270:
		f = append(f, "transpose=cclock")
	}
	if r.Kind == Animated && r.Format == "gif" {
		f = append(f, "split[a][b];[a]palettegen=stats_mode=diff[p];[b][p]paletteuse")
	}
	if len(f) == 0 {
		return "null"
	}
	return strings.Join(f, ",")
}
