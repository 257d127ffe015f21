// Package apibench loads a Spacecast HTTP API with authenticated requests and reports
// throughput and latency percentiles.
package apibench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Options configure a run.
type Options struct {
	BaseURL     string
	TokenID     string
	TokenSecret string
	Concurrency int
	Duration    time.Duration
	Out         io.Writer
}

// Result summarises one phase.
type Result struct {
	Name     string
	Requests int
	Errors   int
	Elapsed  time.Duration
	P50, P99 time.Duration
	Max      time.Duration
}

// RPS is successful requests per second.
func (r Result) RPS() float64 { return float64(r.Requests-r.Errors) / r.Elapsed.Seconds() }

func (r Result) String() string {
	return fmt.Sprintf("%-28s %8d req  %6d err  %9.0f req/s  p50 %7.2f ms  p99 %7.2f ms  max %7.2f ms",
		r.Name, r.Requests, r.Errors, r.RPS(), ms(r.P50), ms(r.P99), ms(r.Max))
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

type bench struct {
	o      Options
	client *http.Client
}

// Run creates spaces for o.Duration (POST), then reads them for o.Duration (GET).
func Run(ctx context.Context, o Options) ([]Result, []string, error) {
	if o.Concurrency <= 0 {
		o.Concurrency = 32
	}
	b := &bench{o: o, client: &http.Client{
		Timeout:   10 * time.Second,
		Transport: &http.Transport{MaxIdleConns: o.Concurrency * 2, MaxIdleConnsPerHost: o.Concurrency * 2, IdleConnTimeout: time.Minute},
	}}
	// Warm up: connections, token cache, SQLite pages.
	var ids []string
	for i := 0; i < 50; i++ {
		id, err := b.create(ctx)
		if err != nil {
			return nil, nil, fmt.Errorf("warm-up POST failed: %w", err)
		}
		ids = append(ids, id)
	}
	var mu sync.Mutex
	post := b.phase(ctx, "POST /video/v1/spaces", func(ctx context.Context) error {
		id, err := b.create(ctx)
		if err == nil {
			mu.Lock()
			ids = append(ids, id)
			mu.Unlock()
		}
		return err
	})
	get := b.phase(ctx, "GET /video/v1/spaces/{id}", func(ctx context.Context) error {
		id := ids[rand.IntN(len(ids))]
		return b.do(ctx, http.MethodGet, "/video/v1/spaces/"+id, nil, http.StatusOK, nil)
	})
	return []Result{post, get}, ids, ctx.Err()
}

func (b *bench) create(ctx context.Context) (string, error) {
	var out struct {
		Data struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	err := b.do(ctx, http.MethodPost, "/video/v1/spaces", []byte(`{"passthrough":"bench"}`), http.StatusCreated, &out)
	return out.Data.ID, err
}

func (b *bench) do(ctx context.Context, method, path string, body []byte, want int, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, b.o.BaseURL+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.SetBasicAuth(b.o.TokenID, b.o.TokenSecret)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := b.client.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		return err
	}
	if res.StatusCode != want {
		return fmt.Errorf("%s %s: status %d: %s", method, path, res.StatusCode, strings.TrimSpace(string(raw)))
	}
	if out != nil {
		return json.Unmarshal(raw, out)
	}
	return nil
}

func (b *bench) phase(ctx context.Context, name string, op func(context.Context) error) Result {
	ctx, cancel := context.WithTimeout(ctx, b.o.Duration)
	defer cancel()
	var errs atomic.Int64
	var firstErr atomic.Value
	lat := make([][]time.Duration, b.o.Concurrency)
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < b.o.Concurrency; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l := make([]time.Duration, 0, 1<<16)
			for ctx.Err() == nil {
				t0 := time.Now()
				err := op(ctx)
				if ctx.Err() != nil && errors.Is(err, context.DeadlineExceeded) {
					break // the phase ended mid-request: not a server error
				}
				l = append(l, time.Since(t0))
				if err != nil {
					errs.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
				}
			}
			lat[w] = l
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	slices.Sort(all)
	r := Result{Name: name, Requests: len(all), Errors: int(errs.Load()), Elapsed: elapsed}
	if len(all) > 0 {
		r.P50, r.P99, r.Max = all[len(all)*50/100], all[min(len(all)-1, len(all)*99/100)], all[len(all)-1]
	}
	if e, ok := firstErr.Load().(string); ok && b.o.Out != nil {
		fmt.Fprintf(b.o.Out, "first error in %s: %s\n", name, e)
	}
	return r
}

// Compare loads two servers with the same load generator in alternating pairs: for each
// concurrency level, pairs runs of Run on a (Spacecast) and b (the anchor), a first in even
// pairs and b first in odd ones, so that a drift in the machine's load hits both sides alike.
// It prints every run, then per level and phase each side's median req/s and the median of
// the pairs' ratios a/b. It returns the ids a created.
func Compare(ctx context.Context, a, b Options, concurrencies []int, pairs int) ([]string, error) {
	if pairs <= 0 {
		pairs = 3
	}
	out := a.Out
	if out == nil {
		out = io.Discard
	}
	var ids []string
	type side struct{ post, get []float64 }
	var summary []string
	for _, c := range concurrencies {
		a.Concurrency, b.Concurrency = c, c
		var sa, sb side
		var rPost, rGet []float64
		for p := range pairs {
			order := []string{"spacecast", "anchor"}
			if p%2 == 1 {
				order = []string{"anchor", "spacecast"}
			}
			got := map[string][]Result{}
			for _, name := range order {
				o := a
				if name == "anchor" {
					o = b
				}
				res, created, err := Run(ctx, o)
				if err != nil {
					return ids, fmt.Errorf("%s, concurrency %d: %w", name, c, err)
				}
				if name == "spacecast" {
					ids = append(ids, created...)
				}
				for _, r := range res {
					fmt.Fprintf(out, "c%-3d pair %d %-9s %s\n", c, p+1, name, r.String())
				}
				got[name] = res
			}
			sa.post, sa.get = append(sa.post, got["spacecast"][0].RPS()), append(sa.get, got["spacecast"][1].RPS())
			sb.post, sb.get = append(sb.post, got["anchor"][0].RPS()), append(sb.get, got["anchor"][1].RPS())
			rPost = append(rPost, got["spacecast"][0].RPS()/got["anchor"][0].RPS())
			rGet = append(rGet, got["spacecast"][1].RPS()/got["anchor"][1].RPS())
		}
		summary = append(summary,
			fmt.Sprintf("c%-3d POST  spacecast %8.0f req/s  echoapi %8.0f req/s  ratio %.2f (pairs %s)", c, median(sa.post), median(sb.post), median(rPost), list(rPost)),
			fmt.Sprintf("c%-3d GET   spacecast %8.0f req/s  echoapi %8.0f req/s  ratio %.2f (pairs %s)", c, median(sa.get), median(sb.get), median(rGet), list(rGet)))
	}
	fmt.Fprintln(out, "medians (ratio = median of the pairs' spacecast/echoapi):")
	for _, l := range summary {
		fmt.Fprintln(out, l)
	}
	return ids, ctx.Err()
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func list(v []float64) string {
	parts := make([]string, len(v))
	for i, x := range v {
		parts[i] = fmt.Sprintf("%.2f", x)
	}
	return strings.Join(parts, " ")
}
