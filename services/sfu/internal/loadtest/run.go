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
	Publishers  int           // participants publishing a camera and a microphone (0: one)
	Simulcast   bool          // the SFU asks cameras for RID layers; publishers send them
	Duration    time.Duration // measuring window per step
	Settle      time.Duration // wait after the first frames before the window (0: 1 s)
	Bitrate     int           // video bits/s per publisher (simulcast: of the top layer)
	JoinRate    int           // subscriber joins started per second
	NoNACK      bool          // subscribers do not NACK: loss is measured before retransmission
	SubRcvBuf   int           // each subscriber's UDP receive buffer, bytes (0: the system's default)
	Self        string        // path of this executable (re-run with "serve")
	Out         io.Writer
	Log         *slog.Logger
}

// Result of one step.
type Result struct {
	Server        string // what was measured: "SFU" or "anchor" (the pion fan-out)
	Subscribers   int
	Joined        int
	PacketsPerSec float64
	LossPct       float64
	SFUCPUPct     float64 // percent of one core
	FirstFrameP50 time.Duration
	FirstFrameP95 time.Duration
	NoFrame       int
	BitrateMbps   float64 // forwarded RTP bytes arriving at the subscribers, Mbit/s
	Summary       Summary
	// UDP datagrams dropped in the window because a socket's receive buffer was full: the
	// SFU's sockets and the load generator's (publishers and subscribers).
	SFUDrops, GeneratorDrops int64
	DropsKnown               bool
}

// Run starts the SFU child, the publishers, and each subscriber step in turn.
func Run(ctx context.Context, o Options) ([]Result, error) {
	o.Publishers = max(o.Publishers, 1)
	if o.Settle <= 0 {
		o.Settle = time.Second
	}
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
	args := []string{"serve", "-key", keyFile.Name()}
	if o.Simulcast {
		args = append(args, "-simulcast")
	}
	url, pid, stopChild, err := startChild(ctx, o.Self, args)
	if err != nil {
		return nil, err
	}
	defer stopChild()
	fmt.Fprintf(o.Out, "SFU child pid %d at %s\n", pid, url)

	space := "bench-" + idgen.New()[:8]
	token := func(role string) string {
		t, err := spacejwt.Sign(pemEncode(key), benchKID, spacejwt.SignClaims{Audience: spacejwt.AudienceRT, Subject: space, Role: role, TTL: time.Hour})
		if err != nil {
			panic(err)
		}
		return t
	}
	mctx, stopMedia := context.WithCancel(ctx)
	defer stopMedia()
	pubOf := map[string]int{} // camera and microphone track ids → publisher index
	for i := range o.Publishers {
		p, err := startPublisher(ctx, mctx, o, url, token("publisher"))
		if err != nil {
			return nil, fmt.Errorf("publisher %d: %w", i, err)
		}
		defer p.client.Close()
		pubOf[p.videoTID], pubOf[p.audioTID] = i, i
		if i == 0 && o.Simulcast {
			fmt.Fprintf(o.Out, "simulcast layers per publisher:")
			for _, l := range p.layers {
				fmt.Fprintf(o.Out, " %s %dx%d %.2f Mbit/s;", l.rid, l.width, l.height, float64(l.bitrate)/1e6)
			}
			fmt.Fprintln(o.Out)
		}
	}

	t := target{name: "SFU", url: url, pid: pid, pubOf: pubOf, subscribe: sfuSubscriber(o, url, token("subscriber"))}
	var results []Result
	for _, n := range o.Subscribers {
		r, err := step(ctx, o, t, n)
		if err != nil {
			return results, err
		}
		results = append(results, r)
		printStep(o.Out, o, r)
	}
	return results, nil
}

