// Command webhooks-bench drives events through the webhooks dispatcher to local receivers and
// prints deliveries/s and event→delivery latency. It runs the real service (embedded Kafka and
// Redis, SQLite or -db PostgreSQL) in this process; receivers are local HTTP servers.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spacecast/spacecast/libs/auth"
	"github.com/spacecast/spacecast/libs/embedded"
	"github.com/spacecast/spacecast/libs/envconfig"
	"github.com/spacecast/spacecast/libs/events"
	"github.com/spacecast/spacecast/libs/httpapi"
	"github.com/spacecast/spacecast/libs/kafkabus"
	"github.com/spacecast/spacecast/libs/outbox"
	"github.com/spacecast/spacecast/libs/redisconn"
	"github.com/spacecast/spacecast/libs/sqldb"
	"github.com/spacecast/spacecast/services/webhooks"
	"github.com/spacecast/spacecast/services/webhooks/internal/signing"
)

type lookups struct{}

func (lookups) LookupToken(_ context.Context, id string) (auth.TokenRecord, error) {
	if id != "bench" {
		return auth.TokenRecord{}, auth.ErrTokenNotFound
	}
	return auth.TokenRecord{ID: "bench", EnvironmentID: "env", SecretHash: auth.HashSecret("bench"), Permissions: auth.AllPermissions}, nil
}

func (lookups) LookupEnvironment(_ context.Context, id string) (auth.Environment, error) {
	return auth.Environment{ID: id, Name: "Bench"}, nil
}

// receiver records event→delivery latency per event id (first delivery only).
type receiver struct {
	srv  *httptest.Server
	hang bool
	mu   sync.Mutex
	lat  map[string]time.Duration
	body []byte // the first body received (the raw anchor posts its shape)
}

func newReceiver(hang bool) *receiver {
	r := &receiver{hang: hang, lat: map[string]time.Duration{}}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if r.hang {
			time.Sleep(6 * time.Second) // longer than the 5 s delivery timeout
			return
		}
		raw, _ := io.ReadAll(req.Body)
		var b struct {
			ID        string `json:"id"`
			CreatedAt string `json:"created_at"`
		}
		_ = json.Unmarshal(raw, &b)
		at, _ := time.Parse(time.RFC3339Nano, b.CreatedAt)
		r.mu.Lock()
		if r.body == nil {
			r.body = raw
		}
		if _, ok := r.lat[b.ID]; !ok {
			r.lat[b.ID] = time.Since(at)
		}
		r.mu.Unlock()
		w.WriteHeader(204)
	}))
	return r
}

func (r *receiver) reset()     { r.mu.Lock(); r.lat = map[string]time.Duration{}; r.mu.Unlock() }
func (r *receiver) count() int { r.mu.Lock(); defer r.mu.Unlock(); return len(r.lat) }
func (r *receiver) latencies() []time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]time.Duration, 0, len(r.lat))
	for _, d := range r.lat {
		out = append(out, d)
	}
	return out
}

func pct(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	return ds[min(len(ds)-1, len(ds)*p/100)]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func main() {
	dbURL := flag.String("db", "", "database URL (default: a SQLite file in a temp dir)")
	redisURL := flag.String("redis", "", "Redis URL (default: an embedded miniredis); keys use a fresh prefix")
	burst := flag.Int("burst-events", 3000, "events for the throughput phase (each goes to every healthy endpoint)")
	sustain := flag.Int("sustain-rate", 250, "events/s for the sustained phase (each goes to the ten healthy endpoints)")
	rate := flag.Int("rate", 500, "events/s for the latency phase (one endpoint)")
	isoRate := flag.Int("isolation-rate", 100, "events/s for the isolation phase (ten endpoints, plus one that times out)")
	dur := flag.Duration("duration", 10*time.Second, "length of the paced phases")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	pairs := flag.Int("compare", 3, "alternating pairs of the service's burst and a bare net/http client's (0 = none)")
	compareEvents := flag.Int("compare-events", 2000, "events per side of each comparison pair (each goes to the ten endpoints)")
	onlyCompare := flag.Bool("only-compare", false, "run only the comparison with the bare net/http client")
	flag.IntVar(&bodyBytes, "body-bytes", 1024, "approximate size of each webhook body")
	flag.Parse()
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err == nil && pprof.StartCPUProfile(f) == nil {
			defer pprof.StopCPUProfile()
		}
	}
	if err := run(*dbURL, *redisURL, *burst, *sustain, *rate, *isoRate, *dur, *pairs, *compareEvents, *onlyCompare); err != nil {
		pprof.StopCPUProfile()
		fmt.Fprintln(os.Stderr, "webhooks-bench:", err)
		os.Exit(1)
	}
}

