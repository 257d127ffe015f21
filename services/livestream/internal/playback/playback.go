// Package playback serves HLS: the master playlist GET {base}/{playback_id}.m3u8, the media
// playlist it lists ({base}/{playback_id}/source.m3u8) and what that lists (segments seg-N.ts
// or seg-N.m4s, LL-HLS parts seg-N.P.m4s, init sections init-N.mp4), for live streams (the
// live playlist of the active recording, with blocking playlist reload for LL-HLS) and for
// assets (the recording's VOD playlist), with playback JWTs for signed ids and CORS for browser
// players.
package playback

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/spacecast/spacecast/libs/httpapi"
	"github.com/spacecast/spacecast/libs/spacejwt"
	"github.com/spacecast/spacecast/services/livestream/internal/hls"
	"github.com/spacecast/spacecast/services/livestream/internal/renditions"
	"github.com/spacecast/spacecast/services/livestream/internal/store"
	"github.com/spacecast/spacecast/services/livestream/internal/transcode"
)

// Resolver finds what a playback id plays (a *store.Store).
type Resolver interface {
	ResolvePlayback(ctx context.Context, pid string) (store.PlaybackTarget, error)
}

// TokenVerifier checks playback JWTs (a *spacejwt.Verifier).
type TokenVerifier interface {
	Verify(ctx context.Context, token, audience string) (spacejwt.Claims, error)
}

// Renditions finds an asset's ready static rendition by file name (a *store.Store).
type Renditions interface {
	ReadyRendition(ctx context.Context, assetID, name string) (store.StaticRendition, error)
}

var (
	_ Resolver      = (*store.Store)(nil)
	_ Renditions    = (*store.Store)(nil)
	_ TokenVerifier = (*spacejwt.Verifier)(nil)
)

// Server serves playlists and segments from the recordings directory.
type Server struct {
	Resolve    Resolver
	Renditions Renditions // static renditions ({pid}/highest.mp4, {pid}/audio.m4a)
	JWT        TokenVerifier
	Dir        string // recordings: <Dir>/<asset id>/...
}

// Prefix is where the routes are mounted; the playback base is <public URL>/stream.
const Prefix = "/stream"

var (
	playlistName = regexp.MustCompile(`^([A-Za-z0-9_-]{1,64})\.m3u8$`)
	idPattern    = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
	segmentName  = regexp.MustCompile(`^(seg-[0-9]{1,9}(\.[0-9]{1,4})?\.(ts|m4s)|init-[0-9]{1,9}\.mp4)$`)
	partName     = regexp.MustCompile(`^seg-[0-9]{1,9}\.[0-9]{1,4}\.m4s$`)
	rungPlaylist = regexp.MustCompile(`^[0-9]{3,4}p\.m3u8$`)
	rungName     = regexp.MustCompile(`^[0-9]{3,4}p$`)
	tsName       = regexp.MustCompile(`^seg-[0-9]{1,9}\.ts$`)
	staticName   = regexp.MustCompile(`^((highest|capped-1080p|[0-9]{3,4}p)\.mp4|audio\.m4a)$`)
)

// SourcePlaylist is the media playlist of the source rendition, under {base}/{playback_id}/.
const SourcePlaylist = "source.m3u8"

// Register mounts the routes.
func (s *Server) Register(e *echo.Echo) {
	g := e.Group(Prefix, cors)
	g.GET("/:file", s.playlist)
	g.HEAD("/:file", s.playlist)
	g.GET("/:pid/:seg", s.segment)
	g.HEAD("/:pid/:seg", s.segment)
	g.GET("/:pid/:rung/:seg", s.rungSegment)
	g.HEAD("/:pid/:rung/:seg", s.rungSegment)
	g.OPTIONS("/:pid/:rung/:seg", preflight)
	g.OPTIONS("/:file", preflight)
	g.OPTIONS("/:pid/:seg", preflight)
}

// cors lets browser players on any origin fetch playlists and segments.
func cors(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		h := c.Response().Header()
		h.Set("Access-Control-Allow-Origin", "*")
		h.Set("Access-Control-Expose-Headers", "Content-Length, Content-Range")
		return next(c)
	}
}

