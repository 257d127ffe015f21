// Package deliver turns events into durable deliveries (the dispatcher) and sends them with
// signatures, retries and per-endpoint isolation (the worker).
package deliver

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/spacecast/spacecast/libs/ssrf"
)

// Response is what one HTTP attempt got back.
type Response struct {
	Status     int // 0 when no response arrived
	Latency    time.Duration
	Body       string // at most 4 KB
	RetryAfter time.Duration
	Err        error
}

// Sender POSTs deliveries.
type Sender struct {
	client *http.Client
}

// NewSender returns a sender whose connections pass guard, with the given total timeout
// (5 s: a receiver answering later has failed). Redirects are not followed.
func NewSender(guard *ssrf.Guard, timeout time.Duration) *Sender {
	tr := &http.Transport{
		DialContext:           guard.Dialer(timeout).DialContext,
		MaxIdleConnsPerHost:   16,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   timeout,
		ResponseHeaderTimeout: timeout,
		Proxy:                 nil, // a proxy would bypass the address check
	}
	return &Sender{client: &http.Client{
		Transport:     tr,
		Timeout:       timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

const maxBody = 4 << 10

// Send posts body with headers to url.
func (s *Sender) Send(ctx context.Context, url string, body []byte, headers map[string]string) Response {
	start := time.Now()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return Response{Err: err}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Spacecast-Webhooks/1")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	res, err := s.client.Do(req)
	if err != nil {
		var ue interface{ Timeout() bool }
		if errors.As(err, &ue) && ue.Timeout() {
			err = errors.New("timed out: no complete answer within the delivery timeout")
		}
		return Response{Latency: time.Since(start), Err: err}
	}
	defer res.Body.Close()
	// Read only what the log keeps; a huge body is not our problem to download.
	snippet, _ := io.ReadAll(io.LimitReader(res.Body, maxBody))
	r := Response{Status: res.StatusCode, Latency: time.Since(start), Body: string(bytes.ToValidUTF8(snippet, nil))}
	if ra := res.Header.Get("Retry-After"); ra != "" {
		if n, err := strconv.Atoi(ra); err == nil && n >= 0 {
			r.RetryAfter = time.Duration(n) * time.Second
		} else if t, err := http.ParseTime(ra); err == nil {
			r.RetryAfter = time.Until(t)
		}
	}
	return r
}
