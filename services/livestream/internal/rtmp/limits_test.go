package rtmp

import (
	"bytes"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func TestLimitLogAtMostOneLineASecond(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	var l limitLog
	for range 50 {
		l.note(log, slog.LevelWarn, "cut")
	}
	if n := strings.Count(buf.String(), "\n"); n != 1 || l.n.Load() != 50 {
		t.Fatalf("%d lines for %d notes, want 1 for 50:\n%s", n, l.n.Load(), buf.String())
	}
	l.last.Store(time.Now().Add(-2 * time.Second).UnixNano()) // a second later
	l.note(log, slog.LevelWarn, "cut")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[1], "unlogged_before=49") {
		t.Errorf("second line does not count the 49 left out:\n%s", buf.String())
	}
}

func TestAddrKey(t *testing.T) {
	for _, c := range []struct{ addr, want string }{
		{"192.0.2.7:1935", "192.0.2.7/32"},
		{"[::ffff:192.0.2.7]:1935", "192.0.2.7/32"},
		{"[2001:db8:1:2:3:4:5:6]:50000", "2001:db8:1:2::/64"},
		{"[fe80::1%eth0]:50000", "fe80::/64"},
	} {
		ap := netip.MustParseAddrPort(c.addr)
		if got := addrKey(net.TCPAddrFromAddrPort(ap)).String(); got != c.want {
			t.Errorf("addrKey(%s) = %s, want %s", c.addr, got, c.want)
		}
	}
	if k := addrKey(&net.UnixAddr{Name: "/tmp/x", Net: "unix"}); k.IsValid() {
		t.Errorf("a unix address has key %v", k)
	}
}

func TestConfigValidation(t *testing.T) {
	base := func() Config {
		return Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	}
	type h struct{ Handler }
	for name, mod := range map[string]func(*Config){
		"publish timeout shorter than handshake": func(c *Config) { c.HandshakeTimeout, c.PublishTimeout = 2*time.Second, time.Second },
		"per-IP limit below -1":                  func(c *Config) { c.MaxConnectionsPerIP = -2 },
		"tiny pre-publish buffer":                func(c *Config) { c.PrePublishBuffer = 100 },
		"message size over the format":           func(c *Config) { c.MaxMessageSize = 1 << 24 },
		"budget below one message":               func(c *Config) { c.MemoryBudget = 1 << 20 },
	} {
		c := base()
		c.Handler = h{}
		mod(&c)
		if _, err := NewServer(c); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	c := base()
	c.Handler = h{}
	reg := prometheus.NewRegistry()
	c.Registerer = reg
	s, err := NewServer(c)
	if err != nil {
		t.Fatal(err)
	}
	if s.cfg.PublishTimeout != DefaultPublishTimeout || s.cfg.MaxConnectionsPerIP != DefaultMaxConnectionsPerIP ||
		s.cfg.PrePublishBuffer != DefaultPrePublishBuffer || s.cfg.MaxMessageSize != DefaultMaxMessageSize || s.cfg.MemoryBudget != DefaultMemoryBudget {
		t.Errorf("defaults not applied: %+v", s.cfg)
	}
	s.stats.cutBufferLimit.n.Add(3)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, mf := range mfs {
		if mf.GetName() != "spacecast_rtmp_connections_cut_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if m.GetLabel()[0].GetValue() == "buffer_limit" && m.GetCounter().GetValue() == 3 {
				found = true
			}
		}
	}
	if !found {
		t.Error("spacecast_rtmp_connections_cut_total{reason=buffer_limit} is not 3")
	}
}
