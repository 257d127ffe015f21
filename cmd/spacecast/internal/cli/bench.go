package cli

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/spacecast/spacecast/cmd/spacecast/internal/apibench"
	"github.com/spacecast/spacecast/libs/events"
)

func newBenchCmd(g *globalFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "bench", Short: "Benchmarks that print figures"}
	var dur time.Duration
	var conc int
	var external bool
	var anchor string
	var pairs int
	var concs []int
	var cpuprofile string
	api := &cobra.Command{
		Use:   "api",
		Short: "Load the HTTP API: POST /video/v1/spaces then GET /video/v1/spaces/{id}; prints req/s and p50/p99",
		Long: "Without --external it starts `spacecast dev` as a child process on free ports in a temporary " +
			"data directory (access log off), so the figures include the real dev mode with SQLite, the outbox " +
			"relay and the embedded Kafka. After the run it checks that every created space's space.created " +
			"event reached spacecast.spaces.\n\n" +
			"With --anchor PATH (the echoapi binary of bench/anchors) it also starts that minimal echo server " +
			"and loads both with the same load generator in alternating pairs (--pairs, order swapped every " +
			"pair) at each --concurrencies level, then prints each side's median req/s and the median of the " +
			"pairs' ratios (Spacecast / anchor).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			out := cmd.OutOrStdout()
			o := apibench.Options{BaseURL: g.BaseURL, TokenID: g.TokenID, TokenSecret: g.TokenSecret, Concurrency: conc, Duration: dur, Out: out}
			brokers := g.Brokers
			if !external {
				stop, base, kafka, err := startChildDev(ctx, cpuprofile)
				if err != nil {
					return err
				}
				defer stop()
				o.BaseURL, o.TokenID, o.TokenSecret, brokers = base, benchTokenID, benchTokenSecret, []string{kafka}
			}
			var ids []string
			if anchor == "" {
				fmt.Fprintf(out, "spacecast bench api: %s, concurrency %d, %s per phase, GOMAXPROCS %d, %d CPUs\n",
					o.BaseURL, o.Concurrency, o.Duration, runtime.GOMAXPROCS(0), runtime.NumCPU())
				res, created, err := apibench.Run(ctx, o)
				if err != nil {
					return err
				}
				for _, r := range res {
					fmt.Fprintln(out, r.String())
				}
				ids = created
			} else {
				stopAnchor, anchorURL, err := startAnchor(anchor)
				if err != nil {
					return err
				}
				defer stopAnchor()
				ao := o
				ao.BaseURL, ao.TokenID, ao.TokenSecret = anchorURL, benchTokenID, benchTokenSecret
				fmt.Fprintf(out, "spacecast bench api --anchor: spacecast %s vs echoapi %s, %d pairs per level, %s per phase, GOMAXPROCS %d, %d CPUs, %s\n",
					o.BaseURL, ao.BaseURL, pairs, o.Duration, runtime.GOMAXPROCS(0), runtime.NumCPU(), time.Now().UTC().Format(time.RFC3339))
				if ids, err = apibench.Compare(ctx, o, ao, concs, pairs); err != nil {
					return err
				}
			}
			start := time.Now()
			n, err := countCreated(ctx, brokers, ids, 60*time.Second)
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "space.created events on %s: %d of %d created spaces (all seen %.1f s after the load ended)\n",
				events.TopicSpaces, n, len(ids), time.Since(start).Seconds())
			if n != len(ids) {
				return fmt.Errorf("%d space.created events missing", len(ids)-n)
			}
			return nil
		},
	}
	api.Flags().DurationVar(&dur, "duration", 10*time.Second, "length of each phase")
	api.Flags().IntVar(&conc, "concurrency", 16, "concurrent clients (without --anchor)")
	api.Flags().BoolVar(&external, "external", false, "load --base-url with --token-id/--token-secret instead of starting a dev mode")
	api.Flags().StringVar(&anchor, "anchor", "", "path of the echoapi anchor binary (bench/anchors/cmd/echoapi): compare with it in alternating pairs")
	api.Flags().StringVar(&cpuprofile, "cpuprofile", "", "the dev mode child writes its CPU profile (go tool pprof) to this file")
	api.Flags().IntVar(&pairs, "pairs", 3, "with --anchor: alternating pairs per concurrency level")
	api.Flags().IntSliceVar(&concs, "concurrencies", []int{16, 32}, "with --anchor: concurrency levels")
	cmd.AddCommand(api)
	return cmd
}

