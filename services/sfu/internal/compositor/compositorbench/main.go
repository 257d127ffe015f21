// Command compositorbench measures the compositor's CPU: N participants (real VP8 video and Opus
// audio, encoded by ffmpeg beforehand and sent as live RTP) composed at the given size and
// published over RTMP to a local `ffmpeg -listen 1` that discards it. It prints the cores
// used by the Go process (composition, mixing and the synthetic senders), the decoder
// ffmpegs and the encoder ffmpeg.
//
//	go run ./services/sfu/internal/compositor/compositorbench -participants 4 -size 1280x720 -duration 30s
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spacecast/spacecast/services/sfu/internal/compositor"
	"github.com/spacecast/spacecast/services/sfu/internal/compositor/synthsrc"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run() error {
	n := flag.Int("participants", 4, "video+audio participants")
	size := flag.String("size", "1280x720", "output WxH")
	fps := flag.Int("fps", 30, "output frame rate")
	preset := flag.String("preset", "veryfast", "x264 preset")
	layout := flag.String("layout", "gallery", "gallery|active-speaker|crop")
	src := flag.String("source", "1280x720", "each participant's camera WxH")
	dur := flag.Duration("duration", 30*time.Second, "measured time (after 5 s warm-up)")
	port := flag.Int("port", 18850, "local RTMP receiver port")
	cache := flag.String("cache", filepath.Join(os.TempDir(), "compositor-bench-src"), "where the encoded sources are kept between runs")
	flag.Parse()
	var w, h int
	if _, err := fmt.Sscanf(*size, "%dx%d", &w, &h); err != nil {
		return fmt.Errorf("-size %q: %v", *size, err)
	}
	dir := filepath.Join(*cache, strings.ReplaceAll(*src, "x", "_"))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}

	fmt.Printf("encoding %d × %s VP8 + Opus sources…\n", *n, *src)
	hues := []int{0, 90, 180, 270, 45, 135, 225, 315, 20}
	var video, audio []string
	for i := 0; i < *n; i++ {
		v, a := filepath.Join(dir, fmt.Sprint("v", i, ".ivf")), filepath.Join(dir, fmt.Sprint("a", i, ".ogg"))
		if _, err := os.Stat(v); err != nil {
			if v, err = synthsrc.VP8("ffmpeg", dir, fmt.Sprint("v", i),
				fmt.Sprintf("testsrc2=s=%s:r=30,hue=h=%d", *src, hues[i%len(hues)]), 6, "1500k"); err != nil {
				return err
			}
		}
		if _, err := os.Stat(a); err != nil {
			if a, err = synthsrc.Opus("ffmpeg", dir, fmt.Sprint("a", i), 300+150*i, 6); err != nil {
				return err
			}
		}
		video, audio = append(video, v), append(audio, a)
	}

	rx := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-listen", "1", "-f", "flv",
		"-i", fmt.Sprintf("rtmp://127.0.0.1:%d/app/key", *port), "-c", "copy", "-f", "null", "-")
	rx.Stderr = os.Stderr
	if err := rx.Start(); err != nil {
		return err
	}
	defer func() { _ = rx.Process.Kill(); _ = rx.Wait() }()
	time.Sleep(500 * time.Millisecond) // the receiver listening

	c, err := compositor.New(compositor.Options{Width: w, Height: h, FPS: *fps, Preset: *preset,
		Layout: compositor.Layout(*layout), RTMPURL: fmt.Sprintf("rtmp://127.0.0.1:%d/app/key", *port),
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for i := 0; i < *n; i++ {
		id := fmt.Sprint("p", i)
		vw, err := c.AddVideo(id, "Participant "+strconv.Itoa(i+1), "VP8")
		if err != nil {
			return err
		}
		aw, err := c.AddAudio(id)
		if err != nil {
			return err
		}
		go func(v string) { _ = synthsrc.SendVP8(ctx, v, 30, vw) }(video[i])
		go func(a string) { _ = synthsrc.SendOpus(ctx, a, aw) }(audio[i])
	}
	time.Sleep(5 * time.Second)
	st0, err := c.Stats()
	if err != nil {
		return err
	}
	self0, kids0 := cpu(os.Getpid()), cpuOf(st0.PIDs)
	t0 := time.Now()
	time.Sleep(*dur)
	st1, err := c.Stats()
	if err != nil {
		return err
	}
	el := time.Since(t0).Seconds()
	self1, kids1 := cpu(os.Getpid()), cpuOf(st1.PIDs)
	enc := (kids1[st1.PIDs[0]] - kids0[st0.PIDs[0]]) / el
	var dec float64
	for _, pid := range st1.PIDs[1:] {
		dec += (kids1[pid] - kids0[pid]) / el
	}
	goCores := (self1 - self0) / el
	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Printf("%d participants, %s source, %dx%d@%d %s, preset %s, %.0f s measured\n", *n, *src, w, h, *fps, *layout, *preset, el)
	fmt.Printf("cores: go process %.3f | %d decoders %.3f | encoder %.3f | total %.3f\n", goCores, len(st1.PIDs)-1, dec, enc, goCores+dec+enc)
	fmt.Printf("pictures out %d (%.1f/s), skipped %d; loadavg %s", st1.FramesOut-st0.FramesOut,
		float64(st1.FramesOut-st0.FramesOut)/el, st1.FramesSkipped, load)
	return nil
}

// cpu is a process's user+system CPU seconds from /proc/PID/stat.
func cpu(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100 // USER_HZ
}

func cpuOf(pids []int) map[int]float64 {
	m := map[int]float64{}
	for _, p := range pids {
		m[p] = cpu(p)
	}
	return m
}
