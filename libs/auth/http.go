package auth

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// InternalAuthHeader carries the shared internal secret on /internal/v1 calls.
const InternalAuthHeader = "X-Spacecast-Internal"

// HTTPLookup reads tokens and environments from the keys service's /internal/v1 API.
type HTTPLookup struct {
	base   string
	secret string
	client *http.Client
}

var (
	_ TokenLookup       = (*HTTPLookup)(nil)
	_ EnvironmentLookup = (*HTTPLookup)(nil)
)

// NewHTTPLookup talks to the keys service at baseURL (e.g. http://keys:8080) with the shared
// internal secret.
func NewHTTPLookup(baseURL, internalSecret string) (*HTTPLookup, error) {
	if _, err := url.Parse(baseURL); err != nil || baseURL == "" {
		return nil, fmt.Errorf("auth: bad keys URL %q", baseURL)
	}
	return &HTTPLookup{base: strings.TrimRight(baseURL, "/"), secret: internalSecret, client: &http.Client{Timeout: 3 * time.Second}}, nil
}

// LookupToken implements TokenLookup.
func (h *HTTPLookup) LookupToken(ctx context.Context, id string) (TokenRecord, error) {
	var rec TokenRecord
	err := h.get(ctx, "/internal/v1/access-tokens/"+url.PathEscape(id), &rec, ErrTokenNotFound)
	return rec, err
}

// LookupEnvironment implements EnvironmentLookup.
func (h *HTTPLookup) LookupEnvironment(ctx context.Context, id string) (Environment, error) {
	var env Environment
	err := h.get(ctx, "/internal/v1/environments/"+url.PathEscape(id), &env, ErrEnvironmentNotFound)
	return env, err
}

// GetJSON fetches an /internal/v1 path into out; 404 becomes notFound. Other packages that
// read the keys service (spacejwt) share it.
func (h *HTTPLookup) GetJSON(ctx context.Context, path string, out any, notFound error) error {
	return h.get(ctx, path, out, notFound)
}

func (h *HTTPLookup) get(ctx context.Context, path string, out any, notFound error) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.base+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set(InternalAuthHeader, h.secret)
	res, err := h.client.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	switch res.StatusCode {
	case http.StatusOK:
		var body struct {
			Data json.RawMessage `json:"data"`
		}
		if err := json.NewDecoder(res.Body).Decode(&body); err != nil {
			return fmt.Errorf("keys %s: %w", path, err)
		}
		return json.Unmarshal(body.Data, out)
	case http.StatusNotFound:
		return notFound
	default:
		return fmt.Errorf("keys %s: status %d", path, res.StatusCode)
	}
}
