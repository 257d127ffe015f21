package hls

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/asticode/go-astits"

	"github.com/spacecast/spacecast/services/livestream/internal/flv"
)

const ms = time.Millisecond

// media makes synthetic packets: video at 25 fps with a keyframe every gop, audio every 20 ms,
// from from up to to (packet clock), interleaved by DTS.
func media(from, to, gop time.Duration, video, audio bool) []flv.Packet {
	per := max(1, int(gop/(40*ms)))
	var out []flv.Packet
	vi := 0
	nextV, nextA := from, from
	for {
		vOK := video && nextV < to
		aOK := audio && nextA < to
		if !vOK && !aOK {
			return out
		}
		if vOK && (!aOK || nextV <= nextA) {
			out = append(out, flv.Packet{Kind: flv.Video, DTS: nextV, PTS: nextV + 66*ms, Keyframe: vi%per == 0,
				Data: append([]byte{0, 0, 0, 1, 9, 0xf0, 0, 0, 0, 1, 0x65}, bytes.Repeat([]byte{0xab}, 400)...)})
			vi++
			nextV += 40 * ms
			continue
		}
		out = append(out, flv.Packet{Kind: flv.Audio, DTS: nextA, PTS: nextA, Keyframe: true,
			Data: append([]byte{0xff, 0xf1, 0x50, 0x80, 0x2f, 0xff, 0xfc}, bytes.Repeat([]byte{0x21}, 370)...)})
		nextA += 20 * ms
	}
}

func write(t *testing.T, s *Segmenter, pkts []flv.Packet) {
	t.Helper()
	for _, p := range pkts {
		if err := s.WritePacket(p); err != nil {
			t.Fatal(err)
		}
	}
}

