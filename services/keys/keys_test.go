package keys_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/spacecast/spacecast/libs/auth"
	"github.com/spacecast/spacecast/libs/envconfig"
	"github.com/spacecast/spacecast/libs/httpapi"
	"github.com/spacecast/spacecast/libs/kafkabus"
	"github.com/spacecast/spacecast/libs/outbox"
	"github.com/spacecast/spacecast/libs/spacejwt"
	"github.com/spacecast/spacecast/libs/sqldb"
	"github.com/spacecast/spacecast/libs/testenv"
	"github.com/spacecast/spacecast/services/keys"
)

const (
	adminID     = "admin-token-0001"
	adminSecret = "admin-secret-0123456789"
)

type env struct {
	t    *testing.T
	url  string
	svc  *keys.Service
	db   *sqldb.DB
	envA string

	brokers []string
}

type creds struct{ id, secret string }

var admin = creds{adminID, adminSecret}

func setup(t *testing.T, b testenv.SQLBackend) *env {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	db := testenv.OpenSQL(t, b)
	brokers := testenv.Kafka(t)
	prod, err := kafkabus.NewProducer(kafkabus.ProducerConfig{Brokers: brokers})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { prod.Close() })
	r := envconfig.FromMap(map[string]string{
		"SPACECAST_BOOTSTRAP_TOKEN_ID": adminID, "SPACECAST_BOOTSTRAP_TOKEN_SECRET": adminSecret, "SPACECAST_INTERNAL_SECRET": "internal-secret",
	})
	cfg := keys.LoadConfig(r)
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
	log := testenv.Logger(t)
	svc, err := keys.New(ctx, cfg, keys.Deps{Logger: log, DB: db, Publisher: prod})
	if err != nil {
		t.Fatal(err)
	}
	boot, err := svc.Bootstrap(ctx)
	if err != nil || !boot.Created || boot.TokenID != adminID {
		t.Fatalf("bootstrap = %+v, %v", boot, err)
	}
	e := httpapi.NewServer(httpapi.Options{Logger: log})
	svc.Register(e)
	srv := httptest.NewServer(e)
	t.Cleanup(srv.Close)
	return &env{t: t, url: srv.URL, svc: svc, db: db, envA: boot.EnvironmentID, brokers: brokers}
}

// call sends a request and returns the status and the decoded body.
func (e *env) call(c creds, method, path string, body string) (int, map[string]any) {
	e.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, e.url+path, rd)
	if c.id != "" {
		req.SetBasicAuth(c.id, c.secret)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	var out map[string]any
	if len(bytes.TrimSpace(raw)) > 0 {
		if err := json.Unmarshal(raw, &out); err != nil {
			e.t.Fatalf("%s %s: non-JSON body %q", method, path, raw)
		}
	}
	return res.StatusCode, out
}

func data(m map[string]any) map[string]any { d, _ := m["data"].(map[string]any); return d }

func (e *env) count(table string) int {
	e.t.Helper()
	var n int
	if err := e.db.QueryRow(`SELECT COUNT(*) FROM ` + table).Scan(&n); err != nil {
		e.t.Fatal(err)
	}
	return n
}

func eachBackend(t *testing.T, fn func(t *testing.T, e *env)) {
	for _, b := range testenv.SQLBackends(t) {
		t.Run(b.Name, func(t *testing.T) { fn(t, setup(t, b)) })
	}
}

