package sdktest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/spacecast/spacecast/libs/spacejwt"
)

// jwksSource reads the environment's public keys from the dev mode's /system/v1/jwks, as a
// backend holding an access token would.
type jwksSource struct{ base string }

var _ spacejwt.KeySource = jwksSource{}

func (s jwksSource) PublicKeys(ctx context.Context) ([]spacejwt.PublicKey, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.base+"/system/v1/jwks", nil)
	if err != nil {
		return nil, err
	}
	req.SetBasicAuth(adminID, adminSecret)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	if res.StatusCode != 200 {
		return nil, fmt.Errorf("GET /system/v1/jwks = %d", res.StatusCode)
	}
	var body struct {
		Data spacejwt.JWKS `json:"data"`
	}
	if err := json.NewDecoder(res.Body).Decode(&body); err != nil {
		return nil, err
	}
	var out []spacejwt.PublicKey
	for _, j := range body.Data.Keys {
		k, err := spacejwt.FromJWK(j)
		if err != nil {
			return nil, err
		}
		out = append(out, k)
	}
	return out, nil
}

// TestKeysSDK runs js/keys.mjs: mux.system.signingKeys create/retrieve/list (for await over
// pages)/delete and typed errors; then verifies the playback tokens mux.jwt.signPlaybackId
// made with the SDK-created key against Spacecast's JWKS with libs/spacejwt, the verifier
// Spacecast's playback uses.
func TestKeysSDK(t *testing.T) {
	d := startDev(t, nil)
	out := filepath.Join(t.TempDir(), "keys.json")
	runScript(t, d, "keys.mjs", map[string]string{"KEYS_OUT": out})
	raw, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		KeyID      string `json:"key_id"`
		PlaybackID string `json:"playback_id"`
		Video      string `json:"video"`
		Thumbnail  string `json:"thumbnail"`
		FromClient string `json:"from_client"`
		Key7ID     string `json:"key7_id"`
		Video7     string `json:"video7"`
	}
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatal(err)
	}
	v, err := spacejwt.NewVerifier(jwksSource{d.Base}, spacejwt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ name, token, aud, kid string }{
		{"video", got.Video, spacejwt.AudiencePlayback, got.KeyID},
		{"client-configured key", got.FromClient, spacejwt.AudiencePlayback, got.KeyID},
		{"thumbnail", got.Thumbnail, "t", got.KeyID},
		{"7.3.5 JWT.signPlaybackId", got.Video7, spacejwt.AudiencePlayback, got.Key7ID},
	} {
		cl, err := v.Verify(context.Background(), tt.token, tt.aud)
		if err != nil || cl.Subject != got.PlaybackID || cl.KeyID != tt.kid || tt.kid == "" {
			t.Errorf("%s token: claims %+v, %v", tt.name, cl, err)
		}
	}
	// The thumbnail token is not a video token.
	if _, err := v.Verify(context.Background(), got.Thumbnail, spacejwt.AudiencePlayback); !errors.Is(err, spacejwt.ErrAudience) {
		t.Errorf("thumbnail token as a video token: %v", err)
	}
}
