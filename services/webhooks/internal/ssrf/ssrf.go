// Package ssrf refuses connections to addresses a webhook must never reach: loopback,
// private, link-local, CGNAT, multicast, unspecified and cloud-metadata addresses and their
// IPv6 equivalents, unless an operator allowlist names them. The check runs at connect time on
// every resolved address (net.Dialer.Control), so DNS rebinding cannot slip past it.
package ssrf

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"time"
)

// ErrRefused is returned for a refused address.
var ErrRefused = errors.New("address refused: webhooks may not reach internal networks")

var blocked = mustPrefixes(
	"0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
	"192.0.0.0/24", "192.0.2.0/24", "192.168.0.0/16", "198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24",
	"224.0.0.0/4", "240.0.0.0/4", "255.255.255.255/32",
	"::/128", "::1/128", "64:ff9b::/96", "100::/64", "2001:db8::/32", "fc00::/7", "fe80::/10", "ff00::/8",
	"fd00:ec2::254/128",
)

func mustPrefixes(ss ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParsePrefix(s)
	}
	return out
}

// Guard decides which addresses may be dialled.
type Guard struct {
	allow    []netip.Prefix
	resolver *net.Resolver
}

// Option configures a Guard.
type Option func(*Guard)

// WithResolver makes the guard (and its dialers) resolve names with r instead of the
// system's resolver.
func WithResolver(r *net.Resolver) Option { return func(g *Guard) { g.resolver = r } }

// New returns a guard; allow lists CIDRs (or single addresses) the operator permits, e.g.
// "127.0.0.0/8" and "::1/128" for local receivers in development.
func New(allow []string, opts ...Option) (*Guard, error) {
	g := &Guard{resolver: net.DefaultResolver}
	for _, o := range opts {
		o(g)
	}
	for _, a := range allow {
		a = strings.TrimSpace(a)
		if a == "" {
			continue
		}
		if !strings.Contains(a, "/") {
			ip, err := netip.ParseAddr(a)
			if err != nil {
				return nil, fmt.Errorf("ssrf allowlist %q: %w", a, err)
			}
			a = netip.PrefixFrom(ip, ip.BitLen()).String()
		}
		p, err := netip.ParsePrefix(a)
		if err != nil {
			return nil, fmt.Errorf("ssrf allowlist %q: %w", a, err)
		}
		g.allow = append(g.allow, p.Masked())
	}
	return g, nil
}

// Check returns ErrRefused for an address webhooks may not reach.
func (g *Guard) Check(ip netip.Addr) error {
	ip = ip.Unmap()
	for _, p := range g.allow {
		if p.Contains(ip) {
			return nil
		}
	}
	for _, p := range blocked {
		if p.Contains(ip) {
			return fmt.Errorf("%w (%s)", ErrRefused, ip)
		}
	}
	return nil
}

// CheckHost resolves host and refuses it if any of its addresses is refused.
func (g *Guard) CheckHost(ctx context.Context, host string) error {
	if ip, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil {
		return g.Check(ip)
	}
	addrs, err := g.resolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return fmt.Errorf("cannot resolve %s: %w", host, err)
	}
	for _, a := range addrs {
		if err := g.Check(a); err != nil {
			return err
		}
	}
	return nil
}

// Dialer returns a dialer whose every connection attempt is checked after resolution.
func (g *Guard) Dialer(timeout time.Duration) *net.Dialer {
	return &net.Dialer{
		Timeout:  timeout,
		Resolver: g.resolver,
		Control: func(network, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil {
				return fmt.Errorf("%w: unparsable address %q", ErrRefused, address)
			}
			return g.Check(ap.Addr())
		},
	}
}