// printStep writes a step's lines: the summary line (the same as before rooms existed), the
// per-track line, the UDP drops and, with simulcast, the layers.
func printStep(w io.Writer, o Options, r Result) {
	sum := r.Summary
	server := r.Server
	if server == "" {
		server = "SFU"
	}
	fmt.Fprintf(w, "N=%-4d joined=%-4d forwarded=%8.0f pkt/s  loss=%6.3f%%  %s CPU=%5.1f%%  join->first frame p50=%v p95=%v  no-frame=%d\n",
		r.Subscribers, r.Joined, r.PacketsPerSec, r.LossPct, server, r.SFUCPUPct, r.FirstFrameP50, r.FirstFrameP95, r.NoFrame)
	perTrack := 0.0
	if sum.Tracks > 0 {
		perTrack = r.SFUCPUPct / float64(sum.Tracks)
	}
	fmt.Fprintf(w, "  %d publishers: %d subscriber tracks (%d video), loss per track p50=%.3f%% max=%.3f%% (silent %d), forwarded %.1f Mbit/s, %s %.3f cores = %.3f%% of a core per forwarded track; video pairs missing=%d extra=%d\n",
		o.Publishers, sum.Tracks, sum.VideoTracks, sum.LossP50, sum.LossMax, sum.Silent, r.BitrateMbps, server, r.SFUCPUPct/100, perTrack, sum.MissingVideo, sum.ExtraVideo)
	if r.DropsKnown {
		fmt.Fprintf(w, "  UDP receive-buffer drops in the window: %s sockets %d, load generator sockets %d\n", server, r.SFUDrops, r.GeneratorDrops)
	}
	if o.Simulcast {
		fmt.Fprintf(w, "  simulcast: video tracks with one layer in the window=%d (", sum.OneLayer)
		for li := range len(sum.OnlyLayer) {
			if sum.OnlyLayer[li] > 0 {
				fmt.Fprintf(w, " layer %d: %d", li, sum.OnlyLayer[li])
			}
		}
		fmt.Fprintf(w, " ), switched layers=%d (layer changes: %d in all, at most %d on one track), no marked frame=%d; last layer:",
			sum.Switched, sum.Switches, sum.SwitchesMax, sum.Unmarked)
		for li := range len(sum.LastLayer) {
			if sum.LastLayer[li] > 0 {
				fmt.Fprintf(w, " layer %d: %d", li, sum.LastLayer[li])
			}
		}
		fmt.Fprintln(w)
	}
}

// publisher is one publishing participant: a camera (one VP8 encoding, or RID layers with
// simulcast) and a microphone, each answering keyframe requests.
type publisher struct {
	client             *spacesclient.Client
	videoTID, audioTID string
	layers             []layerSpec // simulcast only
}

// startPublisher joins and publishes; the media runs until mctx ends.
func startPublisher(ctx, mctx context.Context, o Options, url, token string) (*publisher, error) {
	manual := 0 // publishers receive nothing: only the subscribers are measured
	c, err := spacesclient.Join(ctx, url, token, spacesclient.Options{LoopbackOnly: true, Managed: &manual})
	if err != nil {
		return nil, fmt.Errorf("join: %w", err)
	}
	p := &publisher{client: c}
	audio, err := webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "audio", spacesclient.NewTrackID())
	if err != nil {
		c.Close()
		return nil, err
	}
	p.audioTID = audio.StreamID()
	if o.Simulcast {
		if p.layers, err = simulcastLayers(c.Info().Simulcast.CameraEncodings, o.Bitrate); err != nil {
			c.Close()
			return nil, err
		}
		v, err := newLayeredVideo(p.layers)
		if err != nil {
			c.Close()
			return nil, err
		}
		vp, err := c.PublishLayers(ctx, v.locals(), "camera")
		if err != nil {
			c.Close()
			return nil, err
		}
		p.videoTID = vp.TID
		go func() {
			if err := v.run(mctx, vp, 60); err != nil && mctx.Err() == nil {
				o.Log.Warn("simulcast publisher stopped", "err", err)
			}
		}()
	} else {
		video, err := webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, "video", spacesclient.NewTrackID())
		if err != nil {
			c.Close()
			return nil, err
		}
		vp, err := c.Publish(ctx, video, "camera")
		if err != nil {
			c.Close()
			return nil, err
		}
		p.videoTID = vp.TID
		go synth.Video(mctx, video, o.Bitrate, 30, 60, vp.KeyframeRequests)
	}
	if _, err := c.Publish(ctx, audio, "microphone"); err != nil {
		c.Close()
		return nil, err
	}
	go synth.Audio(mctx, audio)
	return p, nil
}

// startChild runs self with args and waits for its "READY <url>" line; stop ends it.
func startChild(ctx context.Context, self string, args []string) (url string, pid int, stop func(), err error) {
	cctx, cancel := context.WithCancel(ctx)
	cmd := exec.CommandContext(cctx, self, args...)
	cmd.Stderr = io.Discard
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 10 * time.Second
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		cancel()
		return "", 0, nil, err
	}
	if err := cmd.Start(); err != nil {
		cancel()
		return "", 0, nil, err
	}
	stop = func() { cancel(); _ = cmd.Wait() }
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "READY "); ok {
			url = rest
			break
		}
	}
	if url == "" {
		stop()
		return "", 0, nil, fmt.Errorf("%w: %s %s", ErrChildNotReady, self, strings.Join(args, " "))
	}
	go func() { _, _ = io.Copy(io.Discard, stdout) }()
	return url, cmd.Process.Pid, stop, nil
}

