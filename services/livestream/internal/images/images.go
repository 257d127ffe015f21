// Package images serves Mux's image API from the recordings: {base}/{playback_id}/thumbnail.{jpg,png,webp}
// (one frame: time, width, height, fit_mode, flip_v, flip_h, rotate) and
// {base}/{playback_id}/animated.{gif,webp} (a clip: start, end, fps, width, height), for assets
// (any time of the recording) and live streams (the latest keyframe; the latest seconds).
// Frames are cut from the recorded HLS segments by ffmpeg; results are cached on disk beside the
// recording, keyed by the request and the segments used (segments never change once listed).
package images

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/spacecast/spacecast/libs/httpapi"
	"github.com/spacecast/spacecast/libs/spacejwt"
	"github.com/spacecast/spacecast/services/livestream/internal/store"
)

// Resolver finds what a playback id plays (a *store.Store).
type Resolver interface {
	ResolvePlayback(ctx context.Context, pid string) (store.PlaybackTarget, error)
}

// TokenVerifier checks playback JWTs (a *spacejwt.Verifier).
type TokenVerifier interface {
	Verify(ctx context.Context, token, audience string) (spacejwt.Claims, error)
}

var (
	_ Resolver      = (*store.Store)(nil)
	_ TokenVerifier = (*spacejwt.Verifier)(nil)
)

// Prefix is where the routes are mounted; the image base is <public URL>/image.
const Prefix = "/image"

// CacheDir is the directory of cached images inside a recording's directory.
const CacheDir = "images"

// Options configure a Server.
type Options struct {
	Resolve Resolver
	JWT     TokenVerifier
	Dir     string // recordings: <Dir>/<asset id>/{live.m3u8,vod.m3u8,segments}
	Logger  *slog.Logger
	FFmpeg  string        // the ffmpeg binary ("ffmpeg")
	Workers int           // ffmpeg processes at once (2); requests beyond wait for a slot
	Timeout time.Duration // per image, waiting for a slot included (20s)
	// Playlist names inside a recording directory.
	LivePlaylist, VODPlaylist string
}

// Server makes and serves images.
type Server struct {
	o     Options
	slots chan struct{}
}

// New checks the options.
func New(o Options) (*Server, error) {
	if o.Resolve == nil || o.JWT == nil || o.Dir == "" || o.Logger == nil || o.LivePlaylist == "" || o.VODPlaylist == "" {
		return nil, errors.New("images: Resolve, JWT, Dir, Logger and the playlist names are required")
	}
	if o.FFmpeg == "" {
		o.FFmpeg = "ffmpeg"
	}
	if o.Workers <= 0 {
		o.Workers = 2
	}
	if o.Timeout <= 0 {
		o.Timeout = 20 * time.Second
	}
	return &Server{o: o, slots: make(chan struct{}, o.Workers)}, nil
}

var idPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// Register mounts the routes.
func (s *Server) Register(e *echo.Echo) {
	g := e.Group(Prefix, cors)
	g.GET("/:pid/:file", s.serve)
	g.HEAD("/:pid/:file", s.serve)
	g.OPTIONS("/:pid/:file", func(c echo.Context) error {
		h := c.Response().Header()
		h.Set("Access-Control-Allow-Methods", "GET, HEAD, OPTIONS")
		h.Set("Access-Control-Max-Age", "86400")
		return c.NoContent(http.StatusNoContent)
	})
}

func cors(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		c.Response().Header().Set("Access-Control-Allow-Origin", "*")
		return next(c)
	}
}

var contentTypes = map[string]string{"jpg": "image/jpeg", "png": "image/png", "webp": "image/webp", "gif": "image/gif"}

