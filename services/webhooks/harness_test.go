package webhooks_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/net/dns/dnsmessage"

	"github.com/spacecast/spacecast/libs/auth"
	"github.com/spacecast/spacecast/libs/envconfig"
	"github.com/spacecast/spacecast/libs/events"
	"github.com/spacecast/spacecast/libs/httpapi"
	"github.com/spacecast/spacecast/libs/kafkabus"
	"github.com/spacecast/spacecast/libs/sqldb"
	"github.com/spacecast/spacecast/libs/testenv"
	"github.com/spacecast/spacecast/services/webhooks"
)

type lookups struct{}

var tokenRecs = map[string]auth.TokenRecord{
	"tok-a": {ID: "tok-a", EnvironmentID: "envA", SecretHash: auth.HashSecret("sec-a"), Permissions: auth.AllPermissions},
	"tok-b": {ID: "tok-b", EnvironmentID: "envB", SecretHash: auth.HashSecret("sec-b"), Permissions: auth.AllPermissions},
}

func (lookups) LookupToken(_ context.Context, id string) (auth.TokenRecord, error) {
	if r, ok := tokenRecs[id]; ok {
		return r, nil
	}
	return auth.TokenRecord{}, auth.ErrTokenNotFound
}

func (lookups) LookupEnvironment(_ context.Context, id string) (auth.Environment, error) {
	switch id {
	case "envA":
		return auth.Environment{ID: id, Name: "Alpha"}, nil
	case "envB":
		return auth.Environment{ID: id, Name: "Beta"}, nil
	}
	return auth.Environment{}, auth.ErrEnvironmentNotFound
}

type creds struct{ id, secret string }

var (
	credsA = creds{"tok-a", "sec-a"}
	credsB = creds{"tok-b", "sec-b"}
)

// backing is what survives a service restart: database, Redis and Kafka.
type backing struct {
	db      *sqldb.DB
	rdb     redis.UniversalClient
	prefix  string
	brokers []string
	prod    *kafkabus.Producer

	resolver *net.Resolver // optional DNS resolver for receivers' names
}

func newBacking(t *testing.T) *backing {
	t.Helper()
	b := testenv.SQLBackends(t)
	be := b[len(b)-1] // PostgreSQL when available: the production engine
	db := testenv.OpenSQL(t, be)
	rdb, prefix := testenv.Redis(t)
	brokers := testenv.Kafka(t)
	prod, err := kafkabus.NewProducer(kafkabus.ProducerConfig{Brokers: brokers})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { prod.Close() })
	return &backing{db: db, rdb: rdb, prefix: prefix, brokers: brokers, prod: prod}
}

type svc struct {
	t      *testing.T
	url    string
	cancel context.CancelFunc
	done   chan struct{}
	srv    *httptest.Server
}