func TestSigningKeys(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		st, body := e.call(admin, "POST", "/system/v1/signing-keys", "")
		if st != 201 {
			t.Fatalf("create = %d %v", st, body)
		}
		k := data(body)
		id, _ := k["id"].(string)
		priv, _ := k["private_key"].(string)
		if id == "" || priv == "" || k["created_at"] == nil {
			t.Fatalf("create body %v", body)
		}
		pemBytes, err := base64.StdEncoding.DecodeString(priv)
		if err != nil {
			t.Fatalf("private_key not base64: %v", err)
		}
		block, _ := pem.Decode(pemBytes)
		if block == nil {
			t.Fatal("private_key is not PEM")
		}
		rk, err := x509.ParsePKCS1PrivateKey(block.Bytes)
		if err != nil || rk.N.BitLen() != 2048 {
			t.Fatalf("private key: %v", err)
		}
		// The private half is never stored.
		var stored string
		if err := e.db.QueryRow(`SELECT public_key_pem FROM signing_keys WHERE id = $1`, id).Scan(&stored); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(stored, "PRIVATE") {
			t.Fatal("private key stored")
		}
		for _, p := range []string{"/system/v1/signing-keys/" + id, "/video/v1/signing-keys/" + id} {
			st, body = e.call(admin, "GET", p, "")
			if st != 200 || data(body)["id"] != id || data(body)["private_key"] != nil {
				t.Fatalf("GET %s = %d %v", p, st, body)
			}
		}
		st, body = e.call(admin, "GET", "/system/v1/signing-keys", "")
		if list, _ := body["data"].([]any); st != 200 || len(list) != 1 || list[0].(map[string]any)["private_key"] != nil {
			t.Fatalf("list = %d %v", st, body)
		}

		// A token signed with it verifies against the service's keys; after DELETE it does not.
		tok, err := spacejwt.Sign([]byte(priv), id, spacejwt.SignClaims{Audience: spacejwt.AudienceRT, Subject: "space1"})
		if err != nil {
			t.Fatal(err)
		}
		v, _ := spacejwt.NewVerifier(e.svc, spacejwt.Options{})
		cl, err := v.Verify(context.Background(), tok, spacejwt.AudienceRT)
		if err != nil || cl.EnvironmentID != e.envA || cl.Subject != "space1" {
			t.Fatalf("verify = %+v, %v", cl, err)
		}
		if st, _ := e.call(admin, "DELETE", "/system/v1/signing-keys/"+id, ""); st != 204 {
			t.Fatalf("delete = %d", st)
		}
		if st, _ := e.call(admin, "DELETE", "/system/v1/signing-keys/"+id, ""); st != 404 {
			t.Fatalf("second delete = %d, want 404", st)
		}
		v2, _ := spacejwt.NewVerifier(e.svc, spacejwt.Options{})
		if _, err := v2.Verify(context.Background(), tok, spacejwt.AudienceRT); !errors.Is(err, spacejwt.ErrUnknownKey) {
			t.Fatalf("verify after delete = %v", err)
		}
	})
}

