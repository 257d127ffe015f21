package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spacecast/spacecast/services/livestream/internal/flv"
)

// compareOptions configure -compare: the live stream service against nginx-rtmp.
type compareOptions struct {
	levels      string
	pairs       int
	nginx       string
	module      string
	nginxListen string
}

// server is one side of a comparison: a process and the publish URLs of its n streams.
type server struct {
	pid  int
	urls []string
	stop func()
}

// measured is one load run's figures for a server process alone.
type measured struct {
	cores      float64 // CPU (user+system) over the measured window, in cores
	rss, peak  float64 // MiB at the end, and the high-water mark
	anon, file float64 // of rss: anonymous memory (heap, stacks) and mapped files (the binary's pages)
	failed     int64
}

// runCompare measures, for every level, the live stream service (its process alone: Kafka runs
// in another process, Redis is -redis) and nginx-rtmp (one process, hls on, 2 s fragments) with
// the same publishers, in alternating pairs, and prints both sides and the ratios (medians).
func runCompare(ctx context.Context, o options, co compareOptions) error {
	var levels []int
	for _, f := range strings.Split(co.levels, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			return fmt.Errorf("-levels: %q is not a stream count", f)
		}
		levels = append(levels, n)
	}
	if co.pairs <= 0 {
		co.pairs = 1
	}
	if o.redisURL == "" {
		return errors.New("-compare needs -redis: embedded Redis would run inside the measured process")
	}
	for _, f := range []string{co.nginx, co.module} {
		if _, err := os.Stat(f); err != nil {
			return fmt.Errorf("nginx-rtmp is not installed (%v): bench/ingest/run.sh installs Debian's nginx and libnginx-mod-rtmp", err)
		}
	}
	work, err := os.MkdirTemp("", "rtmp-bench-compare-")
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
	tags, length, _, err := loadFLV(o.flvPath)
	if err != nil {
		return err
	}
	kafka, stopKafka, err := startKafkaChild()
	if err != nil {
		return err
	}
	defer stopKafka()
	o.kafka = kafka
	fmt.Printf("rtmp-bench -compare: %s, %d CPUs (%s), %s; levels %v, %d pair(s), warm-up %v, measuring %v per run\n",
		time.Now().UTC().Format(time.RFC3339), runtime.NumCPU(), cpuModel(), runtime.Version(), levels, co.pairs, o.warmup, o.duration)
	type figures struct{ svc, ngx, cpuRatio, rssRatio []float64 }
	results := map[int]*figures{}
	var svcRSS, ngxRSS = map[int][]float64{}, map[int][]float64{}
	for _, n := range levels {
		f := &figures{}
		results[n] = f
		for p := range co.pairs {
			order := []string{"spacecast", "nginx-rtmp"}
			if p%2 == 1 {
				order = []string{"nginx-rtmp", "spacecast"}
			}
			got := map[string]measured{}
			for i, side := range order {
				dir := filepath.Join(work, fmt.Sprintf("n%d-p%d-%d", n, p, i))
				var srv *server
				if side == "spacecast" {
					srv, err = startServiceSide(dir, o, n)
				} else {
					srv, err = startNginxSide(dir, co, n)
				}
				if err != nil {
					return fmt.Errorf("%s: %w", side, err)
				}
				m, err := loadServer(ctx, srv, tags, length, o)
				srv.stop()
				if err != nil {
					return fmt.Errorf("%s, %d streams: %w", side, n, err)
				}
				if m.failed > 0 {
					return fmt.Errorf("%s, %d streams: %d publishers failed", side, n, m.failed)
				}
				fmt.Printf("%3d streams pair %d %-10s CPU %.3f cores (%.2f ms per stream-second), RSS %.1f MiB (peak %.1f MiB; anonymous %.1f, files %.1f)\n",
					n, p+1, side, m.cores, 1000*m.cores/float64(n), m.rss, m.peak, m.anon, m.file)
				got[side] = m
			}
			s, g := got["spacecast"], got["nginx-rtmp"]
			f.svc, f.ngx = append(f.svc, s.cores), append(f.ngx, g.cores)
			svcRSS[n], ngxRSS[n] = append(svcRSS[n], s.peak), append(ngxRSS[n], g.peak)
			f.cpuRatio, f.rssRatio = append(f.cpuRatio, s.cores/g.cores), append(f.rssRatio, s.peak/g.peak)
		}
	}
	fmt.Println("medians (ratio = median of the pairs' spacecast/nginx-rtmp; RSS is each process's peak):")
	for _, n := range levels {
		f := results[n]
		fmt.Printf("%3d streams: CPU spacecast %.3f cores, nginx-rtmp %.3f cores, ratio %.2f (target <= 1.2) | RSS spacecast %.1f MiB, nginx-rtmp %.1f MiB, ratio %.2f (target <= 1.5)\n",
			n, median(f.svc), median(f.ngx), median(f.cpuRatio), median(svcRSS[n]), median(ngxRSS[n]), median(f.rssRatio))
	}
	return nil
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// startKafkaChild runs this binary's -serve-kafka in its own process.
func startKafkaChild() (string, func(), error) {
	exe, err := os.Executable()
	if err != nil {
		return "", nil, err
	}
	cmd := exec.Command(exe, "-serve-kafka")
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return "", nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return "", nil, err
	}
	if err := cmd.Start(); err != nil {
		return "", nil, err
	}
	stop := func() { _ = in.Close(); _ = cmd.Wait() }
	var line string
	buf := make([]byte, 1)
	for !strings.HasSuffix(line, "\n") {
		if _, err := out.Read(buf); err != nil {
			stop()
			return "", nil, fmt.Errorf("kafka process: %w", err)
		}
		line += string(buf)
	}
	go io.Copy(io.Discard, out) //nolint:errcheck
	addr, ok := strings.CutPrefix(strings.TrimSpace(line), "KAFKA ")
	if !ok {
		stop()
		return "", nil, fmt.Errorf("kafka process printed %q", line)
	}
	return addr, stop, nil
}