func newSeg(t *testing.T, cfg SegmenterConfig) (*Segmenter, *[]SegmentInfo) {
	t.Helper()
	if cfg.Dir == "" {
		cfg.Dir = filepath.Join(t.TempDir(), "rec")
	}
	var infos []SegmentInfo
	cfg.OnSegment = func(si SegmentInfo) {
		if _, err := os.Stat(si.Path); err != nil {
			t.Errorf("OnSegment before the segment exists: %v", err)
		}
		infos = append(infos, si)
	}
	s, err := NewSegmenter(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s, &infos
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// tsFacts is what the tests check in a segment.
type tsFacts struct {
	firstPIDs   []uint16 // PIDs of the first packets
	streamTypes []astits.StreamType
	pcrPID      uint16
	pes         map[uint16]int
	firstPTS    map[uint16]int64
	firstDTS    map[uint16]int64
	rai         int // packets with random access indicator
	pcrs        int
}

func inspect(t *testing.T, path string) tsFacts {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b)%188 != 0 {
		t.Fatalf("%s: %d bytes is not a whole number of TS packets", path, len(b))
	}
	f := tsFacts{pes: map[uint16]int{}, firstPTS: map[uint16]int64{}, firstDTS: map[uint16]int64{}}
	dmx := astits.NewDemuxer(context.Background(), bytes.NewReader(b))
	for i := 0; ; i++ {
		p, err := dmx.NextPacket()
		if errors.Is(err, astits.ErrNoMorePackets) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if i < 3 {
			f.firstPIDs = append(f.firstPIDs, p.Header.PID)
		}
		if p.AdaptationField != nil {
			if p.AdaptationField.RandomAccessIndicator {
				f.rai++
			}
			if p.AdaptationField.HasPCR {
				f.pcrs++
			}
		}
	}
	dmx = astits.NewDemuxer(context.Background(), bytes.NewReader(b))
	for {
		d, err := dmx.NextData()
		if errors.Is(err, astits.ErrNoMorePackets) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if d.PMT != nil && f.streamTypes == nil {
			for _, es := range d.PMT.ElementaryStreams {
				f.streamTypes = append(f.streamTypes, es.StreamType)
			}
			f.pcrPID = d.PMT.PCRPID
		}
		if d.PES != nil {
			if f.pes[d.PID] == 0 {
				oh := d.PES.Header.OptionalHeader
				f.firstPTS[d.PID] = oh.PTS.Base
				if oh.DTS != nil {
					f.firstDTS[d.PID] = oh.DTS.Base
				} else {
					f.firstDTS[d.PID] = oh.PTS.Base
				}
			}
			f.pes[d.PID]++
		}
	}
	return f
}

// ccCheck verifies continuity counters across the concatenation of segment files.
func ccCheck(t *testing.T, paths ...string) {
	t.Helper()
	last := map[uint16]uint8{}
	for _, path := range paths {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for off := 0; off+188 <= len(b); off += 188 {
			pkt := b[off : off+188]
			pid := uint16(pkt[1]&0x1f)<<8 | uint16(pkt[2])
			hasPayload := pkt[3]&0x10 != 0
			cc := pkt[3] & 0x0f
			if !hasPayload {
				continue
			}
			if prev, ok := last[pid]; ok && cc != (prev+1)&0x0f {
				t.Fatalf("%s: PID %#x continuity counter %d after %d", filepath.Base(path), pid, cc, prev)
			}
			last[pid] = cc
		}
	}
}

func TestVideoAudioSegments(t *testing.T) {
	s, infos := newSeg(t, SegmenterConfig{})
	write(t, s, media(0, 7*time.Second, time.Second, true, true))
	total, err := s.Finish()
	if err != nil {
		t.Fatal(err)
	}
	if total < 6900*ms || total > 7100*ms {
		t.Errorf("total %v, want about 7s", total)
	}
	if len(*infos) != 4 {
		t.Fatalf("%d segments, want 4 (2+2+2+1 s)", len(*infos))
	}
	var paths []string
	for i, si := range *infos {
		want := 2 * time.Second
		if i == 3 {
			want = 1 * time.Second
		}
		if si.Seq != i || si.Duration != want || si.FirstKeyframeDTS != time.Duration(i)*2*time.Second || si.Discontinuity {
			t.Errorf("segment %d: %+v", i, si)
		}
		paths = append(paths, si.Path)
		f := inspect(t, si.Path)
		if len(f.firstPIDs) < 3 || f.firstPIDs[0] != 0 || f.firstPIDs[1] != 0x1000 || f.firstPIDs[2] != videoPID {
			t.Errorf("segment %d does not start with PAT, PMT, video: %#x", i, f.firstPIDs)
		}
		if len(f.streamTypes) != 2 || f.streamTypes[0] != 0x1b || f.streamTypes[1] != 0x0f || f.pcrPID != videoPID {
			t.Errorf("segment %d PMT: types %v pcr %#x", i, f.streamTypes, f.pcrPID)
		}
		// Timestamps: 90 kHz with the fixed offset; PTS = DTS + 66 ms for video.
		wantDTS := int64((time.Duration(i)*2*time.Second + tsOffset) / time.Microsecond * 9 / 100)
		if f.firstDTS[videoPID] != wantDTS || f.firstPTS[videoPID] != wantDTS+66*90 {
			t.Errorf("segment %d first video DTS/PTS %d/%d, want %d/%d", i, f.firstDTS[videoPID], f.firstPTS[videoPID], wantDTS, wantDTS+66*90)
		}
		if f.pes[audioPID] == 0 || f.pcrs != f.pes[videoPID] {
			t.Errorf("segment %d: %d audio PES, %d PCRs for %d video PES", i, f.pes[audioPID], f.pcrs, f.pes[videoPID])
		}
	}
	ccCheck(t, paths...)
	dir := filepath.Dir(paths[0])
	vod := readFile(t, filepath.Join(dir, VODPlaylist))
	wantVOD := "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-PLAYLIST-TYPE:VOD\n#EXT-X-MEDIA-SEQUENCE:0\n" +
		"#EXTINF:2.000,\nseg-0.ts\n#EXTINF:2.000,\nseg-1.ts\n#EXTINF:2.000,\nseg-2.ts\n#EXTINF:1.000,\nseg-3.ts\n#EXT-X-ENDLIST\n"
	if vod != wantVOD {
		t.Errorf("vod.m3u8:\n%s\nwant:\n%s", vod, wantVOD)
	}
	if _, err := s.Finish(); err != nil {
		t.Errorf("second Finish: %v", err)
	}
	if err := s.WritePacket(flv.Packet{Kind: flv.Audio}); !errors.Is(err, ErrFinished) {
		t.Errorf("WritePacket after Finish: %v", err)
	}
}

func TestAudioOnlyCutsByTime(t *testing.T) {
	s, infos := newSeg(t, SegmenterConfig{TargetDuration: time.Second})
	write(t, s, media(0, 3500*ms, time.Second, false, true))
	if _, err := s.Finish(); err != nil {
		t.Fatal(err)
	}
	if len(*infos) != 4 {
		t.Fatalf("%d segments, want 4", len(*infos))
	}
	for _, si := range (*infos)[:3] {
		if si.Duration != time.Second {
			t.Errorf("segment %d lasts %v", si.Seq, si.Duration)
		}
		f := inspect(t, si.Path)
		if len(f.streamTypes) != 1 || f.streamTypes[0] != 0x0f || f.pcrPID != audioPID || f.firstPIDs[2] != audioPID {
			t.Errorf("segment %d: types %v pcr %#x first %#x", si.Seq, f.streamTypes, f.pcrPID, f.firstPIDs)
		}
		if f.rai != 1 {
			t.Errorf("segment %d: %d random access points, want 1 (first audio packet)", si.Seq, f.rai)
		}
	}
}

func TestVideoOnlyLongGOP(t *testing.T) {
	s, infos := newSeg(t, SegmenterConfig{})
	write(t, s, media(0, 9*time.Second, 3*time.Second, true, false))
	if _, err := s.Finish(); err != nil {
		t.Fatal(err)
	}
	if len(*infos) != 3 || (*infos)[0].Duration != 3*time.Second {
		t.Fatalf("segments %+v, want three of 3 s", *infos)
	}
	f := inspect(t, (*infos)[0].Path)
	if len(f.streamTypes) != 1 || f.streamTypes[0] != 0x1b {
		t.Errorf("video-only PMT %v", f.streamTypes)
	}
	live := readFile(t, filepath.Join(filepath.Dir((*infos)[0].Path), LivePlaylist))
	if !strings.Contains(live, "#EXT-X-TARGETDURATION:3\n") {
		t.Errorf("target duration must cover 3 s segments:\n%s", live)
	}
}

func TestLiveWindowAndDiscontinuities(t *testing.T) {
	s, infos := newSeg(t, SegmenterConfig{LiveWindow: 2})
	write(t, s, media(0, 4*time.Second, time.Second, true, true))
	dir := s.cfg.Dir
	s.Discontinuity() // the publisher dropped; it reconnects with timestamps from 0 again
	write(t, s, media(0, 4*time.Second, time.Second, true, true))
	live := readFile(t, filepath.Join(dir, LivePlaylist))
	// Segments so far: 0,1 (first connection, 2 s each, the second closed by Discontinuity),
	// 2 (second connection, discontinuity). Window of 2: 1, 2.
	want := "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:1\n#EXT-X-DISCONTINUITY-SEQUENCE:0\n" +
		"#EXTINF:2.000,\nseg-1.ts\n#EXT-X-DISCONTINUITY\n#EXTINF:2.000,\nseg-2.ts\n"
	if live != want {
		t.Errorf("live.m3u8:\n%s\nwant:\n%s", live, want)
	}
	s.Discontinuity()
	write(t, s, media(0, 3*time.Second, time.Second, true, true))
	if _, err := s.Finish(); err != nil {
		t.Fatal(err)
	}
	live = readFile(t, filepath.Join(dir, LivePlaylist))
	// All: 0 1 | 2 3 | 4 5. Window 4, 5: two discontinuities before seg 4's own.
	want = "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:4\n#EXT-X-DISCONTINUITY-SEQUENCE:1\n" +
		"#EXT-X-DISCONTINUITY\n#EXTINF:2.000,\nseg-4.ts\n#EXTINF:1.000,\nseg-5.ts\n#EXT-X-ENDLIST\n"
	if live != want {
		t.Errorf("live.m3u8:\n%s\nwant:\n%s", live, want)
	}
	vod := readFile(t, filepath.Join(dir, VODPlaylist))
	if strings.Count(vod, "#EXT-X-DISCONTINUITY\n") != 2 || !strings.Contains(vod, "#EXT-X-DISCONTINUITY\n#EXTINF:2.000,\nseg-2.ts") {
		t.Errorf("vod.m3u8:\n%s", vod)
	}
	var discs []int
	for _, si := range *infos {
		if si.Discontinuity {
			discs = append(discs, si.Seq)
		}
	}
	if fmt.Sprint(discs) != "[2 4]" {
		t.Errorf("discontinuity segments %v, want [2 4]", discs)
	}
	// After a discontinuity the TS restarts: PAT/PMT first, counters from the start.
	f := inspect(t, filepath.Join(dir, SegmentName(2)))
	if f.firstPIDs[0] != 0 {
		t.Errorf("segment after a discontinuity does not start with a PAT")
	}
	ccCheck(t, filepath.Join(dir, SegmentName(2)), filepath.Join(dir, SegmentName(3)))
}

func TestOpenSegmenterResumes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "rec")
	s, _ := newSeg(t, SegmenterConfig{Dir: dir})
	write(t, s, media(0, 5*time.Second, time.Second, true, true))
	// The process dies here: no Finish. A new process continues the recording.
	if _, err := NewSegmenter(SegmenterConfig{Dir: dir}); !errors.Is(err, ErrDirInUse) {
		t.Fatalf("NewSegmenter on a used dir: %v", err)
	}
	s2, err := OpenSegmenter(SegmenterConfig{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if s2.Duration() != 4*time.Second || s2.SegmentCount() != 2 {
		t.Errorf("reopened: %v in %d segments, want 4s in 2", s2.Duration(), s2.SegmentCount())
	}
	write(t, s2, media(0, 3*time.Second, time.Second, true, true))
	total, err := s2.Finish()
	if err != nil {
		t.Fatal(err)
	}
	if total != 7*time.Second {
		t.Errorf("total %v, want 7s", total)
	}
	vod := readFile(t, filepath.Join(dir, VODPlaylist))
	want := "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-PLAYLIST-TYPE:VOD\n#EXT-X-MEDIA-SEQUENCE:0\n" +
		"#EXTINF:2.000,\nseg-0.ts\n#EXTINF:2.000,\nseg-1.ts\n#EXT-X-DISCONTINUITY\n#EXTINF:2.000,\nseg-2.ts\n#EXTINF:1.000,\nseg-3.ts\n#EXT-X-ENDLIST\n"
	if vod != want {
		t.Errorf("vod.m3u8:\n%s\nwant:\n%s", vod, want)
	}
	// A directory without a recording opens as new; a broken playlist is refused.
	if _, err := OpenSegmenter(SegmenterConfig{Dir: filepath.Join(t.TempDir(), "new")}); err != nil {
		t.Errorf("OpenSegmenter on a new dir: %v", err)
	}
	bad := t.TempDir()
	_ = os.WriteFile(filepath.Join(bad, VODPlaylist), []byte("#EXTM3U\n#EXTINF:2.0,\n../../etc/passwd\n"), 0o644)
	if _, err := OpenSegmenter(SegmenterConfig{Dir: bad}); err == nil {
		t.Error("OpenSegmenter accepted a foreign segment URI")
	}
}

func TestLateTrackJoinsAtNextSegment(t *testing.T) {
	s, infos := newSeg(t, SegmenterConfig{})
	write(t, s, media(0, 1500*ms, time.Second, true, false))
	// audio starts at 1.5 s
	write(t, s, media(1500*ms, 5*time.Second, 500*ms, true, true))
	if _, err := s.Finish(); err != nil {
		t.Fatal(err)
	}
	first := inspect(t, (*infos)[0].Path)
	if len(first.streamTypes) != 1 {
		t.Errorf("first segment PMT %v, want video only (audio was not seen within the probe)", first.streamTypes)
	}
	last := inspect(t, (*infos)[len(*infos)-1].Path)
	if len(last.streamTypes) != 2 || last.pes[audioPID] == 0 {
		t.Errorf("later segment PMT %v with %d audio PES, want audio added", last.streamTypes, last.pes[audioPID])
	}
}

func TestTimestampJumpStartsDiscontinuity(t *testing.T) {
	s, infos := newSeg(t, SegmenterConfig{})
	write(t, s, media(0, 3*time.Second, time.Second, true, true))
	write(t, s, media(time.Hour, time.Hour+3*time.Second, time.Second, true, true))
	if _, err := s.Finish(); err != nil {
		t.Fatal(err)
	}
	for _, si := range *infos {
		if si.Duration > 2500*ms {
			t.Errorf("segment %d lasts %v across the jump", si.Seq, si.Duration)
		}
	}
	if (*infos)[2].Seq != 2 || !(*infos)[2].Discontinuity {
		t.Errorf("no discontinuity at the jump: %+v", *infos)
	}
}

func TestConfigErrors(t *testing.T) {
	if _, err := NewSegmenter(SegmenterConfig{}); err == nil {
		t.Error("empty Dir accepted")
	}
	file := filepath.Join(t.TempDir(), "file")
	_ = os.WriteFile(file, nil, 0o644)
	if _, err := NewSegmenter(SegmenterConfig{Dir: filepath.Join(file, "sub")}); err == nil {
		t.Error("Dir under a file accepted")
	}
	s, _ := newSeg(t, SegmenterConfig{})
	if err := s.WritePacket(flv.Packet{Kind: 7}); err == nil {
		t.Error("unknown packet kind accepted")
	}
}
