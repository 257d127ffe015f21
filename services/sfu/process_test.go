package sfu_test

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spacecast/spacecast/libs/auth"
	"github.com/spacecast/spacecast/libs/spacejwt"
	"github.com/spacecast/spacecast/libs/testenv"
	"github.com/spacecast/spacecast/services/sfu"
	"github.com/spacecast/spacecast/services/sfu/spacesclient"
)

// internalAPI plays the keys service's JWKS and spaces-api's space lookup, as the standalone
// binary reaches them over HTTP with the internal secret.
func (w *world) internalAPI(secret string) *httptest.Server {
	return w.internalAPIServer(secret, nil)
}

// internalAPIWithToken also answers the keys service's access-token lookup for tok (so a
// spaces-api binary can authenticate REST calls made with it) and returns the URL.
func (w *world) internalAPIWithToken(secret string, tok auth.TokenRecord) string {
	return w.internalAPIServer(secret, &tok).URL
}

func (w *world) internalAPIServer(secret string, tok *auth.TokenRecord) *httptest.Server {
	mux := http.NewServeMux()
	check := func(rw http.ResponseWriter, r *http.Request) bool {
		if r.Header.Get(auth.InternalAuthHeader) != secret {
			rw.WriteHeader(http.StatusUnauthorized)
			return false
		}
		return true
	}
	mux.HandleFunc("GET /internal/v1/jwks", func(rw http.ResponseWriter, r *http.Request) {
		if !check(rw, r) {
			return
		}
		ks, _ := w.keys.PublicKeys(r.Context())
		set := spacejwt.JWKS{}
		for _, k := range ks {
			set.Keys = append(set.Keys, spacejwt.ToJWK(k))
		}
		_ = json.NewEncoder(rw).Encode(map[string]any{"data": set})
	})
	if tok != nil {
		mux.HandleFunc("GET /internal/v1/access-tokens/{id}", func(rw http.ResponseWriter, r *http.Request) {
			if !check(rw, r) {
				return
			}
			if r.PathValue("id") != tok.ID {
				rw.WriteHeader(http.StatusNotFound)
				return
			}
			_ = json.NewEncoder(rw).Encode(map[string]any{"data": tok})
		})
	}
	mux.HandleFunc("GET /internal/v1/spaces/{id}", func(rw http.ResponseWriter, r *http.Request) {
		if !check(rw, r) {
			return
		}
		w.smu.Lock()
		env, ok := w.spaces[r.PathValue("id")]
		w.smu.Unlock()
		if !ok {
			rw.WriteHeader(http.StatusNotFound)
			return
		}
		_ = json.NewEncoder(rw).Encode(map[string]any{"data": map[string]string{"id": r.PathValue("id"), "environment_id": env, "status": "idle"}})
	})
	s := httptest.NewServer(mux)
	w.t.Cleanup(s.Close)
	return s
}

// TestKilledProcessNodeIsCleanedUp runs the standalone sfu binary, kills it with SIGKILL and
// checks that another node removes its participant and emits participant.left.
func TestKilledProcessNodeIsCleanedUp(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the sfu binary")
	}
	w := newWorld(t)
	rtc := w.watchRTC()
	bin := filepath.Join(t.TempDir(), "sfu")
	if out, err := exec.Command("go", "build", "-o", bin, "./cmd/sfu").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	api := w.internalAPI("s3cret")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	base := "ws://" + addr + strings.TrimSuffix(sfu.SpacesPath, "/v1")
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(),
		"SPACECAST_HTTP_ADDR="+addr,
		"SPACECAST_REDIS_URL="+w.redisURL,
		"SPACECAST_SFU_REDIS_PREFIX="+w.prefix,
		"SPACECAST_KAFKA_BROKERS="+strings.Join(w.brokers, ","),
		"SPACECAST_INTERNAL_SECRET=s3cret",
		"SPACECAST_KEYS_URL="+api.URL,
		"SPACECAST_SPACES_URL="+api.URL,
		"SPACECAST_SFU_NODE_ID=proc1",
		"SPACECAST_SFU_PUBLIC_URL="+base+"/v1",
		"SPACECAST_SFU_ICE_BIND_IP=127.0.0.1",
		"SPACECAST_SFU_UDP_PORT=0",
		"SPACECAST_SFU_TCP_PORT=0",
		"SPACECAST_SFU_HEARTBEAT_INTERVAL=300ms",
		"SPACECAST_SFU_NODE_TIMEOUT=1500ms",
		"SPACECAST_SFU_CLEANUP_INTERVAL=300ms",
		"SPACECAST_SFU_CONSUMER_GROUP=sfu-proc1",
		"SPACECAST_LOG_LEVEL=warn",
	)
	var logs strings.Builder
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	testenv.Eventually(t, 20*time.Second, func() bool {
		res, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			return false
		}
		res.Body.Close()
		return res.StatusCode == http.StatusOK
	}, "sfu binary ready (logs: %s)", &logs)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	a, err := spacesclient.Join(ctx, base, w.token("space-1", "publisher", "victim"), spacesclient.Options{LoopbackOnly: true})
	if err != nil {
		t.Fatalf("join the binary: %v (logs: %s)", err, &logs)
	}
	defer a.Close()
	publish(t, ctx, a, "microphone")
	rtc.wait(t, "participant.joined", map[string]string{"participant_id": "victim", "node_id": "proc1"}, 1)

	n2 := w.node("n2")
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	left := rtc.wait(t, "participant.left", map[string]string{"participant_id": "victim", "node_id": "proc1"}, 1)
	if left[0]["connection_id"] != a.Info().ConnectionID {
		t.Fatalf("participant.left %v", left[0])
	}
	if n := w.rdb.HLen(ctx, w.prefix+"{space:space-1}:participants").Val(); n != 0 {
		t.Fatalf("%d participants left in Redis", n)
	}
	t.Logf("participant.left %v after SIGKILL", time.Since(killed).Round(time.Millisecond))
	b, err := tryJoin(ctx, n2, w.token("space-1", "publisher", "victim"), spacesclient.Options{})
	if err != nil {
		t.Fatalf("rejoin on n2: %v", err)
	}
	b.Close()
}
