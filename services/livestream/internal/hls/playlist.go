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

// partSegments is how many finished segments keep their parts in the live playlist (RFC
// 8216bis 4.4.4.9: parts of the segments within the last three target durations).
const partSegments = 3

func (s *Segmenter) addSegment(sg segment) {
	s.segs = append(s.segs, sg)
	s.total += sg.dur
	if sg.disc {
		s.totalDisc++
		s.vodBody = append(s.vodBody, "#EXT-X-DISCONTINUITY\n"...)
	}
	if sg.init != "" && sg.init != s.vodInit {
		s.vodBody = appendMap(s.vodBody, sg.init)
		s.vodInit = sg.init
	}
	s.vodBody = appendSegmentLines(s.vodBody, sg, s.segName(sg.seq))
	s.maxRound = max(s.maxRound, int(math.Round(sg.dur.Seconds())))
	if n := len(s.segs) - partSegments - 1; n >= 0 {
		s.segs[n].parts = nil
	}
}

func appendMap(b []byte, init string) []byte {
	return append(append(append(b, `#EXT-X-MAP:URI="`...), init...), "\"\n"...)
}

func appendSegmentLines(b []byte, sg segment, name string) []byte {
	b = append(b, "#EXTINF:"...)
	b = strconv.AppendFloat(b, sg.dur.Seconds(), 'f', 3, 64)
	b = append(b, ",\n"...)
	b = append(b, name...)
	return append(b, '\n')
}

func appendParts(b []byte, seq int, parts []partInfo) []byte {
	for i, p := range parts {
		b = append(b, "#EXT-X-PART:DURATION="...)
		b = strconv.AppendFloat(b, p.dur.Seconds(), 'f', 3, 64)
		b = append(b, `,URI="`...)
		b = append(b, PartName(seq, i)...)
		b = append(b, '"')
		if p.independent {
			b = append(b, ",INDEPENDENT=YES"...)
		}
		b = append(b, '\n')
	}
	return b
}

// targetDuration is EXT-X-TARGETDURATION: at least the configured target, and at least every
// segment's duration rounded to the nearest second (RFC 8216 4.3.3.1).
func (s *Segmenter) targetDuration() int {
	return max(int(math.Ceil(s.cfg.TargetDuration.Seconds())), s.maxRound, 1)
}

// PartTarget is the EXT-X-PART-INF:PART-TARGET advertised for parts cut at partDuration: parts
// end at the first frame at or after partDuration, so a frame interval more is allowed.
func PartTarget(partDuration time.Duration) time.Duration {
	return (partDuration * 5 / 4).Round(time.Millisecond)
}

func (s *Segmenter) partTarget() time.Duration {
	return max(PartTarget(s.cfg.PartDuration), s.maxPart.Round(time.Millisecond))
}

func (s *Segmenter) version() int {
	if s.cfg.Container == ContainerFMP4 {
		return 6 // EXT-X-MAP in a playlist without EXT-X-I-FRAMES-ONLY
	}
	return 3
}

func secs(d time.Duration) string { return strconv.FormatFloat(d.Seconds(), 'f', 3, 64) }

