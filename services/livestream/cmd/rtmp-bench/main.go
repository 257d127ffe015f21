// Command rtmp-bench measures RTMP ingest: it publishes N concurrent streams from one FLV file
// at real-time pace (no encoding in the loop) to an ingest server (rtmp + flv + hls packages)
// that it runs in a separate process, and prints the server's CPU per stream, its memory, and
// the delay from a keyframe arriving to its segment being listed in the live playlist.
//
//	go run ./cmd/rtmp-bench -n 50 -duration 60s
//
// With -addr it publishes to an already running server (e.g. `spacecast dev`) instead, using
// the stream keys given with -keys; only client-side figures are printed then.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spacecast/spacecast/services/livestream/internal/flv"
	"github.com/spacecast/spacecast/services/livestream/internal/hls"
	"github.com/spacecast/spacecast/services/livestream/internal/rtmp"
)

func main() {
	var (
		n        = flag.Int("n", 50, "concurrent streams")
		duration = flag.Duration("duration", 60*time.Second, "measured publishing time (after the warm-up)")
		warmup   = flag.Duration("warmup", 5*time.Second, "time before measuring starts")
		flvPath  = flag.String("flv", "", "FLV file to publish (default: generate ~3 Mbps 720p30 H.264 + AAC with ffmpeg)")
		segDur   = flag.Duration("segment", 2*time.Second, "HLS target segment duration")
		addr     = flag.String("addr", "", "publish to this running RTMP server (host:port) instead of starting one")
		app      = flag.String("app", "live", "RTMP app with -addr")
		keys     = flag.String("keys", "", "comma-separated stream keys for -addr (one stream per key)")
		keep     = flag.Bool("keep", false, "keep the work directory (segments)")
		serve    = flag.Bool("serve", false, "internal: run the ingest server (started by the benchmark itself)")
		listen   = flag.String("listen", "127.0.0.1:0", "internal: -serve listen address")
		dir      = flag.String("dir", "", "internal: -serve output directory")
	)
	flag.Parse()
	if *serve {
		if err := runServer(*listen, *dir, *segDur); err != nil {
			fmt.Fprintln(os.Stderr, "rtmp-bench -serve:", err)
			os.Exit(1)
		}
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, *n, *duration, *warmup, *flvPath, *segDur, *addr, *app, *keys, *keep); err != nil {
		fmt.Fprintln(os.Stderr, "rtmp-bench:", err)
		os.Exit(1)
	}
}

// ---- server side (separate process) ----

type serverStats struct {
	Streams      int       `json:"streams"`
	Segments     int       `json:"segments"`
	DelaysMS     []float64 `json:"delays_ms"`
	OverheadMS   []float64 `json:"overhead_ms"` // delay minus the segment's own duration
	SegDursMS    []float64 `json:"segment_durations_ms"`
	AbnormalEnds int       `json:"abnormal_ends"`
	Errors       []string  `json:"errors,omitempty"`
}

type benchHandler struct {
	dir    string
	segDur time.Duration
	mu     sync.Mutex
	stats  serverStats
}

type benchStream struct {
	h       *benchHandler
	demux   *flv.Demuxer
	seg     *hls.Segmenter
	mu      sync.Mutex
	arrived map[time.Duration]time.Time // keyframe DTS -> wall time it arrived
}

func (h *benchHandler) Publish(ctx context.Context, req rtmp.PublishRequest) (rtmp.Stream, error) {
	s := &benchStream{h: h, demux: flv.NewDemuxer(), arrived: map[time.Duration]time.Time{}}
	seg, err := hls.NewSegmenter(hls.SegmenterConfig{
		Dir:            filepath.Join(h.dir, req.StreamKey),
		TargetDuration: h.segDur,
		OnSegment:      s.onSegment,
	})
	if err != nil {
		return nil, err
	}
	s.seg = seg
	h.mu.Lock()
	h.stats.Streams++
	h.mu.Unlock()
	return s, nil
}

func (s *benchStream) WriteTag(tag flv.Tag) error {
	pkts, err := s.demux.Push(tag)
	if err != nil {
		return err
	}
	for _, p := range pkts {
		if p.Keyframe && p.Kind == flv.Video {
			s.mu.Lock()
			s.arrived[p.DTS] = time.Now()
			s.mu.Unlock()
		}
		if err := s.seg.WritePacket(p); err != nil {
			return err
		}
	}
	return nil
}