// start runs a service instance; env holds SPACECAST_WEBHOOKS_* settings.
func (b *backing) start(t *testing.T, env map[string]string) *svc {
	t.Helper()
	m := map[string]string{
		"SPACECAST_WEBHOOKS_ALLOW_NETWORKS": "127.0.0.0/8,::1/128",
		"SPACECAST_WEBHOOKS_RETRY_SCHEDULE": "100ms,100ms,100ms,100ms,100ms,100ms,100ms,100ms,100ms,100ms,100ms,100ms,100ms,100ms,100ms,100ms,100ms,100ms,100ms,100ms",
		"SPACECAST_WEBHOOKS_REDIS_PREFIX":   b.prefix,
		"SPACECAST_WEBHOOKS_CONSUMER_GROUP": "webhooks-" + b.prefix,
	}
	for k, v := range env {
		m[k] = v
	}
	r := envconfig.FromMap(m)
	cfg := webhooks.LoadConfig(r)
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
	authn, _ := auth.NewVerifier(lookups{}, auth.VerifierOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	log := testenv.Logger(t)
	s, err := webhooks.New(ctx, cfg, webhooks.Deps{Logger: log, DB: b.db, Publisher: b.prod, Brokers: b.brokers, Redis: b.rdb, Auth: authn, Environments: lookups{}, Resolver: b.resolver})
	if err != nil {
		t.Fatal(err)
	}
	e := httpapi.NewServer(httpapi.Options{Logger: log})
	s.Register(e)
	out := &svc{t: t, cancel: cancel, done: make(chan struct{}), srv: httptest.NewServer(e)}
	out.url = out.srv.URL
	go func() { defer close(out.done); _ = s.Run(ctx) }()
	t.Cleanup(out.stop)
	return out
}

func (s *svc) stop() {
	s.cancel()
	<-s.done
	s.srv.Close()
}

func (s *svc) call(c creds, method, path, body string) (int, map[string]any) {
	s.t.Helper()
	req, _ := http.NewRequest(method, s.url+path, strings.NewReader(body))
	req.SetBasicAuth(c.id, c.secret)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	var out map[string]any
	_ = json.Unmarshal(raw, &out)
	return res.StatusCode, out
}

// endpoint registers url and returns its id and secret.
func (s *svc) endpoint(c creds, body string) (string, string) {
	s.t.Helper()
	st, out := s.call(c, "POST", "/system/v1/webhook-endpoints", body)
	d, _ := out["data"].(map[string]any)
	if st != 201 || d["secret"] == nil {
		s.t.Fatalf("create endpoint = %d %v", st, out)
	}
	return d["id"].(string), d["secret"].(string)
}

func (b *backing) publish(t *testing.T, topic, typ, env, subject string) events.Envelope {
	t.Helper()
	ev, err := events.New("spacecast/test", typ, subject, env, map[string]string{"id": subject})
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := ev.Marshal()
	if err := b.prod.Publish(context.Background(), kafkabus.Message{Topic: topic, Key: []byte(subject), Value: raw}); err != nil {
		t.Fatal(err)
	}
	return ev
}

// received is one verified delivery.
type received struct {
	at      time.Time
	id      string
	body    map[string]any
	raw     []byte
	muxSigs int
}

// receiver is a webhook receiver that verifies both signature schemes with code written from
// the specs (independent of the service's signing package) and answers with respond.
type receiver struct {
	t       *testing.T
	srv     *httptest.Server
	mu      sync.Mutex
	secrets []string
	got     []received
	bad     []string
	respond func(n int, w http.ResponseWriter) // n = 1-based request count
}

func newReceiver(t *testing.T, respond func(n int, w http.ResponseWriter)) *receiver {
	r := &receiver{t: t, respond: respond}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) setSecrets(s ...string) {
	r.mu.Lock()
	r.secrets = s
	r.mu.Unlock()
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	raw, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	secrets := r.secrets
	n := len(r.got) + len(r.bad) + 1
	r.mu.Unlock()
	var problem string
	muxN := 0
	for _, s := range secrets {
		if !verifyMux(req.Header.Get("Mux-Signature"), s, raw) {
			problem = "Mux-Signature does not verify with " + s[:12]
		}
		if !verifyStandard(req.Header, s, raw) {
			problem = "webhook-signature does not verify with " + s[:12]
		}
	}
	for _, p := range strings.Split(req.Header.Get("Mux-Signature"), ",") {
		if strings.HasPrefix(p, "v1=") {
			muxN++
		}
	}
	var body map[string]any
	if err := json.Unmarshal(raw, &body); err != nil {
		problem = "body is not JSON"
	}
	r.mu.Lock()
	if problem != "" {
		r.bad = append(r.bad, problem)
	} else {
		r.got = append(r.got, received{at: time.Now(), id: req.Header.Get("webhook-id"), body: body, raw: raw, muxSigs: muxN})
	}
	r.mu.Unlock()
	if r.respond != nil {
		r.respond(n, w)
		return
	}
	w.WriteHeader(200)
}

func (r *receiver) snapshot() ([]received, []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]received(nil), r.got...), append([]string(nil), r.bad...)
}

// verifyMux checks "t=<ts>,v1=<hex>" per Mux's docs: HMAC-SHA256 keyed with the secret
// string over "<ts>.<raw body>", hex encoded; any v1 may match.
func verifyMux(header, secret string, body []byte) bool {
	var ts string
	var sigs []string
	for _, part := range strings.Split(header, ",") {
		k, v, _ := strings.Cut(part, "=")
		switch k {
		case "t":
			ts = v
		case "v1":
			sigs = append(sigs, v)
		}
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(ts + "." + string(body)))
	want := hex.EncodeToString(mac.Sum(nil))
	for _, s := range sigs {
		if hmac.Equal([]byte(s), []byte(want)) {
			return ts != ""
		}
	}
	return false
}

// verifyStandard checks Standard Webhooks: key = base64 decode of the secret after "whsec_",
// signature = base64(HMAC-SHA256(key, "<webhook-id>.<webhook-timestamp>.<body>")), header
// "v1,<sig>" entries separated by spaces.
func verifyStandard(h http.Header, secret string, body []byte) bool {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil || !strings.HasPrefix(secret, "whsec_") {
		return false
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(h.Get("webhook-id") + "." + h.Get("webhook-timestamp") + "." + string(body)))
	want := base64.StdEncoding.EncodeToString(mac.Sum(nil))
	for _, s := range strings.Fields(h.Get("webhook-signature")) {
		if v, sig, ok := strings.Cut(s, ","); ok && v == "v1" && hmac.Equal([]byte(sig), []byte(want)) {
			return true
		}
	}
	return false
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	testenv.Eventually(t, d, cond, "%s", what)
}

// dnsServer is a DNS server on 127.0.0.1 answering A queries from a table that tests change
// while running (names resolving to refused addresses, DNS rebinding).
type dnsServer struct {
	conn net.PacketConn
	mu   sync.Mutex
	a    map[string]netip.Addr // fully qualified name -> IPv4 address
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
	d.a[name+"."] = netip.MustParseAddr(ip)
	d.mu.Unlock()
}

// resolver returns a Go resolver that asks only this server.
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
		ip, ok := d.a[q.Name.String()]
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
		if ok && q.Type == dnsmessage.TypeA {
			_ = b.AResource(dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 0}, dnsmessage.AResource{A: ip.As4()})
		}
		out, err := b.Finish()
		if err == nil {
			_, _ = d.conn.WriteTo(out, from)
		}
	}
}