func preflight(c echo.Context) error {
	h := c.Response().Header()
	h.Set("Access-Control-Allow-Methods", "GET, HEAD, OPTIONS")
	h.Set("Access-Control-Allow-Headers", "Range")
	h.Set("Access-Control-Max-Age", "86400")
	return c.NoContent(http.StatusNoContent)
}

// target resolves and authorizes a playback id.
func (s *Server) target(c echo.Context, pid string) (store.PlaybackTarget, error) {
	ctx := c.Request().Context()
	t, err := s.Resolve.ResolvePlayback(ctx, pid)
	if errors.Is(err, store.ErrPlaybackID) {
		return t, httpapi.NotFound("playback id not found")
	}
	if err != nil {
		return t, err
	}
	if t.Policy == store.PolicySigned {
		tok := c.QueryParam("token")
		if tok == "" {
			return t, httpapi.Forbidden("this playback id is signed: add ?token= with a playback JWT (aud \"v\", sub the playback id)")
		}
		cl, err := s.JWT.Verify(ctx, tok, spacejwt.AudiencePlayback)
		if err != nil {
			return t, httpapi.Forbidden("playback token refused: " + err.Error())
		}
		if cl.Subject != pid || cl.EnvironmentID != t.EnvironmentID {
			return t, httpapi.Forbidden("playback token is for another playback id")
		}
	}
	if t.Live && !t.Active {
		return t, httpapi.New(httpapi.ErrPrecondition, "the live stream is not active")
	}
	return t, nil
}

func tokenSuffix(c echo.Context, t store.PlaybackTarget) string {
	if tok := c.QueryParam("token"); tok != "" && t.Policy == store.PolicySigned {
		return "?token=" + url.QueryEscape(tok)
	}
	return ""
}

func playlistCache(c echo.Context, t store.PlaybackTarget) {
	h := c.Response().Header()
	if t.Live || t.AssetStatus == store.AssetPreparing {
		h.Set("Cache-Control", "no-cache")
	} else {
		h.Set("Cache-Control", "public, max-age=3600")
	}
}

// playlist serves the master playlist {pid}.m3u8: one variant per rendition of the recording
// (the source, measured by the segmenter: variant.json).
func (s *Server) playlist(c echo.Context) error {
	m := playlistName.FindStringSubmatch(c.Param("file"))
	if m == nil {
		return httpapi.NotFound("no such playlist: want {playback_id}.m3u8")
	}
	pid := m[1]
	t, err := s.target(c, pid)
	if err != nil {
		return err
	}
	v, err := hls.ReadVariant(filepath.Join(s.Dir, t.AssetID))
	if errors.Is(err, os.ErrNotExist) {
		if t.Live {
			return httpapi.New(httpapi.ErrPrecondition, "the live stream has no segment yet")
		}
		return httpapi.NotFound("this asset has no recording")
	}
	if err != nil {
		return err
	}
	dir := filepath.Join(s.Dir, t.AssetID)
	ladder, err := transcode.ReadLadder(dir)
	if err != nil {
		return err
	}
	suffix := tokenSuffix(c, t)
	var entries []hls.MasterEntry
	if ladder.KeepSource {
		entries = append(entries, hls.MasterEntry{Variant: v, URI: pid + "/" + SourcePlaylist + suffix})
	}
	for _, r := range ladder.Rungs {
		rv, err := hls.MeasureTS(filepath.Join(dir, r.Name), transcode.Playlist)
		if err != nil {
			continue // no segment yet: listed once it has one
		}
		rv.Width, rv.Height, rv.FrameRate = r.Width, r.Height, v.FrameRate
		if _, audio, ok := strings.Cut(v.Codecs, ","); ok { // audio is copied from the source
			rv.Codecs += "," + audio
		} else if strings.HasPrefix(v.Codecs, "mp4a") {
			rv.Codecs += "," + v.Codecs
		}
		entries = append(entries, hls.MasterEntry{Variant: rv, URI: pid + "/" + r.Name + ".m3u8" + suffix})
	}
	if len(entries) == 0 { // a source over the tier whose rungs have no segment yet
		if t.Live {
			return httpapi.New(httpapi.ErrPrecondition, "the live stream has no segment yet")
		}
		return httpapi.NotFound("this asset has no recording")
	}
	body, err := hls.Master(entries)
	if err != nil {
		return err
	}
	playlistCache(c, t)
	return c.Blob(http.StatusOK, "application/vnd.apple.mpegurl", body)
}