// startServiceSide starts a fresh live stream service process with n live streams.
func startServiceSide(dir string, o options, n int) (*server, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	c, err := startChild(dir, o)
	if err != nil {
		return nil, err
	}
	stop := func() { _ = c.stdin.Close(); _ = c.cmd.Wait() }
	srv := &server{pid: c.cmd.Process.Pid, stop: stop}
	for range n {
		var ls liveStream
		if err := c.api(http.MethodPost, "/video/v1/live-streams", `{"playback_policy":"public"}`, &ls); err != nil {
			stop()
			return nil, err
		}
		srv.urls = append(srv.urls, fmt.Sprintf("rtmp://%s/app/%s", c.rtmp, ls.StreamKey))
	}
	return srv, nil
}

// nginxConf is one nginx process (no master, no daemon) with nginx-rtmp live + HLS in 2 s
// fragments: the same work as the service's ingest and live playlist.
const nginxConf = `load_module %s;
daemon off;
master_process off;
worker_processes 1;
error_log %s/error.log warn;
pid %s/nginx.pid;
events { worker_connections 1024; }
rtmp {
  server {
    listen %s;
    chunk_size 4096;
    application live {
      live on;
      record off;
      hls on;
      hls_path %s/hls;
      hls_fragment 2s;
      hls_playlist_length 12s;
    }
  }
}
`

// startNginxSide starts nginx-rtmp and waits for its RTMP port.
func startNginxSide(dir string, co compareOptions, n int) (*server, error) {
	if err := os.MkdirAll(filepath.Join(dir, "hls"), 0o755); err != nil {
		return nil, err
	}
	conf := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(conf, fmt.Appendf(nil, nginxConf, co.module, dir, dir, co.nginxListen, dir), 0o644); err != nil {
		return nil, err
	}
	cmd := exec.Command(co.nginx, "-p", dir, "-c", conf, "-e", filepath.Join(dir, "error.log"))
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	stop := func() {
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	}
	for i := 0; ; i++ {
		c, err := net.DialTimeout("tcp", co.nginxListen, 100*time.Millisecond)
		if err == nil {
			c.Close()
			break
		}
		if i == 50 {
			stop()
			b, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			return nil, fmt.Errorf("nginx did not listen on %s: %s", co.nginxListen, b)
		}
		time.Sleep(100 * time.Millisecond)
	}
	srv := &server{pid: cmd.Process.Pid, stop: stop}
	for i := range n {
		srv.urls = append(srv.urls, fmt.Sprintf("rtmp://%s/live/s%d", co.nginxListen, i))
	}
	return srv, nil
}

// loadServer publishes to every URL of srv (starts spread over 2 s), waits for the warm-up and
// measures the process's CPU over o.duration, then its memory.
func loadServer(ctx context.Context, srv *server, tags []flv.Tag, length time.Duration, o options) (measured, error) {
	pubCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	var sent, lateMax, failed atomic.Int64
	for i, u := range srv.urls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if !sleepCtx(pubCtx, time.Duration(i)*2*time.Second/time.Duration(len(srv.urls))) {
				return
			}
			kf := &keyframes{sent: map[int64]time.Time{}}
			if err := publish(pubCtx, u, tags, length, &sent, &lateMax, kf); err != nil && pubCtx.Err() == nil {
				failed.Add(1)
				fmt.Fprintf(os.Stderr, "publish %s: %v\n", u, err)
			}
		}()
	}
	defer wg.Wait()
	if !sleepCtx(ctx, o.warmup+2*time.Second) {
		return measured{}, ctx.Err()
	}
	cpu0, err := procCPU(srv.pid)
	if err != nil {
		return measured{}, err
	}
	t0 := time.Now()
	if !sleepCtx(ctx, o.duration) {
		return measured{}, ctx.Err()
	}
	cpu1, err := procCPU(srv.pid)
	if err != nil {
		return measured{}, err
	}
	wall := time.Since(t0)
	rss, hwm, err := procMem(srv.pid)
	if err != nil {
		return measured{}, err
	}
	anon, file := procRSSParts(srv.pid)
	cancel()
	return measured{cores: (cpu1 - cpu0).Seconds() / wall.Seconds(), rss: float64(rss) / (1 << 20), peak: float64(hwm) / (1 << 20),
		anon: float64(anon) / (1 << 20), file: float64(file) / (1 << 20), failed: failed.Load()}, nil
}

// procRSSParts returns RssAnon and RssFile (+RssShmem) of /proc/<pid>/status in bytes.
func procRSSParts(pid int) (anon, file int64) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(l, ":")
		f := strings.Fields(v)
		if !ok || len(f) == 0 {
			continue
		}
		kb, _ := strconv.ParseInt(f[0], 10, 64)
		switch k {
		case "RssAnon":
			anon = kb << 10
		case "RssFile", "RssShmem":
			file += kb << 10
		}
	}
	return anon, file
}
