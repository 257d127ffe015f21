package loadtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"

	"github.com/spacecast/spacecast/services/sfu/internal/media"
	"github.com/spacecast/spacecast/services/sfu/internal/pionfanout"
	"github.com/spacecast/spacecast/services/sfu/internal/synth"
)

// ServeAnchorCommand is the "serve-anchor" subcommand Compare starts as its child: the
// minimal pion fan-out (package pionfanout) on 127.0.0.1. It writes "READY <http url>".
func ServeAnchorCommand(ctx context.Context, out io.Writer, log *slog.Logger) error {
	srv, err := pionfanout.New("127.0.0.1", log)
	if err != nil {
		return err
	}
	defer srv.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	fmt.Fprintf(out, "READY http://%s\n", ln.Addr())
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return hs.Shutdown(sctx)
}

// anchorAPI builds plain pion connections configured as spacesclient's are: the SFU's
// codecs, loopback UDP only, and either every default interceptor (publishers) or the
// subscribers' set (NACK unless o.NoNACK, RTCP reports), plus a shared socket with
// o.SubRcvBuf. The returned closer releases that socket (nil: none).
func anchorAPI(o Options, subscriber bool) (*webrtc.API, io.Closer, error) {
	m := &webrtc.MediaEngine{}
	if err := media.RegisterCodecs(m); err != nil {
		return nil, nil, err
	}
	ir := &interceptor.Registry{}
	if subscriber {
		if !o.NoNACK {
			if err := webrtc.ConfigureNack(m, ir); err != nil {
				return nil, nil, err
			}
		}
		if err := webrtc.ConfigureRTCPReports(ir); err != nil {
			return nil, nil, err
		}
	} else if err := webrtc.RegisterDefaultInterceptors(m, ir); err != nil {
		return nil, nil, err
	}
	s := webrtc.SettingEngine{}
	s.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	s.SetIncludeLoopbackCandidate(true)
	s.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() && ip.To4() != nil })
	s.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	var closer io.Closer
	if subscriber && o.SubRcvBuf > 0 {
		udp, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			return nil, nil, err
		}
		if err := udp.SetReadBuffer(o.SubRcvBuf); err != nil {
			udp.Close()
			return nil, nil, err
		}
		mux := webrtc.NewICEUDPMux(nil, udp)
		s.SetICEUDPMux(mux)
		closer = mux
	}
	return webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(s)), closer, nil
}

// offerTo sends pc's complete offer to url and applies the answer.
func offerTo(ctx context.Context, pc *webrtc.PeerConnection, url string) error {
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		return err
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		return err
	}
	select {
	case <-gathered:
	case <-ctx.Done():
		return ctx.Err()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewBufferString(pc.LocalDescription().SDP))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/sdp")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%w: %s: %d %s", ErrAnchorSignal, url, resp.StatusCode, bytes.TrimSpace(body))
	}
	return pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: string(body)})
}

// anchorConn is one plain pion connection to the anchor and its socket.
type anchorConn struct {
	pc  *webrtc.PeerConnection
	mux io.Closer
}

func (c *anchorConn) Close() error {
	err := c.pc.Close()
	if c.mux != nil {
		err = errors.Join(err, c.mux.Close())
	}
	return err
}

// startAnchorPublisher publishes the same synthetic VP8 and Opus as startPublisher to the
// anchor at base; the media runs until mctx ends.
func startAnchorPublisher(ctx, mctx context.Context, o Options, base string) (io.Closer, error) {
	api, _, err := anchorAPI(o, false)
	if err != nil {
		return nil, err
	}
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return nil, err
	}
	c := &anchorConn{pc: pc}
	video, err := webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, "video", "camera")
	if err != nil {
		c.Close()
		return nil, err
	}
	audio, err := webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "audio", "microphone")
	if err != nil {
		c.Close()
		return nil, err
	}
	keyframes := make(chan struct{}, 1)
	for _, tr := range []*webrtc.TrackLocalStaticSample{video, audio} {
		sender, err := pc.AddTransceiverFromTrack(tr, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
		if err != nil {
			c.Close()
			return nil, err
		}
		go func() { // keyframe requests, as spacesclient's publications read them
			for {
				pkts, _, err := sender.Sender().ReadRTCP()
				if err != nil {
					return
				}
				for _, p := range pkts {
					switch p.(type) {
					case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
						select {
						case keyframes <- struct{}{}:
						default:
						}
					}
				}
			}
		}()
	}
	if err := offerTo(ctx, pc, base+pionfanout.PublishPath); err != nil {
		c.Close()
		return nil, err
	}
	go synth.Video(mctx, video, o.Bitrate, 30, 60, keyframes)
	go synth.Audio(mctx, audio)
	return c, nil
}

// anchorSubscriber joins the anchor at base with a recvonly camera and microphone.
func anchorSubscriber(o Options, base string) subscribeFunc {
	return func(ctx context.Context, onTrack func(string, *webrtc.TrackRemote)) (io.Closer, error) {
		api, mux, err := anchorAPI(o, true)
		if err != nil {
			return nil, err
		}
		pc, err := api.NewPeerConnection(webrtc.Configuration{})
		if err != nil {
			if mux != nil {
				mux.Close()
			}
			return nil, err
		}
		c := &anchorConn{pc: pc, mux: mux}
		pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) { onTrack(tr.StreamID(), tr) })
		for _, k := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio} {
			if _, err := pc.AddTransceiverFromKind(k, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
				c.Close()
				return nil, err
			}
		}
		if err := offerTo(ctx, pc, base+pionfanout.SubscribePath); err != nil {
			c.Close()
			return nil, err
		}
		return c, nil
	}
}