// bodyBytes is the approximate size of the webhook bodies (the events carry padding).
var bodyBytes = 1024

func run(dbURL, redisURL string, burst, sustain, rate, isoRate int, dur time.Duration, pairs, compareEvents int, onlyCompare bool) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	dir, err := os.MkdirTemp("", "webhooks-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if dbURL == "" {
		dbURL = "sqlite:" + filepath.Join(dir, "webhooks.db")
	}
	k, err := embedded.StartKafka(embedded.KafkaOptions{Addr: "127.0.0.1:0"})
	if err != nil {
		return err
	}
	defer k.Close()
	redisKind := "redis " + redisURL
	if redisURL == "" {
		redisKind = "embedded miniredis"
		rs, err := embedded.StartRedis("127.0.0.1:0")
		if err != nil {
			return err
		}
		defer rs.Close()
		redisURL = rs.URL()
	}
	rdb, err := redisconn.Open(ctx, redisURL)
	if err != nil {
		return err
	}
	db, err := sqldb.Open(ctx, dbURL)
	if err != nil {
		return err
	}
	prod, err := kafkabus.NewProducer(kafkabus.ProducerConfig{Brokers: k.Brokers()})
	if err != nil {
		return err
	}
	cfg := webhooks.LoadConfig(envconfig.FromMap(map[string]string{"SPACECAST_WEBHOOKS_ALLOW_NETWORKS": "127.0.0.0/8",
		"SPACECAST_WEBHOOKS_REDIS_PREFIX": "bench-" + strconv.FormatInt(time.Now().UnixNano(), 36) + ":"}))
	authn, _ := auth.NewVerifier(lookups{}, auth.VerifierOptions{})
	svc, err := webhooks.New(ctx, cfg, webhooks.Deps{Logger: log, DB: db, Publisher: prod, Brokers: k.Brokers(), Redis: rdb, Auth: authn, Environments: lookups{}})
	if err != nil {
		return err
	}
	e := httpapi.NewServer(httpapi.Options{Logger: log})
	svc.Register(e)
	api := httptest.NewServer(e)
	defer api.Close()
	go func() { _ = svc.Run(ctx) }()

	fmt.Printf("webhooks-bench: %s, GOMAXPROCS %d, %d CPUs, db %s, %s\n", time.Now().UTC().Format(time.RFC3339), runtime.GOMAXPROCS(0), runtime.NumCPU(), strings.SplitN(dbURL, ":", 2)[0], redisKind)
	healthy := make([]*receiver, 10)
	var epIDs []string
	for i := range healthy {
		healthy[i] = newReceiver(false)
		id, err := createEndpoint(api.URL, healthy[i].srv.URL)
		if err != nil {
			return err
		}
		epIDs = append(epIDs, id)
	}

	if pairs > 0 {
		if err := compare(ctx, prod, db, healthy, pairs, compareEvents, cfg.PerEndpoint); err != nil {
			return err
		}
		if onlyCompare {
			cancel()
			return nil
		}
		for _, r := range healthy {
			r.reset()
		}
	}

	// Phase 1: throughput. Every event goes to the ten healthy endpoints.
	start := time.Now()
	if err := publish(ctx, prod, burst, 0); err != nil {
		return err
	}
	want := burst * len(healthy)
	if err := waitAll(healthy, burst, 5*time.Minute); err != nil {
		return err
	}
	el := time.Since(start)
	var all []time.Duration
	for _, r := range healthy {
		all = append(all, r.latencies()...)
	}
	fmt.Printf("throughput: %d events x %d endpoints = %d deliveries in %.2f s: %.0f deliveries/s (event->delivery p50 %.0f ms, p99 %.0f ms)\n",
		burst, len(healthy), want, el.Seconds(), float64(want)/el.Seconds(), ms(pct(all, 50)), ms(pct(all, 99)))

	settle(ctx, db)

	// Phase 2: a sustained rate to the ten endpoints, paced; if the service falls behind,
	// the latency grows through the phase and the achieved rate drops below the offered one.
	if sustain > 0 {
		for _, r := range healthy {
			r.reset()
		}
		m := sustain * int(dur.Seconds())
		start := time.Now()
		if err := publish(ctx, prod, m, sustain); err != nil {
			return err
		}
		if err := waitAll(healthy, m, 2*time.Minute); err != nil {
			return err
		}
		el := time.Since(start)
		var ls []time.Duration
		for _, r := range healthy {
			ls = append(ls, r.latencies()...)
		}
		fmt.Printf("sustained: %d events/s x %d endpoints for %s: %d deliveries in %.2f s: %.0f deliveries/s (event->delivery p50 %.1f ms, p99 %.1f ms)\n",
			sustain, len(healthy), dur, len(ls), el.Seconds(), float64(len(ls))/el.Seconds(), ms(pct(ls, 50)), ms(pct(ls, 99)))
		settle(ctx, db)
	}

	// Phase 3: latency at a steady rate to one endpoint.
	for _, id := range epIDs[1:] {
		_ = patch(api.URL, id, `{"enabled":false}`)
	}
	// Phase 3a: one endpoint's limit, a burst to it alone (its attempts in flight are bounded
	// by SPACECAST_WEBHOOKS_PER_ENDPOINT_CONCURRENCY, so this is latency-bound).
	settle(ctx, db)
	healthy[0].reset()
	{
		start := time.Now()
		if err := publish(ctx, prod, burst, 0); err != nil {
			return err
		}
		if err := waitAll(healthy[:1], burst, 5*time.Minute); err != nil {
			return err
		}
		el := time.Since(start)
		fmt.Printf("one endpoint: %d events = %d deliveries in %.2f s: %.0f deliveries/s\n", burst, burst, el.Seconds(), float64(burst)/el.Seconds())
	}
	settle(ctx, db)
	healthy[0].reset()
	n := rate * int(dur.Seconds())
	if err := publish(ctx, prod, n, rate); err != nil {
		return err
	}
	if err := waitAll(healthy[:1], n, 2*time.Minute); err != nil {
		return err
	}
	l := healthy[0].latencies()
	fmt.Printf("latency at %d events/s for %s (1 endpoint): p50 %.1f ms, p99 %.1f ms, max %.1f ms\n", rate, dur, ms(pct(l, 50)), ms(pct(l, 99)), ms(pct(l, 100)))

	// Phase 4: isolation. Ten healthy endpoints at isoRate events/s, without and then with an
	// eleventh endpoint that never answers within the timeout.
	for _, id := range epIDs[1:] {
		_ = patch(api.URL, id, `{"enabled":true}`)
	}
	iso := func(label string) (time.Duration, error) {
		for _, r := range healthy {
			r.reset()
		}
		m := isoRate * int(dur.Seconds())
		if err := publish(ctx, prod, m, isoRate); err != nil {
			return 0, err
		}
		if err := waitAll(healthy, m, 2*time.Minute); err != nil {
			return 0, err
		}
		var ls []time.Duration
		for _, r := range healthy {
			ls = append(ls, r.latencies()...)
		}
		fmt.Printf("isolation %-28s %d deliveries: healthy p50 %.1f ms, p99 %.1f ms\n", label+":", len(ls), ms(pct(ls, 50)), ms(pct(ls, 99)))
		return pct(ls, 99), nil
	}
	settle(ctx, db)
	base, err := iso("10 healthy")
	if err != nil {
		return err
	}
	bad := newReceiver(true)
	if _, err := createEndpoint(api.URL, bad.srv.URL); err != nil {
		return err
	}
	settle(ctx, db)
	withBad, err := iso("10 healthy + 1 timing out")
	if err != nil {
		return err
	}
	fmt.Printf("isolation: healthy p99 changed by %+.1f %% with a timing-out endpoint\n", (float64(withBad)/float64(base)-1)*100)
	cancel()
	return nil
}