// media serves a media playlist: the live playlist of a live stream (blocking until the
// segment or part _HLS_msn/_HLS_part asks for is listed) or the VOD playlist of an asset.
func (s *Server) media(c echo.Context, pid string, t store.PlaybackTarget) error {
	name := hls.VODPlaylist
	if t.Live {
		name = hls.LivePlaylist
	}
	path := filepath.Join(s.Dir, t.AssetID, name)
	var body []byte
	var err error
	if t.Live {
		body, err = s.blockingReload(c, path)
		if errors.Is(err, errAnswered) {
			return nil
		}
	} else {
		body, err = os.ReadFile(path)
	}
	if errors.Is(err, os.ErrNotExist) {
		if t.Live {
			return httpapi.New(httpapi.ErrPrecondition, "the live stream has no segment yet")
		}
		return httpapi.NotFound("this asset has no recording")
	}
	if err != nil {
		return err
	}
	playlistCache(c, t)
	return c.Blob(http.StatusOK, "application/vnd.apple.mpegurl", rewrite(body, tokenSuffix(c, t)))
}

var uriAttr = regexp.MustCompile(`URI="([^"]*)"`)

// rewrite carries a signed id's token along in a media playlist's URIs (segment lines and the
// URI attributes of EXT-X-MAP, EXT-X-PART and EXT-X-PRELOAD-HINT). They are relative to the
// playlist, {base}/{pid}/, where the files are served.
func rewrite(body []byte, suffix string) []byte {
	if suffix == "" {
		return body
	}
	var out bytes.Buffer
	out.Grow(len(body) + 64*bytes.Count(body, []byte("\n")))
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		l := sc.Text()
		switch {
		case l != "" && !strings.HasPrefix(l, "#"):
			out.WriteString(l)
			out.WriteString(suffix)
		case strings.Contains(l, `URI="`):
			out.WriteString(uriAttr.ReplaceAllString(l, `URI="${1}`+strings.ReplaceAll(suffix, "$", "$$")+`"`))
		default:
			out.WriteString(l)
		}
		out.WriteByte('\n')
	}
	return out.Bytes()
}

func (s *Server) segment(c echo.Context) error {
	pid, seg := c.Param("pid"), c.Param("seg")
	if !idPattern.MatchString(pid) || (!segmentName.MatchString(seg) && seg != SourcePlaylist && !rungPlaylist.MatchString(seg) && !staticName.MatchString(seg)) {
		return httpapi.NotFound("no such segment")
	}
	t, err := s.target(c, pid)
	if err != nil {
		return err
	}
	if staticName.MatchString(seg) {
		return s.static(c, t, seg)
	}
	if seg == SourcePlaylist {
		return s.media(c, pid, t)
	}
	if rung, ok := strings.CutSuffix(seg, ".m3u8"); ok {
		return s.rungPlaylist(c, t, rung)
	}
	path := filepath.Join(s.Dir, t.AssetID, seg)
	if t.Live && partName.MatchString(seg) {
		if err := s.awaitHintedPart(c, path); err != nil {
			return err
		}
	}
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return httpapi.NotFound("no such segment")
	}
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	h := c.Response().Header()
	switch {
	case strings.HasSuffix(seg, ".ts"):
		h.Set("Content-Type", "video/mp2t")
	case strings.HasSuffix(seg, ".m4s"):
		h.Set("Content-Type", "video/iso.segment")
	default:
		h.Set("Content-Type", "video/mp4")
	}
	h.Set("Cache-Control", "public, max-age=86400") // a segment never changes once listed
	http.ServeContent(c.Response(), c.Request(), seg, st.ModTime(), f)
	return nil
}

