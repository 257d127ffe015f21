package ssrf

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

func TestCheck(t *testing.T) {
	g, err := New([]string{"127.0.0.0/8", "fd12::1", "::ffff:10.9.0.0/112"})
	if err != nil {
		t.Fatal(err)
	}
	strict, _ := New(nil)
	tests := []struct {
		ip                string
		strict, withAllow bool // refused?
	}{
		{"127.0.0.1", true, false},
		{"10.0.0.1", true, true},
		{"10.9.3.4", true, false}, // allowlisted in its IPv4-mapped spelling
		{"172.16.5.4", true, true},
		{"192.168.1.1", true, true},
		{"169.254.169.254", true, true},
		{"100.64.0.1", true, true},
		{"0.0.0.0", true, true},
		{"224.0.0.1", true, true},
		{"::1", true, true},
		{"::1%lo", true, true},
		{"::ffff:127.0.0.1", true, false},
		{"::ffff:10.0.0.1", true, true},
		{"fe80::1", true, true},
		{"fd00:ec2::254", true, true},
		{"fd00:ec2::254%eth0", true, true},
		{"fd12::1", true, false},
		{"fd12::1%eth0", true, false},
		{"ff02::1", true, true},
		{"2002:7f00:1::1", true, false}, // 6to4 of allowlisted 127.0.0.1
		{"93.184.216.34", false, false},
		{"2606:2800:220:1::1", false, false},
	}
	for _, tt := range tests {
		ip := netip.MustParseAddr(tt.ip)
		if got := errors.Is(strict.Check(ip), ErrRefused); got != tt.strict {
			t.Errorf("strict %s refused=%v, want %v", tt.ip, got, tt.strict)
		}
		if got := errors.Is(g.Check(ip), ErrRefused); got != tt.withAllow {
			t.Errorf("allow %s refused=%v, want %v", tt.ip, got, tt.withAllow)
		}
	}
	for _, bad := range []string{"not-a-cidr", "fe80::1%eth0", "10.0.0.0/33"} {
		if _, err := New([]string{bad}); err == nil {
			t.Errorf("bad allowlist entry %q accepted", bad)
		}
	}
}

