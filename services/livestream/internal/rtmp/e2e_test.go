package rtmp_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spacecast/spacecast/services/livestream/internal/flv"
	"github.com/spacecast/spacecast/services/livestream/internal/hls"
	"github.com/spacecast/spacecast/services/livestream/internal/rtmp"
)

// pipeline is what the service does with a publish: FLV tags -> Demuxer -> Segmenter.
type pipeline struct {
	t      *testing.T
	req    rtmp.PublishRequest
	demux  *flv.Demuxer
	seg    *hls.Segmenter
	dir    string
	mu     sync.Mutex
	tags   []flv.Tag // Data dropped
	bframe int       // video packets with PTS != DTS
	closed chan error
	segs   []hls.SegmentInfo
}

func (p *pipeline) WriteTag(tag flv.Tag) error {
	p.mu.Lock()
	p.tags = append(p.tags, flv.Tag{Type: tag.Type, Timestamp: tag.Timestamp})
	p.mu.Unlock()
	pkts, err := p.demux.Push(tag)
	if err != nil {
		return err
	}
	for _, pk := range pkts {
		if pk.Kind == flv.Video && pk.PTS != pk.DTS {
			p.mu.Lock()
			p.bframe++
			p.mu.Unlock()
		}
		if err := p.seg.WritePacket(pk); err != nil {
			return err
		}
	}
	return nil
}

func (p *pipeline) Close(cause error) {
	if _, err := p.seg.Finish(); err != nil {
		p.t.Errorf("Finish: %v", err)
	}
	p.closed <- cause
}

type handler struct {
	t      *testing.T
	base   string
	refuse error
	mu     sync.Mutex
	pubs   []*pipeline
	newPub chan *pipeline
}

func (h *handler) Publish(ctx context.Context, req rtmp.PublishRequest) (rtmp.Stream, error) {
	if h.refuse != nil {
		return nil, h.refuse
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	dir := filepath.Join(h.base, fmt.Sprintf("%s-%d", req.StreamKey, len(h.pubs)))
	p := &pipeline{t: h.t, req: req, demux: flv.NewDemuxer(), dir: dir, closed: make(chan error, 1)}
	seg, err := hls.NewSegmenter(hls.SegmenterConfig{Dir: dir, OnSegment: func(si hls.SegmentInfo) {
		p.mu.Lock()
		p.segs = append(p.segs, si)
		p.mu.Unlock()
	}})
	if err != nil {
		return nil, err
	}
	p.seg = seg
	h.pubs = append(h.pubs, p)
	if h.newPub != nil {
		h.newPub <- p
	}
	return p, nil
}

func startServer(t *testing.T, h rtmp.Handler, cfg rtmp.Config) string {
	t.Helper()
	_, addr := startServerGet(t, h, cfg)
	return addr
}

// startServerGet is startServer that also returns the server (for its Stats).
func startServerGet(t *testing.T, h rtmp.Handler, cfg rtmp.Config) (*rtmp.Server, string) {
	t.Helper()
	cfg.Handler = h
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
		if testing.Verbose() {
			cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
		}
	}
	srv, err := rtmp.NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return srv, ln.Addr().String()
}

func needFFmpeg(t *testing.T) {
	t.Helper()
	for _, b := range []string{"ffmpeg", "ffprobe"} {
		if _, err := exec.LookPath(b); err != nil {
			t.Skipf("%s is not installed (apt-get install ffmpeg); skipping the end-to-end test", b)
		}
	}
}

type probeResult struct {
	Streams []struct {
		CodecType string `json:"codec_type"`
		CodecName string `json:"codec_name"`
	} `json:"streams"`
	Format struct {
		Duration string `json:"duration"`
	} `json:"format"`
}

func ffprobe(t *testing.T, path string) probeResult {
	t.Helper()
	out, err := exec.Command("ffprobe", "-v", "error", "-show_entries", "stream=codec_type,codec_name:format=duration",
		"-of", "json", path).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("ffprobe %s: %v: %s", path, err, ee.Stderr)
		}
		t.Fatalf("ffprobe %s: %v", path, err)
	}
	var r probeResult
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("ffprobe output %s: %v", out, err)
	}
	return r
}

