// Package signing makes webhook secrets and signs deliveries for both verifier families:
// Mux (`Mux-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`, the secret string
// as the key) and Standard Webhooks (`webhook-signature: v1,<base64 HMAC-SHA256(key,
// "<id>.<t>.<body>")>`, the key being the base64 part after "whsec_").
//
// One secret string works for both: it is "whsec_" + base64 of 32 random bytes. A Mux SDK
// verifier uses the whole string as its HMAC key, exactly as shown; a Standard Webhooks library
// strips "whsec_" and base64-decodes the rest, exactly as the spec says.
package signing

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
)

// Prefix starts every secret.
const Prefix = "whsec_"

// ErrBadSecret is returned for a secret that is not "whsec_" + base64.
var ErrBadSecret = errors.New("webhook secret must be whsec_ followed by the base64 of at least 16 bytes")

// NewSecret returns a fresh secret.
func NewSecret() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return Prefix + base64.StdEncoding.EncodeToString(b)
}

func key(secret string) ([]byte, error) {
	k, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, Prefix))
	if err != nil || !strings.HasPrefix(secret, Prefix) || len(k) < 16 {
		return nil, ErrBadSecret
	}
	return k, nil
}

// Headers returns the signature headers for body sent at unix time ts as message id, signed
// with every secret given (current first, then one still valid after a rotation).
func Headers(id string, ts int64, body []byte, secrets ...string) (map[string]string, error) {
	t := strconv.FormatInt(ts, 10)
	mux := []string{"t=" + t}
	var std []string
	for _, s := range secrets {
		k, err := key(s)
		if err != nil {
			return nil, err
		}
		m := hmac.New(sha256.New, []byte(s))
		m.Write([]byte(t + "."))
		m.Write(body)
		mux = append(mux, "v1="+hex.EncodeToString(m.Sum(nil)))
		h := hmac.New(sha256.New, k)
		h.Write([]byte(id + "." + t + "."))
		h.Write(body)
		std = append(std, "v1,"+base64.StdEncoding.EncodeToString(h.Sum(nil)))
	}
	return map[string]string{
		"Mux-Signature":     strings.Join(mux, ","),
		"webhook-id":        id,
		"webhook-timestamp": t,
		"webhook-signature": strings.Join(std, " "),
	}, nil
}