// addressForms is every form of receiver URL the guard must judge, as an attacker would write
// it. dns is what the (test) resolver answers for a host that is a name: the dial-time check
// sees only that address, the create-time check sees both the name and that address. create
// and dial say whether each check refuses (the production guard, no allowlist).
var addressForms = []struct {
	url, dns     string
	create, dial bool
}{
	// IPv4 literals.
	{"http://127.0.0.1/", "", true, true},
	{"http://127.255.255.254:8080/", "", true, true},
	{"http://0.0.0.0/", "", true, true},
	{"http://0.1.2.3/", "", true, true},
	{"http://10.1.2.3/", "", true, true},
	{"http://172.16.0.1/", "", true, true},
	{"http://172.31.255.255/", "", true, true},
	{"http://192.168.0.1/", "", true, true},
	{"http://169.254.169.254/latest/meta-data", "", true, true},
	{"http://100.64.0.1/", "", true, true},
	{"http://100.127.255.254/", "", true, true},
	{"http://198.18.0.1/", "", true, true},
	{"http://198.19.255.255/", "", true, true},
	{"http://192.0.2.1/", "", true, true},
	{"http://198.51.100.7/", "", true, true},
	{"http://203.0.113.9/", "", true, true},
	{"http://192.0.0.170/", "", true, true},
	{"http://192.88.99.1/", "", true, true},
	{"http://224.0.0.1/", "", true, true},
	{"http://239.255.255.250/", "", true, true},
	{"http://240.0.0.1/", "", true, true},
	{"http://255.255.255.255/", "", true, true},
	{"http://93.184.216.34/", "", false, false},
	{"http://8.8.8.8:8443/", "", false, false},
	{"http://100.63.255.255/", "", false, false}, // just below CGNAT
	{"http://100.128.0.1/", "", false, false},    // just above CGNAT
	{"http://172.32.0.1/", "", false, false},
	{"http://198.20.0.1/", "", false, false},
	// IPv4 in the forms resolvers (getaddrinfo, inet_aton) read as addresses: refused as
	// written; at connect time, whatever address the resolver made of it is checked.
	{"http://2130706433/", "127.0.0.1", true, true},
	{"http://0x7f.1/", "127.0.0.1", true, true},
	{"http://0x7F000001/", "127.0.0.1", true, true},
	{"http://017700000001/", "127.0.0.1", true, true},
	{"http://127.1/", "127.0.0.1", true, true},
	{"http://127.0.1/", "127.0.0.1", true, true},
	{"http://127.0.0.01/", "127.0.0.1", true, true},
	{"http://0177.0.0.1/", "127.0.0.1", true, true},
	{"http://127.0.0.1./", "127.0.0.1", true, true},
	{"http://0/", "0.0.0.0", true, true},
	{"http://0x/", "0.0.0.0", true, true},
	{"http://1572395042/", "93.184.216.34", true, false}, // public, but not in a form we accept
	// IPv6 literals.
	{"http://[::1]/", "", true, true},
	{"http://[0:0:0:0:0:0:0:1]:8080/", "", true, true},
	{"http://[::]/", "", true, true},
	{"http://[::ffff:127.0.0.1]/", "", true, true},
	{"http://[::ffff:7f00:1]/", "", true, true},
	{"http://[::ffff:10.0.0.1]/", "", true, true},
	{"http://[::ffff:169.254.169.254]/", "", true, true},
	{"http://[::127.0.0.1]/", "", true, true}, // IPv4-compatible
	{"http://[::8.8.8.8]/", "", true, true},   // IPv4-compatible: deprecated, never a receiver
	{"http://[::ffff:0:127.0.0.1]/", "", true, true},
	{"http://[64:ff9b::127.0.0.1]/", "", true, true}, // NAT64
	{"http://[64:ff9b::a9fe:a9fe]/", "", true, true},
	{"http://[64:ff9b::10.0.0.1]/", "", true, true},
	{"http://[64:ff9b::8.8.8.8]/", "", false, false},
	{"http://[64:ff9b:1::8.8.8.8]/", "", true, true}, // NAT64 local use
	{"http://[2002:7f00:1::]/", "", true, true},      // 6to4 of 127.0.0.1
	{"http://[2002:a9fe:a9fe::1]/", "", true, true},
	{"http://[2002:c0a8:101::1]/", "", true, true},
	{"http://[2002:808:808::1]/", "", false, false},
	{"http://[2001:0:4136:e378:8000:63bf:80ff:fffe]/", "", true, true},   // Teredo, client 127.0.0.1
	{"http://[2001:0:4136:e378:8000:63bf:f5ff:fffe]/", "", true, true},   // Teredo, client 10.0.0.1
	{"http://[2001:0:a00:1:8000:63bf:f7f7:f7f7]/", "", true, true},       // Teredo, server 10.0.0.1
	{"http://[2001:0:4136:e378:8000:63bf:f7f7:f7f7]/", "", false, false}, // Teredo, both public
	{"http://[fc00::1]/", "", true, true},
	{"http://[fd00:ec2::254]/", "", true, true},
	{"http://[fe80::1]/", "", true, true},
	{"http://[febf::1]/", "", true, true},
	{"http://[fec0::1]/", "", true, true},
	{"http://[ff02::1]/", "", true, true},
	{"http://[ff0e::1]/", "", true, true},
	{"http://[100::1]/", "", true, true},
	{"http://[2001:2::1]/", "", true, true},
	{"http://[2001:10::1]/", "", true, true},
	{"http://[2001:db8::1]/", "", true, true},
	{"http://[3fff::1]/", "", true, true},
	{"http://[5f00::1]/", "", true, true},
	{"http://[2606:2800:220:1::1]/", "", false, false},
	{"http://[2a00:1450:4001::1]:8443/", "", false, false},
	// IPv6 zones: refused as written; at connect time the zone is stripped before the check.
	{"http://[::1%25lo]:8080/", "", true, true},
	{"http://[fd00:ec2::254%25eth0]/", "", true, true},
	{"http://[fe80::1%25eth0]/", "", true, true},
	{"http://[::ffff:127.0.0.1%25lo]/", "", true, true},
	{"http://[2606:2800:220:1::1%25eth0]/", "", true, false},
	// Names.
	{"http://localhost/", "127.0.0.1", true, true},
	{"http://LOCALHOST./", "127.0.0.1", true, true},
	{"http://api.localhost/", "127.0.0.1", true, true},
	{"http://private.hooks.test/", "10.0.0.1", true, true},
	{"http://metadata.hooks.test./", "169.254.169.254", true, true},
	{"http://ula.hooks.test/", "fd00:ec2::254", true, true},
	{"http://mapped.hooks.test/", "::ffff:192.168.1.1", true, true},
	{"http://nat64.hooks.test/", "64:ff9b::7f00:1", true, true},
	{"http://zero.hooks.test/", "::", true, true},
	{"http://127.0.0.1.nip.io/", "127.0.0.1", true, true},
	{"http://Public.Hooks.Test/", "93.184.216.34", false, false},
	{"http://public6.hooks.test/", "2606:2800:220:1::1", false, false},
	{"https://under_score.hooks.test/", "93.184.216.34", false, false},
	{"http://xn--bcher-kva.hooks.test/", "93.184.216.34", false, false},
	{"http://ⓛⓞⓒⓐⓛⓗⓞⓢⓣ/", "127.0.0.1", true, true},              // IDNA maps it to localhost
	{"http://bücher.hooks.test/", "93.184.216.34", true, false}, // write it as xn--
	{"http://a..b.hooks.test/", "93.184.216.34", true, false},
	// Credentials are refused however the rest looks.
	{"http://user@127.0.0.1/", "", true, true},
	{"http://user:pw@93.184.216.34/", "", true, false},
	{"http://127.0.0.1:80@93.184.216.34/", "", true, false},
}

