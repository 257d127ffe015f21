package hls

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/spacecast/spacecast/services/livestream/internal/flv"
)

// encodedPackets has Debian's ffmpeg encode secs seconds of 320x240 25 fps H.264 (a keyframe
// every second) and AAC into FLV, and demuxes it into packets.
func encodedPackets(t *testing.T, secs int) []flv.Packet {
	t.Helper()
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("ffmpeg is not installed; CI must install ffmpeg")
		}
		t.Skip("ffmpeg is not installed (apt-get install ffmpeg)")
	}
	out, err := exec.Command("ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error",
		"-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100",
		"-t", strconv.Itoa(secs), "-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-bf", "2", "-pix_fmt", "yuv420p",
		"-c:a", "aac", "-b:a", "64k", "-f", "flv", "-").Output()
	if err != nil {
		t.Fatalf("ffmpeg: %v", err)
	}
	r, err := flv.NewReader(bytes.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	d := flv.NewDemuxer()
	var pkts []flv.Packet
	for {
		tag, err := r.ReadTag()
		if errors.Is(err, io.EOF) {
			return pkts
		}
		if err != nil {
			t.Fatal(err)
		}
		ps, err := d.Push(tag)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range ps {
			p.Data = bytes.Clone(p.Data) // valid until the next Push
			pkts = append(pkts, p)
		}
	}
}

type probeOut struct {
	Streams []struct {
		CodecName string `json:"codec_name"`
		Width     int    `json:"width"`
		Height    int    `json:"height"`
		NbFrames  string `json:"nb_read_frames"`
	} `json:"streams"`
	Format struct {
		Duration string `json:"duration"`
	} `json:"format"`
}