func codecs(r probeResult) string {
	var s []string
	for _, st := range r.Streams {
		s = append(s, st.CodecType+":"+st.CodecName)
	}
	return strings.Join(s, ",")
}

func runFFmpeg(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "ffmpeg", append([]string{"-hide_banner", "-nostdin", "-loglevel", "warning"}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	return stderr.String(), err
}

const testSeconds = 6

func TestFFmpegPublishToHLS(t *testing.T) {
	needFFmpeg(t)
	video := []string{"-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30"}
	audio := []string{"-f", "lavfi", "-i", "sine=frequency=440"}
	x264 := []string{"-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency", "-g", "30"}
	cases := []struct {
		name       string
		args       []string
		wantCodecs string
		wantB      bool
	}{
		{"h264+aac", concat(video, audio, x264, []string{"-c:a", "aac"}), "video:h264,audio:aac", false},
		{"bframes", concat(video, audio, []string{"-c:v", "libx264", "-preset", "veryfast", "-g", "30", "-bf", "2", "-c:a", "aac"}), "video:h264,audio:aac", true},
		{"audio-only", concat(audio, []string{"-c:a", "aac"}), "audio:aac", false},
		{"video-only", concat(video, x264), "video:h264", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := &handler{t: t, base: t.TempDir()}
			addr := startServer(t, h, rtmp.Config{})
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			args := concat([]string{"-re"}, tc.args, []string{"-t", strconv.Itoa(testSeconds), "-f", "flv", "rtmp://" + addr + "/app/KEY"})
			if stderr, err := runFFmpeg(ctx, args...); err != nil {
				t.Fatalf("ffmpeg: %v\n%s", err, stderr)
			}
			h.mu.Lock()
			if len(h.pubs) != 1 {
				h.mu.Unlock()
				t.Fatalf("%d publishes, want 1", len(h.pubs))
			}
			p := h.pubs[0]
			h.mu.Unlock()
			select {
			case cause := <-p.closed:
				if cause != nil {
					t.Errorf("Stream.Close cause %v, want nil after ffmpeg's clean stop", cause)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("Stream.Close not called")
			}
			if p.req.StreamKey != "KEY" || p.req.App != "app" {
				t.Errorf("request %+v, want app=app key=KEY", p.req)
			}
			if tc.wantB && p.bframe == 0 {
				t.Error("no video packet with PTS != DTS although B-frames were on")
			}
			if !tc.wantB && p.bframe != 0 {
				t.Errorf("%d video packets with PTS != DTS without B-frames", p.bframe)
			}
			for _, pl := range []string{hls.LivePlaylist, hls.VODPlaylist} {
				r := ffprobe(t, filepath.Join(p.dir, pl))
				if got := codecs(r); got != tc.wantCodecs {
					t.Errorf("%s: streams %s, want %s", pl, got, tc.wantCodecs)
				}
				if pl == hls.VODPlaylist {
					d, err := strconv.ParseFloat(r.Format.Duration, 64)
					if err != nil || math.Abs(d-testSeconds) > 2 {
						t.Errorf("vod duration %q, want %d s within one segment (2 s)", r.Format.Duration, testSeconds)
					}
				}
			}
			// The recording decodes without a single error or warning (continuity counters,
			// timestamps, SPS/PPS before IDR, ADTS headers).
			if out, err := exec.Command("ffmpeg", "-v", "warning", "-nostdin", "-i", filepath.Join(p.dir, hls.VODPlaylist), "-f", "null", "-").CombinedOutput(); err != nil || len(bytes.TrimSpace(out)) > 0 {
				t.Errorf("decoding vod.m3u8: %v\n%s", err, out)
			}
			if dir := os.Getenv("KEEP_HLS_DIR"); dir != "" {
				_ = exec.Command("cp", "-r", p.dir, filepath.Join(dir, tc.name)).Run()
			}
			vod, err := os.ReadFile(filepath.Join(p.dir, hls.VODPlaylist))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Contains(vod, []byte("#EXT-X-PLAYLIST-TYPE:VOD")) || !bytes.Contains(vod, []byte("#EXT-X-ENDLIST")) {
				t.Errorf("vod.m3u8 is not a finished VOD playlist:\n%s", vod)
			}
			if len(p.segs) < 2 {
				t.Errorf("%d segments, want at least 2 for %d s", len(p.segs), testSeconds)
			}
			for _, si := range p.segs[:max(0, len(p.segs)-1)] {
				if si.Duration < 1900*time.Millisecond || si.Duration > 2600*time.Millisecond {
					t.Errorf("segment %d lasts %v, want about 2s", si.Seq, si.Duration)
				}
			}
		})
	}
}

func concat(parts ...[]string) []string {
	var out []string
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func TestFFmpegRefusedPublishExitsNonZero(t *testing.T) {
	needFFmpeg(t)
	h := &handler{t: t, base: t.TempDir(), refuse: &rtmp.StatusError{Code: "NetStream.Publish.BadName", Description: "unknown stream key"}}
	addr := startServer(t, h, rtmp.Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	stderr, err := runFFmpeg(ctx, "-re", "-f", "lavfi", "-i", "sine=frequency=440", "-c:a", "aac", "-t", "5", "-f", "flv", "rtmp://"+addr+"/app/NOPE")
	if err == nil {
		t.Fatalf("ffmpeg succeeded against a refusing server; stderr:\n%s", stderr)
	}
	if ctx.Err() != nil {
		t.Fatalf("ffmpeg hung until the timeout")
	}
	if time.Since(start) > 4*time.Second {
		t.Errorf("ffmpeg took %v to give up, want a prompt refusal", time.Since(start))
	}
	if !strings.Contains(stderr, "unknown stream key") && !strings.Contains(stderr, "BadName") {
		t.Errorf("ffmpeg output does not show the refusal:\n%s", stderr)
	}
}

func TestGarbageClosesOnlyThatConnection(t *testing.T) {
	needFFmpeg(t)
	h := &handler{t: t, base: t.TempDir(), newPub: make(chan *pipeline, 1)}
	addr := startServer(t, h, rtmp.Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ffDone := make(chan error, 1)
	var ffErr string
	go func() {
		s, err := runFFmpeg(ctx, "-re", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30", "-c:v", "libx264", "-preset", "veryfast",
			"-tune", "zerolatency", "-g", "30", "-t", "5", "-f", "flv", "rtmp://"+addr+"/app/LIVE")
		ffErr = s
		ffDone <- err
	}()
	var p *pipeline
	select {
	case p = <-h.newPub:
	case <-time.After(15 * time.Second):
		t.Fatal("ffmpeg did not publish")
	}
	time.Sleep(time.Second)
	garbage := [][]byte{
		[]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"),   // wrong handshake version
		append([]byte{3}, make([]byte, 1536+1536)...), // handshake, C2, then nothing valid below
	}
	// After a good handshake: a type 0 chunk of a command message with undecodable AMF0.
	bad := append([]byte{3}, make([]byte, 1536)...)
	for i, g := range garbage {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		payload := g
		if i == 1 {
			payload = bad
		}
		if _, err := c.Write(payload); err != nil {
			t.Fatal(err)
		}
		if i == 1 {
			// read S0S1S2, send C2 and a broken command message
			if _, err := io.ReadFull(c, make([]byte, 1+2*1536)); err != nil {
				t.Fatal(err)
			}
			junk := append(make([]byte, 1536), 0x03, 0, 0, 0, 0, 0, 8, 20, 0, 0, 0, 0, 0xee, 0xee, 0xee, 0xee, 0xee, 0xee, 0xee, 0xee)
			if _, err := c.Write(junk); err != nil {
				t.Fatal(err)
			}
		}
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err = io.Copy(io.Discard, c)
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Errorf("garbage conn %d: server did not close it: %v", i, err)
		}
		c.Close()
	}
	if err := <-ffDone; err != nil {
		t.Fatalf("ffmpeg publisher failed: %v\n%s", err, ffErr)
	}
	if cause := <-p.closed; cause != nil {
		t.Errorf("publisher closed with %v", cause)
	}
	if d, _ := p.seg.Finish(); d < 4*time.Second {
		t.Errorf("publisher recorded %v, want about 5s", d)
	}
}
