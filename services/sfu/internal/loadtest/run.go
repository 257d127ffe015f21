package loadtest

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/spacecast/spacecast/libs/idgen"
	"github.com/spacecast/spacecast/libs/spacejwt"
	"github.com/spacecast/spacecast/services/sfu/internal/synth"
	"github.com/spacecast/spacecast/services/sfu/spacesclient"
)

func pemEncode(k *rsa.PrivateKey) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)})
}

// Options of a benchmark run.
type Options struct {
	Subscribers []int         // steps, e.g. 10, 50, 100
	Duration    time.Duration // measuring window per step
	Bitrate     int           // video bits/s
	JoinRate    int           // subscriber joins started per second
	NoNACK      bool          // subscribers do not NACK: loss is measured before retransmission
	Self        string        // path of this executable (re-run with "serve")
	Out         io.Writer
	Log         *slog.Logger
}

// Result of one step.
type Result struct {
	Subscribers   int
	Joined        int
	PacketsPerSec float64
	LossPct       float64
	SFUCPUPct     float64 // percent of one core
	FirstFrameP50 time.Duration
	FirstFrameP95 time.Duration
	NoFrame       int
}

// Run starts the SFU child, the publisher, and each subscriber step in turn.
func Run(ctx context.Context, o Options) ([]Result, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	keyFile, err := os.CreateTemp("", "sfu-load-key-*.pem")
	if err != nil {
		return nil, err
	}
	defer os.Remove(keyFile.Name())
	if _, err := keyFile.Write(pemEncode(key)); err != nil {
		return nil, err
	}
	keyFile.Close()
	cctx, stopChild := context.WithCancel(ctx)
	defer stopChild()
	cmd := exec.CommandContext(cctx, o.Self, "serve", "-key", keyFile.Name())
	cmd.Stderr = io.Discard
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 10 * time.Second
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	defer func() { stopChild(); _ = cmd.Wait() }()
	url := ""
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "READY "); ok {
			url = rest
			break
		}
	}
	if url == "" {
		return nil, fmt.Errorf("the SFU child did not start")
	}
	go func() { _, _ = io.Copy(io.Discard, stdout) }()
	pid := cmd.Process.Pid
	fmt.Fprintf(o.Out, "SFU child pid %d at %s\n", pid, url)

	space := "bench-" + idgen.New()[:8]
	token := func(role string) string {
		t, err := spacejwt.Sign(pemEncode(key), benchKID, spacejwt.SignClaims{Audience: spacejwt.AudienceRT, Subject: space, Role: role, TTL: time.Hour})
		if err != nil {
			panic(err)
		}
		return t
	}
	pub, err := spacesclient.Join(ctx, url, token("publisher"), spacesclient.Options{LoopbackOnly: true})
	if err != nil {
		return nil, fmt.Errorf("publisher join: %w", err)
	}
	defer pub.Close()
	video, err := webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, "video", spacesclient.NewTrackID())
	if err != nil {
		return nil, err
	}
	audio, err := webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "audio", spacesclient.NewTrackID())
	if err != nil {
		return nil, err
	}
	vp, err := pub.Publish(ctx, video, "camera")
	if err != nil {
		return nil, err
	}
	if _, err := pub.Publish(ctx, audio, "microphone"); err != nil {
		return nil, err
	}
	mctx, stopMedia := context.WithCancel(ctx)
	defer stopMedia()
	go synth.Video(mctx, video, o.Bitrate, 30, 60, vp.KeyframeRequests)
	go synth.Audio(mctx, audio)

	var results []Result
	for _, n := range o.Subscribers {
		r, err := step(ctx, o, url, token("subscriber"), n, pid)
		if err != nil {
			return results, err
		}
		results = append(results, r)
		fmt.Fprintf(o.Out, "N=%-4d joined=%-4d forwarded=%8.0f pkt/s  loss=%6.3f%%  SFU CPU=%5.1f%%  join->first frame p50=%v p95=%v  no-frame=%d\n",
			r.Subscribers, r.Joined, r.PacketsPerSec, r.LossPct, r.SFUCPUPct, r.FirstFrameP50, r.FirstFrameP95, r.NoFrame)
	}
	return results, nil
}

// trackStats counts one subscriber track's packets in the window.
type trackStats struct {
	mu       sync.Mutex
	counting bool
	seen     map[uint32]struct{} // extended sequence numbers
	cycles   uint32
	lastSeq  uint16
	started  bool
	packets  int
}

