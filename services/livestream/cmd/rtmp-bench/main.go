// Command rtmp-bench measures RTMP ingest of the live stream service: it publishes N concurrent
// streams from one FLV file at real-time pace (no encoding in the loop) to the real service
// (livestream.New, run in a child process with embedded Kafka, SQLite and -redis or embedded
// Redis) and prints the service's CPU per stream, its memory, and the delay from a keyframe
// entering RTMP to its segment being listed in the recording's playlist on disk.
//
//	go run ./cmd/rtmp-bench -n 50 -duration 60s -redis redis://127.0.0.1:6379/0
//
// -latency standard|reduced|low picks the streams' latency_mode (low: LL-HLS fMP4 parts),
// -transcode turns the adaptive ladder on (its ffmpeg processes' CPU is counted with the
// service's), -size the generated source (e.g. 1920x1080 for the 3-rung ladder).
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
	"math"
	"net/http"
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
	"github.com/spacecast/spacecast/services/livestream/internal/rtmp"
)

func main() {
	var (
		n        = flag.Int("n", 50, "concurrent streams")
		duration = flag.Duration("duration", 60*time.Second, "measured publishing time (after the warm-up)")
		warmup   = flag.Duration("warmup", 8*time.Second, "time before measuring starts")
		flvPath  = flag.String("flv", "", "FLV file to publish (default: generate ~3 Mbps 720p30 H.264 + AAC with ffmpeg)")
		segDur   = flag.Duration("segment", 2*time.Second, "HLS target segment duration")
		redisURL = flag.String("redis", "", "Redis for the service (default: embedded miniredis)")
		addr     = flag.String("addr", "", "publish to this running RTMP server (host:port) instead of starting one")
		app      = flag.String("app", "live", "RTMP app with -addr")
		keys     = flag.String("keys", "", "comma-separated stream keys for -addr (one stream per key)")
		keep     = flag.Bool("keep", false, "keep the work directory (segments)")
		serve    = flag.Bool("serve", false, "internal: run the service (started by the benchmark itself)")
		listen   = flag.String("listen", "127.0.0.1:0", "internal: -serve RTMP listen address")
		dir      = flag.String("dir", "", "internal: -serve work directory")
		cpuprof  = flag.String("cpuprofile", "", "the service process writes its CPU profile (go tool pprof) here")
		kafka    = flag.String("kafka", "", "internal: -serve publishes to this broker instead of embedding one")
		serveK   = flag.Bool("serve-kafka", false, "internal: run an embedded Kafka broker (started by -compare)")
		compare  = flag.Bool("compare", false, "compare with nginx-rtmp: CPU and RSS of each server process alone at every -levels count, in alternating pairs")
		levels   = flag.String("levels", "10,20,50", "with -compare: stream counts")
		pairs    = flag.Int("pairs", 1, "with -compare: alternating pairs per level (order swapped every pair)")
		nginx    = flag.String("nginx", "/usr/sbin/nginx", "with -compare: nginx binary")
		nginxMod = flag.String("nginx-module", "/usr/lib/nginx/modules/ngx_rtmp_module.so", "with -compare: nginx-rtmp module")
		nginxAt  = flag.String("nginx-listen", "127.0.0.1:18510", "with -compare: nginx's RTMP listen address")
		latency  = flag.String("latency", "standard", "latency_mode of the streams: standard, reduced or low")
		ladder   = flag.Bool("transcode", false, "turn the adaptive ladder (ffmpeg rungs) on")
		size     = flag.String("size", "1280x720", "size of the generated source (with -flv unset)")
	)
	flag.Parse()
	if *serve {
		if err := runServer(*listen, *dir, *redisURL, *kafka, *cpuprof, *segDur, *ladder); err != nil {
			fmt.Fprintln(os.Stderr, "rtmp-bench -serve:", err)
			os.Exit(1)
		}
		return
	}
	if *serveK {
		if err := runKafka(); err != nil {
			fmt.Fprintln(os.Stderr, "rtmp-bench -serve-kafka:", err)
			os.Exit(1)
		}
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if *compare {
		co := compareOptions{levels: *levels, pairs: *pairs, nginx: *nginx, module: *nginxMod, nginxListen: *nginxAt}
		o := options{duration: *duration, warmup: *warmup, flvPath: *flvPath, segDur: *segDur, redisURL: *redisURL, keep: *keep, cpuprofile: *cpuprof, latency: *latency, size: *size}
		if err := runCompare(ctx, o, co); err != nil {
			fmt.Fprintln(os.Stderr, "rtmp-bench -compare:", err)
			os.Exit(1)
		}
		return
	}
	o := options{n: *n, duration: *duration, warmup: *warmup, flvPath: *flvPath, segDur: *segDur, redisURL: *redisURL,
		addr: *addr, app: *app, keys: *keys, keep: *keep, cpuprofile: *cpuprof, latency: *latency, transcode: *ladder, size: *size}
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "rtmp-bench:", err)
		os.Exit(1)
	}
}