func (s *Server) serve(c echo.Context) error {
	pid := c.Param("pid")
	if !idPattern.MatchString(pid) {
		return httpapi.NotFound("playback id not found")
	}
	req, err := Parse(c.Param("file"), c.Request().URL.Query())
	if err != nil {
		return httpError(err)
	}
	t, err := s.target(c, pid, req.Kind)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.Request().Context(), s.o.Timeout)
	defer cancel()
	img, cached, err := s.Make(ctx, t, req)
	if err != nil {
		if errors.Is(err, ErrNoMedia) && t.Live {
			return httpapi.New(httpapi.ErrPrecondition, "the live stream has no segment yet")
		}
		return httpError(err)
	}
	h := c.Response().Header()
	if t.Live {
		h.Set("Cache-Control", "public, max-age=2")
	} else {
		h.Set("Cache-Control", "public, max-age=86400")
	}
	h.Set("X-Spacecast-Image-Cache", map[bool]string{true: "hit", false: "miss"}[cached])
	return c.Blob(http.StatusOK, contentTypes[req.Format], img)
}

func httpError(err error) error {
	switch {
	case errors.Is(err, ErrBadRequest), errors.Is(err, ErrOutOfRange):
		msg := err.Error()
		if i := strings.Index(msg, ": "); i >= 0 {
			msg = msg[i+2:]
		}
		return httpapi.New(httpapi.ErrInvalid, msg)
	case errors.Is(err, ErrNoMedia):
		return httpapi.NotFound("this asset has no recording")
	case errors.Is(err, context.DeadlineExceeded):
		return httpapi.New(httpapi.ErrTimeout, "making the image took too long; try again")
	}
	return err
}

// target resolves and authorizes a playback id: a signed id needs ?token= with a playback JWT
// whose audience is "t" (thumbnails) or "g" (animated), as in Mux.
func (s *Server) target(c echo.Context, pid string, k Kind) (store.PlaybackTarget, error) {
	ctx := c.Request().Context()
	t, err := s.o.Resolve.ResolvePlayback(ctx, pid)
	if errors.Is(err, store.ErrPlaybackID) {
		return t, httpapi.NotFound("playback id not found")
	}
	if err != nil {
		return t, err
	}
	if t.Policy == store.PolicySigned {
		aud := spacejwt.AudienceThumbnail
		if k == Animated {
			aud = spacejwt.AudienceAnimated
		}
		tok := c.QueryParam("token")
		if tok == "" {
			return t, httpapi.Forbidden(fmt.Sprintf("this playback id is signed: add ?token= with a playback JWT (aud %q, sub the playback id)", aud))
		}
		cl, err := s.o.JWT.Verify(ctx, tok, aud)
		if err != nil {
			return t, httpapi.Forbidden("image token refused: " + err.Error())
		}
		if cl.Subject != pid || cl.EnvironmentID != t.EnvironmentID {
			return t, httpapi.Forbidden("image token is for another playback id")
		}
	}
	if t.Live && !t.Active {
		return t, httpapi.New(httpapi.ErrPrecondition, "the live stream is not active")
	}
	return t, nil
}

// Make returns the image a request asks of a playback target, from the cache if it was made
// before (cached true).
func (s *Server) Make(ctx context.Context, t store.PlaybackTarget, r Request) ([]byte, bool, error) {
	dir := filepath.Join(s.o.Dir, t.AssetID)
	name := s.o.VODPlaylist
	if t.Live {
		name = s.o.LivePlaylist
	}
	body, err := os.ReadFile(filepath.Join(dir, name))
	if errors.Is(err, os.ErrNotExist) {
		return nil, false, ErrNoMedia
	}
	if err != nil {
		return nil, false, err
	}
	tl, err := parsePlaylist(body)
	if err != nil {
		return nil, false, err
	}
	if len(tl) == 0 {
		return nil, false, ErrNoMedia
	}
	segs, offset, dur, err := choose(tl, r, t.Live)
	if err != nil {
		return nil, false, err
	}
	key := cacheKey(r, segs, offset, dur)
	cachePath := filepath.Join(dir, CacheDir, key+"."+r.Format)
	if b, err := os.ReadFile(cachePath); err == nil {
		return b, true, nil
	}
	select {
	case s.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, false, ctx.Err()
	}
	defer func() { <-s.slots }()
	if b, err := os.ReadFile(cachePath); err == nil { // made while this request waited
		return b, true, nil
	}
	img, err := s.run(ctx, dir, segs, offset, dur, r)
	if err != nil {
		return nil, false, err
	}
	if err := writeCache(cachePath, img); err != nil {
		s.o.Logger.Warn("caching an image", "asset_id", t.AssetID, "err", err)
	}
	return img, false, nil
}