func probe(t *testing.T, path string) probeOut {
	t.Helper()
	out, err := exec.Command("ffprobe", "-v", "error", "-count_frames", "-show_entries",
		"stream=codec_name,width,height,nb_read_frames:format=duration", "-of", "json", path).CombinedOutput()
	if err != nil {
		t.Fatalf("ffprobe %s: %v\n%s", path, err, out)
	}
	var p probeOut
	if err := json.Unmarshal(out, &p); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestFMP4PartsAndPlaylists(t *testing.T) {
	pkts := encodedPackets(t, 5)
	dir := filepath.Join(t.TempDir(), "rec")
	s, infos := newSeg(t, SegmenterConfig{Dir: dir, Container: ContainerFMP4, TargetDuration: time.Second,
		PartDuration: 200 * ms, LiveWindow: 10})
	half := len(pkts) / 2
	write(t, s, pkts[:half])

	t.Logf("variant %s", readFile(t, filepath.Join(dir, VariantFile)))
	// Mid-stream: the open segment's parts are listed with a preload hint of the next part.
	live := readFile(t, filepath.Join(dir, LivePlaylist))
	for _, want := range []string{"#EXT-X-VERSION:6", "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=0.750",
		"#EXT-X-PART-INF:PART-TARGET=0.250", `#EXT-X-MAP:URI="init-0.mp4"`, `#EXT-X-PART:DURATION=0.200,URI="seg-0.0.m4s",INDEPENDENT=YES`,
		"#EXT-X-PRELOAD-HINT:TYPE=PART,URI="} {
		if !strings.Contains(live, want) {
			t.Fatalf("live playlist lacks %q:\n%s", want, live)
		}
	}
	t.Logf("live playlist mid-stream:\n%s", live)
	if strings.Contains(live, "#EXT-X-ENDLIST") {
		t.Fatalf("live playlist ended early:\n%s", live)
	}
	// Every part is ≤ PART-TARGET; exactly the first part of each segment is independent.
	partRe := regexp.MustCompile(`#EXT-X-PART:DURATION=([0-9.]+),URI="seg-(\d+)\.(\d+)\.m4s"(,INDEPENDENT=YES)?`)
	found := partRe.FindAllStringSubmatch(live, -1)
	if len(found) < 5 {
		t.Fatalf("only %d parts listed:\n%s", len(found), live)
	}
	for _, m := range found {
		d, _ := strconv.ParseFloat(m[1], 64)
		if d > 0.25 || d < 0.1 {
			t.Errorf("part %s.%s lasts %s", m[2], m[3], m[1])
		}
		if (m[3] == "0") != (m[4] != "") {
			t.Errorf("part %s.%s INDEPENDENT=%v", m[2], m[3], m[4] != "")
		}
		if _, err := os.Stat(filepath.Join(dir, "seg-"+m[2]+"."+m[3]+".m4s")); err != nil {
			t.Error(err)
		}
	}
	// The hinted part does not exist yet.
	hint := regexp.MustCompile(`PRELOAD-HINT:TYPE=PART,URI="([^"]+)"`).FindStringSubmatch(live)[1]
	if _, err := os.Stat(filepath.Join(dir, hint)); !os.IsNotExist(err) {
		t.Fatalf("hinted part %s exists already: %v", hint, err)
	}

	write(t, s, pkts[half:])
	total, err := s.Finish()
	if err != nil {
		t.Fatal(err)
	}
	if len(*infos) < 4 {
		t.Fatalf("%d segments", len(*infos))
	}
	vod := readFile(t, filepath.Join(dir, VODPlaylist))
	for _, want := range []string{"#EXT-X-PLAYLIST-TYPE:VOD", `#EXT-X-MAP:URI="init-0.mp4"`, "seg-0.m4s", "#EXT-X-ENDLIST"} {
		if !strings.Contains(vod, want) {
			t.Fatalf("VOD playlist lacks %q:\n%s", want, vod)
		}
	}
	if strings.Contains(vod, "EXT-X-PART") {
		t.Fatalf("VOD playlist lists parts:\n%s", vod)
	}
	// ffprobe reads the whole recording and one part on its own (init + part).
	p := probe(t, filepath.Join(dir, VODPlaylist))
	dur, _ := strconv.ParseFloat(p.Format.Duration, 64)
	if len(p.Streams) != 2 || dur < 4.5 || dur > 5.5 || total < 4500*ms {
		t.Fatalf("VOD probed %+v (duration %.2f), Finish said %v", p, dur, total)
	}
	initB, _ := os.ReadFile(filepath.Join(dir, "init-0.mp4"))
	part, _ := os.ReadFile(filepath.Join(dir, PartName(1, 0)))
	one := filepath.Join(t.TempDir(), "one.mp4")
	if err := os.WriteFile(one, append(initB, part...), 0o644); err != nil {
		t.Fatal(err)
	}
	pp := probe(t, one)
	var video bool
	for _, st := range pp.Streams {
		if st.CodecName == "h264" {
			video = true
			if st.Width != 320 || st.Height != 240 || st.NbFrames != "5" {
				t.Fatalf("part 1.0 video %+v, want 320x240 and 5 frames", st)
			}
		}
	}
	if !video {
		t.Fatalf("part 1.0 has no video: %+v", pp)
	}
	// A full decode of the VOD finds no error.
	if out, err := exec.Command("ffmpeg", "-v", "error", "-nostdin", "-i", filepath.Join(dir, VODPlaylist), "-f", "null", "-").CombinedOutput(); err != nil || len(out) > 0 {
		t.Fatalf("decoding the VOD: %v\n%s", err, out)
	}
	v, err := ReadVariant(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^avc1\.[0-9a-f]{6},mp4a\.40\.2$`).MatchString(v.Codecs) ||
		v.Width != 320 || v.Height != 240 || v.FrameRate < 24 || v.FrameRate > 26 || v.Bandwidth < v.AverageBandwidth || v.AverageBandwidth < 50000 {
		t.Fatalf("variant %+v", v)
	}
}

func TestFMP4ResumeWritesNewInit(t *testing.T) {
	pkts := encodedPackets(t, 3)
	dir := filepath.Join(t.TempDir(), "rec")
	cfg := SegmenterConfig{Dir: dir, Container: ContainerFMP4, TargetDuration: time.Second, PartDuration: 200 * ms}
	s, _ := newSeg(t, cfg)
	write(t, s, pkts)
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	s2, err := OpenSegmenter(cfg)
	if err != nil {
		t.Fatal(err)
	}
	write(t, s2, pkts) // timestamps restart: a reconnect
	live := readFile(t, filepath.Join(dir, LivePlaylist))
	// The reconnect: a discontinuity, then the new init section, with parts going on.
	re := regexp.MustCompile(`#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI="init-(\d+)\.mp4"\n#EXT-X-PART:DURATION=[0-9.]+,URI="seg-(\d+)\.0\.m4s",INDEPENDENT=YES`)
	m := re.FindStringSubmatch(live)
	if m == nil || m[1] != m[2] || m[1] == "0" {
		t.Fatalf("no discontinuity with a new init section before the resumed parts:\n%s", live)
	}
	if _, err := s2.Finish(); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("ffmpeg", "-v", "error", "-nostdin", "-i", filepath.Join(dir, VODPlaylist), "-f", "null", "-").CombinedOutput(); err != nil {
		t.Fatalf("decoding the VOD: %v\n%s", err, out)
	}
	if n := strings.Count(readFile(t, filepath.Join(dir, VODPlaylist)), "#EXT-X-MAP"); n != 2 {
		t.Fatalf("VOD has %d EXT-X-MAP, want 2", n)
	}
}

func TestReducedHoldBack(t *testing.T) {
	s, _ := newSeg(t, SegmenterConfig{TargetDuration: time.Second, HoldBack: 3 * time.Second})
	write(t, s, media(0, 4*time.Second, time.Second, true, true))
	live := readFile(t, filepath.Join(s.cfg.Dir, LivePlaylist))
	if !strings.Contains(live, "#EXT-X-TARGETDURATION:1\n#EXT-X-SERVER-CONTROL:HOLD-BACK=3.000\n") {
		t.Fatalf("live playlist:\n%s", live)
	}
	if strings.Contains(live, "PART") {
		t.Fatalf("TS playlist with parts:\n%s", live)
	}
}

func TestMaster(t *testing.T) {
	b, err := Master([]MasterEntry{{Variant: Variant{Bandwidth: 2500000, AverageBandwidth: 2000000, Codecs: "avc1.64001f,mp4a.40.2",
		Width: 1280, Height: 720, FrameRate: 30}, URI: "a/source.m3u8"}, {Variant: Variant{Bandwidth: 64000, Codecs: "mp4a.40.2"}, URI: "a/audio.m3u8"}})
	if err != nil {
		t.Fatal(err)
	}
	want := "#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-INDEPENDENT-SEGMENTS\n" +
		`#EXT-X-STREAM-INF:BANDWIDTH=2500000,AVERAGE-BANDWIDTH=2000000,CODECS="avc1.64001f,mp4a.40.2",RESOLUTION=1280x720,FRAME-RATE=30.000` + "\na/source.m3u8\n" +
		`#EXT-X-STREAM-INF:BANDWIDTH=64000,CODECS="mp4a.40.2"` + "\na/audio.m3u8\n"
	if string(b) != want {
		t.Fatalf("master\n%s\nwant\n%s", b, want)
	}
	if _, err := Master(nil); !errors.Is(err, ErrNoVariant) {
		t.Fatal(err)
	}
}

// TestWritePacketKeepsNoData: the ingest's demuxer reuses its buffers, so whatever the
// segmenter holds past WritePacket (probe packets, SPS/PPS, fMP4 samples waiting for their part)
// must be its own copy. Every packet's Data is overwritten right after WritePacket; the
// recording must come out byte for byte as with untouched packets.
func TestWritePacketKeepsNoData(t *testing.T) {
	pkts := encodedPackets(t, 3)
	for _, tc := range []struct {
		name string
		cfg  SegmenterConfig
	}{
		{"ts", SegmenterConfig{TargetDuration: time.Second}},
		{"fmp4 parts", SegmenterConfig{Container: ContainerFMP4, TargetDuration: time.Second, PartDuration: 200 * ms}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			record := func(scribble bool) map[string][]byte {
				cfg := tc.cfg
				cfg.Dir = filepath.Join(t.TempDir(), "rec")
				s, err := NewSegmenter(cfg)
				if err != nil {
					t.Fatal(err)
				}
				for _, p := range pkts {
					p.Data = bytes.Clone(p.Data)
					if err := s.WritePacket(p); err != nil {
						t.Fatal(err)
					}
					if scribble {
						for i := range p.Data {
							p.Data[i] = 0xa5
						}
					}
				}
				if _, err := s.Finish(); err != nil {
					t.Fatal(err)
				}
				files := map[string][]byte{}
				ents, err := os.ReadDir(cfg.Dir)
				if err != nil {
					t.Fatal(err)
				}
				for _, e := range ents {
					b, err := os.ReadFile(filepath.Join(cfg.Dir, e.Name()))
					if err != nil {
						t.Fatal(err)
					}
					files[e.Name()] = b
				}
				return files
			}
			want, got := record(false), record(true)
			if len(want) < 4 || len(got) != len(want) {
				t.Fatalf("%d files with scribbled packets, %d without", len(got), len(want))
			}
			for name, b := range want {
				if name == "variant.json" {
					continue // no media bytes in it
				}
				if !bytes.Equal(got[name], b) {
					t.Errorf("%s differs when the caller reuses packet data after WritePacket", name)
				}
			}
		})
	}
}