func (s *benchStream) onSegment(si hls.SegmentInfo) {
	now := time.Now()
	s.mu.Lock()
	at, ok := s.arrived[si.FirstKeyframeDTS]
	for dts := range s.arrived {
		if dts <= si.FirstKeyframeDTS {
			delete(s.arrived, dts)
		}
	}
	s.mu.Unlock()
	s.h.mu.Lock()
	defer s.h.mu.Unlock()
	s.h.stats.Segments++
	s.h.stats.SegDursMS = append(s.h.stats.SegDursMS, float64(si.Duration)/1e6)
	if ok {
		s.h.stats.DelaysMS = append(s.h.stats.DelaysMS, float64(now.Sub(at))/1e6)
		s.h.stats.OverheadMS = append(s.h.stats.OverheadMS, float64(now.Sub(at)-si.Duration)/1e6)
	}
}

func (s *benchStream) Close(cause error) {
	_, err := s.seg.Finish()
	s.h.mu.Lock()
	defer s.h.mu.Unlock()
	if cause != nil {
		s.h.stats.AbnormalEnds++
		if len(s.h.stats.Errors) < 10 {
			s.h.stats.Errors = append(s.h.stats.Errors, cause.Error())
		}
	}
	if err != nil && len(s.h.stats.Errors) < 10 {
		s.h.stats.Errors = append(s.h.stats.Errors, err.Error())
	}
}

