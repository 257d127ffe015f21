// Command rtmp-hostile measures what unauthenticated RTMP clients can take from the ingest: it
// starts the real RTMP server (rtmp.NewServer with its default limits) in a child process,
// opens hostile connections against it for a bounded time, samples the server's RSS from
// /proc/PID/status, publishes a legitimate stream now and then from another address, and
// prints the maximum RSS and how many connections each limit cut.
//
//	go run ./cmd/rtmp-hostile -conns 100 -duration 30s
//
// The hostile connections are, in equal parts: flood-big (a 16 MiB message announced and
// streamed before any publish), flood-many (partial messages on 256 chunk streams), trickle
// (the handshake sent one byte every 3 s) and keepalive (handshake, connect, then a ping every
// 5 s, never a publish). A connection the server closes is reopened 100 ms later. They come
// from -ips loopback addresses (127.0.0.1, 127.0.0.2, ...); the legitimate publisher dials
// from 127.0.0.250. The server is killed if its RSS passes -rss-limit.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
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
		conns     = flag.Int("conns", 100, "hostile connections (split evenly over the four kinds)")
		duration  = flag.Duration("duration", 30*time.Second, "how long the attack runs")
		ips       = flag.Int("ips", 1, "loopback source addresses the hostile connections come from (1..200)")
		floodRate = flag.Int("flood-rate", 8<<20, "bytes per second each flooding connection sends at most")
		rssLimit  = flag.Int64("rss-limit", 3<<30, "kill the server when its RSS passes this many bytes")
		serve     = flag.Bool("serve", false, "internal: run the server (started by the command itself)")
		listen    = flag.String("listen", "127.0.0.1:0", "internal: -serve listen address")
		logPath   = flag.String("log", os.DevNull, "internal: -serve log file")
	)
	flag.Parse()
	if *serve {
		if err := runServer(*listen, *logPath); err != nil {
			fmt.Fprintln(os.Stderr, "rtmp-hostile -serve:", err)
			os.Exit(1)
		}
		return
	}
	if *conns < 4 || *ips < 1 || *ips > 200 || *duration <= 0 || *floodRate <= 0 {
		fmt.Fprintln(os.Stderr, "rtmp-hostile: want -conns >= 4, -ips 1..200, -duration > 0, -flood-rate > 0")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, *conns, *ips, *duration, *floodRate, *rssLimit); err != nil {
		fmt.Fprintln(os.Stderr, "rtmp-hostile:", err)
		os.Exit(1)
	}
}

// server is the child process.
type server struct {
	mu    sync.Mutex // one report at a time
	cmd   *exec.Cmd
	addr  string
	stdin io.WriteCloser
	out   *bufio.Reader
	log   string
}

func startServer(work string) (*server, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	s := &server{log: filepath.Join(work, "server.log")}
	s.cmd = exec.Command(exe, "-serve", "-log", s.log)
	s.cmd.Stderr = os.Stderr
	if s.stdin, err = s.cmd.StdinPipe(); err != nil {
		return nil, err
	}
	stdout, err := s.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := s.cmd.Start(); err != nil {
		return nil, err
	}
	s.out = bufio.NewReader(stdout)
	line, err := s.out.ReadString('\n')
	if err != nil {
		s.cmd.Process.Kill()
		return nil, fmt.Errorf("server did not start: %w", err)
	}
	s.addr = strings.TrimSpace(strings.TrimPrefix(line, "RTMP "))
	return s, nil
}

func (s *server) report() (serverReport, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var r serverReport
	if _, err := io.WriteString(s.stdin, "report\n"); err != nil {
		return r, err
	}
	line, err := s.out.ReadString('\n')
	if err != nil {
		return r, err
	}
	return r, json.Unmarshal([]byte(line), &r)
}

func (s *server) stop() error {
	s.stdin.Close()
	done := make(chan error, 1)
	go func() { done <- s.cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(15 * time.Second):
		s.cmd.Process.Kill()
		return errors.New("server did not stop within 15s; killed")
	}
}

// procRSS returns VmRSS of pid in bytes.
func procRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for l := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			f := strings.Fields(v)
			if len(f) > 0 {
				kb, err := strconv.ParseInt(f[0], 10, 64)
				return kb << 10, err
			}
		}
	}
	return 0, errors.New("no VmRSS")
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

