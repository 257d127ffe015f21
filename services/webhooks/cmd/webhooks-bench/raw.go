package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"syscall"
	"time"

	"github.com/spacecast/spacecast/services/webhooks/internal/signing"
)

// rawSend is the anchor of the comparison: a bare net/http client that posts n signed bodies
// to each receiver, perEndpoint requests at a time per receiver (the service's concurrency
// towards them), with the service's transport settings and headers. The body has the shape and
// size of what the service sends; each request gets its own event id and time (receivers count
// distinct ids) and its own signature, as a real sender would. Nothing is stored: this is the
// limit of the machine for the HTTP side alone.
func rawSend(ctx context.Context, rs []*receiver, n, perEndpoint int, template []byte, secret string) error {
	tr := &http.Transport{MaxIdleConnsPerHost: 16, IdleConnTimeout: 90 * time.Second, Proxy: nil}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	var body map[string]json.RawMessage
	if err := json.Unmarshal(template, &body); err != nil {
		return fmt.Errorf("raw: template body: %w", err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(rs)*perEndpoint)
	for ri, r := range rs {
		url := r.srv.URL
		for w := 0; w < perEndpoint; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				b := make(map[string]json.RawMessage, len(body))
				for k, v := range body {
					b[k] = v
				}
				for i := w; i < n; i += perEndpoint {
					id := fmt.Sprintf("raw-%d-%d-%d", time.Now().UnixNano(), ri, i)
					now := time.Now()
					b["id"], _ = json.Marshal(id)
					b["created_at"], _ = json.Marshal(now.UTC().Format(time.RFC3339Nano))
					raw, _ := json.Marshal(b)
					headers, err := signing.Headers(id, now.Unix(), raw, secret)
					if err != nil {
						errs <- err
						return
					}
					req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(raw))
					if err != nil {
						errs <- err
						return
					}
					req.Header.Set("Content-Type", "application/json")
					req.Header.Set("User-Agent", "Spacecast-Webhooks/1")
					for k, v := range headers {
						req.Header.Set(k, v)
					}
					res, err := client.Do(req)
					if err != nil {
						errs <- err
						return
					}
					_, _ = io.ReadAll(io.LimitReader(res.Body, 4<<10))
					res.Body.Close()
					if res.StatusCode/100 != 2 {
						errs <- fmt.Errorf("raw: receiver answered %d", res.StatusCode)
						return
					}
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// cpuTime is the CPU time (user + system) this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
