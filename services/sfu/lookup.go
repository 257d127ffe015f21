package sfu

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/spacecast/spacecast/libs/auth"
)

// HTTPSpaceLookup asks a spaces-api's GET /internal/v1/spaces/{id} (standalone SFU).
type HTTPSpaceLookup struct {
	base, secret string
	client       *http.Client
}

var _ SpaceLookup = (*HTTPSpaceLookup)(nil)

// NewHTTPSpaceLookup talks to the spaces-api at baseURL with the internal secret.
func NewHTTPSpaceLookup(baseURL, internalSecret string) (*HTTPSpaceLookup, error) {
	u, err := url.Parse(baseURL)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return nil, fmt.Errorf("sfu: bad spaces-api URL %q", baseURL)
	}
	return &HTTPSpaceLookup{base: strings.TrimRight(baseURL, "/"), secret: internalSecret,
		client: &http.Client{Timeout: 3 * time.Second}}, nil
}

// LookupSpace implements SpaceLookup.
func (h *HTTPSpaceLookup) LookupSpace(ctx context.Context, id string) (SpaceInfo, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.base+"/internal/v1/spaces/"+url.PathEscape(id), nil)
	if err != nil {
		return SpaceInfo{}, err
	}
	req.Header.Set(auth.InternalAuthHeader, h.secret)
	res, err := h.client.Do(req)
	if err != nil {
		return SpaceInfo{}, fmt.Errorf("spaces-api lookup: %w", err)
	}
	defer res.Body.Close()
	switch res.StatusCode {
	case http.StatusOK:
		var body struct {
			Data struct {
				ID            string `json:"id"`
				EnvironmentID string `json:"environment_id"`
				Status        string `json:"status"`
			} `json:"data"`
		}
		if err := json.NewDecoder(res.Body).Decode(&body); err != nil {
			return SpaceInfo{}, fmt.Errorf("spaces-api lookup: %w", err)
		}
		return SpaceInfo{ID: body.Data.ID, EnvironmentID: body.Data.EnvironmentID, Status: body.Data.Status}, nil
	case http.StatusNotFound:
		return SpaceInfo{}, fmt.Errorf("space %s: %w", id, ErrSpaceNotFound)
	}
	return SpaceInfo{}, fmt.Errorf("spaces-api lookup: status %d", res.StatusCode)
}

var _ ActiveSpaceLister = (*HTTPSpaceLookup)(nil)

// ActiveSpaces implements ActiveSpaceLister with GET /internal/v1/spaces?status=active.
func (h *HTTPSpaceLookup) ActiveSpaces(ctx context.Context, after string, limit int) ([]SpaceInfo, error) {
	q := url.Values{"status": {"active"}, "after": {after}, "limit": {strconv.Itoa(limit)}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.base+"/internal/v1/spaces?"+q.Encode(), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set(auth.InternalAuthHeader, h.secret)
	res, err := h.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("spaces-api active spaces: %w", err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("spaces-api active spaces: status %d", res.StatusCode)
	}
	var body struct {
		Data []struct {
			ID            string `json:"id"`
			EnvironmentID string `json:"environment_id"`
			Status        string `json:"status"`
		} `json:"data"`
	}
	if err := json.NewDecoder(res.Body).Decode(&body); err != nil {
		return nil, fmt.Errorf("spaces-api active spaces: %w", err)
	}
	out := make([]SpaceInfo, len(body.Data))
	for i, d := range body.Data {
		out[i] = SpaceInfo{ID: d.ID, EnvironmentID: d.EnvironmentID, Status: d.Status}
	}
	return out, nil
}