const (
	benchTokenID     = "bench-admin"
	benchTokenSecret = "bench-admin-secret-0123456789"
)

func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// startChildDev runs this binary's dev mode in a temporary data directory.
// With cpuprofile set the child writes its CPU profile there.
func startChildDev(ctx context.Context, cpuprofile string) (stop func(), baseURL, kafka string, err error) {
	self, err := os.Executable()
	if err != nil {
		return nil, "", "", err
	}
	dir, err := os.MkdirTemp("", "spacecast-bench-")
	if err != nil {
		return nil, "", "", err
	}
	httpAddr, err := freePort()
	if err != nil {
		return nil, "", "", err
	}
	if kafka, err = freePort(); err != nil {
		return nil, "", "", err
	}
	args := []string{"dev", "--data-dir", dir, "--http-addr", httpAddr, "--kafka-addr", kafka, "--access-log=false", "--log-level", "warn",
		"--sfu-udp-port", "0", "--sfu-tcp-port", "-1", "--rtmp-addr", "127.0.0.1:0"}
	if cpuprofile != "" {
		args = append(args, "--cpuprofile", cpuprofile)
	}
	c := exec.Command(self, args...)
	c.Env = append(os.Environ(), "SPACECAST_BOOTSTRAP_TOKEN_ID="+benchTokenID, "SPACECAST_BOOTSTRAP_TOKEN_SECRET="+benchTokenSecret,
		// The benchmark measures the API, not the rate limiter's refusals.
		"SPACECAST_RATE_LIMIT_READS_PER_SECOND=0", "SPACECAST_RATE_LIMIT_WRITES_PER_SECOND=0")
	c.Stderr = os.Stderr
	if err := c.Start(); err != nil {
		return nil, "", "", err
	}
	stop = func() {
		_ = c.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = c.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = c.Process.Kill()
		}
		os.RemoveAll(dir)
	}
	baseURL = "http://" + httpAddr
	for i := 0; i < 200; i++ {
		if res, err := http.Get(baseURL + "/readyz"); err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				return stop, baseURL, kafka, nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	stop()
	return nil, "", "", fmt.Errorf("dev mode did not become ready")
}

// startAnchor runs the echoapi anchor binary on a free port with a fresh SQLite file.
func startAnchor(path string) (stop func(), baseURL string, err error) {
	dir, err := os.MkdirTemp("", "spacecast-anchor-")
	if err != nil {
		return nil, "", err
	}
	c := exec.Command(path, "-db", filepath.Join(dir, "anchor.db"), "-token-id", benchTokenID, "-token-secret", benchTokenSecret, "-stdin")
	c.Stderr = os.Stderr
	in, err := c.StdinPipe()
	if err != nil {
		return nil, "", err
	}
	outp, err := c.StdoutPipe()
	if err != nil {
		return nil, "", err
	}
	if err := c.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, "", fmt.Errorf("anchor %s: %w", path, err)
	}
	stop = func() {
		_ = in.Close()
		done := make(chan struct{})
		go func() { _ = c.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = c.Process.Kill()
		}
		os.RemoveAll(dir)
	}
	line, err := bufio.NewReader(outp).ReadString('\n')
	addr, ok := strings.CutPrefix(strings.TrimSpace(line), "HTTP ")
	if err != nil || !ok {
		stop()
		return nil, "", fmt.Errorf("anchor %s did not print its address (%q): %v", path, line, err)
	}
	return stop, "http://" + addr, nil
}

// countCreated reads spacecast.spaces until every id's space.created was seen or timeout.
func countCreated(ctx context.Context, brokers, ids []string, timeout time.Duration) (int, error) {
	want := make(map[string]bool, len(ids))
	for _, id := range ids {
		want[id] = true
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(events.TopicSpaces), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	seen := 0
	deadline := time.Now().Add(timeout)
	for len(want) > 0 && time.Now().Before(deadline) {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		fs := cl.PollFetches(pctx)
		cancel()
		fs.EachRecord(func(r *kgo.Record) {
			if want[string(r.Key)] {
				if ev, err := events.Parse(r.Value); err == nil && ev.Type == "space.created" {
					delete(want, string(r.Key))
					seen++
				}
			}
		})
	}
	return seen, nil
}