// inLadder reports whether rung is one of the recording's rungs.
func (s *Server) inLadder(t store.PlaybackTarget, rung string) bool {
	l, err := transcode.ReadLadder(filepath.Join(s.Dir, t.AssetID))
	if err != nil {
		return false
	}
	for _, r := range l.Rungs {
		if r.Name == rung {
			return true
		}
	}
	return false
}

// rungPlaylist serves a transcoded rung's media playlist ({pid}/720p.m3u8): ffmpeg's playlist
// with its segments pointed at {pid}/720p/seg-N.ts, ended (EXT-X-ENDLIST) once the recording
// is ready.
func (s *Server) rungPlaylist(c echo.Context, t store.PlaybackTarget, rung string) error {
	if !s.inLadder(t, rung) {
		return httpapi.NotFound("no such rendition")
	}
	body, err := os.ReadFile(filepath.Join(s.Dir, t.AssetID, rung, transcode.Playlist))
	if errors.Is(err, os.ErrNotExist) {
		return httpapi.New(httpapi.ErrPrecondition, "this rendition has no segment yet")
	}
	if err != nil {
		return err
	}
	suffix := tokenSuffix(c, t)
	var out bytes.Buffer
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		l := sc.Text()
		if l != "" && !strings.HasPrefix(l, "#") {
			l = rung + "/" + l + suffix
		}
		if l == "#EXT-X-ENDLIST" {
			continue
		}
		out.WriteString(l + "\n")
	}
	if !t.Live && t.AssetStatus != store.AssetPreparing {
		out.WriteString("#EXT-X-ENDLIST\n")
	}
	playlistCache(c, t)
	return c.Blob(http.StatusOK, "application/vnd.apple.mpegurl", out.Bytes())
}

// rungSegment serves {pid}/720p/seg-N.ts.
func (s *Server) rungSegment(c echo.Context) error {
	pid, rung, seg := c.Param("pid"), c.Param("rung"), c.Param("seg")
	if !idPattern.MatchString(pid) || !rungName.MatchString(rung) || !tsName.MatchString(seg) {
		return httpapi.NotFound("no such segment")
	}
	t, err := s.target(c, pid)
	if err != nil {
		return err
	}
	if !s.inLadder(t, rung) {
		return httpapi.NotFound("no such segment")
	}
	f, err := os.Open(filepath.Join(s.Dir, t.AssetID, rung, seg))
	if errors.Is(err, os.ErrNotExist) {
		return httpapi.NotFound("no such segment")
	}
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	h := c.Response().Header()
	h.Set("Content-Type", "video/mp2t")
	h.Set("Cache-Control", "public, max-age=86400")
	http.ServeContent(c.Response(), c.Request(), seg, st.ModTime(), f)
	return nil
}

// static serves a ready static rendition of an asset ({pid}/highest.mp4, {pid}/audio.m4a) with
// range requests; 404 for a live stream's playback id and until the file is ready.
func (s *Server) static(c echo.Context, t store.PlaybackTarget, name string) error {
	if t.Live || s.Renditions == nil {
		return httpapi.NotFound("static renditions belong to assets: use an asset's playback id")
	}
	r, err := s.Renditions.ReadyRendition(c.Request().Context(), t.AssetID, name)
	if errors.Is(err, store.ErrRenditionNotFound) {
		return httpapi.NotFound("this asset has no ready static rendition " + name)
	}
	if err != nil {
		return err
	}
	f, err := os.Open(renditions.Path(s.Dir, t.AssetID, r.ID, name))
	if errors.Is(err, os.ErrNotExist) {
		return httpapi.NotFound("this asset has no ready static rendition " + name)
	}
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	h := c.Response().Header()
	if r.Ext() == "m4a" {
		h.Set("Content-Type", "audio/mp4")
	} else {
		h.Set("Content-Type", "video/mp4")
	}
	h.Set("Cache-Control", "public, max-age=3600")
	http.ServeContent(c.Response(), c.Request(), name, st.ModTime(), f)
	return nil
}
