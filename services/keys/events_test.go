package keys_test

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spacecast/spacecast/libs/auth"
	"github.com/spacecast/spacecast/libs/events"
	"github.com/spacecast/spacecast/libs/kafkabus"
	"github.com/spacecast/spacecast/libs/testenv"
)

// TestSecretsNeverInEvents creates and revokes an access token and creates and deletes a
// signing key, then reads every event on spacecast.keys from Kafka: none carries the token's
// secret (nor its hash), the private key (in any of its encodings) or a field named like a
// secret, and each carries the documented data.
func TestSecretsNeverInEvents(t *testing.T) {
	e := setup(t, testenv.SQLBackends(t)[0])
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = e.svc.Run(ctx) }()

	st, body := e.call(admin, "POST", "/system/v1/access-tokens", `{"name":"analytics","permissions":["video:read"]}`)
	if st != 201 {
		t.Fatalf("create token = %d %v", st, body)
	}
	tokID, tokSecret := data(body)["id"].(string), data(body)["secret"].(string)
	st, body = e.call(admin, "POST", "/system/v1/signing-keys", "")
	if st != 201 {
		t.Fatalf("create key = %d %v", st, body)
	}
	keyID, privB64 := data(body)["id"].(string), data(body)["private_key"].(string)
	privPEM, _ := base64.StdEncoding.DecodeString(privB64)
	block, _ := pem.Decode(privPEM)
	if block == nil {
		t.Fatal("private_key is not a PEM")
	}
	// A line from the middle of the PEM body: what any encoding of the key would contain.
	lines := strings.Split(strings.TrimSpace(string(privPEM)), "\n")
	secrets := map[string]string{
		"token secret": tokSecret, "token secret hash": hex.EncodeToString(auth.HashSecret(tokSecret)),
		"private key (base64 PEM)": privB64[:40], "private key (PEM line)": lines[len(lines)/2],
		"private key (DER base64)": base64.StdEncoding.EncodeToString(block.Bytes)[64:128],
	}
	if st, _ := e.call(admin, "DELETE", "/system/v1/signing-keys/"+keyID, ""); st != 204 {
		t.Fatalf("delete key = %d", st)
	}
	if st, _ := e.call(admin, "DELETE", "/system/v1/access-tokens/"+tokID, ""); st != 204 {
		t.Fatalf("revoke token = %d", st)
	}

	want := map[string]bool{"access_token.created": true, "signing_key.created": true, "signing_key.deleted": true, "access_token.revoked": true}
	var mu sync.Mutex
	seen := map[string]json.RawMessage{}
	cons, err := kafkabus.NewConsumer(kafkabus.ConsumerConfig{Brokers: e.brokers, GroupID: "secrets-test", Topics: []string{events.TopicKeys}, Logger: testenv.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	cctx, ccancel := context.WithTimeout(ctx, 30*time.Second)
	defer ccancel()
	_ = cons.Run(cctx, func(_ context.Context, m kafkabus.Message) error {
		ev, err := events.Parse(m.Value)
		if err != nil {
			t.Errorf("malformed event: %v", err)
			return nil
		}
		for what, s := range secrets {
			if strings.Contains(string(m.Value), s) {
				t.Errorf("%s event carries the %s: %s", ev.Type, what, m.Value)
			}
		}
		if strings.Contains(strings.ToLower(string(ev.Data)), "secret") || strings.Contains(strings.ToLower(string(ev.Data)), "private") {
			t.Errorf("%s event data names a secret: %s", ev.Type, ev.Data)
		}
		if ev.Subject == tokID || ev.Subject == keyID {
			mu.Lock()
			seen[ev.Type] = ev.Data
			n := 0
			for typ := range want {
				if seen[typ] != nil {
					n++
				}
			}
			mu.Unlock()
			if n == len(want) {
				ccancel()
			}
		}
		return nil
	})
	mu.Lock()
	defer mu.Unlock()
	for typ := range want {
		if seen[typ] == nil {
			t.Fatalf("no %s event on %s (saw %v)", typ, events.TopicKeys, seen)
		}
	}
	var tok map[string]any
	_ = json.Unmarshal(seen["access_token.created"], &tok)
	if tok["id"] != tokID || tok["name"] != "analytics" || tok["environment_id"] != e.envA || tok["created_at"] == nil {
		t.Errorf("access_token.created data = %s", seen["access_token.created"])
	}
	var key map[string]any
	_ = json.Unmarshal(seen["signing_key.created"], &key)
	if key["id"] != keyID || key["created_at"] == nil || len(key) != 2 {
		t.Errorf("signing_key.created data = %s", seen["signing_key.created"])
	}
}
