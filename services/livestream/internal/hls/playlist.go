package hls

import (
	"bufio"
	"bytes"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

func (s *Segmenter) addSegment(sg segment) {
	s.segs = append(s.segs, sg)
	s.total += sg.dur
	if sg.disc {
		s.totalDisc++
		s.vodBody = append(s.vodBody, "#EXT-X-DISCONTINUITY\n"...)
	}
	s.vodBody = appendSegmentLines(s.vodBody, sg)
	s.maxRound = max(s.maxRound, int(math.Round(sg.dur.Seconds())))
}

func appendSegmentLines(b []byte, sg segment) []byte {
	b = append(b, "#EXTINF:"...)
	b = strconv.AppendFloat(b, sg.dur.Seconds(), 'f', 3, 64)
	b = append(b, ",\n"...)
	b = append(b, SegmentName(sg.seq)...)
	return append(b, '\n')
}

// targetDuration is EXT-X-TARGETDURATION: at least the configured target, and at least every
// segment's duration rounded to the nearest second (RFC 8216 4.3.3.1).
func (s *Segmenter) targetDuration() int {
	return max(int(math.Ceil(s.cfg.TargetDuration.Seconds())), s.maxRound, 1)
}

func (s *Segmenter) writePlaylists() error {
	target := s.targetDuration()
	// live.m3u8: the last LiveWindow segments.
	from := max(0, len(s.segs)-s.cfg.LiveWindow)
	window := s.segs[from:]
	discInWindow := 0
	for _, sg := range window {
		if sg.disc {
			discInWindow++
		}
	}
	var b bytes.Buffer
	b.WriteString("#EXTM3U\n#EXT-X-VERSION:3\n")
	fmt.Fprintf(&b, "#EXT-X-TARGETDURATION:%d\n", target)
	mediaSeq := s.nextSeq
	if len(window) > 0 {
		mediaSeq = window[0].seq
	}
	fmt.Fprintf(&b, "#EXT-X-MEDIA-SEQUENCE:%d\n", mediaSeq)
	fmt.Fprintf(&b, "#EXT-X-DISCONTINUITY-SEQUENCE:%d\n", s.totalDisc-discInWindow)
	for _, sg := range window {
		if sg.disc {
			b.WriteString("#EXT-X-DISCONTINUITY\n")
		}
		b.Write(appendSegmentLines(nil, sg))
	}
	if s.finished {
		b.WriteString("#EXT-X-ENDLIST\n")
	}
	if err := writeAtomic(filepath.Join(s.cfg.Dir, LivePlaylist), b.Bytes()); err != nil {
		return err
	}
	// vod.m3u8: every segment.
	b.Reset()
	b.WriteString("#EXTM3U\n#EXT-X-VERSION:3\n")
	fmt.Fprintf(&b, "#EXT-X-TARGETDURATION:%d\n", target)
	if s.finished {
		b.WriteString("#EXT-X-PLAYLIST-TYPE:VOD\n")
	} else {
		b.WriteString("#EXT-X-PLAYLIST-TYPE:EVENT\n")
	}
	first := 0
	if len(s.segs) > 0 {
		first = s.segs[0].seq
	}
	fmt.Fprintf(&b, "#EXT-X-MEDIA-SEQUENCE:%d\n", first)
	b.Write(s.vodBody)
	if s.finished {
		b.WriteString("#EXT-X-ENDLIST\n")
	}
	return writeAtomic(filepath.Join(s.cfg.Dir, VODPlaylist), b.Bytes())
}

// writeAtomic writes a temporary file next to path and renames it over path.
func writeAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return fmt.Errorf("hls: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("hls: %w", err)
	}
	return nil
}

// parseMediaPlaylist reads the segments of a playlist this package wrote.
func parseMediaPlaylist(b []byte) ([]segment, error) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	var segs []segment
	disc := false
	var dur time.Duration
	haveInf := false
	line := 0
	for sc.Scan() {
		line++
		l := strings.TrimSpace(sc.Text())
		switch {
		case l == "":
		case line == 1 && l != "#EXTM3U":
			return nil, fmt.Errorf("hls: vod.m3u8 is not a playlist")
		case l == "#EXT-X-DISCONTINUITY":
			disc = true
		case strings.HasPrefix(l, "#EXTINF:"):
			v, _, _ := strings.Cut(strings.TrimPrefix(l, "#EXTINF:"), ",")
			f, err := strconv.ParseFloat(v, 64)
			if err != nil || f < 0 {
				return nil, fmt.Errorf("hls: vod.m3u8 line %d: bad EXTINF", line)
			}
			dur = time.Duration(f * float64(time.Second))
			haveInf = true
		case strings.HasPrefix(l, "#"):
		default:
			n, ok := strings.CutPrefix(l, "seg-")
			n, ok2 := strings.CutSuffix(n, ".ts")
			seq, err := strconv.Atoi(n)
			if !ok || !ok2 || err != nil || seq < 0 || !haveInf {
				return nil, fmt.Errorf("hls: vod.m3u8 line %d: unexpected segment %q", line, l)
			}
			if len(segs) > 0 && seq <= segs[len(segs)-1].seq {
				return nil, fmt.Errorf("hls: vod.m3u8 line %d: segment numbers go backwards", line)
			}
			segs = append(segs, segment{seq: seq, dur: dur, disc: disc})
			disc, haveInf = false, false
		}
	}
	return segs, sc.Err()
}