func TestTokensEnvironmentsAndIsolation(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		st, body := e.call(admin, "POST", "/system/v1/environments", `{"name":"Production"}`)
		if st != 201 {
			t.Fatalf("create env = %d %v", st, body)
		}
		envB := data(body)["id"].(string)
		st, body = e.call(admin, "POST", "/system/v1/access-tokens", `{"name":"reader","environment_id":"`+envB+`","permissions":["video:read","system:read"]}`)
		if st != 201 {
			t.Fatalf("create token = %d %v", st, body)
		}
		tb := data(body)
		b := creds{tb["id"].(string), tb["secret"].(string)}
		if tb["environment_id"] != envB {
			t.Fatalf("token body %v", tb)
		}
		st, body = e.call(admin, "GET", "/system/v1/access-tokens/"+b.id, "")
		if st != 200 || data(body)["secret"] != nil || data(body)["secret_hash"] != nil {
			t.Fatalf("GET token shows its secret: %d %v", st, body)
		}
		st, body = e.call(b, "GET", "/system/v1/whoami", "")
		if st != 200 || data(body)["environment"].(map[string]any)["id"] != envB || data(body)["admin"] != false ||
			data(body)["environment_id"] != envB || data(body)["access_token_name"] == "" || data(body)["access_token_name"] == nil {
			t.Fatalf("whoami = %d %v", st, body)
		}
		// A key of environment A is invisible to B (404, not 403).
		_, kb := e.call(admin, "POST", "/system/v1/signing-keys", "")
		kid := data(kb)["id"].(string)
		if st, _ := e.call(b, "GET", "/system/v1/signing-keys/"+kid, ""); st != 404 {
			t.Fatalf("B reads A's key: %d", st)
		}
		if st, body := e.call(b, "GET", "/system/v1/signing-keys", ""); st != 200 || len(body["data"].([]any)) != 0 {
			t.Fatalf("B lists A's keys: %d %v", st, body)
		}
		// Missing permission: 403; not admin: 403.
		if st, _ := e.call(b, "POST", "/system/v1/signing-keys", ""); st != 403 {
			t.Fatalf("reader creates key: %d", st)
		}
		if st, _ := e.call(b, "GET", "/system/v1/access-tokens", ""); st != 403 {
			t.Fatalf("non-admin lists tokens: %d", st)
		}
		// Revocation: 204, then 401 within 5 s; revoking twice is 404.
		if st, _ := e.call(admin, "DELETE", "/system/v1/access-tokens/"+b.id, ""); st != 204 {
			t.Fatalf("revoke = %d", st)
		}
		if st, _ := e.call(admin, "DELETE", "/system/v1/access-tokens/"+b.id, ""); st != 404 {
			t.Fatalf("second revoke = %d", st)
		}
		testenv.Eventually(t, 5*time.Second, func() bool {
			st, _ := e.call(b, "GET", "/system/v1/whoami", "")
			return st == 401
		}, "revoked token still accepted")
	})
}

func TestBadInputChangesNothing(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		_, body := e.call(admin, "POST", "/system/v1/access-tokens", `{"name":"writer","permissions":["video:read"]}`)
		reader := creds{data(body)["id"].(string), data(body)["secret"].(string)}
		tokens, envs, keysN := e.count("access_tokens"), e.count("environments"), e.count("signing_keys")
		pending, _ := outbox.Pending(context.Background(), e.db)
		sent := e.count("spacecast_outbox")
		tests := []struct {
			name       string
			c          creds
			method     string
			path, body string
			status     int
			mentions   string
		}{
			{"no credentials", creds{}, "POST", "/system/v1/signing-keys", "", 401, "Basic"},
			{"wrong secret", creds{adminID, "nope-nope-nope"}, "POST", "/system/v1/signing-keys", "", 401, "invalid"},
			{"unknown token", creds{"nobody", "nope"}, "GET", "/system/v1/whoami", "", 401, "invalid"},
			{"malformed json", admin, "POST", "/system/v1/access-tokens", `{"name":`, 400, "JSON"},
			{"unknown field", admin, "POST", "/system/v1/access-tokens", `{"name":"x","permissions":["video:read"],"color":1}`, 400, `"color"`},
			{"wrong type", admin, "POST", "/system/v1/access-tokens", `{"name":5,"permissions":["video:read"]}`, 400, `"name"`},
			{"bad permission", admin, "POST", "/system/v1/access-tokens", `{"name":"x","permissions":["video:fly"]}`, 400, "video:fly"},
			{"no permissions", admin, "POST", "/system/v1/access-tokens", `{"name":"x"}`, 400, "permissions"},
			{"unknown environment", admin, "POST", "/system/v1/access-tokens", `{"name":"x","environment_id":"nope","permissions":["video:read"]}`, 400, "environment_id"},
			{"env without name", admin, "POST", "/system/v1/environments", `{}`, 400, "name"},
			{"key with body field", admin, "POST", "/system/v1/signing-keys", `{"bits":4096}`, 400, `"bits"`},
			{"limit too large", admin, "GET", "/system/v1/signing-keys?limit=101", "", 400, "limit"},
			{"page zero", admin, "GET", "/system/v1/signing-keys?page=0", "", 400, "page"},
			{"missing permission", reader, "POST", "/system/v1/signing-keys", "", 403, "system:write"},
			{"not admin", reader, "POST", "/system/v1/environments", `{"name":"x"}`, 403, "admin"},
			{"delete unknown key", admin, "DELETE", "/system/v1/signing-keys/nope", "", 404, "signing key"},
			{"internal without secret", creds{}, "GET", "/internal/v1/access-tokens/" + adminID, "", 401, "internal"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				st, body := e.call(tt.c, tt.method, tt.path, tt.body)
				if st != tt.status {
					t.Fatalf("status %d, want %d (%v)", st, tt.status, body)
				}
				eb, _ := body["error"].(map[string]any)
				msgs := fmt.Sprint(eb["messages"])
				if eb["type"] == nil || !strings.Contains(msgs, tt.mentions) {
					t.Fatalf("error %v does not mention %q", body, tt.mentions)
				}
			})
		}
		p2, _ := outbox.Pending(context.Background(), e.db)
		if e.count("access_tokens") != tokens || e.count("environments") != envs || e.count("signing_keys") != keysN ||
			e.count("spacecast_outbox") != sent || p2 > pending {
			t.Fatal("a rejected request wrote something")
		}
	})
}

