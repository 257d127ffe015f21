package broadcast

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/spacecast/spacecast/libs/ssrf"
	"github.com/spacecast/spacecast/services/sfu/internal/compositor"
)

// ErrBackgroundFetch: a broadcast's background image could not be fetched (the broadcast
// runs without it).
var ErrBackgroundFetch = errors.New("broadcast: background not fetched")

// BackgroundFetcher gets a broadcast's background image, at most compositor.MaxBackgroundBytes.
type BackgroundFetcher interface {
	Fetch(ctx context.Context, url string) ([]byte, error)
}

// HTTPBackground fetches backgrounds over http(s) under the SSRF rules of libs/ssrf: the URL
// is checked (form and every resolved address) and every address dialled is checked again;
// redirects are followed only to URLs that pass the same check, at most 3.
type HTTPBackground struct {
	guard  *ssrf.Guard
	client *http.Client
}

var _ BackgroundFetcher = (*HTTPBackground)(nil)

// NewHTTPBackground returns a fetcher guarded by g with a 10 s overall timeout.
func NewHTTPBackground(g *ssrf.Guard) (*HTTPBackground, error) {
	if g == nil {
		return nil, errors.New("broadcast: background fetcher needs an SSRF guard")
	}
	h := &HTTPBackground{guard: g}
	h.client = &http.Client{
		Timeout:   10 * time.Second,
		Transport: &http.Transport{DialContext: g.Dialer(5 * time.Second).DialContext, Proxy: nil, ResponseHeaderTimeout: 5 * time.Second},
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 3 {
				return errors.New("too many redirects")
			}
			_, err := g.CheckURL(req.Context(), req.URL.String())
			return err
		},
	}
	return h, nil
}

// Fetch gets url, refusing a non-200 answer and a body over compositor.MaxBackgroundBytes.
func (h *HTTPBackground) Fetch(ctx context.Context, url string) ([]byte, error) {
	u, err := h.guard.CheckURL(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBackgroundFetch, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBackgroundFetch, err)
	}
	res, err := h.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBackgroundFetch, err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%w: HTTP %d", ErrBackgroundFetch, res.StatusCode)
	}
	if res.ContentLength > compositor.MaxBackgroundBytes {
		return nil, fmt.Errorf("%w: %d bytes, more than %d", ErrBackgroundFetch, res.ContentLength, compositor.MaxBackgroundBytes)
	}
	data, err := io.ReadAll(io.LimitReader(res.Body, compositor.MaxBackgroundBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBackgroundFetch, err)
	}
	if len(data) > compositor.MaxBackgroundBytes {
		return nil, fmt.Errorf("%w: more than %d bytes", ErrBackgroundFetch, compositor.MaxBackgroundBytes)
	}
	return data, nil
}

// backgroundReader is the fetched image as the compositor takes it.
func backgroundReader(b []byte) io.Reader { return bytes.NewReader(b) }