// anchorTarget starts the anchor child and its publisher; stop ends both.
func anchorTarget(ctx context.Context, o Options) (target, func(), error) {
	url, pid, stopChild, err := startChild(ctx, o.Self, []string{"serve-anchor"})
	if err != nil {
		return target{}, nil, err
	}
	mctx, stopMedia := context.WithCancel(ctx)
	pub, err := startAnchorPublisher(ctx, mctx, o, url)
	if err != nil {
		stopMedia()
		stopChild()
		return target{}, nil, fmt.Errorf("anchor publisher: %w", err)
	}
	stop := func() { stopMedia(); pub.Close(); stopChild() }
	return target{name: "anchor", url: url, pid: pid, pubOf: map[string]int{pionfanout.VideoStreamID: 0, pionfanout.AudioStreamID: 0},
		subscribe: anchorSubscriber(o, url)}, stop, nil
}

// cpuPerSubscriber is a step's server CPU in cores per joined subscriber (0: none joined).
func cpuPerSubscriber(r Result) float64 {
	if r.Joined == 0 {
		return 0
	}
	return r.SFUCPUPct / 100 / float64(r.Joined)
}

// perKPkt is a step's server CPU, percent of a core, per 1000 forwarded packets/s.
func perKPkt(r Result) float64 {
	if r.PacketsPerSec == 0 {
		return 0
	}
	return r.SFUCPUPct / (r.PacketsPerSec / 1000)
}

// cpuRatio is the SFU's CPU per subscriber over the anchor's (0: unknown).
func cpuRatio(sfu, anchor Result) float64 {
	a := cpuPerSubscriber(anchor)
	if a == 0 {
		return 0
	}
	return cpuPerSubscriber(sfu) / a
}

// medianOf returns the median of xs (0 for none; the mean of the middle two for an even count).
func medianOf(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// Pair is one SFU step and one anchor step at the same N.
type Pair struct{ SFU, Anchor Result }

// Ratio is the SFU's CPU per subscriber over the anchor's.
func (p Pair) Ratio() float64 { return cpuRatio(p.SFU, p.Anchor) }

// Comparison is the pairs at one N and the median of their ratios.
type Comparison struct {
	Subscribers int
	Pairs       []Pair
	MedianRatio float64
	// The same per forwarded packet (CPU ÷ forwarded pkt/s): a starved load generator makes
	// the publisher send fewer packets, and both sides' CPU follows the packets forwarded.
	MedianPktRatio float64
}

// PktRatio is the SFU's CPU per forwarded packet over the anchor's (0: unknown).
func (p Pair) PktRatio() float64 {
	a := perKPkt(p.Anchor)
	if a == 0 {
		return 0
	}
	return perKPkt(p.SFU) / a
}

// Compare runs, per N of o.Subscribers, pairs steps against the SFU and against the pion
// fan-out anchor (each in a fresh child process with a fresh publisher), alternating the
// order (SFU first in even pairs, the anchor first in odd ones), and prints both sides and
// the ratio of CPU per subscriber. One publisher only: the anchor forwards one.
func Compare(ctx context.Context, o Options, pairs int) ([]Comparison, error) {
	if o.Publishers > 1 || o.Simulcast {
		return nil, ErrAnchorScope
	}
	o.Publishers = 1
	if o.Settle <= 0 {
		o.Settle = time.Second
	}
	pairs = max(pairs, 1)
	var out []Comparison
	for _, n := range o.Subscribers {
		c := Comparison{Subscribers: n}
		var ratios, pktRatios []float64
		for i := range pairs {
			var p Pair
			order := []string{"SFU", "anchor"}
			if i%2 == 1 {
				order = []string{"anchor", "SFU"}
			}
			for _, side := range order {
				var r Result
				var err error
				if side == "SFU" {
					var rs []Result
					so := o
					so.Subscribers = []int{n}
					so.Out = io.Discard
					rs, err = Run(ctx, so)
					if err == nil && len(rs) == 1 {
						r = rs[0]
					} else if err == nil {
						err = fmt.Errorf("SFU step N=%d: %d results", n, len(rs))
					}
				} else {
					r, err = anchorStep(ctx, o, n)
				}
				if err != nil {
					return out, fmt.Errorf("%s N=%d pair %d: %w", side, n, i+1, err)
				}
				fmt.Fprintf(o.Out, "pair %d %-6s ", i+1, side)
				printStep(o.Out, o, r)
				if side == "SFU" {
					p.SFU = r
				} else {
					p.Anchor = r
				}
			}
			c.Pairs = append(c.Pairs, p)
			ratios = append(ratios, p.Ratio())
			pktRatios = append(pktRatios, p.PktRatio())
			fmt.Fprintf(o.Out, "pair %d N=%d CPU per subscriber: SFU %.3f%% of a core, anchor %.3f%%, ratio SFU/anchor %.2f (per 1000 forwarded pkt/s: SFU %.2f%%, anchor %.2f%%)\n",
				i+1, n, 100*cpuPerSubscriber(p.SFU), 100*cpuPerSubscriber(p.Anchor), p.Ratio(), perKPkt(p.SFU), perKPkt(p.Anchor))
		}
		c.MedianRatio, c.MedianPktRatio = medianOf(ratios), medianOf(pktRatios)
		fmt.Fprintf(o.Out, "N=%d median ratio SFU/anchor over %d pair(s): CPU per subscriber %.2f, CPU per forwarded packet %.2f\n",
			n, len(ratios), c.MedianRatio, c.MedianPktRatio)
		out = append(out, c)
	}
	return out, nil
}

// anchorStep runs one step of n subscribers against a fresh anchor child.
func anchorStep(ctx context.Context, o Options, n int) (Result, error) {
	t, stop, err := anchorTarget(ctx, o)
	if err != nil {
		return Result{}, err
	}
	defer stop()
	return step(ctx, o, t, n)
}