func TestInternalLookups(t *testing.T) {
	e := setup(t, testenv.SQLBackends(t)[0])
	l, err := auth.NewHTTPLookup(e.url, "internal-secret")
	if err != nil {
		t.Fatal(err)
	}
	rec, err := l.LookupToken(context.Background(), adminID)
	if err != nil || !rec.Admin || string(rec.SecretHash) != string(auth.HashSecret(adminSecret)) {
		t.Fatalf("lookup = %+v, %v", rec, err)
	}
	if _, err := l.LookupToken(context.Background(), "missing"); !errors.Is(err, auth.ErrTokenNotFound) {
		t.Fatalf("missing token: %v", err)
	}
	envRec, err := l.LookupEnvironment(context.Background(), e.envA)
	if err != nil || envRec.Name != "Development" {
		t.Fatalf("env = %+v, %v", envRec, err)
	}
	_, kb := e.call(admin, "POST", "/system/v1/signing-keys", "")
	src, _ := spacejwt.NewHTTPKeySource(e.url, "internal-secret")
	ks, err := src.PublicKeys(context.Background())
	if err != nil || len(ks) != 1 || ks[0].ID != data(kb)["id"] || ks[0].EnvironmentID != e.envA {
		t.Fatalf("jwks = %+v, %v", ks, err)
	}
	bad, _ := auth.NewHTTPLookup(e.url, "wrong")
	if _, err := bad.LookupToken(context.Background(), adminID); err == nil {
		t.Fatal("wrong internal secret accepted")
	}
}

func TestLoadConfig(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		bad  string
	}{
		{"defaults", map[string]string{}, ""},
		{"both bootstrap", map[string]string{"SPACECAST_BOOTSTRAP_TOKEN_ID": "abcdefgh", "SPACECAST_BOOTSTRAP_TOKEN_SECRET": "0123456789abcdef"}, ""},
		{"id only", map[string]string{"SPACECAST_BOOTSTRAP_TOKEN_ID": "abcdefgh"}, "SPACECAST_BOOTSTRAP_TOKEN_ID"},
		{"short secret", map[string]string{"SPACECAST_BOOTSTRAP_TOKEN_ID": "abcdefgh", "SPACECAST_BOOTSTRAP_TOKEN_SECRET": "short"}, "SPACECAST_BOOTSTRAP_TOKEN_SECRET"},
		{"bad id", map[string]string{"SPACECAST_BOOTSTRAP_TOKEN_ID": "a b", "SPACECAST_BOOTSTRAP_TOKEN_SECRET": "0123456789abcdef"}, "SPACECAST_BOOTSTRAP_TOKEN_ID"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := envconfig.FromMap(tt.env)
			keys.LoadConfig(r)
			err := r.Err()
			if (tt.bad == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.bad)) {
				t.Fatalf("err = %v, want mention of %q", err, tt.bad)
			}
		})
	}
}