func run(ctx context.Context, conns, ips int, duration time.Duration, floodRate int, rssLimit int64) error {
	work, err := os.MkdirTemp("", "rtmp-hostile-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	srv, err := startServer(work)
	if err != nil {
		return err
	}
	pid := srv.cmd.Process.Pid
	startRSS, err := procRSS(pid)
	if err != nil {
		return err
	}
	fmt.Printf("rtmp-hostile: RTMP server pid %d at %s with the default limits (handshake %v, publish %v, %d connections per address, pre-publish buffer %d KiB, message %d MiB, budget %d MiB)\n",
		pid, srv.addr, rtmp.DefaultHandshakeTimeout, rtmp.DefaultPublishTimeout, rtmp.DefaultMaxConnectionsPerIP,
		rtmp.DefaultPrePublishBuffer>>10, rtmp.DefaultMaxMessageSize>>20, rtmp.DefaultMemoryBudget>>20)
	fmt.Printf("%d hostile connections (%s) from %d address(es) for %v; RSS at start %s\n",
		conns, strings.Join(kindNames(conns), ", "), ips, duration, mib(startRSS))

	attackStart := time.Now()
	actx, cancel := context.WithTimeout(ctx, duration)
	defer cancel()
	var (
		maxRSS  atomic.Int64
		killed  atomic.Bool
		killAt  atomic.Int64
		wg      sync.WaitGroup
		tallies = make([]tally, len(kinds))
	)
	maxRSS.Store(startRSS)
	wg.Go(func() { // RSS sampler
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-actx.Done():
				return
			case <-t.C:
			}
			rss, err := procRSS(pid)
			if err != nil {
				return
			}
			if rss > maxRSS.Load() {
				maxRSS.Store(rss)
			}
			if rss > rssLimit {
				killed.Store(true)
				killAt.Store(int64(time.Since(attackStart)))
				srv.cmd.Process.Kill()
				cancel()
				return
			}
		}
	})
	var maxOpen, maxBuffered atomic.Int64
	wg.Go(func() { // the server's own figures, every second
		for sleep(actx, time.Second) {
			r, err := srv.report()
			if err != nil {
				return
			}
			maxOpen.Store(max(maxOpen.Load(), int64(r.Open)))
			maxBuffered.Store(max(maxBuffered.Load(), r.Buffered))
		}
	})
	for i := range conns {
		k := i % len(kinds)
		src := net.IPv4(127, 0, 0, byte(1+i%ips))
		wg.Go(func() { attacker(actx, srv.addr, src, kinds[k], floodRate, &tallies[k]) })
	}
	var legit legitTally
	wg.Go(func() { legitPublisher(actx, srv.addr, &legit) })
	wg.Wait()

	if killed.Load() {
		fmt.Printf("SERVER KILLED: its RSS passed %s %v into the attack (max sampled %s)\n", mib(rssLimit),
			time.Duration(killAt.Load()).Round(10*time.Millisecond), mib(maxRSS.Load()))
		_ = srv.stop()
		return nil
	}
	rep, err := srv.report()
	if err != nil {
		return fmt.Errorf("server report: %w", err)
	}
	endRSS, _ := procRSS(pid)
	// Give the hostile connections' closes time to reach the server, then read it again.
	time.Sleep(time.Second)
	after, err := srv.report()
	if err != nil {
		return fmt.Errorf("server report: %w", err)
	}
	afterRSS, _ := procRSS(pid)
	logLines := countLines(srv.log)
	if err := srv.stop(); err != nil {
		return err
	}

	fmt.Printf("server RSS: start %s, max %s, end %s; heap in use at the end %s; %d goroutines\n",
		mib(startRSS), mib(maxRSS.Load()), mib(endRSS), mib(int64(rep.HeapInuse)), rep.Goroutines)
	fmt.Printf("cut by the server: handshake timeout %d, publish timeout %d, message too large %d, buffer limit %d, memory budget %d\n",
		rep.HandshakeTimeout, rep.PublishTimeout, rep.MessageTooLarge, rep.BufferLimit, rep.MemoryBudget)
	fmt.Printf("refused at accept: per-address limit %d, connection limit %d\n", rep.RefusedPerIP, rep.RefusedMaxConnections)
	fmt.Printf("sampled each second: at most %d connections open, at most %d KiB buffered for partial messages\n", maxOpen.Load(), maxBuffered.Load()>>10)
	fmt.Printf("1s after the attack: %d connections open, %d bytes buffered, heap in use %s, RSS %s\n", after.Open, after.Buffered,
		mib(int64(after.HeapInuse)), mib(afterRSS))
	for i, k := range kinds {
		t := &tallies[i]
		fmt.Printf("  %-10s %6d connections opened, %6d closed by the server, longest open %v\n", k.name, t.opened.Load(), t.cut.Load(),
			time.Duration(t.longest.Load()).Round(10*time.Millisecond))
	}
	fmt.Printf("legitimate publishes from 127.0.0.250 during the attack: %d of %d started", legit.ok, legit.tried)
	if len(legit.start) > 0 {
		slices.Sort(legit.start)
		fmt.Printf(", Publish.Start after median %v, max %v", legit.start[len(legit.start)/2].Round(time.Millisecond),
			legit.start[len(legit.start)-1].Round(time.Millisecond))
	}
	fmt.Printf("; %d media tags reached the handler\n", rep.Tags)
	if len(legit.errs) > 0 {
		fmt.Printf("  failures: %s\n", strings.Join(legit.errs, "; "))
	}
	fmt.Printf("server log: %d lines\n", logLines)
	return nil
}

func countLines(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	return strings.Count(string(b), "\n")
}

func kindNames(conns int) []string {
	var s []string
	for i, k := range kinds {
		n := conns / len(kinds)
		if i < conns%len(kinds) {
			n++
		}
		s = append(s, fmt.Sprintf("%d %s", n, k.name))
	}
	return s
}

type legitTally struct {
	tried, ok int
	start     []time.Duration
	errs      []string
}

// legitPublisher publishes a short stream every 2 s from 127.0.0.250 with the package's client.
func legitPublisher(ctx context.Context, addr string, t *legitTally) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 250)}}
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return
		case <-time.After(2 * time.Second):
		}
		t.tried++
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		start := time.Now()
		cl, err := rtmp.PublishDialer(pctx, &d, fmt.Sprintf("rtmp://%s/live/legit-%d", addr, i))
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				t.errs = append(t.errs, err.Error())
			} else {
				t.tried--
			}
			continue
		}
		t.start = append(t.start, time.Since(start))
		err = cl.WriteTag(flv.Tag{Type: flv.TagAudio, Data: []byte{0xaf, 0, 0x12, 0x10}})
		if err == nil {
			err = cl.WriteTag(flv.Tag{Type: flv.TagAudio, Timestamp: 23, Data: []byte{0xaf, 1, 0x21}})
		}
		if err == nil {
			err = cl.Close()
		}
		if err != nil {
			t.errs = append(t.errs, err.Error())
			continue
		}
		t.ok++
	}
}