// settle waits until the previous phase's follow-up work is done: the outbox of analytics
// events is published and the dispatcher has had time to read past them.
func settle(ctx context.Context, db *sqldb.DB) {
	for i := 0; i < 600; i++ {
		if n, err := outbox.Pending(ctx, db); err == nil && n == 0 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(3 * time.Second)
}

func createEndpoint(api, url string) (string, error) {
	req, _ := http.NewRequest("POST", api+"/system/v1/webhook-endpoints", strings.NewReader(`{"url":"`+url+`","events":["video.space.created"]}`))
	req.SetBasicAuth("bench", "bench")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer res.Body.Close()
	var out struct {
		Data struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	if err := json.NewDecoder(res.Body).Decode(&out); err != nil || res.StatusCode != 201 {
		return "", fmt.Errorf("create endpoint: %d %v", res.StatusCode, err)
	}
	return out.Data.ID, nil
}

func patch(api, id, body string) error {
	req, _ := http.NewRequest("PATCH", api+"/system/v1/webhook-endpoints/"+id, strings.NewReader(body))
	req.SetBasicAuth("bench", "bench")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	res.Body.Close()
	return nil
}

// publish sends n space.created events, paced at rate/s (0 = as fast as possible).
func publish(ctx context.Context, p *kafkabus.Producer, n, rate int) error {
	batch := 100
	pad := strings.Repeat("x", max(0, bodyBytes-236)) // the rest of the webhook body is ~236 bytes
	var tick *time.Ticker
	if rate > 0 {
		batch = max(1, rate/100)
		tick = time.NewTicker(time.Second * time.Duration(batch) / time.Duration(rate))
		defer tick.Stop()
	}
	for sent := 0; sent < n; {
		var msgs []kafkabus.Message
		for i := 0; i < batch && sent < n; i++ {
			ev, err := events.New("bench", "space.created", fmt.Sprintf("sp%d", sent%97), "env", map[string]any{"n": sent, "pad": pad})
			if err != nil {
				return err
			}
			raw, _ := ev.Marshal()
			msgs = append(msgs, kafkabus.Message{Topic: events.TopicSpaces, Key: []byte(ev.Subject), Value: raw})
			sent++
		}
		if err := p.Publish(ctx, msgs...); err != nil {
			return err
		}
		if tick != nil {
			<-tick.C
		}
	}
	return nil
}

func waitAll(rs []*receiver, n int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		done := true
		for _, r := range rs {
			if r.count() < n {
				done = false
			}
		}
		if done {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("not every delivery arrived within %s", timeout)
}

// compare runs alternating pairs: the service delivers n events to the ten receivers, then a
// bare net/http client posts the same number of bodies of the same shape to the same receivers
// at the service's concurrency. Each side prints deliveries/s and the process's CPU time per
// delivery (the service's includes the outbox relay publishing its analytics events; neither
// includes a Redis or PostgreSQL server running outside this process).
func compare(ctx context.Context, prod *kafkabus.Producer, db *sqldb.DB, rs []*receiver, pairs, n, perEndpoint int) error {
	var ratios, cpuRatios, svcRates, rawRates, svcCPU, rawCPU []float64
	deliveries := n * len(rs)
	for p := 1; p <= pairs; p++ {
		for _, r := range rs {
			r.reset()
		}
		c0, t0 := cpuTime(), time.Now()
		if err := publish(ctx, prod, n, 0); err != nil {
			return err
		}
		if err := waitAll(rs, n, 5*time.Minute); err != nil {
			return err
		}
		el := time.Since(t0)
		drainOutbox(ctx, db)
		sc := float64((cpuTime() - c0).Microseconds()) / float64(deliveries)
		var template []byte
		rs[0].mu.Lock()
		template = rs[0].body
		rs[0].mu.Unlock()
		settle(ctx, db)

		for _, r := range rs {
			r.reset()
		}
		c1, t1 := cpuTime(), time.Now()
		if err := rawSend(ctx, rs, n, perEndpoint, template, signing.NewSecret()); err != nil {
			return err
		}
		if err := waitAll(rs, n, time.Minute); err != nil {
			return err
		}
		rel := time.Since(t1)
		rc := float64((cpuTime() - c1).Microseconds()) / float64(deliveries)
		sr, rr := float64(deliveries)/el.Seconds(), float64(deliveries)/rel.Seconds()
		fmt.Printf("compare pair %d: service %6.0f deliveries/s, %5.0f us CPU/delivery | raw net/http %6.0f deliveries/s, %5.0f us CPU/delivery | ratio %.2fx, CPU %.2fx (%d deliveries of %d B each side)\n",
			p, sr, sc, rr, rc, sr/rr, sc/rc, deliveries, len(template))
		ratios, cpuRatios = append(ratios, sr/rr), append(cpuRatios, sc/rc)
		svcRates, rawRates, svcCPU, rawCPU = append(svcRates, sr), append(rawRates, rr), append(svcCPU, sc), append(rawCPU, rc)
		time.Sleep(time.Second)
	}
	fmt.Printf("compare median of %d pairs: service %.0f deliveries/s, %.0f us CPU/delivery; raw %.0f deliveries/s, %.0f us CPU/delivery; burst ratio %.2fx (target >= 0.5), CPU ratio %.2fx (target <= 2)\n",
		pairs, median(svcRates), median(svcCPU), median(rawRates), median(rawCPU), median(ratios), median(cpuRatios))
	settle(ctx, db)
	return nil
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 0 {
		return (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return s[len(s)/2]
}

// drainOutbox waits until every analytics event of the attempts so far is published.
func drainOutbox(ctx context.Context, db *sqldb.DB) {
	for i := 0; i < 3000; i++ {
		if n, err := outbox.Pending(ctx, db); err == nil && n == 0 {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}
