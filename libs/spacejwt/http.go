package spacejwt

import (
	"context"
	"errors"

	"github.com/spacecast/spacecast/libs/auth"
)

// HTTPKeySource reads every public key from the keys service's /internal/v1/jwks.
type HTTPKeySource struct {
	h *auth.HTTPLookup
}

var _ KeySource = (*HTTPKeySource)(nil)

// NewHTTPKeySource talks to the keys service at baseURL with the internal secret.
func NewHTTPKeySource(baseURL, internalSecret string) (*HTTPKeySource, error) {
	h, err := auth.NewHTTPLookup(baseURL, internalSecret)
	if err != nil {
		return nil, err
	}
	return &HTTPKeySource{h: h}, nil
}

var errNoJWKS = errors.New("keys service has no JWKS endpoint")

// PublicKeys implements KeySource.
func (s *HTTPKeySource) PublicKeys(ctx context.Context) ([]PublicKey, error) {
	var set JWKS
	if err := s.h.GetJSON(ctx, "/internal/v1/jwks", &set, errNoJWKS); err != nil {
		return nil, err
	}
	out := make([]PublicKey, 0, len(set.Keys))
	for _, j := range set.Keys {
		k, err := FromJWK(j)
		if err != nil {
			return nil, err
		}
		out = append(out, k)
	}
	return out, nil
}