// runServer serves until stdin closes, then prints its stats as JSON on stdout.
func runServer(listen, dir string, segDur time.Duration) error {
	if dir == "" {
		return errors.New("-dir is required")
	}
	h := &benchHandler{dir: dir, segDur: segDur}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	srv, err := rtmp.NewServer(rtmp.Config{Logger: log, Handler: h})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	fmt.Printf("LISTEN %s\n", ln.Addr())
	_, _ = io.Copy(io.Discard, os.Stdin) // the benchmark closes stdin when done
	cancel()
	if err := <-done; err != nil {
		return err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return json.NewEncoder(os.Stdout).Encode(h.stats)
}

// ---- benchmark driver ----

func run(ctx context.Context, n int, duration, warmup time.Duration, flvPath string, segDur time.Duration, addr, app, keyList string, keep bool) error {
	work, err := os.MkdirTemp("", "rtmp-bench-")
	if err != nil {
		return err
	}
	if keep {
		fmt.Println("work directory:", work)
	} else {
		defer os.RemoveAll(work)
	}
	if flvPath == "" {
		flvPath = filepath.Join(work, "source.flv")
		fmt.Println("generating a 20 s 1280x720 30 fps ~3 Mbps H.264 + AAC FLV with ffmpeg ...")
		cmd := exec.CommandContext(ctx, "ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error",
			"-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
			"-c:v", "libx264", "-preset", "veryfast", "-b:v", "2850k", "-maxrate", "2850k", "-bufsize", "5700k",
			"-g", "60", "-keyint_min", "60", "-sc_threshold", "0", "-pix_fmt", "yuv420p",
			"-c:a", "aac", "-b:a", "128k", "-ac", "2", "-t", "20", "-f", "flv", flvPath)
		cmd.Stderr = os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("ffmpeg: %w", err)
		}
	}
	tags, length, bytesTotal, err := loadFLV(flvPath)
	if err != nil {
		return err
	}
	fmt.Printf("source: %s, %d tags, %.1f s, %.2f Mbit/s\n", flvPath, len(tags), length.Seconds(), float64(bytesTotal*8)/length.Seconds()/1e6)

	var urls []string
	var child *exec.Cmd
	var childIn io.WriteCloser
	var childOut *bufio.Reader
	if addr == "" {
		hlsDir := filepath.Join(work, "hls")
		exe, err := os.Executable()
		if err != nil {
			return err
		}
		child = exec.Command(exe, "-serve", "-listen", "127.0.0.1:0", "-dir", hlsDir, "-segment", segDur.String())
		child.Stderr = os.Stderr
		if childIn, err = child.StdinPipe(); err != nil {
			return err
		}
		out, err := child.StdoutPipe()
		if err != nil {
			return err
		}
		if err := child.Start(); err != nil {
			return err
		}
		defer child.Process.Kill()
		childOut = bufio.NewReader(out)
		line, err := childOut.ReadString('\n')
		if err != nil {
			return fmt.Errorf("server process: %w", err)
		}
		listenAddr, ok := strings.CutPrefix(strings.TrimSpace(line), "LISTEN ")
		if !ok {
			return fmt.Errorf("server process said %q", line)
		}
		for i := 0; i < n; i++ {
			urls = append(urls, fmt.Sprintf("rtmp://%s/%s/bench-%03d", listenAddr, app, i))
		}
	} else {
		for _, k := range strings.Split(keyList, ",") {
			if k = strings.TrimSpace(k); k != "" {
				urls = append(urls, fmt.Sprintf("rtmp://%s/%s/%s", addr, app, k))
			}
		}
		if len(urls) == 0 {
			return errors.New("-addr needs -keys")
		}
		n = len(urls)
	}

	// Publish: streams start spread over 2 s so that their keyframes do not all line up.
	pubCtx, cancelPub := context.WithCancel(ctx)
	defer cancelPub()
	var wg sync.WaitGroup
	var sentBytes atomic.Int64
	var failures atomic.Int64
	var lateMax atomic.Int64
	errs := make(chan error, n)
	for i, u := range urls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case <-time.After(time.Duration(i) * 2 * time.Second / time.Duration(n)):
			case <-pubCtx.Done():
				return
			}
			if err := publish(pubCtx, u, tags, length, &sentBytes, &lateMax); err != nil && pubCtx.Err() == nil {
				failures.Add(1)
				errs <- fmt.Errorf("%s: %w", u, err)
			}
		}()
	}
	fmt.Printf("publishing %d streams; warm-up %v, measuring %v ...\n", n, warmup, duration)
	if !sleepCtx(ctx, warmup+2*time.Second) {
		return ctx.Err()
	}
	var cpu0 time.Duration
	var pid int
	if child != nil {
		pid = child.Process.Pid
		if cpu0, err = procCPU(pid); err != nil {
			return err
		}
	}
	bytes0 := sentBytes.Load()
	t0 := time.Now()
	sleepCtx(ctx, duration)
	wall := time.Since(t0)
	bytes1 := sentBytes.Load()
	var cpu1 time.Duration
	var rss, hwm int64
	if child != nil {
		if cpu1, err = procCPU(pid); err != nil {
			return err
		}
		rss, hwm, _ = procMem(pid)
	}
	cancelPub()
	wg.Wait()
	close(errs)
	for err := range errs {
		fmt.Println("publish error:", err)
	}

	fmt.Println()
	fmt.Printf("machine: %d CPUs (%s), %s %s/%s\n", runtime.NumCPU(), cpuModel(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
	fmt.Printf("streams: %d, failed: %d, measured wall time: %.1f s, ingest rate: %.1f Mbit/s total\n",
		n, failures.Load(), wall.Seconds(), float64(bytes1-bytes0)*8/wall.Seconds()/1e6)
	fmt.Printf("client pacing: worst lateness %v\n", time.Duration(lateMax.Load()).Round(time.Millisecond))
	if child == nil {
		return nil
	}
	used := cpu1 - cpu0
	fmt.Printf("server CPU: %.3f cores total, %.2f%% of one core per stream (%.1f ms CPU per stream-second)\n",
		used.Seconds()/wall.Seconds(), 100*used.Seconds()/wall.Seconds()/float64(n), 1000*used.Seconds()/wall.Seconds()/float64(n))
	fmt.Printf("server memory: RSS %.1f MiB (peak %.1f MiB), %.2f MiB per stream\n",
		float64(rss)/(1<<20), float64(hwm)/(1<<20), float64(rss)/(1<<20)/float64(n))

	// Stop the server and read its stats.
	_ = childIn.Close()
	var st serverStats
	if err := json.NewDecoder(childOut).Decode(&st); err != nil {
		return fmt.Errorf("reading server stats: %w", err)
	}
	_ = child.Wait()
	slices.Sort(st.DelaysMS)
	slices.Sort(st.SegDursMS)
	slices.Sort(st.OverheadMS)
	fmt.Printf("segments: %d from %d publishes; segment duration p50 %.0f ms, max %.0f ms\n",
		st.Segments, st.Streams, pct(st.SegDursMS, 50), pct(st.SegDursMS, 100))
	fmt.Printf("keyframe in -> segment in playlist: p50 %.0f ms, p95 %.0f ms, max %.0f ms (target <= %.0f ms)\n",
		pct(st.DelaysMS, 50), pct(st.DelaysMS, 95), pct(st.DelaysMS, 100), float64(segDur+500*time.Millisecond)/1e6)
	fmt.Printf("  of which processing (delay minus the segment's duration): p50 %.1f ms, p95 %.1f ms, max %.1f ms\n",
		pct(st.OverheadMS, 50), pct(st.OverheadMS, 95), pct(st.OverheadMS, 100))
	fmt.Printf("publishes that ended abnormally: %d %v\n", st.AbnormalEnds, st.Errors)
	return nil
}

func pct(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted)-1) * p / 100)
	return sorted[i]
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	select {
	case <-time.After(d):
		return true
	case <-ctx.Done():
		return false
	}
}

