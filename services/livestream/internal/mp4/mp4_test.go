package mp4

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func tools(t *testing.T) *Maker {
	t.Helper()
	ff, err := exec.LookPath("ffmpeg")
	if err != nil {
		t.Skip("ffmpeg not installed")
	}
	fp, err := exec.LookPath("ffprobe")
	if err != nil {
		t.Skip("ffprobe not installed")
	}
	m, err := NewMaker(ff, fp)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// recording writes a 4 s HLS recording (H.264 + AAC, segments "mpegts" or "fmp4") of the given height.
func recording(t *testing.T, m *Maker, h int, segType string) string {
	t.Helper()
	dir := t.TempDir()
	pl := filepath.Join(dir, "vod.m3u8")
	cmd := exec.Command(m.FFmpeg, "-hide_banner", "-loglevel", "error", "-y",
		"-f", "lavfi", "-i", "testsrc=size="+strconv.Itoa(h*16/9)+"x"+strconv.Itoa(h)+":rate=25:duration=4",
		"-f", "lavfi", "-i", "sine=frequency=440:duration=4",
		"-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-c:a", "aac",
		"-f", "hls", "-hls_time", "1", "-hls_playlist_type", "vod", "-hls_segment_type", segType, pl)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make recording: %v: %s", err, out)
	}
	return pl
}

type probed struct {
	codecs []string // codec_type:codec_name
	height int
	dur    float64
}

func probe(t *testing.T, m *Maker, p string) probed {
	t.Helper()
	out, err := exec.Command(m.FFprobe, "-v", "error", "-show_entries", "stream=codec_type,codec_name,height:format=duration",
		"-of", "default=nw=1", p).Output()
	if err != nil {
		t.Fatalf("ffprobe %s: %v", p, err)
	}
	var r probed
	var name string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		k, v, _ := strings.Cut(l, "=")
		switch k {
		case "codec_name":
			name = v
		case "codec_type":
			r.codecs = append(r.codecs, v+":"+name)
		case "height":
			if n, err := strconv.Atoi(v); err == nil {
				r.height = n
			}
		case "duration":
			r.dur, _ = strconv.ParseFloat(v, 64)
		}
	}
	return r
}

func TestMake(t *testing.T) {
	m := tools(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	small := recording(t, m, 360, "mpegts")
	tall := recording(t, m, 1200, "mpegts")
	frag := recording(t, m, 360, "fmp4")
	cases := []struct {
		in     string
		r      Rendition
		file   string
		codecs string
		height int
	}{
		{small, Highest, "highest.mp4", "video:h264,audio:aac", 360},
		{small, AudioOnly, "audio.m4a", "audio:aac", 0},
		{small, Capped1080p, "capped-1080p.mp4", "video:h264,audio:aac", 360},
		{tall, Capped1080p, "capped-1080p.mp4", "video:h264,audio:aac", 1080},
		{tall, Highest, "highest.mp4", "video:h264,audio:aac", 1200},
		{frag, Highest, "highest.mp4", "video:h264,audio:aac", 360},
		{frag, AudioOnly, "audio.m4a", "audio:aac", 0},
		{small, "360p", "360p.mp4", "video:h264,audio:aac", 360},
		{small, "270p", "270p.mp4", "video:h264,audio:aac", 270},
	}
	for _, c := range cases {
		t.Run(string(c.r)+"/"+strconv.Itoa(c.height), func(t *testing.T) {
			out := t.TempDir()
			p, err := m.Make(ctx, c.in, out, c.r)
			if err != nil {
				t.Fatal(err)
			}
			if filepath.Base(p) != c.file {
				t.Fatalf("file %s, want %s", p, c.file)
			}
			got := probe(t, m, p)
			if strings.Join(got.codecs, ",") != c.codecs {
				t.Fatalf("streams %v, want %s", got.codecs, c.codecs)
			}
			if got.height != c.height {
				t.Fatalf("height %d, want %d", got.height, c.height)
			}
			if got.dur < 3 || got.dur > 5 {
				t.Fatalf("duration %.2f, want 4±1", got.dur)
			}
			// faststart: the moov box comes before mdat.
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			mo, md := strings.Index(string(b), "moov"), strings.Index(string(b), "mdat")
			if mo < 0 || md < 0 || mo > md {
				t.Fatalf("moov at %d, mdat at %d: not faststart", mo, md)
			}
			ents, _ := os.ReadDir(out)
			if len(ents) != 1 {
				t.Fatalf("%d files in the output directory, want 1", len(ents))
			}
		})
	}
}

func TestMakeErrors(t *testing.T) {
	m := tools(t)
	ctx := context.Background()
	out := t.TempDir()
	if _, err := m.Make(ctx, filepath.Join(out, "none.m3u8"), out, Highest); err == nil {
		t.Fatal("missing recording: no error")
	}
	if _, err := m.Make(ctx, "x.m3u8", out, "999p"); !errors.Is(err, ErrUnknownRendition) {
		t.Fatalf("unknown rendition: %v", err)
	}
	small := recording(t, m, 360, "mpegts")
	if _, err := m.Make(ctx, small, out, "720p"); !errors.Is(err, ErrSkipped) {
		t.Fatalf("720p of a 360-line source: %v, want ErrSkipped", err)
	}
	ents, _ := os.ReadDir(out)
	if len(ents) != 0 {
		t.Fatalf("%d files left after failures, want 0", len(ents))
	}
	if _, err := NewMaker("", "ffprobe"); err == nil {
		t.Fatal("NewMaker without ffmpeg: no error")
	}
}

func TestProbe(t *testing.T) {
	m := tools(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	in := recording(t, m, 360, "mpegts")
	dir := t.TempDir()
	for _, c := range []struct {
		r             Rendition
		width, height int
	}{{Highest, 640, 360}, {AudioOnly, 0, 0}} {
		p, err := m.Make(ctx, in, dir, c.r)
		if err != nil {
			t.Fatal(err)
		}
		info, err := m.Probe(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		st, _ := os.Stat(p)
		if info.Width != c.width || info.Height != c.height || info.Size != st.Size() || info.Bitrate <= 0 || info.Duration < 3.5 || info.Duration > 4.5 {
			t.Errorf("%s: %+v (file %d bytes)", c.r, info, st.Size())
		}
	}
	if _, err := m.Probe(ctx, filepath.Join(dir, "missing.mp4")); err == nil {
		t.Error("probing a missing file worked")
	}
	bad := filepath.Join(dir, "bad.mp4")
	os.WriteFile(bad, []byte("not an mp4"), 0o644)
	if _, err := m.Probe(ctx, bad); err == nil {
		t.Error("probing garbage worked")
	}
}
