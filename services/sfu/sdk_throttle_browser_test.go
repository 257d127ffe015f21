package sfu_test

import (
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spacecast/spacecast/services/sfu"
)

// udpThrottle is a UDP proxy between a browser and the SFU's ICE port: one upstream socket
// per browser address, and a policer on the way back (what exceeds the rate beyond a small
// burst is dropped, like a congested link without a queue). The browser's checks reach the
// SFU from the proxy's socket, so the SFU answers and sends media there.
type udpThrottle struct {
	down     net.PacketConn // the browser side
	upstream *net.UDPAddr
	mu       sync.Mutex
	ups      map[string]*net.UDPConn
	link     policer
	rate     atomic.Int64 // bytes/s toward the browser, 0 = unlimited
	dropped  atomic.Int64
}

// policer drops what exceeds rate bytes/s beyond burst.
type policer struct {
	mu     sync.Mutex
	tokens float64
	last   time.Time
}

func (p *policer) allow(n int, rate float64, now time.Time) bool {
	const burst = 8000
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.last.IsZero() {
		p.tokens = min(burst, p.tokens+now.Sub(p.last).Seconds()*rate)
	}
	p.last = now
	if p.tokens < float64(n) {
		return false
	}
	p.tokens -= float64(n)
	return true
}

func newUDPThrottle(t *testing.T, sfuPort int) *udpThrottle {
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := &udpThrottle{down: pc, upstream: &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: sfuPort}, ups: map[string]*net.UDPConn{}}
	t.Cleanup(u.close)
	go u.run()
	return u
}

func (u *udpThrottle) port() int { return u.down.LocalAddr().(*net.UDPAddr).Port }

func (u *udpThrottle) close() {
	_ = u.down.Close()
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, c := range u.ups {
		_ = c.Close()
	}
}

func (u *udpThrottle) run() {
	buf := make([]byte, 1600)
	for {
		n, from, err := u.down.ReadFrom(buf)
		if err != nil {
			return
		}
		u.mu.Lock()
		up := u.ups[from.String()]
		if up == nil {
			if up, err = net.DialUDP("udp4", nil, u.upstream); err != nil {
				u.mu.Unlock()
				continue
			}
			u.ups[from.String()] = up
			go u.back(up, from)
		}
		u.mu.Unlock()
		_, _ = up.Write(buf[:n])
	}
}

// back copies the SFU's packets for one browser address, policed.
func (u *udpThrottle) back(up *net.UDPConn, to net.Addr) {
	buf := make([]byte, 1600)
	for {
		n, err := up.Read(buf)
		if err != nil {
			return
		}
		if r := u.rate.Load(); r > 0 && !u.link.allow(n, float64(r), time.Now()) {
			u.dropped.Add(1)
			continue
		}
		_, _ = u.down.WriteTo(buf[:n], to)
	}
}

// TestMuxSpacesSDKThrottledSubscriber: a Chromium viewer (the unchanged SDK) whose downlink
// is throttled below the simulcast layer it plays is switched to a smaller layer by the SFU
// (its send-side estimate falls on the browser's transport-wide feedback) and keeps playing.
// Chromium's own network emulation does not reach WebRTC's UDP, so the viewer's media goes
// through a UDP proxy of the test (the page replaces the SFU's candidate by the proxy's).
func TestMuxSpacesSDKThrottledSubscriber(t *testing.T) {
	chromium, node, dir := sdkEnv(t)
	page := sdkPage(t, dir)
	w := newWorld(t)
	n := w.node("n1", func(c *sfu.Config) { c.Simulcast = true })
	thr := newUDPThrottle(t, n.svc.UDPPort())
	ctl := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		kbps, err := strconv.Atoi(r.URL.Query().Get("kbps"))
		if err != nil || kbps < 0 {
			http.Error(rw, "kbps", http.StatusBadRequest)
			return
		}
		thr.rate.Store(int64(kbps) * 1000 / 8)
		t.Logf("viewer's downlink limited to %d kbit/s", kbps)
	}))
	t.Cleanup(ctl.Close)
	env, _ := json.Marshal(map[string]any{"control": ctl.URL, "sfuPort": n.svc.UDPPort(), "proxyPort": thr.port()})
	runSDK(t, chromium, node, dir, "throttle", page, "ws"+strings.TrimPrefix(n.http, "http")+strings.TrimSuffix(sfu.SpacesPath, "/v1"), w,
		"SDK_THROTTLE="+string(env))
	if thr.dropped.Load() == 0 {
		t.Fatal("the proxy dropped nothing: the viewer's media did not go through it")
	}
	t.Logf("the proxy dropped %d packets; %v layer switches", thr.dropped.Load(), metricValue(t, n, "spacecast_sfu_layer_switches_total"))
}
