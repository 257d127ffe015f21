package playback

import (
	"bufio"
	"bytes"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/spacecast/spacecast/libs/httpapi"
	"github.com/spacecast/spacecast/services/livestream/internal/hls"
)

// errAnswered: the response is written already.
var errAnswered = errors.New("playback: answered")

// pollEvery is how often a held request looks at the playlist again. The segmenter rewrites
// the playlist file (atomically) at every part; a held request sees it at most this late.
const pollEvery = 15 * time.Millisecond

// liveState is what a blocking reload needs to know of a live playlist.
type liveState struct {
	target   time.Duration // EXT-X-TARGETDURATION
	lastSeg  int           // media sequence number of the last complete segment, -1 if none
	parts    map[int]int   // parts listed per media sequence number
	ended    bool
	canBlock bool
}

func parseLive(b []byte) liveState {
	st := liveState{lastSeg: -1, parts: map[int]int{}}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		l := sc.Text()
		switch {
		case strings.HasPrefix(l, "#EXT-X-TARGETDURATION:"):
			n, _ := strconv.Atoi(strings.TrimPrefix(l, "#EXT-X-TARGETDURATION:"))
			st.target = time.Duration(n) * time.Second
		case strings.HasPrefix(l, "#EXT-X-SERVER-CONTROL:"):
			st.canBlock = strings.Contains(l, "CAN-BLOCK-RELOAD=YES")
		case l == "#EXT-X-ENDLIST":
			st.ended = true
		case strings.HasPrefix(l, "#EXT-X-PART:"):
			if seq, ok := seqOf(l[strings.Index(l, `URI="`)+5:]); ok {
				st.parts[seq]++
			}
		case l != "" && !strings.HasPrefix(l, "#"):
			if seq, ok := seqOf(l); ok {
				st.lastSeg = max(st.lastSeg, seq)
			}
		}
	}
	return st
}

// seqOf reads N from "seg-N.ts", "seg-N.m4s" or "seg-N.P.m4s".
func seqOf(uri string) (int, bool) {
	n, ok := strings.CutPrefix(uri, "seg-")
	if !ok {
		return 0, false
	}
	end := strings.IndexByte(n, '.')
	if end < 0 {
		return 0, false
	}
	seq, err := strconv.Atoi(n[:end])
	return seq, err == nil
}

// has reports whether the playlist holds segment msn (part < 0) or part `part` of segment msn,
// or anything later (RFC 8216bis 6.2.5.2).
func (st liveState) has(msn, part int) bool {
	switch {
	case part < 0:
		return st.lastSeg >= msn
	case st.lastSeg > msn, st.parts[msn] > part:
		return true
	case st.lastSeg == msn:
		// Segment msn ended with fewer parts than asked for: the next segment's first part is
		// what comes after it (and an old segment lists no parts any more).
		return st.parts[msn+1] > 0 || st.parts[msn] == 0
	}
	return false
}

// blockingReload reads the live playlist at path; with _HLS_msn (and _HLS_part) it holds the
// request until the playlist lists that segment (part) or later. A request more than two
// segments ahead is refused (400); one not satisfied within three target durations gets 503.
func (s *Server) blockingReload(c echo.Context, path string) ([]byte, error) {
	q := c.Request().URL.Query()
	msnS, partS := q.Get("_HLS_msn"), q.Get("_HLS_part")
	body, err := os.ReadFile(path)
	if err != nil || (msnS == "" && partS == "") {
		return body, err
	}
	if msnS == "" {
		return nil, httpapi.Invalid("_HLS_part needs _HLS_msn")
	}
	msn, err := strconv.Atoi(msnS)
	if err != nil || msn < 0 {
		return nil, httpapi.Invalid("_HLS_msn: want a media sequence number, got %q", msnS)
	}
	part := -1
	if partS != "" {
		if part, err = strconv.Atoi(partS); err != nil || part < 0 {
			return nil, httpapi.Invalid("_HLS_part: want a part index, got %q", partS)
		}
	}
	st := parseLive(body)
	if !st.canBlock || st.ended {
		return body, nil // not an LL-HLS playlist, or nothing more will come
	}
	if msn > st.lastSeg+2 {
		return nil, httpapi.Invalid("_HLS_msn %d is more than two segments past the last one (%d)", msn, st.lastSeg)
	}
	deadline := time.Now().Add(3 * max(st.target, time.Second))
	var mod time.Time
	ctx := c.Request().Context()
	for !st.has(msn, part) && !st.ended {
		if time.Now().After(deadline) {
			c.Response().Header().Set("Retry-After", "1")
			if err := c.String(http.StatusServiceUnavailable, "the requested segment or part did not appear in time\n"); err != nil {
				return nil, err
			}
			return nil, errAnswered
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(pollEvery):
		}
		fi, err := os.Stat(path)
		if err != nil {
			return nil, err
		}
		if fi.ModTime().Equal(mod) {
			continue
		}
		mod = fi.ModTime()
		if body, err = os.ReadFile(path); err != nil {
			return nil, err
		}
		st = parseLive(body)
	}
	return body, nil
}

// awaitHintedPart holds a request for a part that does not exist yet while the live playlist
// names it as its EXT-X-PRELOAD-HINT (RFC 8216bis 6.2.6), until it is written or the part
// is no longer hinted (the segment ended before it), at most a few seconds.
func (s *Server) awaitHintedPart(c echo.Context, path string) error {
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	live := filepath.Join(filepath.Dir(path), hls.LivePlaylist)
	hint := []byte(`#EXT-X-PRELOAD-HINT:TYPE=PART,URI="` + filepath.Base(path) + `"`)
	ctx := c.Request().Context()
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); {
		b, err := os.ReadFile(live)
		if err != nil || !bytes.Contains(b, hint) {
			return nil // not (or no more) hinted: served or 404 as it is
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(pollEvery):
		}
		if _, err := os.Stat(path); err == nil {
			return nil
		}
	}
	return nil
}
