package compositor_test

import (
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
	"sync/atomic"
	"testing"
	"time"

	"github.com/spacecast/spacecast/services/sfu/internal/compositor"
	"github.com/spacecast/spacecast/services/sfu/internal/compositor/synthsrc"
)

// needFFmpeg skips without ffmpeg/ffprobe, except in CI where their absence is a failure.
func needFFmpeg(t *testing.T) {
	t.Helper()
	for _, bin := range []string{"ffmpeg", "ffprobe"} {
		if _, err := exec.LookPath(bin); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("%s not installed (required in CI)", bin)
			}
			t.Skipf("%s not installed", bin)
		}
	}
}

type tlog struct{ t *testing.T }

func (w tlog) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

// rtmpReceiver is `ffmpeg -listen 1` writing what it receives to a file, behind a TCP proxy
// that counts connections (so the test sees whether the RTMP session ever restarted).
type rtmpReceiver struct {
	URL   string
	File  string
	conns atomic.Int32
	cmd   *exec.Cmd
	done  chan error
	ln    net.Listener
}

func startReceiver(t *testing.T, dir string, proxyPort, ffmpegPort int) *rtmpReceiver {
	t.Helper()
	r := &rtmpReceiver{File: filepath.Join(dir, "received.flv"), done: make(chan error, 1),
		URL: fmt.Sprintf("rtmp://127.0.0.1:%d/app/key", proxyPort)}
	r.cmd = exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-listen", "1",
		"-f", "flv", "-i", fmt.Sprintf("rtmp://127.0.0.1:%d/app/key", ffmpegPort),
		"-c", "copy", "-f", "flv", r.File)
	r.cmd.Stderr = tlog{t}
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { r.done <- r.cmd.Wait() }()
	t.Cleanup(func() { _ = r.cmd.Process.Kill() })
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", proxyPort))
	if err != nil {
		t.Fatal(err)
	}
	r.ln = ln
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			r.conns.Add(1)
			go func() {
				defer c.Close()
				var up net.Conn
				for i := 0; i < 100; i++ {
					if up, err = net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", ffmpegPort)); err == nil {
						break
					}
					time.Sleep(50 * time.Millisecond)
				}
				if up == nil {
					return
				}
				defer up.Close()
				go func() { _, _ = io.Copy(up, c); _ = up.(*net.TCPConn).CloseWrite() }()
				_, _ = io.Copy(c, up)
			}()
		}
	}()
	return r
}

type rgb struct{ R, G, B int }

var palette = map[string]rgb{
	"red": {255, 0, 0}, "lime": {0, 255, 0}, "blue": {0, 0, 255}, "yellow": {255, 255, 0},
	"magenta": {255, 0, 255}, "slate": {31, 37, 53}, "black": {0, 0, 0}, "white": {255, 255, 255},
}

func nearest(c rgb) (string, int) {
	best, bd := "", math.MaxInt
	for name, p := range palette {
		d := (c.R-p.R)*(c.R-p.R) + (c.G-p.G)*(c.G-p.G) + (c.B-p.B)*(c.B-p.B)
		if d < bd {
			best, bd = name, d
		}
	}
	return best, int(math.Sqrt(float64(bd)))
}

type picture struct {
	w, h int
	pix  []byte // rgb24
}

func (p picture) at(x, y int) rgb {
	// mean of a 7×7 patch
	var r, g, b, n int
	for yy := max(0, y-3); yy <= min(p.h-1, y+3); yy++ {
		for xx := max(0, x-3); xx <= min(p.w-1, x+3); xx++ {
			i := (yy*p.w + xx) * 3
			r, g, b, n = r+int(p.pix[i]), g+int(p.pix[i+1]), b+int(p.pix[i+2]), n+1
		}
	}
	return rgb{r / n, g / n, b / n}
}

