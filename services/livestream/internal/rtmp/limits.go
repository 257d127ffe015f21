package rtmp

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// connTable counts open connections, in total and per remote address. Accept adds, the
// connection's goroutine removes when it ends.
type connTable struct {
	mu    sync.Mutex
	total int
	perIP map[netip.Prefix]int
}

type admission uint8

const (
	admitted admission = iota
	overTotal
	overPerIP
)

// add admits a connection from key unless a limit (0 or -1: none) is reached.
func (t *connTable) add(key netip.Prefix, maxTotal, maxPerIP int) admission {
	t.mu.Lock()
	defer t.mu.Unlock()
	if maxTotal > 0 && t.total >= maxTotal {
		return overTotal
	}
	if maxPerIP > 0 && key.IsValid() && t.perIP[key] >= maxPerIP {
		return overPerIP
	}
	t.total++
	if key.IsValid() {
		t.perIP[key]++
	}
	return admitted
}

func (t *connTable) remove(key netip.Prefix) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.total--
	if key.IsValid() {
		if t.perIP[key]--; t.perIP[key] <= 0 {
			delete(t.perIP, key)
		}
	}
}

func (t *connTable) count() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.total
}

// addrKey is what the per-address limit counts by: the IPv4 address, or the /64 of an IPv6
// address (one host usually has a whole /64). Invalid when the address is not IP (then only
// the total limit applies).
func addrKey(a net.Addr) netip.Prefix {
	var ap netip.AddrPort
	if ta, ok := a.(*net.TCPAddr); ok {
		ap = ta.AddrPort()
	} else if p, err := netip.ParseAddrPort(a.String()); err == nil {
		ap = p
	}
	ip := ap.Addr().Unmap().WithZone("")
	switch {
	case !ip.IsValid():
		return netip.Prefix{}
	case ip.Is4():
		return netip.PrefixFrom(ip, 32)
	default:
		p, _ := ip.Prefix(64)
		return p
	}
}

// memBudget counts the bytes buffered for partly received messages of all connections.
// Connections without an accepted publish may hold at most half of the limit, so that
// publishers always have the other half.
type memBudget struct {
	mu    sync.Mutex
	limit int64
	used  int64 // all connections
	pre   int64 // connections without an accepted publish
}

// reserve adds n bytes of a connection (pre: without an accepted publish) unless that takes a
// count past its limit.
func (b *memBudget) reserve(n int64, pre bool) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.used+n > b.limit || pre && b.pre+n > b.limit/2 {
		return false
	}
	b.used += n
	if pre {
		b.pre += n
	}
	return true
}

func (b *memBudget) release(n int64, pre bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.used -= n
	if pre {
		b.pre -= n
	}
}

// move counts n bytes of a connection whose publish was accepted (toPre false) or ended.
func (b *memBudget) move(n int64, toPre bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if toPre {
		b.pre += n
	} else {
		b.pre -= n
	}
}

func (b *memBudget) buffered() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used
}

// counters count connections refused or cut by each limit.
type counters struct {
	refusedTotal, refusedPerIP                          limitLog
	cutHandshakeTimeout, cutPublishTimeout              limitLog
	cutMessageTooLarge, cutBufferLimit, cutMemoryBudget limitLog
}

// limitLog counts the connections refused or cut by one limit and logs them, at most one line
// a second (which tells how many were left out before it), so that a flood of connections
// does not flood the log too.
type limitLog struct {
	n        atomic.Int64 // connections, in all
	last     atomic.Int64 // unix ns of the last line
	unlogged atomic.Int64
}

func (l *limitLog) note(log *slog.Logger, level slog.Level, msg string, args ...any) {
	l.n.Add(1)
	now := time.Now().UnixNano()
	last := l.last.Load()
	if now-last < int64(time.Second) || !l.last.CompareAndSwap(last, now) {
		l.unlogged.Add(1)
		return
	}
	if u := l.unlogged.Swap(0); u > 0 {
		args = append(args, "unlogged_before", u)
	}
	log.Log(context.Background(), level, msg, args...)
}

// Stats are the server's counters since it was made.
type Stats struct {
	Open     int   // open connections
	Buffered int64 // bytes buffered for partly received messages, all connections
	// Connections refused at accept.
	RefusedMaxConnections, RefusedPerIP int64
	// Connections closed by a limit.
	HandshakeTimeout, PublishTimeout           int64 // the fixed deadlines
	MessageTooLarge, BufferLimit, MemoryBudget int64 // the memory limits
}

// Stats reads the counters.
func (s *Server) Stats() Stats {
	return Stats{
		Open:                  s.conns.count(),
		Buffered:              s.budget.buffered(),
		RefusedMaxConnections: s.stats.refusedTotal.n.Load(),
		RefusedPerIP:          s.stats.refusedPerIP.n.Load(),
		HandshakeTimeout:      s.stats.cutHandshakeTimeout.n.Load(),
		PublishTimeout:        s.stats.cutPublishTimeout.n.Load(),
		MessageTooLarge:       s.stats.cutMessageTooLarge.n.Load(),
		BufferLimit:           s.stats.cutBufferLimit.n.Load(),
		MemoryBudget:          s.stats.cutMemoryBudget.n.Load(),
	}
}

func (s *Server) register(r prometheus.Registerer) error {
	counter := func(reason string, v *atomic.Int64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name:        "spacecast_rtmp_connections_cut_total",
			Help:        "RTMP connections refused at accept or closed by a limit, by limit.",
			ConstLabels: prometheus.Labels{"reason": reason},
		}, func() float64 { return float64(v.Load()) })
	}
	cs := []prometheus.Collector{
		counter("max_connections", &s.stats.refusedTotal.n),
		counter("per_ip", &s.stats.refusedPerIP.n),
		counter("handshake_timeout", &s.stats.cutHandshakeTimeout.n),
		counter("publish_timeout", &s.stats.cutPublishTimeout.n),
		counter("message_too_large", &s.stats.cutMessageTooLarge.n),
		counter("buffer_limit", &s.stats.cutBufferLimit.n),
		counter("memory_budget", &s.stats.cutMemoryBudget.n),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "spacecast_rtmp_connections", Help: "Open RTMP connections."},
			func() float64 { return float64(s.conns.count()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "spacecast_rtmp_buffered_bytes", Help: "Bytes buffered for partly received RTMP messages."},
			func() float64 { return float64(s.budget.buffered()) }),
	}
	for _, c := range cs {
		if err := r.Register(c); err != nil {
			return err
		}
	}
	return nil
}