type options struct {
	n                int
	duration, warmup time.Duration
	flvPath          string
	segDur           time.Duration
	redisURL         string
	addr, app, keys  string
	keep             bool
	kafka            string // -serve -kafka for the child (empty: it embeds a broker)
	cpuprofile       string // the child's CPU profile
	latency          string
	transcode        bool
	size             string
}

// child is the service process.
type child struct {
	cmd        *exec.Cmd
	stdin      io.WriteCloser
	rtmp, http string
	dir        string
}

func startChild(work string, o options) (*child, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe, "-serve", "-dir", filepath.Join(work, "service"), "-segment", o.segDur.String(), "-redis", o.redisURL,
		"-kafka", o.kafka, "-cpuprofile", o.cpuprofile, "-transcode="+strconv.FormatBool(o.transcode))
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c := &child{cmd: cmd, stdin: in}
	rd := bufio.NewReader(out)
	for c.dir == "" {
		line, err := rd.ReadString('\n')
		if err != nil {
			cmd.Process.Kill() //nolint:errcheck
			return nil, fmt.Errorf("service process: %w", err)
		}
		k, v, _ := strings.Cut(strings.TrimSpace(line), " ")
		switch k {
		case "RTMP":
			c.rtmp = v
		case "HTTP":
			c.http = v
		case "DIR":
			c.dir = v
		}
	}
	go io.Copy(io.Discard, rd) //nolint:errcheck
	return c, nil
}

func (c *child) api(method, path, body string, out any) error {
	req, err := http.NewRequest(method, "http://"+c.http+path, strings.NewReader(body))
	if err != nil {
		return err
	}
	req.SetBasicAuth(benchTokenID, benchTokenSecret)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode >= 300 {
		return fmt.Errorf("%s %s: %d %s", method, path, res.StatusCode, b)
	}
	var env struct{ Data json.RawMessage }
	if err := json.Unmarshal(b, &env); err != nil {
		return err
	}
	return json.Unmarshal(env.Data, out)
}

type liveStream struct {
	ID            string  `json:"id"`
	StreamKey     string  `json:"stream_key"`
	Status        string  `json:"status"`
	ActiveAssetID *string `json:"active_asset_id"`
}

// keyframes records when each keyframe (by its FLV timestamp, ms) was handed to the socket.
type keyframes struct {
	mu   sync.Mutex
	sent map[int64]time.Time
}

func (k *keyframes) add(ts int64, at time.Time) {
	k.mu.Lock()
	k.sent[ts] = at
	k.mu.Unlock()
}

// near returns the send time of the keyframe within 50 ms of ts.
func (k *keyframes) near(ts int64) (time.Time, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for d := int64(0); d <= 50; d++ {
		if at, ok := k.sent[ts+d]; ok {
			return at, true
		}
		if at, ok := k.sent[ts-d]; ok {
			return at, true
		}
	}
	return time.Time{}, false
}

// delays collects keyframe → segment-listed delays while measuring.
type delays struct {
	mu        sync.Mutex
	measuring bool
	ms        []float64
	overMS    []float64 // minus the segment's own duration
	unmatched int
}

// watch polls the recording's vod.m3u8 on disk every 20 ms; each new segment starts at the sum
// of the earlier segments' durations, which is its first keyframe's timestamp.
func watch(ctx context.Context, path string, kf *keyframes, d *delays) {
	seen := 0
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		b, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		now := time.Now()
		var durs []float64
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "#EXTINF:"); ok {
				v, _, _ = strings.Cut(v, ",")
				f, _ := strconv.ParseFloat(v, 64)
				durs = append(durs, f)
			}
		}
		start := 0.0
		for i, dur := range durs {
			if i >= seen {
				at, ok := kf.near(int64(math.Round(start * 1000)))
				d.mu.Lock()
				if d.measuring && seen > 0 { // the first segment also waits for track probing
					if ok {
						d.ms = append(d.ms, float64(now.Sub(at))/1e6)
						d.overMS = append(d.overMS, float64(now.Sub(at))/1e6-dur*1000)
					} else {
						d.unmatched++
					}
				}
				d.mu.Unlock()
			}
			start += dur
		}
		seen = len(durs)
	}
}

