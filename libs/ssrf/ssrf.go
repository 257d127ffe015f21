// Package ssrf refuses connections to addresses an outbound connection made on a customer's
// behalf (webhook deliveries, simulcast targets) must never reach: loopback,
// private, link-local, CGNAT, multicast, unspecified, reserved, documentation and
// cloud-metadata addresses, their IPv6 equivalents, and IPv6 forms that embed a refused IPv4
// address (IPv4-mapped, IPv4-compatible, NAT64, 6to4, Teredo), unless an operator allowlist
// names them. Zones are stripped before every check. The check runs when an endpoint is
// registered (CheckURL: the URL's form and every address its host resolves to) and again at
// connect time on every address actually dialled (net.Dialer.Control), so DNS rebinding and
// resolver quirks cannot slip past it.
package ssrf

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"
)

// blocked are the ranges refused outright (IANA special-purpose registries; RFC 6890 and
// later). IPv6 ranges that embed an IPv4 address are checked through that address instead
// (see embedded), except where the embedding is local by definition.
var blocked = mustPrefixes(
	"0.0.0.0/8",         // "this network"; 0.0.0.0 reaches the local host
	"10.0.0.0/8",        // private
	"100.64.0.0/10",     // CGNAT (shared address space)
	"127.0.0.0/8",       // loopback
	"169.254.0.0/16",    // link-local, cloud metadata (169.254.169.254)
	"172.16.0.0/12",     // private
	"192.0.0.0/24",      // IETF protocol assignments
	"192.0.2.0/24",      // documentation (TEST-NET-1)
	"192.88.99.0/24",    // 6to4 relay anycast (deprecated)
	"192.168.0.0/16",    // private
	"198.18.0.0/15",     // benchmarking
	"198.51.100.0/24",   // documentation (TEST-NET-2)
	"203.0.113.0/24",    // documentation (TEST-NET-3)
	"224.0.0.0/4",       // multicast
	"240.0.0.0/4",       // reserved, and 255.255.255.255 broadcast
	"::/96",             // unspecified (::), loopback (::1) and IPv4-compatible (::a.b.c.d, deprecated)
	"::ffff:0:0:0/96",   // IPv4-translated (SIIT)
	"64:ff9b:1::/48",    // NAT64 local use: translated to whatever the local network says
	"100::/64",          // discard only
	"2001:2::/48",       // benchmarking
	"2001:10::/28",      // ORCHID (deprecated)
	"2001:20::/28",      // ORCHIDv2: identifiers, not locators
	"2001:db8::/32",     // documentation
	"3fff::/20",         // documentation
	"5f00::/16",         // SRv6 SIDs
	"fc00::/7",          // unique local (includes fd00:ec2::254, the EC2 metadata address)
	"fe80::/10",         // link-local
	"fec0::/10",         // site-local (deprecated)
	"ff00::/8",          // multicast
	"fd00:ec2::254/128", // EC2 metadata over IPv6 (inside fc00::/7; named for the record)
)

