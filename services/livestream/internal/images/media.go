package images

import (
	"bufio"
	"bytes"
	"fmt"
	"path"
	"strconv"
	"strings"
)

// segment is one media segment of a recording's playlist.
type segment struct {
	URI   string  // relative to the recording directory
	Init  string  // EXT-X-MAP URI in force for it ("" for MPEG-TS)
	Start float64 // seconds from the start of the playlist
	Dur   float64
}

// timeline is a playlist's segments in order.
type timeline []segment

func (tl timeline) duration() float64 {
	if len(tl) == 0 {
		return 0
	}
	l := tl[len(tl)-1]
	return l.Start + l.Dur
}

// parsePlaylist reads a media playlist's segments (EXTINF + URI, EXT-X-MAP); tags it does not
// need are skipped. URIs must stay inside the recording directory.
func parsePlaylist(body []byte) (timeline, error) {
	var tl timeline
	var at, dur float64
	var init string
	haveInf := false
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		switch {
		case l == "":
		case strings.HasPrefix(l, "#EXTINF:"):
			v, _, _ := strings.Cut(strings.TrimPrefix(l, "#EXTINF:"), ",")
			d, err := strconv.ParseFloat(v, 64)
			if err != nil || d < 0 {
				return nil, fmt.Errorf("images: bad EXTINF %q", l)
			}
			dur, haveInf = d, true
		case strings.HasPrefix(l, "#EXT-X-MAP:"):
			i := strings.Index(l, `URI="`)
			if i < 0 {
				return nil, fmt.Errorf("images: EXT-X-MAP without URI")
			}
			rest := l[i+5:]
			j := strings.IndexByte(rest, '"')
			if j < 0 {
				return nil, fmt.Errorf("images: bad EXT-X-MAP %q", l)
			}
			if init = rest[:j]; !local(init) {
				return nil, fmt.Errorf("images: EXT-X-MAP URI %q outside the recording", init)
			}
		case strings.HasPrefix(l, "#"):
		default:
			if !haveInf {
				continue // not a media segment line we understand
			}
			if !local(l) {
				return nil, fmt.Errorf("images: segment URI %q outside the recording", l)
			}
			tl = append(tl, segment{URI: l, Init: init, Start: at, Dur: dur})
			at += dur
			haveInf = false
		}
	}
	return tl, sc.Err()
}

// local: a plain file name in the recording directory.
func local(uri string) bool {
	return uri != "" && !strings.ContainsAny(uri, `/\?#:`) && path.Clean(uri) == uri && uri != ".." && uri != "."
}

// at returns the segment holding second t and the offset into it.
func (tl timeline) at(t float64) (segment, float64, error) {
	if len(tl) == 0 {
		return segment{}, 0, ErrNoMedia
	}
	if t >= tl.duration() {
		return segment{}, 0, fmt.Errorf("%w: time %g is past the end of the recording (%.3fs)", ErrOutOfRange, t, tl.duration())
	}
	for _, s := range tl {
		if t < s.Start+s.Dur {
			return s, max(0, t-s.Start), nil
		}
	}
	l := tl[len(tl)-1]
	return l, t - l.Start, nil
}

// span returns the segments covering [from, to) and the offset of from into the first.
func (tl timeline) span(from, to float64) (timeline, float64, error) {
	if len(tl) == 0 {
		return nil, 0, ErrNoMedia
	}
	if from >= tl.duration() {
		return nil, 0, fmt.Errorf("%w: start %g is past the end of the recording (%.3fs)", ErrOutOfRange, from, tl.duration())
	}
	var out timeline
	for _, s := range tl {
		if s.Start+s.Dur > from && s.Start < to {
			if len(out) > 0 && s.Init != out[0].Init {
				break // one ffmpeg input: segments sharing an initialization section
			}
			out = append(out, s)
		}
	}
	return out, max(0, from-out[0].Start), nil
}