// choose picks the segments, the offset into the first and the clip length (0: one frame).
func choose(tl timeline, r Request, live bool) (timeline, float64, float64, error) {
	if r.Kind == Thumbnail {
		switch {
		case live:
			// The latest keyframe: every segment starts with one.
			return tl[len(tl)-1:], 0, 0, nil
		case !r.HasTime:
			seg, off, err := tl.at(tl.duration() / 2)
			return timeline{seg}, off, 0, err
		default:
			seg, off, err := tl.at(r.Time)
			return timeline{seg}, off, 0, err
		}
	}
	from, to := r.Start, r.End
	if live && !r.HasStart {
		// The latest seconds of the live window.
		span := r.End - r.Start
		to = tl.duration()
		from = max(0, to-span)
	}
	segs, off, err := tl.span(from, to)
	if err != nil {
		return nil, 0, 0, err
	}
	return segs, off, to - from, nil
}

func cacheKey(r Request, segs timeline, offset, dur float64) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\n%.3f\n%.3f\n", r.Key(), offset, dur)
	for _, s := range segs {
		fmt.Fprintf(h, "%s %s\n", s.Init, s.URI)
	}
	return hex.EncodeToString(h.Sum(nil))[:32]
}

func writeCache(p string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(p), ".tmp-*")
	if err != nil {
		return err
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return os.Rename(tmp.Name(), p)
}

// run makes the image with ffmpeg, reading the segments from the recording directory.
func (s *Server) run(ctx context.Context, dir string, segs timeline, offset, dur float64, r Request) ([]byte, error) {
	var parts []string
	if segs[0].Init != "" {
		parts = append(parts, filepath.Join(dir, segs[0].Init))
	}
	for _, sg := range segs {
		parts = append(parts, filepath.Join(dir, sg.URI))
	}
	input := parts[0]
	if len(parts) > 1 {
		input = "concat:" + strings.Join(parts, "|")
	}
	args := []string{"-hide_banner", "-nostdin", "-loglevel", "error", "-y", "-i", input, "-an", "-sn", "-dn"}
	if offset > 0 {
		// Output seeking: decode from the segment's keyframe and drop frames up to the offset
		// (input seeking in MPEG-TS can land past the keyframe and decode nothing).
		args = append(args, "-ss", strconv.FormatFloat(offset, 'f', 3, 64))
	}
	vf := r.filters()
	if r.Kind == Thumbnail {
		args = append(args, "-vf", vf, "-frames:v", "1")
		switch r.Format {
		case "jpg":
			args = append(args, "-c:v", "mjpeg", "-q:v", "3", "-pix_fmt", "yuvj420p", "-f", "image2")
		case "png":
			args = append(args, "-c:v", "png", "-f", "image2")
		case "webp":
			args = append(args, "-c:v", "libwebp", "-quality", "80", "-f", "webp")
		}
	} else {
		args = append(args, "-t", strconv.FormatFloat(dur, 'f', 3, 64))
		if r.Format == "gif" {
			args = append(args, "-filter_complex", "[0:v]"+vf, "-loop", "0", "-f", "gif")
		} else {
			args = append(args, "-vf", vf, "-c:v", "libwebp_anim", "-quality", "70", "-loop", "0", "-f", "webp")
		}
	}
	args = append(args, "pipe:1")
	cmd := exec.CommandContext(ctx, s.o.FFmpeg, args...)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("images: ffmpeg: %w: %s", err, bytes.TrimSpace(stderr.Bytes()))
	}
	if out.Len() == 0 {
		return nil, fmt.Errorf("images: ffmpeg made no image: %s", bytes.TrimSpace(stderr.Bytes()))
	}
	return out.Bytes(), nil
}