// writeLive writes live.m3u8: the last LiveWindow segments, and with parts the parts of the
// last segments and of the open one, and a preload hint of the next part.
func (s *Segmenter) writeLive() error {
	target := s.targetDuration()
	from := max(0, len(s.segs)-s.cfg.LiveWindow)
	window := s.segs[from:]
	discInWindow := 0
	for _, sg := range window {
		if sg.disc {
			discInWindow++
		}
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "#EXTM3U\n#EXT-X-VERSION:%d\n", s.version())
	fmt.Fprintf(&b, "#EXT-X-TARGETDURATION:%d\n", target)
	ll := s.cfg.PartDuration > 0
	switch {
	case ll:
		pt := s.partTarget()
		fmt.Fprintf(&b, "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=%s\n", secs(3*pt))
		fmt.Fprintf(&b, "#EXT-X-PART-INF:PART-TARGET=%s\n", secs(pt))
	case s.cfg.HoldBack > 0:
		fmt.Fprintf(&b, "#EXT-X-SERVER-CONTROL:HOLD-BACK=%s\n", secs(max(s.cfg.HoldBack, 3*time.Duration(target)*time.Second)))
	}
	mediaSeq := s.nextSeq
	if len(window) > 0 {
		mediaSeq = window[0].seq
	} else if s.cur != nil {
		mediaSeq = s.cur.seq
	}
	fmt.Fprintf(&b, "#EXT-X-MEDIA-SEQUENCE:%d\n", mediaSeq)
	fmt.Fprintf(&b, "#EXT-X-DISCONTINUITY-SEQUENCE:%d\n", s.totalDisc-discInWindow)
	init := ""
	for _, sg := range window {
		if sg.disc {
			b.WriteString("#EXT-X-DISCONTINUITY\n")
		}
		if sg.init != "" && sg.init != init {
			b.Write(appendMap(nil, sg.init))
			init = sg.init
		}
		if ll {
			b.Write(appendParts(nil, sg.seq, sg.parts))
		}
		b.Write(appendSegmentLines(nil, sg, s.segName(sg.seq)))
	}
	if c := s.cur; ll && c != nil && !s.finished {
		if c.disc {
			b.WriteString("#EXT-X-DISCONTINUITY\n")
		}
		if c.init != init {
			b.Write(appendMap(nil, c.init))
		}
		b.Write(appendParts(nil, c.seq, c.parts))
		fmt.Fprintf(&b, "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"%s\"\n", PartName(c.seq, len(c.parts)))
	}
	if s.finished {
		b.WriteString("#EXT-X-ENDLIST\n")
	}
	return writeAtomic(filepath.Join(s.cfg.Dir, LivePlaylist), b.Bytes())
}

func (s *Segmenter) writePlaylists() error {
	if err := s.writeLive(); err != nil {
		return err
	}
	// vod.m3u8: every segment.
	var b bytes.Buffer
	fmt.Fprintf(&b, "#EXTM3U\n#EXT-X-VERSION:%d\n", s.version())
	fmt.Fprintf(&b, "#EXT-X-TARGETDURATION:%d\n", s.targetDuration())
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
func parseMediaPlaylist(b []byte, c Container) ([]segment, error) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	var segs []segment
	disc := false
	var dur time.Duration
	haveInf := false
	line := 0
	init := ""
	ext := ".ts"
	if c == ContainerFMP4 {
		ext = ".m4s"
	}
	for sc.Scan() {
		line++
		l := strings.TrimSpace(sc.Text())
		switch {
		case l == "":
		case line == 1 && l != "#EXTM3U":
			return nil, fmt.Errorf("hls: vod.m3u8 is not a playlist")
		case l == "#EXT-X-DISCONTINUITY":
			disc = true
		case strings.HasPrefix(l, "#EXT-X-MAP:"):
			v, ok := strings.CutPrefix(l, `#EXT-X-MAP:URI="`)
			v, ok2 := strings.CutSuffix(v, `"`)
			if !ok || !ok2 || c != ContainerFMP4 {
				return nil, fmt.Errorf("hls: vod.m3u8 line %d: unexpected EXT-X-MAP", line)
			}
			init = v
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
			n, ok2 := strings.CutSuffix(n, ext)
			seq, err := strconv.Atoi(n)
			if !ok || !ok2 || err != nil || seq < 0 || !haveInf || (c == ContainerFMP4 && init == "") {
				return nil, fmt.Errorf("hls: vod.m3u8 line %d: unexpected segment %q", line, l)
			}
			if len(segs) > 0 && seq <= segs[len(segs)-1].seq {
				return nil, fmt.Errorf("hls: vod.m3u8 line %d: segment numbers go backwards", line)
			}
			segs = append(segs, segment{seq: seq, dur: dur, disc: disc, init: init})
			disc, haveInf = false, false
		}
	}
	return segs, sc.Err()
}