func (s *trackStats) add(seq uint16) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started && seq < 0x1000 && s.lastSeq > 0xf000 {
		s.cycles++
	}
	if !s.started || (seq-s.lastSeq) < 0x8000 {
		s.lastSeq = seq
	}
	s.started = true
	if s.counting {
		ext := s.cycles<<16 | uint32(seq)
		s.seen[ext] = struct{}{}
		s.packets++
	}
}

func (s *trackStats) window(on bool) (expected, got, packets int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if on {
		s.counting, s.seen, s.packets = true, map[uint32]struct{}{}, 0
		return
	}
	s.counting = false
	if len(s.seen) == 0 {
		return 0, 0, 0
	}
	lo, hi := ^uint32(0), uint32(0)
	for k := range s.seen {
		lo, hi = min(lo, k), max(hi, k)
	}
	return int(hi - lo + 1), len(s.seen), s.packets
}

func step(ctx context.Context, o Options, url, token string, n, pid int) (Result, error) {
	res := Result{Subscribers: n}
	var (
		mu      sync.Mutex
		clients []*spacesclient.Client
		stats   []*trackStats
		firsts  []time.Duration
		joined  atomic.Int64
	)
	var wg sync.WaitGroup
	interval := time.Second / time.Duration(max(o.JoinRate, 1))
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			var once sync.Once
			onTrack := func(rt *spacesclient.RemoteTrack) {
				st := &trackStats{}
				mu.Lock()
				stats = append(stats, st)
				mu.Unlock()
				video := rt.Track.Kind() == webrtc.RTPCodecTypeVideo
				mime := rt.Track.Codec().MimeType
				go func() {
					for {
						p, _, err := rt.Track.ReadRTP()
						if err != nil {
							return
						}
						st.add(p.SequenceNumber)
						if video && synth.IsKeyframeStart(mime, p.Payload) {
							once.Do(func() {
								mu.Lock()
								firsts = append(firsts, time.Since(start))
								mu.Unlock()
							})
						}
					}
				}()
			}
			c, err := spacesclient.Join(ctx, url, token, spacesclient.Options{LoopbackOnly: true, MinimalInterceptors: true,
				NoNACK: o.NoNACK, OnTrack: onTrack})
			if err != nil {
				o.Log.Warn("subscriber join failed", "err", err, "i", i)
				return
			}
			joined.Add(1)
			mu.Lock()
			clients = append(clients, c)
			mu.Unlock()
		}()
		time.Sleep(interval)
	}
	wg.Wait()
	// Wait for every first frame (or 10 s).
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		mu.Lock()
		got := len(firsts)
		mu.Unlock()
		if got >= int(joined.Load()) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(time.Second) // settle
	mu.Lock()
	all := append([]*trackStats(nil), stats...)
	mu.Unlock()
	for _, s := range all {
		s.window(true)
	}
	cpu0, _ := cpuTime(pid)
	t0 := time.Now()
	time.Sleep(o.Duration)
	cpu1, _ := cpuTime(pid)
	wall := time.Since(t0)
	var expected, got, packets int
	for _, s := range all {
		e, g, p := s.window(false)
		expected += e
		got += g
		packets += p
	}
	res.Joined = int(joined.Load())
	res.PacketsPerSec = float64(packets) / wall.Seconds()
	if expected > 0 {
		res.LossPct = 100 * float64(expected-got) / float64(expected)
	}
	res.SFUCPUPct = 100 * (cpu1 - cpu0).Seconds() / wall.Seconds()
	mu.Lock()
	sort.Slice(firsts, func(i, j int) bool { return firsts[i] < firsts[j] })
	if len(firsts) > 0 {
		res.FirstFrameP50 = firsts[len(firsts)/2].Round(time.Millisecond)
		res.FirstFrameP95 = firsts[min(len(firsts)-1, len(firsts)*95/100)].Round(time.Millisecond)
	}
	res.NoFrame = res.Joined - len(firsts)
	list := clients
	mu.Unlock()
	for _, c := range list {
		c.Close()
	}
	time.Sleep(time.Second)
	return res, nil
}

// cpuTime reads a process's user+system CPU time from /proc.
func cpuTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	s := string(b)
	s = s[strings.LastIndexByte(s, ')')+2:]
	f := strings.Fields(s)
	if len(f) < 13 {
		return 0, fmt.Errorf("short /proc stat")
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	const hz = 100 // USER_HZ on Linux
	return time.Duration(ut+st) * time.Second / hz, nil
}