// TestCreateTimeCheck runs every address form through CheckURL, as the API does when an
// endpoint is registered or changed.
func TestCreateTimeCheck(t *testing.T) {
	dns := newDNSServer(t)
	g, err := New(nil, WithResolver(dns.resolver()))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range addressForms {
		t.Run(tc.url, func(t *testing.T) {
			u, err := url.Parse(tc.url)
			if err != nil {
				t.Fatal(err)
			}
			if tc.dns != "" {
				dns.set(u.Hostname(), tc.dns)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_, err = g.CheckURL(ctx, tc.url)
			refused := errors.Is(err, ErrRefused) || errors.Is(err, ErrBadURL)
			if refused != tc.create {
				t.Fatalf("CheckURL(%s) = %v; want refused=%v", tc.url, err, tc.create)
			}
		})
	}
	for _, raw := range []string{"ftp://93.184.216.34/", "http:///h", "http:93.184.216.34", "::not a url", "http://" + strings.Repeat("a", 2048) + ".test/"} {
		if _, err := g.CheckURL(context.Background(), raw); !errors.Is(err, ErrBadURL) {
			t.Errorf("CheckURL(%q) = %v; want ErrBadURL", raw, err)
		}
	}
}

var errPassed = errors.New("the guard let the connection through (stopped by the test before connect)")

// TestDialTimeCheck dials every address form through the guard's dialer, with a resolver that
// answers names with the crafted address, as the sender does for every attempt. A connection
// the guard lets through is stopped by the test right after the guard's check, before
// connect(2): no packet leaves for any address but the test's own DNS server on loopback.
func TestDialTimeCheck(t *testing.T) {
	dns := newDNSServer(t)
	g, err := New(nil, WithResolver(dns.resolver()))
	if err != nil {
		t.Fatal(err)
	}
	d := g.Dialer(2 * time.Second)
	guard := d.Control
	var mu sync.Mutex
	var dialled []string
	d.Control = func(network, address string, c syscall.RawConn) error {
		mu.Lock()
		dialled = append(dialled, address)
		mu.Unlock()
		if err := guard(network, address, c); err != nil {
			return err
		}
		return errPassed
	}
	for _, tc := range addressForms {
		t.Run(tc.url, func(t *testing.T) {
			u, err := url.Parse(tc.url)
			if err != nil {
				t.Fatal(err)
			}
			if tc.dns != "" {
				dns.set(u.Hostname(), tc.dns)
			}
			if _, err := netip.ParseAddr(u.Hostname()); err != nil && tc.dns == "" {
				t.Fatalf("%s: a name needs a DNS answer in the table", tc.url)
			}
			dial := func(host string) (error, int) {
				mu.Lock()
				dialled = nil
				mu.Unlock()
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort(host, "80"))
				if conn != nil {
					conn.Close()
					t.Fatal("a connection was made")
				}
				mu.Lock()
				defer mu.Unlock()
				return err, len(dialled)
			}
			err, n := dial(u.Hostname())
			var dnsErr *net.DNSError
			if n == 0 && errors.As(err, &dnsErr) && tc.dns != "" {
				// Go's resolver does not look up numeric or non-ASCII names; getaddrinfo
				// (the cgo resolver) reads the numeric ones as addresses: dial what it would.
				err, n = dial(tc.dns)
			}
			if n == 0 {
				t.Fatalf("dial %s never reached the connect hook: %v", tc.url, err)
			}
			switch {
			case tc.dial && !errors.Is(err, ErrRefused):
				t.Fatalf("dial %s (%v) = %v; want ErrRefused", tc.url, dialled, err)
			case !tc.dial && !errors.Is(err, errPassed):
				t.Fatalf("dial %s (%v) = %v; want it let through", tc.url, dialled, err)
			}
		})
	}
}

