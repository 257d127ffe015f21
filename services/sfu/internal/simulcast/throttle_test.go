package simulcast

import (
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/logging"
	"github.com/pion/transport/v4/vnet"
)

// policer drops what exceeds rate bytes/s beyond a burst, like a congested link without a
// queue.
type policer struct {
	mu     sync.Mutex
	rate   float64 // bytes/s
	burst  float64
	tokens float64
	last   time.Time
}

func (p *policer) allow(n int, now time.Time) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.last.IsZero() {
		p.tokens = min(p.burst, p.tokens+now.Sub(p.last).Seconds()*p.rate)
	}
	p.last = now
	if p.tokens < float64(n) {
		return false
	}
	p.tokens -= float64(n)
	return true
}

// TestRelayThrottledSubscriberSwitchesDown: the parties run on a pion virtual network; the
// space owner's loop feeds the layers a Meter measures and each subscriber's send-side
// bandwidth estimate (RegisterBWE) into its Selector and the Selector's choice into its Forwarder. When subscriber 0's link is cut
// to 150 kbit/s its estimate falls and it is switched down from f (≈ 270 kbit/s) to a smaller
// layer, at a keyframe; subscriber 1 keeps f (or at least a higher estimate).
func TestRelayThrottledSubscriberSwitchesDown(t *testing.T) {
	if testing.Short() {
		t.Skip("pion integration test")
	}
	router, err := vnet.NewRouter(&vnet.RouterConfig{CIDR: "10.10.0.0/24", LoggerFactory: logging.NewDefaultLoggerFactory()})
	if err != nil {
		t.Fatal(err)
	}
	ips := map[string]string{"relay": "10.10.0.1", "publisher": "10.10.0.2", "subscriber0": "10.10.0.3", "subscriber1": "10.10.0.4"}
	nets := map[string]*vnet.Net{}
	for party, ip := range ips {
		n, err := vnet.NewNet(&vnet.NetConfig{StaticIPs: []string{ip}})
		if err != nil {
			t.Fatal(err)
		}
		if err := router.AddNet(n); err != nil {
			t.Fatal(err)
		}
		nets[party] = n
	}
	var throttled atomic.Bool
	link := &policer{rate: 150_000 / 8, burst: 8000}
	var dropped atomic.Int64
	router.AddChunkFilter(func(c vnet.Chunk) bool {
		if !throttled.Load() {
			return true
		}
		if dst, ok := c.DestinationAddr().(*net.UDPAddr); ok && dst.IP.String() == ips["subscriber0"] {
			if !link.allow(len(c.UserData()), time.Now()) {
				dropped.Add(1)
				return false
			}
		}
		return true
	})
	if err := router.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = router.Stop() })

	r := newRig(t, 2, func(party string) *vnet.Net { return nets[party] })
	subs := r.subs

	// The space owner's loop: one Selector per subscriber, every 100 ms.
	ownerDone := make(chan struct{})
	go func() {
		defer close(ownerDone)
		sels := make([]*Selector, len(subs))
		for i := range sels {
			var err error
			if sels[i], err = NewSelector(SelectorOptions{}); err != nil {
				t.Error(err)
				return
			}
		}
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-r.stop:
				return
			case now := <-tick.C:
				layers := r.meter.Layers() // measured from the publisher's packets
				if len(layers) < len(rids) {
					continue // not all layers seen yet: the Forwarders keep their initial f
				}
				for i, s := range subs {
					if rid, changed := sels[i].Update(layers, s.est.Bitrate(), 0, 0, now); changed && rid != "" {
						s.fw.SetTarget(rid)
					}
				}
			}
		}
	}()

	waitFor(t, "both subscribers to receive 30 frames of f", func() bool {
		return layerFrames(subs[0], 2, false) >= 30 && layerFrames(subs[1], 2, false) >= 30
	})
	before := subs[0].est.Bitrate()
	throttled.Store(true)
	waitFor(t, "subscriber 0 to be switched down", func() bool {
		cur := subs[0].fw.Current()
		return cur == "q" || cur == "h"
	})
	// On the lossy link the Selector may go on from h to q; either is down.
	lower := func(key bool) int { return layerFrames(subs[0], 0, key) + layerFrames(subs[0], 1, key) }
	// The switch's own keyframe may be lost on the policed link; the subscriber then asks
	// for another (receiverPLIs), as a browser would.
	waitFor(t, "subscriber 0 to receive a keyframe of a smaller layer", func() bool { return lower(true) >= 1 })
	waitFor(t, "subscriber 0 to receive 15 frames of smaller layers", func() bool { return lower(false) >= 15 })
	down := subs[0].fw.Current()
	after := subs[0].est.Bitrate()
	r.close()
	<-ownerDone

	if after >= before {
		t.Fatalf("subscriber 0's estimate did not fall: %d -> %d bit/s", before, after)
	}
	if st := subs[0].fw.Stats(); st.Switches < 1 || (down != "q" && down != "h") {
		t.Fatalf("subscriber 0 on %q: %+v", down, st)
	}
	// Subscriber 1's link is not throttled: it is back on (or never left) f, or at least
	// estimated above the throttled one. (On a loaded machine, and under the race detector, the
	// relay delays packets enough for the delay-based estimate to dip on that link too.)
	fs := frames(t, "subscriber 1", subs[1].got.snapshot())
	got := checkFrames(t, "subscriber 1", fs)
	cur, st := subs[1].fw.Current(), subs[1].fw.Stats()
	switch {
	case cur == "f" && st.Switches == 0:
	case cur == "f" || subs[1].est.Bitrate() > after:
		t.Logf("subscriber 1 moved too (%v, now %q) with an estimate of %d bit/s", got, cur, subs[1].est.Bitrate())
	default:
		t.Fatalf("subscriber 1 (not throttled) received %v, now %q: %+v, estimate %d", got, cur, st, subs[1].est.Bitrate())
	}
	t.Logf("subscriber 0: estimate %d -> %d bit/s, now on %s, %d packets dropped by the link, %+v, %d PLIs of its own", before, after, down, dropped.Load(), subs[0].fw.Stats(), subs[0].receiverPLIs.Load())
	t.Logf("layers measured: %+v", r.meter.Layers())
	t.Logf("subscriber 1: estimate %d bit/s, %+v", subs[1].est.Bitrate(), subs[1].fw.Stats())
}