func run(ctx context.Context, o options) error {
	work, err := os.MkdirTemp("", "rtmp-bench-")
	if err != nil {
		return err
	}
	if o.keep {
		fmt.Println("work directory:", work)
	} else {
		defer os.RemoveAll(work)
	}
	if err := prepareSource(ctx, work, &o); err != nil {
		return err
	}
	tags, length, bytesTotal, err := loadFLV(o.flvPath)
	if err != nil {
		return err
	}
	fmt.Printf("source: %s, %d tags, %.1f s, %.2f Mbit/s\n", o.flvPath, len(tags), length.Seconds(), float64(bytesTotal*8)/length.Seconds()/1e6)

	var urls []string
	var svc *child
	var streams []liveStream
	if o.addr == "" {
		if svc, err = startChild(work, o); err != nil {
			return err
		}
		defer svc.cmd.Process.Kill() //nolint:errcheck
		for range o.n {
			var ls liveStream
			body := fmt.Sprintf(`{"playback_policy":"public","latency_mode":%q}`, o.latency)
			if err := svc.api(http.MethodPost, "/video/v1/live-streams", body, &ls); err != nil {
				return err
			}
			streams = append(streams, ls)
			urls = append(urls, fmt.Sprintf("rtmp://%s/app/%s", svc.rtmp, ls.StreamKey))
		}
	} else {
		for _, k := range strings.Split(o.keys, ",") {
			if k = strings.TrimSpace(k); k != "" {
				urls = append(urls, fmt.Sprintf("rtmp://%s/%s/%s", o.addr, o.app, k))
			}
		}
		if len(urls) == 0 {
			return errors.New("-addr needs -keys")
		}
		o.n = len(urls)
	}

	// Publish: streams start spread over 2 s so that their keyframes do not all line up.
	pubCtx, cancelPub := context.WithCancel(ctx)
	defer cancelPub()
	var wg sync.WaitGroup
	var sentBytes, failures, lateMax atomic.Int64
	dl := &delays{}
	errs := make(chan error, 2*o.n)
	for i, u := range urls {
		kf := &keyframes{sent: map[int64]time.Time{}}
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case <-time.After(time.Duration(i) * 2 * time.Second / time.Duration(o.n)):
			case <-pubCtx.Done():
				return
			}
			if err := publish(pubCtx, u, tags, length, &sentBytes, &lateMax, kf); err != nil && pubCtx.Err() == nil {
				failures.Add(1)
				errs <- fmt.Errorf("%s: %w", u, err)
			}
		}()
		if svc == nil {
			continue
		}
		wg.Add(1)
		go func() { // find the recording, then watch its playlist
			defer wg.Done()
			for pubCtx.Err() == nil {
				var ls liveStream
				if err := svc.api(http.MethodGet, "/video/v1/live-streams/"+streams[i].ID, "", &ls); err != nil {
					errs <- err
					return
				}
				if ls.ActiveAssetID != nil {
					watch(pubCtx, filepath.Join(svc.dir, *ls.ActiveAssetID, "vod.m3u8"), kf, dl)
					return
				}
				sleepCtx(pubCtx, 250*time.Millisecond)
			}
		}()
	}
	fmt.Printf("publishing %d streams; warm-up %v, measuring %v ...\n", o.n, o.warmup, o.duration)
	if !sleepCtx(ctx, o.warmup+2*time.Second) {
		return ctx.Err()
	}
	var cpu0 time.Duration
	var pid int
	if svc != nil {
		pid = svc.cmd.Process.Pid
		if cpu0, err = procCPU(pid); err != nil {
			return err
		}
		cpu0 += childrenCPU(pid)
	}
	dl.mu.Lock()
	dl.measuring = true
	dl.mu.Unlock()
	bytes0 := sentBytes.Load()
	t0 := time.Now()
	sleepCtx(ctx, o.duration)
	wall := time.Since(t0)
	bytes1 := sentBytes.Load()
	dl.mu.Lock()
	dl.measuring = false
	dl.mu.Unlock()
	var cpu1 time.Duration
	var rss, hwm int64
	if svc != nil {
		if cpu1, err = procCPU(pid); err != nil {
			return err
		}
		cpu1 += childrenCPU(pid)
		rss, hwm, _ = procMem(pid)
	}
	cancelPub()
	wg.Wait()
	close(errs)
	for err := range errs {
		fmt.Println("error:", err)
	}

	fmt.Println()
	fmt.Printf("machine: %d CPUs (%s), %s %s/%s\n", runtime.NumCPU(), cpuModel(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
	fmt.Printf("streams: %d, failed: %d, measured wall time: %.1f s, ingest rate: %.1f Mbit/s total\n",
		o.n, failures.Load(), wall.Seconds(), float64(bytes1-bytes0)*8/wall.Seconds()/1e6)
	fmt.Printf("client pacing: worst lateness %v\n", time.Duration(lateMax.Load()).Round(time.Millisecond))
	if svc == nil {
		return nil
	}
	used := cpu1 - cpu0
	fmt.Printf("latency_mode %s, ladder %v\n", o.latency, o.transcode)
	fmt.Printf("service CPU (with its ffmpeg children): %.3f cores total, %.2f%% of one core per stream (%.1f ms CPU per stream-second)\n",
		used.Seconds()/wall.Seconds(), 100*used.Seconds()/wall.Seconds()/float64(o.n), 1000*used.Seconds()/wall.Seconds()/float64(o.n))
	fmt.Printf("service memory: RSS %.1f MiB (peak %.1f MiB), %.2f MiB per stream\n",
		float64(rss)/(1<<20), float64(hwm)/(1<<20), float64(rss)/(1<<20)/float64(o.n))
	_ = svc.stdin.Close()
	_ = svc.cmd.Wait()
	slices.Sort(dl.ms)
	slices.Sort(dl.overMS)
	fmt.Printf("segments measured: %d (unmatched %d)\n", len(dl.ms), dl.unmatched)
	fmt.Printf("keyframe sent -> its segment listed in the playlist: p50 %.0f ms, p95 %.0f ms, p99 %.0f ms, max %.0f ms (target <= %.0f ms)\n",
		pct(dl.ms, 50), pct(dl.ms, 95), pct(dl.ms, 99), pct(dl.ms, 100), float64(o.segDur+500*time.Millisecond)/1e6)
	fmt.Printf("  minus the segment's own duration: p50 %.0f ms, p95 %.0f ms, p99 %.0f ms, max %.0f ms (target <= 500 ms)\n",
		pct(dl.overMS, 50), pct(dl.overMS, 95), pct(dl.overMS, 99), pct(dl.overMS, 100))
	return nil
}

// prepareSource generates the FLV with ffmpeg unless -flv names one.
func prepareSource(ctx context.Context, work string, o *options) error {
	if o.flvPath == "" {
		if o.size == "" {
			o.size = "1280x720"
		}
		o.flvPath = filepath.Join(work, "source.flv")
		fmt.Printf("generating a 20 s %s 30 fps ~3 Mbps H.264 + AAC FLV with ffmpeg ...\n", o.size)
		cmd := exec.CommandContext(ctx, "ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error",
			"-f", "lavfi", "-i", "testsrc2=size="+o.size+":rate=30", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
			"-c:v", "libx264", "-preset", "veryfast", "-b:v", "2850k", "-maxrate", "2850k", "-bufsize", "5700k",
			"-g", "60", "-keyint_min", "60", "-sc_threshold", "0", "-pix_fmt", "yuv420p",
			"-c:a", "aac", "-b:a", "128k", "-ac", "2", "-t", "20", "-f", "flv", o.flvPath)
		cmd.Stderr = os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("ffmpeg: %w", err)
		}
	}
	return nil
}

// publish sends the tags in a loop at real-time pace until ctx ends. Sequence headers and
// metadata (timestamp 0 in the file) are sent once. Each video keyframe is flushed at once and
// its send time recorded.
func publish(ctx context.Context, url string, tags []flv.Tag, length time.Duration, sent, lateMax *atomic.Int64, kf *keyframes) error {
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
			if isKeyframe(t) {
				if err := cl.Flush(); err != nil {
					return err
				}
				kf.add(t.Timestamp, time.Now())
			}
		}
	}
}

func isKeyframe(t flv.Tag) bool {
	return t.Type == flv.TagVideo && len(t.Data) > 1 && t.Data[0]>>4 == flv.FrameKey && t.Data[0]&0x0f == flv.CodecAVC && t.Data[1] == flv.AVCNALU
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

// childrenCPU is the CPU time of pid's living child processes (the ladder's ffmpegs).
func childrenCPU(pid int) time.Duration {
	ents, _ := os.ReadDir("/proc")
	var sum time.Duration
	for _, e := range ents {
		cp, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", cp))
		if err != nil {
			continue
		}
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) > 2 && f[1] == strconv.Itoa(pid) {
			if c, err := procCPU(cp); err == nil {
				sum += c
			}
		}
	}
	return sum
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