// TestDialTimeAllowlist: an operator's allowlist permits loopback at connect time, zoned or
// not (dev mode's receivers), but never the unspecified addresses, which reach every local
// service.
func TestDialTimeAllowlist(t *testing.T) {
	g, err := New([]string{"127.0.0.0/8", "::1/128"})
	if err != nil {
		t.Fatal(err)
	}
	for addr, refused := range map[string]bool{
		"127.0.0.1:80": false, "[::1]:80": false, "[::1%lo]:80": false, "[::ffff:127.0.0.1]:80": false,
		"0.0.0.0:80": true, "[::]:80": true, "[::%lo]:80": true, "10.0.0.1:80": true, "[fe80::1%lo]:80": true,
	} {
		if got := errors.Is(g.control("tcp", addr, nil), ErrRefused); got != refused {
			t.Errorf("control(%s) refused=%v, want %v", addr, got, refused)
		}
	}
}

// dnsServer answers A and AAAA queries on 127.0.0.1 from a table the test changes.
type dnsServer struct {
	conn net.PacketConn
	mu   sync.Mutex
	a    map[string]netip.Addr // lower-case fully qualified name -> address
}

func newDNSServer(t *testing.T) *dnsServer {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	d := &dnsServer{conn: pc, a: map[string]netip.Addr{}}
	t.Cleanup(func() { pc.Close() })
	go d.serve()
	return d
}

func (d *dnsServer) set(name, ip string) {
	d.mu.Lock()
	d.a[strings.ToLower(strings.TrimSuffix(name, "."))+"."] = netip.MustParseAddr(ip)
	d.mu.Unlock()
}

func (d *dnsServer) resolver() *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var dl net.Dialer
		return dl.DialContext(ctx, "udp", d.conn.LocalAddr().String())
	}}
}

func (d *dnsServer) serve() {
	buf := make([]byte, 1500)
	for {
		n, from, err := d.conn.ReadFrom(buf)
		if err != nil {
			return
		}
		var p dnsmessage.Parser
		h, err := p.Start(buf[:n])
		if err != nil {
			continue
		}
		q, err := p.Question()
		if err != nil {
			continue
		}
		d.mu.Lock()
		ip, ok := d.a[strings.ToLower(q.Name.String())]
		d.mu.Unlock()
		rh := dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RecursionDesired: h.RecursionDesired}
		if !ok {
			rh.RCode = dnsmessage.RCodeNameError
		}
		b := dnsmessage.NewBuilder(nil, rh)
		b.EnableCompression()
		_ = b.StartQuestions()
		_ = b.Question(q)
		_ = b.StartAnswers()
		rr := dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET}
		switch {
		case ok && q.Type == dnsmessage.TypeA && ip.Is4():
			_ = b.AResource(rr, dnsmessage.AResource{A: ip.As4()})
		case ok && q.Type == dnsmessage.TypeAAAA && ip.Is6():
			_ = b.AAAAResource(rr, dnsmessage.AAAAResource{AAAA: ip.As16()})
		}
		out, err := b.Finish()
		if err == nil {
			_, _ = d.conn.WriteTo(out, from)
		}
	}
}

// BenchmarkCheck: the cost of the connect-time check (one per new connection, not per
// delivery: connections are kept alive).
func BenchmarkCheck(b *testing.B) {
	g, _ := New([]string{"127.0.0.0/8", "::1/128"})
	addrs := []netip.Addr{netip.MustParseAddr("93.184.216.34"), netip.MustParseAddr("2606:2800:220:1::1"), netip.MustParseAddr("::1%lo"), netip.MustParseAddr("2001:0:4136:e378:8000:63bf:f7f7:f7f7")}
	for i := 0; b.Loop(); i++ {
		_ = g.Check(addrs[i%len(addrs)])
	}
}
