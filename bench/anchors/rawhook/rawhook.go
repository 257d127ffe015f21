// Package rawhook is the webhooks anchor of the benchmarks: what a bare Go net/http client
// achieves posting signed 1 KB webhook bodies to local receivers, with the concurrency the
// webhooks service uses (endpoints × attempts per endpoint). Each delivery builds its body,
// signs it as Spacecast does (Mux-Signature: HMAC-SHA256 hex over "<t>.<body>"; Standard
// Webhooks: HMAC-SHA256 base64 over "<id>.<t>.<body>") and POSTs it; the receivers are the
// same kind as webhooks-bench's (read the body, decode id and created_at, note the first
// delivery of each id, answer 204). No durability, retries or bookkeeping: the limit of the
// machine for this traffic shape.
package rawhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Options configure a run.
type Options struct {
	Endpoints   int // receivers (default 10)
	PerEndpoint int // concurrent posts per receiver (default 4, the service's default)
	Deliveries  int // in all (default 30,000)
	BodyBytes   int // body size (default 1,024)
}

// Result is one run's figures. CPU is this process's user+system time, receivers included
// (as in webhooks-bench, whose receivers also run in its process).
type Result struct {
	Deliveries int
	Received   int
	Elapsed    time.Duration
	CPU        time.Duration
}

// PerSecond is deliveries per second.
func (r Result) PerSecond() float64 { return float64(r.Deliveries) / r.Elapsed.Seconds() }

// CPUPerDelivery is the process CPU per delivery.
func (r Result) CPUPerDelivery() time.Duration {
	if r.Deliveries == 0 {
		return 0
	}
	return r.CPU / time.Duration(r.Deliveries)
}

func (r Result) String() string {
	return fmt.Sprintf("rawhook: %d deliveries (%d received) in %.2f s: %.0f deliveries/s, %.0f µs CPU per delivery",
		r.Deliveries, r.Received, r.Elapsed.Seconds(), r.PerSecond(), float64(r.CPUPerDelivery().Nanoseconds())/1000)
}

// receiver notes the first delivery of each event id.
type receiver struct {
	srv  *httptest.Server
	mu   sync.Mutex
	seen map[string]bool
}

func newReceiver() *receiver {
	r := &receiver{seen: map[string]bool{}}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		raw, _ := io.ReadAll(req.Body)
		var b struct {
			ID        string `json:"id"`
			CreatedAt string `json:"created_at"`
		}
		_ = json.Unmarshal(raw, &b)
		_, _ = time.Parse(time.RFC3339Nano, b.CreatedAt)
		r.mu.Lock()
		r.seen[b.ID] = true
		r.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	return r
}

const secret = "whsec_rawhookanchor0123456789abcdef"

// Sign returns the two signature headers Spacecast sends for body.
func Sign(id string, ts int64, body []byte) (muxSig, stdSig string) {
	t := strconv.FormatInt(ts, 10)
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(t))
	m.Write([]byte{'.'})
	m.Write(body)
	muxSig = "t=" + t + ",v1=" + hex.EncodeToString(m.Sum(nil))
	s := hmac.New(sha256.New, []byte(secret))
	s.Write([]byte(id + "." + t + "."))
	s.Write(body)
	return muxSig, "v1," + base64.StdEncoding.EncodeToString(s.Sum(nil))
}

func body(id string, size int) []byte {
	head := `{"type":"video.space.created","id":"` + id + `","created_at":"` + time.Now().UTC().Format(time.RFC3339Nano) +
		`","environment":{"name":"Bench","id":"env"},"object":{"type":"space","id":"` + id + `"},"data":{"id":"` + id +
		`","type":"server","status":"idle","broadcasts":[],"passthrough":"`
	tail := `"}}`
	pad := max(0, size-len(head)-len(tail))
	return []byte(head + strings.Repeat("x", pad) + tail)
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// Run starts the receivers, posts o.Deliveries bodies spread evenly over them and returns the
// figures. Every delivery must be answered 204.
func Run(ctx context.Context, o Options) (Result, error) {
	if o.Endpoints <= 0 {
		o.Endpoints = 10
	}
	if o.PerEndpoint <= 0 {
		o.PerEndpoint = 4
	}
	if o.Deliveries <= 0 {
		o.Deliveries = 30000
	}
	if o.BodyBytes <= 0 {
		o.BodyBytes = 1024
	}
	recv := make([]*receiver, o.Endpoints)
	for i := range recv {
		recv[i] = newReceiver()
		defer recv[i].srv.Close()
	}
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		MaxIdleConnsPerHost: o.PerEndpoint, MaxIdleConns: o.Endpoints * o.PerEndpoint, IdleConnTimeout: time.Minute}}
	defer client.CloseIdleConnections()
	var next atomic.Int64
	var failed atomic.Int64
	var firstErr atomic.Value
	cpu0, t0 := cpuTime(), time.Now()
	var wg sync.WaitGroup
	for e := range o.Endpoints {
		for range o.PerEndpoint {
			wg.Add(1)
			go func() {
				defer wg.Done()
				url := recv[e].srv.URL + "/hook"
				for ctx.Err() == nil {
					n := next.Add(1)
					if n > int64(o.Deliveries) {
						return
					}
					if err := post(ctx, client, url, fmt.Sprintf("evt-%d", n), o.BodyBytes); err != nil {
						failed.Add(1)
						firstErr.CompareAndSwap(nil, err)
					}
				}
			}()
		}
	}
	wg.Wait()
	r := Result{Deliveries: o.Deliveries, Elapsed: time.Since(t0), CPU: cpuTime() - cpu0}
	for _, rc := range recv {
		rc.mu.Lock()
		r.Received += len(rc.seen)
		rc.mu.Unlock()
	}
	if err, ok := firstErr.Load().(error); ok {
		return r, fmt.Errorf("%d deliveries failed, first: %w", failed.Load(), err)
	}
	if err := ctx.Err(); err != nil {
		return r, err
	}
	return r, nil
}

func post(ctx context.Context, client *http.Client, url, id string, size int) error {
	b := body(id, size)
	ts := time.Now().Unix()
	muxSig, stdSig := Sign(id, ts, b)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Spacecast-Webhooks/1")
	req.Header.Set("Mux-Signature", muxSig)
	req.Header.Set("webhook-id", id)
	req.Header.Set("webhook-timestamp", strconv.FormatInt(ts, 10))
	req.Header.Set("webhook-signature", stdSig)
	res, err := client.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusNoContent {
		return errors.New("receiver answered " + res.Status)
	}
	return nil
}
