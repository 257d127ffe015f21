package simulcast

import (
	"fmt"
	"sync"

	"github.com/pion/interceptor"
	"github.com/pion/interceptor/pkg/cc"
	"github.com/pion/interceptor/pkg/gcc"
	"github.com/pion/webrtc/v4"
)

// BWEOptions configure the send-side bandwidth estimation. Zero fields take the defaults in
// brackets (bits/s).
type BWEOptions struct {
	InitialBitrate int // the estimate before any feedback [1 Mbit/s]
	MinBitrate     int // [100 kbit/s]
	MaxBitrate     int // [10 Mbit/s]
}

// BWE hands out the send-side bandwidth estimators (pion's Google Congestion Control, fed by
// the transport-wide congestion control feedback the browser sends) of the peer connections
// built from one webrtc.API. Safe for concurrent use.
type BWE struct {
	mu   sync.Mutex
	byPC map[string][]cc.BandwidthEstimator
}

// RegisterBWE sets up m and ir (before webrtc.NewAPI is called with them) so that every peer
// connection of that API estimates its send bandwidth: it registers the transport-wide-cc
// header extension and the interceptor that numbers outgoing packets with it, and a congestion
// control interceptor (GCC, without a pacer: packets are sent at once, the estimate only
// informs the layer choice). Call Take for each peer connection built from the API, or its
// estimator stays in the BWE until then.
func RegisterBWE(m *webrtc.MediaEngine, ir *interceptor.Registry, o BWEOptions) (*BWE, error) {
	if o.InitialBitrate < 0 || o.MinBitrate < 0 || o.MaxBitrate < 0 {
		return nil, fmt.Errorf("%w: negative bitrate", ErrBadOptions)
	}
	if o.InitialBitrate == 0 {
		o.InitialBitrate = 1_000_000
	}
	if o.MinBitrate == 0 {
		o.MinBitrate = 100_000
	}
	if o.MaxBitrate == 0 {
		o.MaxBitrate = 10_000_000
	}
	if o.MinBitrate > o.MaxBitrate || o.InitialBitrate < o.MinBitrate || o.InitialBitrate > o.MaxBitrate {
		return nil, fmt.Errorf("%w: want MinBitrate ≤ InitialBitrate ≤ MaxBitrate", ErrBadOptions)
	}
	b := &BWE{byPC: map[string][]cc.BandwidthEstimator{}}
	f, err := cc.NewInterceptor(func() (cc.BandwidthEstimator, error) {
		return gcc.NewSendSideBWE(
			gcc.SendSideBWEInitialBitrate(o.InitialBitrate),
			gcc.SendSideBWEMinBitrate(o.MinBitrate),
			gcc.SendSideBWEMaxBitrate(o.MaxBitrate),
			gcc.SendSideBWEPacer(gcc.NewNoOpPacer()),
		)
	})
	if err != nil {
		return nil, err
	}
	// Called synchronously from webrtc.API.NewPeerConnection with the connection's ID.
	f.OnNewPeerConnection(func(id string, e cc.BandwidthEstimator) {
		b.mu.Lock()
		b.byPC[id] = append(b.byPC[id], e)
		b.mu.Unlock()
	})
	ir.Add(f)
	if err := webrtc.ConfigureTWCCHeaderExtensionSender(m, ir); err != nil {
		return nil, err
	}
	return b, nil
}

// Estimate reads one peer connection's bandwidth estimate.
type Estimate struct {
	e cc.BandwidthEstimator
}

// Bitrate is the current estimate of the bits/s the connection can send.
func (e Estimate) Bitrate() uint64 {
	if r := e.e.GetTargetBitrate(); r > 0 {
		return uint64(r)
	}
	return 0
}

// OnChange calls f (from pion's RTCP goroutine) with each new estimate.
func (e Estimate) OnChange(f func(bps uint64)) {
	e.e.OnTargetBitrateChange(func(r int) {
		if r < 0 {
			r = 0
		}
		f(uint64(r))
	})
}

// Take returns the estimate of pc (built from the API RegisterBWE set up) and forgets it; the
// estimator is closed with the connection. ErrNoEstimator if there is none.
func (b *BWE) Take(pc *webrtc.PeerConnection) (Estimate, error) {
	id := pc.ID()
	b.mu.Lock()
	defer b.mu.Unlock()
	es := b.byPC[id]
	if len(es) == 0 {
		return Estimate{}, fmt.Errorf("%w (%s)", ErrNoEstimator, id)
	}
	e := es[0]
	if len(es) == 1 {
		delete(b.byPC, id)
	} else {
		b.byPC[id] = es[1:]
	}
	return Estimate{e: e}, nil
}