var (
	nat64   = netip.MustParsePrefix("64:ff9b::/96")
	sixTo4  = netip.MustParsePrefix("2002::/16")
	teredo  = netip.MustParsePrefix("2001::/32")
	v4InV6  = netip.MustParsePrefix("::ffff:0.0.0.0/96")
	loopV4  = netip.MustParseAddr("127.0.0.1")
	loopV6  = netip.IPv6Loopback()
	httpish = map[string]bool{"http": true, "https": true}
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
		if strings.Contains(a, "%") {
			return nil, fmt.Errorf("ssrf allowlist %q: zoned addresses are not allowed", a)
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
		p = p.Masked()
		if p.Addr().Is4In6() && p.Bits() >= 96 { // ::ffff:10.0.0.0/104 means 10.0.0.0/8: addresses are unmapped before the check
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		g.allow = append(g.allow, p)
	}
	return g, nil
}

func (g *Guard) allowed(ip netip.Addr) bool {
	for _, p := range g.allow {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

func isBlocked(ip netip.Addr) bool {
	for _, p := range blocked {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// embedded returns the IPv4 addresses an IPv6 address carries and that its traffic may end
// up at: NAT64 (64:ff9b::/96, last 32 bits), 6to4 (2002::/16, bits 16-47) and Teredo
// (2001::/32: the server in bits 32-63, the client in the last 32 bits inverted).
func embedded(ip netip.Addr) []netip.Addr {
	if !ip.Is6() {
		return nil
	}
	b := ip.As16()
	v4 := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{b[i], b[i+1], b[i+2], b[i+3]}) }
	switch {
	case nat64.Contains(ip):
		return []netip.Addr{v4(12)}
	case sixTo4.Contains(ip):
		return []netip.Addr{v4(2)}
	case teredo.Contains(ip):
		client := netip.AddrFrom4([4]byte{^b[12], ^b[13], ^b[14], ^b[15]})
		return []netip.Addr{v4(4), client}
	}
	return nil
}

// Check returns ErrRefused for an address webhooks may not reach. A zone is stripped first
// (netip.Prefix.Contains is false for zoned addresses), IPv4-mapped addresses are checked as
// IPv4, and an IPv6 address that embeds an IPv4 address is refused when that address is.
func (g *Guard) Check(ip netip.Addr) error {
	if !ip.IsValid() {
		return fmt.Errorf("%w (invalid address)", ErrRefused)
	}
	ip = ip.WithZone("").Unmap()
	if g.allowed(ip) {
		return nil
	}
	if isBlocked(ip) {
		return fmt.Errorf("%w (%s)", ErrRefused, ip)
	}
	for _, e := range embedded(ip) {
		if !g.allowed(e) && isBlocked(e) {
			return fmt.Errorf("%w (%s embeds %s)", ErrRefused, ip, e)
		}
	}
	return nil
}

// CheckURL validates a receiver URL as registered and returns it parsed: http or https, a
// host, no credentials, no IPv6 zone, an IP literal only in its canonical form (dotted-decimal
// IPv4 or bracketed IPv6: resolvers read "2130706433", "0x7f.1", "017700000001" and "127.1"
// as 127.0.0.1), otherwise an ASCII DNS name; and every address the host resolves to must pass
// Check.
func (g *Guard) CheckURL(ctx context.Context, raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	switch {
	case err != nil || len(raw) > 2048:
		return nil, fmt.Errorf("%w: not a valid URL", ErrBadURL)
	case !httpish[strings.ToLower(u.Scheme)]:
		return nil, fmt.Errorf("%w: must use http or https, not %q", ErrBadURL, u.Scheme)
	case u.Opaque != "" || u.Hostname() == "":
		return nil, fmt.Errorf("%w: no host", ErrBadURL)
	case u.User != nil:
		return nil, fmt.Errorf("%w: must not contain credentials", ErrBadURL)
	}
	if err := g.CheckHost(ctx, u.Hostname()); err != nil {
		return nil, err
	}
	return u, nil
}

// CheckHost refuses a host (as url.URL.Hostname returns it) written in a refused form, or any
// of whose addresses is refused.
func (g *Guard) CheckHost(ctx context.Context, host string) error {
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if strings.Contains(host, "%") {
		return fmt.Errorf("%w: %q has an IPv6 zone; zoned addresses only reach the local link", ErrBadURL, host)
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		return g.Check(ip)
	}
	if err := checkName(host); err != nil {
		return err
	}
	name := strings.ToLower(strings.TrimSuffix(host, "."))
	if name == "localhost" || strings.HasSuffix(name, ".localhost") { // RFC 6761: always loopback, whatever DNS says
		if err := g.Check(loopV4); err != nil {
			return err
		}
		return g.Check(loopV6)
	}
	addrs, err := g.resolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return fmt.Errorf("cannot resolve %s: %w", host, err)
	}
	if len(addrs) == 0 {
		return fmt.Errorf("cannot resolve %s: no address", host)
	}
	for _, a := range addrs {
		if err := g.Check(a); err != nil {
			return err
		}
	}
	return nil
}

// checkName accepts an ASCII DNS name (letters, digits, '-' and '_' in labels of 1 to 63
// characters, an optional final dot) whose last label is not a number: a name ending in a
// number is an IPv4 address in a form resolvers accept (WHATWG URL's "ends in a number"),
// and only the canonical dotted-decimal form is taken as an address.
func checkName(host string) error {
	name := strings.TrimSuffix(host, ".")
	if name == "" || len(name) > 253 {
		return fmt.Errorf("%w: %q is not a valid host name", ErrBadURL, host)
	}
	labels := strings.Split(name, ".")
	for _, l := range labels {
		if l == "" || len(l) > 63 {
			return fmt.Errorf("%w: %q is not a valid host name", ErrBadURL, host)
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return fmt.Errorf("%w: %q is not an ASCII host name (write international names in their xn-- form)", ErrBadURL, host)
			}
		}
	}
	if last := labels[len(labels)-1]; isNumber(last) {
		return fmt.Errorf("%w: %q is a numeric host: write an IPv4 address as four decimal numbers without leading zeros (a.b.c.d)", ErrBadURL, host)
	}
	return nil
}

// isNumber reports whether a label is a number as IPv4 parsers read it: decimal, octal
// (leading 0) or hexadecimal (0x).
func isNumber(l string) bool {
	digits := l
	hex := false
	if len(l) >= 2 && l[0] == '0' && (l[1] == 'x' || l[1] == 'X') {
		digits, hex = l[2:], true
		if digits == "" {
			return true // "0x" alone is 0
		}
	}
	for i := 0; i < len(digits); i++ {
		c := digits[i]
		if !(c >= '0' && c <= '9' || hex && (c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F')) {
			return false
		}
	}
	return true
}

// Dialer returns a dialer whose every connection attempt is checked, on the address about to
// be connected to, after resolution.
func (g *Guard) Dialer(timeout time.Duration) *net.Dialer {
	return &net.Dialer{Timeout: timeout, Resolver: g.resolver, Control: g.control}
}

func (g *Guard) control(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: unparsable address %q", ErrRefused, address)
	}
	return g.Check(ap.Addr())
}
