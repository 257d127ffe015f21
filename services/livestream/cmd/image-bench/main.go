// Command image-bench measures the image API's thumbnails per second: it records a clip as HLS
// the way the live stream service lays recordings out (ffmpeg, 2 s segments), then asks the
// images server (the service's code, without HTTP) for thumbnails at distinct times (every one
// a cache miss: ffmpeg runs) and again for the same ones (cache hits), with -workers ffmpeg
// processes and -concurrency requests at once, and prints the rates and latencies.
//
//	go run ./cmd/image-bench -n 60 -workers 2 -concurrency 4 -size 1280x720
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	"net/url"

	"github.com/spacecast/spacecast/libs/spacejwt"
	"github.com/spacecast/spacecast/services/livestream/internal/hls"
	"github.com/spacecast/spacecast/services/livestream/internal/images"
	"github.com/spacecast/spacecast/services/livestream/internal/store"
)

// noResolve and noTokens satisfy images.Options: the benchmark calls Make with its target, so
// nothing is resolved or verified; calling them is a bug.
type noResolve struct{}

func (noResolve) ResolvePlayback(context.Context, string) (store.PlaybackTarget, error) {
	return store.PlaybackTarget{}, errors.New("image-bench resolves nothing")
}

type noTokens struct{}

func (noTokens) Verify(context.Context, string, string) (spacejwt.Claims, error) {
	return spacejwt.Claims{}, errors.New("image-bench verifies nothing")
}

func main() {
	n := flag.Int("n", 60, "thumbnails at distinct times (cache misses), then the same again (hits)")
	workers := flag.Int("workers", 2, "ffmpeg processes at once (SPACECAST_IMAGE_WORKERS)")
	conc := flag.Int("concurrency", 4, "requests at once")
	size := flag.String("size", "1280x720", "source picture size")
	length := flag.Int("length", 60, "recording length in seconds")
	width := flag.Int("width", 640, "thumbnail width (0: the source's)")
	format := flag.String("format", "jpg", "jpg, png or webp")
	flag.Parse()
	if err := run(*n, *workers, *conc, *size, *length, *width, *format); err != nil {
		fmt.Fprintln(os.Stderr, "image-bench:", err)
		os.Exit(1)
	}
}

func run(n, workers, conc int, size string, length, width int, format string) error {
	root, err := os.MkdirTemp("", "image-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(root)
	const asset = "bench"
	dir := filepath.Join(root, asset)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	fmt.Printf("recording %ds of %s H.264 (testsrc2, keyframe every 2 s) as HLS...\n", length, size)
	rec := exec.Command("ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc2=size="+size+":rate=30",
		"-t", strconv.Itoa(length), "-c:v", "libx264", "-preset", "veryfast", "-g", "60", "-pix_fmt", "yuv420p",
		"-f", "hls", "-hls_time", "2", "-hls_list_size", "0", "-hls_playlist_type", "vod",
		"-hls_segment_filename", filepath.Join(dir, "seg-%d.ts"), filepath.Join(dir, hls.VODPlaylist))
	if out, err := rec.CombinedOutput(); err != nil {
		return fmt.Errorf("recording: %v %s", err, out)
	}
	srv, err := images.New(images.Options{Resolve: noResolve{}, JWT: noTokens{}, Dir: root, Workers: workers, Timeout: 5 * time.Minute,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, nil)), LivePlaylist: hls.LivePlaylist, VODPlaylist: hls.VODPlaylist})
	if err != nil {
		return err
	}
	target := store.PlaybackTarget{AssetID: asset, AssetStatus: store.AssetReady}
	reqs := make([]images.Request, n)
	for i := range reqs {
		q := url.Values{"time": {strconv.FormatFloat(float64(i)*float64(length-1)/float64(n), 'f', 3, 64)}}
		if width > 0 {
			q.Set("width", strconv.Itoa(width))
		}
		if reqs[i], err = images.Parse("thumbnail."+format, q); err != nil {
			return err
		}
	}
	fmt.Printf("machine: %d CPUs (%s/%s), Go %s; %d thumbnails.%s width %d, %d ffmpeg workers, concurrency %d\n",
		runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, runtime.Version(), n, format, width, workers, conc)
	for _, phase := range []struct {
		name string
		hit  bool
	}{{"miss (ffmpeg)", false}, {"hit (cache)", true}} {
		cpu0 := cpuTime()
		lat, took, err := load(srv, target, reqs, conc, phase.hit)
		if err != nil {
			return err
		}
		cpu := (cpuTime() - cpu0) / time.Duration(len(lat))
		slices.Sort(lat)
		fmt.Printf("%-14s %7.1f thumbnails/s  p50 %8s  p99 %8s  max %8s  CPU %8s/thumbnail (this process + ffmpeg)\n", phase.name,
			float64(len(lat))/took.Seconds(), pct(lat, 50), pct(lat, 99), lat[len(lat)-1].Round(time.Microsecond), cpu.Round(time.Microsecond))
	}
	return nil
}

func load(srv *images.Server, t store.PlaybackTarget, reqs []images.Request, conc int, wantHit bool) ([]time.Duration, time.Duration, error) {
	lat := make([]time.Duration, len(reqs))
	next := make(chan int)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	start := time.Now()
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				t0 := time.Now()
				_, hit, err := srv.Make(context.Background(), t, reqs[i])
				lat[i] = time.Since(t0)
				if err == nil && hit != wantHit {
					err = fmt.Errorf("request %d: cache hit %v, want %v", i, hit, wantHit)
				}
				if err != nil {
					mu.Lock()
					firstErr = errors.Join(firstErr, err)
					mu.Unlock()
				}
			}
		}()
	}
	for i := range reqs {
		next <- i
	}
	close(next)
	wg.Wait()
	return lat, time.Since(start), firstErr
}

// cpuTime is the user+system CPU of this process and its waited-for children (ffmpeg).
func cpuTime() time.Duration {
	var total time.Duration
	for _, who := range []int{syscall.RUSAGE_SELF, syscall.RUSAGE_CHILDREN} {
		var ru syscall.Rusage
		if err := syscall.Getrusage(who, &ru); err == nil {
			total += time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		}
	}
	return total
}

func pct(d []time.Duration, p int) time.Duration {
	return d[min(len(d)-1, len(d)*p/100)].Round(time.Microsecond)
}