func loadFLV(path string) ([]flv.Tag, time.Duration, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, 0, err
	}
	defer f.Close()
	r, err := flv.NewReader(bufio.NewReader(f))
	if err != nil {
		return nil, 0, 0, err
	}
	var tags []flv.Tag
	var total int64
	for {
		t, err := r.ReadTag()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, 0, 0, err
		}
		tags = append(tags, t)
		total += int64(len(t.Data))
	}
	if len(tags) < 2 {
		return nil, 0, 0, errors.New("FLV has no media")
	}
	first, last := tags[0].Timestamp, tags[0].Timestamp
	for _, t := range tags {
		first, last = min(first, t.Timestamp), max(last, t.Timestamp)
	}
	// One frame interval past the last tag, so that loops do not overlap.
	length := time.Duration(last-first+33) * time.Millisecond
	return tags, length, total, nil
}

// publish sends the tags in a loop at real-time pace until ctx ends. Sequence headers and
// metadata (timestamp 0 in the file) are sent once.
func publish(ctx context.Context, url string, tags []flv.Tag, length time.Duration, sent *atomic.Int64, lateMax *atomic.Int64) error {
	cl, err := rtmp.Publish(ctx, url)
	if err != nil {
		return err
	}
	defer cl.Close()
	start := time.Now()
	for loop := 0; ; loop++ {
		offset := time.Duration(loop) * length
		for i, t := range tags {
			if loop > 0 && isConfig(t) {
				continue
			}
			at := start.Add(offset + time.Duration(t.Timestamp)*time.Millisecond)
			if d := time.Until(at); d > 0 {
				if err := cl.Flush(); err != nil {
					return err
				}
				select {
				case <-time.After(d):
				case <-ctx.Done():
					return nil
				}
			} else if late := -d; late > time.Duration(lateMax.Load()) && i > 0 {
				lateMax.Store(int64(late))
			}
			t.Timestamp += offset.Milliseconds()
			if err := cl.WriteTag(t); err != nil {
				return err
			}
			sent.Add(int64(len(t.Data)))
		}
	}
}

func isConfig(t flv.Tag) bool {
	switch t.Type {
	case flv.TagScript:
		return true
	case flv.TagVideo:
		return len(t.Data) > 1 && t.Data[0]&0x0f == flv.CodecAVC && t.Data[1] == flv.AVCSequenceHeader
	case flv.TagAudio:
		return len(t.Data) > 1 && t.Data[0]>>4 == flv.SoundAAC && t.Data[1] == 0
	}
	return false
}

// procCPU is the user+system CPU time of a process (Linux /proc).
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	fields := strings.Fields(s[i+1:])
	if len(fields) < 13 {
		return 0, errors.New("unexpected /proc stat")
	}
	utime, _ := strconv.ParseInt(fields[11], 10, 64)
	stime, _ := strconv.ParseInt(fields[12], 10, 64)
	const clkTck = 100 // USER_HZ on Linux
	return time.Duration(utime+stime) * time.Second / clkTck, nil
}

// procMem returns VmRSS and VmHWM in bytes.
func procMem(pid int) (rss, hwm int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(l, ":")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) == 0 {
			continue
		}
		kb, _ := strconv.ParseInt(f[0], 10, 64)
		switch k {
		case "VmRSS":
			rss = kb << 10
		case "VmHWM":
			hwm = kb << 10
		}
	}
	return rss, hwm, nil
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown"
	}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}