func grab(t *testing.T, file string, at time.Duration, w, h int) picture {
	t.Helper()
	out, err := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-ss", fmt.Sprintf("%.3f", at.Seconds()),
		"-i", file, "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1").Output()
	if err != nil || len(out) != w*h*3 {
		t.Fatalf("grab at %v: %v (%d bytes)", at, err, len(out))
	}
	return picture{w, h, out}
}

// goertzel is the power of freq in mono s16 samples at 48 kHz.
func goertzel(s []int16, freq float64) float64 {
	k := 2 * math.Cos(2*math.Pi*freq/48000)
	var a, b float64
	for _, v := range s {
		a, b = float64(v)+k*a-b, a
	}
	return a*a + b*b - k*a*b
}

type phase struct {
	name   string
	start  time.Duration // since the compositor started
	grab   time.Duration // when to look, since start
	expect map[[2]int]string
	// text: a region that must hold the placeholder with a name drawn (bright pixels)
	text *[4]int
}

func TestCompositorPublishesLayouts(t *testing.T) {
	needFFmpeg(t)
	dir := t.TempDir()
	const W, H = 640, 360
	colours := []string{"red", "lime", "blue", "yellow"}
	// three VP8 tracks and one H.264 (yellow)
	var files []string
	for _, c := range colours {
		enc := synthsrc.VP8
		if c == "yellow" {
			enc = synthsrc.H264
		}
		p, err := enc("ffmpeg", dir, c, "color=c="+c+":s=320x240:r=30", 4, "150k")
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, p)
	}
	tones := []int{440, 1000}
	var ogg []string
	for _, f := range tones {
		p, err := synthsrc.Opus("ffmpeg", dir, strconv.Itoa(f), f, 4)
		if err != nil {
			t.Fatal(err)
		}
		ogg = append(ogg, p)
	}
	bg := filepath.Join(dir, "bg.png")
	if out, err := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i", "color=c=magenta:s=400x300", "-frames:v", "1", bg).CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	bgFile, err := os.Open(bg)
	if err != nil {
		t.Fatal(err)
	}
	defer bgFile.Close()

	rx := startReceiver(t, dir, 18801, 18802)
	c, err := compositor.New(compositor.Options{Width: W, Height: H, FPS: 30, Preset: "ultrafast",
		RTMPURL: rx.URL, Background: bgFile, Logger: slog.New(slog.NewTextHandler(tlog{t}, nil))})
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	defer func() {
		if !closed {
			_ = c.Close()
		}
	}()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var senders sync.WaitGroup
	send := func(f func(context.Context) error) (stop func()) {
		sctx, scancel := context.WithCancel(ctx)
		senders.Add(1)
		go func() {
			defer senders.Done()
			if err := f(sctx); err != nil && !errors.Is(err, compositor.ErrClosed) {
				t.Errorf("sender: %v", err)
			}
		}()
		return scancel
	}
	stops := map[string]func(){}
	for i, col := range colours {
		codec, sender := "video/VP8", synthsrc.SendVP8
		if col == "yellow" {
			codec, sender = "video/H264", synthsrc.SendH264
		}
		w, err := c.AddVideo(col, "Guest "+col, codec)
		if err != nil {
			t.Fatal(err)
		}
		path := files[i]
		stops[col] = send(func(ctx context.Context) error { return sender(ctx, path, 30, w) })
	}
	for i, f := range tones {
		w, err := c.AddAudio("tone" + strconv.Itoa(f))
		if err != nil {
			t.Fatal(err)
		}
		path := ogg[i]
		send(func(ctx context.Context) error { return synthsrc.SendOpus(ctx, path, w) })
	}

	// bad input changes nothing
	if _, err := c.AddVideo("red", "again", "VP8"); !errors.Is(err, compositor.ErrDuplicateID) {
		t.Errorf("duplicate video: %v", err)
	}
	if _, err := c.AddVideo("x", "x", "VP9"); !errors.Is(err, compositor.ErrUnsupportedCodec) {
		t.Errorf("VP9: %v", err)
	}
	if _, err := c.AddAudio(""); !errors.Is(err, compositor.ErrBadID) {
		t.Errorf("empty id: %v", err)
	}
	if err := c.SetMuted("nobody", true); !errors.Is(err, compositor.ErrUnknownID) {
		t.Errorf("mute unknown: %v", err)
	}
	if err := c.SetActiveSpeaker("nobody"); !errors.Is(err, compositor.ErrUnknownID) {
		t.Errorf("speaker unknown: %v", err)
	}
	if err := c.SetLayout("mosaic"); !errors.Is(err, compositor.ErrBadLayout) {
		t.Errorf("layout: %v", err)
	}
	if err := c.SetBackground(strings.NewReader("not an image")); !errors.Is(err, compositor.ErrBackground) {
		t.Errorf("bad background: %v", err)
	}

	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	var phases []phase
	// the picture's time in the output is its number over the frame rate
	mark := func(p phase, hold time.Duration) {
		st, err := c.Stats()
		must(err)
		p.start = time.Duration(st.FramesOut) * time.Second / 30
		p.grab = hold - 700*time.Millisecond
		phases = append(phases, p)
		time.Sleep(hold)
	}
	// 2×2 gallery: 4:3 pictures fitted in 16:9 cells, the background in the pillars.
	mark(phase{name: "gallery 4", expect: map[[2]int]string{
		{160, 90}: "red", {480, 90}: "lime", {160, 270}: "blue", {480, 270}: "yellow",
		{14, 90}: "magenta", {626, 270}: "magenta"}}, 5*time.Second) // decoders start (ffmpeg takes ~1 s to start on a loaded machine)
	must(c.SetMuted("blue", true))
	mark(phase{name: "blue muted", expect: map[[2]int]string{
		{160, 90}: "red", {480, 90}: "lime", {20, 200}: "slate", {480, 270}: "yellow"},
		text: &[4]int{4, 182, 314, 174}}, 2500*time.Millisecond)
	must(c.SetMuted("blue", false))
	stops["yellow"]()
	must(c.Remove("yellow"))
	if err := c.Remove("yellow"); !errors.Is(err, compositor.ErrUnknownID) {
		t.Errorf("second remove: %v", err)
	}
	// three: last row centred
	mark(phase{name: "gallery 3 after leave", expect: map[[2]int]string{
		{160, 90}: "red", {480, 90}: "lime", {320, 270}: "blue", {100, 270}: "magenta", {540, 270}: "magenta"}}, 2500*time.Millisecond)
	must(c.SetLayout(compositor.LayoutCrop))
	mark(phase{name: "crop 3", expect: map[[2]int]string{
		{14, 90}: "red", {626, 90}: "lime", {172, 270}: "blue", {466, 270}: "blue", {100, 270}: "magenta"}}, 2500*time.Millisecond)
	must(c.SetLayout(compositor.LayoutActiveSpeaker))
	must(c.SetActiveSpeaker("lime"))
	mark(phase{name: "active speaker lime", expect: map[[2]int]string{
		{320, 140}: "lime", {20, 140}: "lime", {258, 322}: "red", {382, 322}: "blue", {60, 322}: "magenta"}}, 2500*time.Millisecond)
	must(c.SetScreenshare("red"))
	mark(phase{name: "screenshare red", expect: map[[2]int]string{
		{320, 140}: "red", {20, 140}: "magenta", {258, 322}: "lime", {382, 322}: "blue"}}, 2500*time.Millisecond)
	st, err := c.Stats()
	must(err)
	total := time.Duration(st.FramesOut) * time.Second / 30
	if st.FramesSkipped > 0 {
		t.Logf("%d pictures skipped (encoder behind)", st.FramesSkipped)
	}
	if st.Tiles != 3 || st.AudioTracks != 2 || len(st.PIDs) != 6 {
		t.Errorf("stats %+v", st)
	}
	cancel()
	senders.Wait()
	must(c.Close())
	closed = true
	for _, pid := range st.PIDs { // every child reaped
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err == nil {
			if b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); strings.Contains(string(b), "ffmpeg") {
				t.Errorf("ffmpeg %d still there after Close", pid)
			}
		}
	}
	select {
	case err := <-rx.done:
		if err != nil {
			t.Fatalf("receiver: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("receiver did not finish")
	}
	if n := rx.conns.Load(); n != 1 {
		t.Fatalf("%d RTMP connections, want one for the whole run", n)
	}

	// what was published
	out, err := exec.Command("ffprobe", "-v", "error", "-show_entries", "stream=codec_type,codec_name,width,height,sample_rate,channels:format=duration",
		"-of", "json", rx.File).Output()
	must(err)
	var probe struct {
		Streams []struct {
			CodecType  string `json:"codec_type"`
			CodecName  string `json:"codec_name"`
			Width      int    `json:"width"`
			Height     int    `json:"height"`
			SampleRate string `json:"sample_rate"`
		} `json:"streams"`
		Format struct {
			Duration string `json:"duration"`
		} `json:"format"`
	}
	must(json.Unmarshal(out, &probe))
	var v, a bool
	for _, s := range probe.Streams {
		switch {
		case s.CodecType == "video" && s.CodecName == "h264" && s.Width == W && s.Height == H:
			v = true
		case s.CodecType == "audio" && s.CodecName == "aac" && s.SampleRate == "48000":
			a = true
		}
	}
	if !v || !a {
		t.Fatalf("ffprobe: %s", out)
	}
	dur, _ := strconv.ParseFloat(probe.Format.Duration, 64)
	if dur < total.Seconds()-1.5 {
		t.Errorf("published %.1f s, ran %.1f s", dur, total.Seconds())
	}
	t.Logf("published %.1f s of %dx%d H.264 + AAC over one RTMP connection", dur, W, H)

	for _, p := range phases {
		pic := grab(t, rx.File, p.start+p.grab, W, H)
		for pt, want := range p.expect {
			got, dist := nearest(pic.at(pt[0], pt[1]))
			if got != want || dist > 90 {
				t.Errorf("%s: at %v %s (%+v, off by %d), want %s", p.name, pt, got, pic.at(pt[0], pt[1]), dist, want)
			}
		}
		if p.text != nil {
			r := *p.text
			bright, source := 0, 0
			for y := r[1]; y < r[1]+r[3]; y++ {
				for x := r[0]; x < r[0]+r[2]; x++ {
					i := (y*W + x) * 3
					px := rgb{int(pic.pix[i]), int(pic.pix[i+1]), int(pic.pix[i+2])}
					switch n, _ := nearest(px); n {
					case "white":
						bright++
					case "blue":
						source++
					}
				}
			}
			if bright < 200 || source > 50 {
				t.Errorf("%s: placeholder has %d text pixels and %d source pixels", p.name, bright, source)
			}
		}
	}

	// the mix holds both tones
	pcmOut, err := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-ss", "3", "-t", "6", "-i", rx.File,
		"-vn", "-ac", "1", "-ar", "48000", "-f", "s16le", "pipe:1").Output()
	must(err)
	pcm := make([]int16, len(pcmOut)/2)
	for i := range pcm {
		pcm[i] = int16(uint16(pcmOut[2*i]) | uint16(pcmOut[2*i+1])<<8)
	}
	if len(pcm) < 48000*4 {
		t.Fatalf("%d audio samples", len(pcm))
	}
	var noise float64
	for _, f := range []float64{300, 700, 1500, 2500} {
		noise = max(noise, goertzel(pcm, f))
	}
	for _, f := range tones {
		if p := goertzel(pcm, float64(f)); p < 100*noise {
			t.Errorf("%d Hz power %.3g, strongest other %.3g", f, p, noise)
		}
	}
}