// target is what a step measures: a server process (pid, for its CPU and UDP drops) with
// its publishers running, and how a subscriber joins it.
type target struct {
	name      string
	url       string // the server's signalling address
	pid       int
	pubOf     map[string]int // stream ids of forwarded tracks → publisher index
	subscribe subscribeFunc
}

// subscribeFunc joins one subscriber; onTrack is called for each track it receives.
type subscribeFunc func(ctx context.Context, onTrack func(streamID string, tr *webrtc.TrackRemote)) (io.Closer, error)

// sfuSubscriber joins the SFU's space as a spacesclient subscriber.
func sfuSubscriber(o Options, url, token string) subscribeFunc {
	return func(ctx context.Context, onTrack func(string, *webrtc.TrackRemote)) (io.Closer, error) {
		// With simulcast the subscribers send transport-wide-cc feedback (as browsers
		// do): the SFU's layer choice follows the bandwidth estimate it gives.
		return spacesclient.Join(ctx, url, token, spacesclient.Options{LoopbackOnly: true, MinimalInterceptors: !o.Simulcast,
			NoNACK: o.NoNACK, ReadBuffer: o.SubRcvBuf, OnTrack: func(rt *spacesclient.RemoteTrack) { onTrack(rt.TID, rt.Track) }})
	}
}

func step(ctx context.Context, o Options, t target, n int) (Result, error) {
	res := Result{Server: t.name, Subscribers: n}
	pid, pubOf := t.pid, t.pubOf
	var (
		mu      sync.Mutex
		clients []io.Closer
		stats   []*trackStats
		frames  atomic.Int64 // video tracks with a first frame
		joined  atomic.Int64
	)
	var wg sync.WaitGroup
	interval := time.Second / time.Duration(max(o.JoinRate, 1))
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			onTrack := func(tid string, track *webrtc.TrackRemote) {
				video := track.Kind() == webrtc.RTPCodecTypeVideo
				pub, ok := pubOf[tid]
				if !ok {
					pub = -1
				}
				st := newTrackStats(i, pub, video)
				mu.Lock()
				stats = append(stats, st)
				mu.Unlock()
				mime := track.Codec().MimeType
				go func() {
					for {
						p, _, err := track.ReadRTP()
						if err != nil {
							return
						}
						layer := noLayer
						if video {
							if o.Simulcast {
								layer = frameLayer(p.Payload)
							}
							if synth.IsKeyframeStart(mime, p.Payload) && st.firstFrame(time.Since(start)) {
								frames.Add(1)
							}
						}
						st.add(p.SequenceNumber, p.MarshalSize(), layer)
					}
				}()
			}
			c, err := t.subscribe(ctx, onTrack)
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
	// Wait for every camera's first frame at every subscriber (or 10 s).
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) && frames.Load() < joined.Load()*int64(o.Publishers) {
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(o.Settle)
	mu.Lock()
	all := append([]*trackStats(nil), stats...)
	mu.Unlock()
	for _, s := range all {
		s.window(true)
	}
	sfuDrops0, ok0 := udpDrops(pid)
	genDrops0, ok1 := udpDrops(os.Getpid())
	cpu0, _ := cpuTime(pid)
	t0 := time.Now()
	time.Sleep(o.Duration)
	cpu1, _ := cpuTime(pid)
	wall := time.Since(t0)
	sfuDrops1, ok2 := udpDrops(pid)
	genDrops1, ok3 := udpDrops(os.Getpid())
	res.DropsKnown = ok0 && ok1 && ok2 && ok3
	if res.DropsKnown {
		res.SFUDrops, res.GeneratorDrops = int64(sfuDrops1)-int64(sfuDrops0), int64(genDrops1)-int64(genDrops0)
	}
	tracks := make([]trackResult, 0, len(all))
	for _, s := range all {
		tracks = append(tracks, s.result())
	}
	sum := summarize(tracks, n, o.Publishers)
	res.Summary = sum
	res.Joined = int(joined.Load())
	res.PacketsPerSec = float64(sum.Packets) / wall.Seconds()
	res.BitrateMbps = float64(sum.Bytes) * 8 / wall.Seconds() / 1e6
	res.LossPct = sum.LossTotal
	res.SFUCPUPct = 100 * (cpu1 - cpu0).Seconds() / wall.Seconds()
	res.FirstFrameP50, res.FirstFrameP95 = sum.FirstP50, sum.FirstP95
	res.NoFrame = sum.NoFrame
	mu.Lock()
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
