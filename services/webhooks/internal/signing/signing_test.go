package signing

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
)

// TestStandardWebhooksVector signs the example the Standard Webhooks project publishes for its
// libraries (secret, message id, timestamp, payload and the expected signature).
func TestStandardWebhooksVector(t *testing.T) {
	h, err := Headers("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, []byte(`{"test": 2432232314}`), "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	if err != nil {
		t.Fatal(err)
	}
	if want := "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="; h["webhook-signature"] != want {
		t.Fatalf("webhook-signature = %s, want %s", h["webhook-signature"], want)
	}
	if h["webhook-id"] != "msg_p5jXN8AQM9LWM0D4loKWxJek" || h["webhook-timestamp"] != "1614265330" {
		t.Fatalf("headers %v", h)
	}
}

// TestMuxSignatureUsesTheSecretAsShown: Mux verifiers key the HMAC with the secret string
// itself, so the Mux signature must be keyed with the whole "whsec_..." string, not the
// decoded key.
func TestMuxSignatureUsesTheSecretAsShown(t *testing.T) {
	secret := NewSecret()
	body := []byte(`{"type":"video.space.created"}`)
	h, err := Headers("id1", 1700000000, body, secret)
	if err != nil {
		t.Fatal(err)
	}
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte("1700000000." + string(body)))
	if want := "t=1700000000,v1=" + hex.EncodeToString(m.Sum(nil)); h["Mux-Signature"] != want {
		t.Fatalf("Mux-Signature = %s, want %s", h["Mux-Signature"], want)
	}
}

func TestRotationSignsWithBoth(t *testing.T) {
	a, b := NewSecret(), NewSecret()
	h, err := Headers("id1", 1700000000, []byte("{}"), a, b)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(h["Mux-Signature"], "v1="); n != 2 {
		t.Fatalf("%d Mux signatures: %s", n, h["Mux-Signature"])
	}
	if n := len(strings.Fields(h["webhook-signature"])); n != 2 {
		t.Fatalf("%d Standard Webhooks signatures: %s", n, h["webhook-signature"])
	}
}

func TestBadSecrets(t *testing.T) {
	for _, s := range []string{"", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_not base64!", "whsec_"} {
		if _, err := Headers("id", 1, nil, s); err == nil {
			t.Errorf("secret %q accepted", s)
		}
	}
	if s := NewSecret(); !strings.HasPrefix(s, Prefix) || len(s) != len(Prefix)+44 {
		t.Fatalf("NewSecret() = %q", s)
	}
}
