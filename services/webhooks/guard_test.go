package webhooks_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spacecast/spacecast/libs/events"
)

// TestNamesResolvingToRefusedAddresses uses a real DNS server (on loopback) so that names
// resolve to what the test says: a name pointing at a private address is refused when the
// endpoint is created, and a name that resolved to a public address then is rebound to
// loopback is refused at connect time: the receiver behind it never sees a request.
func TestNamesResolvingToRefusedAddresses(t *testing.T) {
	b := newBacking(t)
	dns := newDNSServer(t)
	b.resolver = dns.resolver()
	s := b.start(t, map[string]string{"SPACECAST_WEBHOOKS_ALLOW_NETWORKS": "", "SPACECAST_WEBHOOKS_RETRY_SCHEDULE": "200ms,200ms,200ms"}) // production guard
	var hits atomic.Int32
	rcv := newReceiver(t, func(_ int, w http.ResponseWriter) { hits.Add(1); w.WriteHeader(200) })
	port := rcv.srv.URL[strings.LastIndex(rcv.srv.URL, ":")+1:]

	for name, ip := range map[string]string{"private.hooks.test": "10.0.0.1", "metadata.hooks.test": "169.254.169.254", "cgnat.hooks.test": "100.64.0.7"} {
		dns.set(name, ip)
		st, out := s.call(credsA, "POST", "/system/v1/webhook-endpoints", `{"url":"http://`+name+`/h"}`)
		if e, _ := out["error"].(map[string]any); st != 400 || !strings.Contains(fmt.Sprint(e["messages"]), ip) {
			t.Fatalf("%s (%s): %d %v, want 400 naming the refused address", name, ip, st, out)
		}
	}
	if st, out := s.call(credsA, "POST", "/system/v1/webhook-endpoints", `{"url":"http://unknown.hooks.test/h"}`); st != 400 {
		t.Fatalf("unresolvable name: %d %v", st, out)
	}

	// DNS rebinding: public when checked, loopback when dialled.
	dns.set("rebind.hooks.test", "93.184.216.34")
	epID, _ := s.endpoint(credsA, `{"url":"http://rebind.hooks.test:`+port+`/h"}`)
	dns.set("rebind.hooks.test", "127.0.0.1") // before any event: nothing may ever dial the public address
	b.publish(t, events.TopicSpaces, "space.created", "envA", "rebind")
	waitFor(t, 15*time.Second, "attempts refused at connect time", func() bool {
		_, out := s.call(credsA, "GET", "/system/v1/webhook-endpoints/"+epID+"/deliveries", "")
		ds, _ := out["data"].([]any)
		if len(ds) != 1 {
			return false
		}
		as, _ := ds[0].(map[string]any)["attempts"].([]any)
		return len(as) >= 2 && strings.Contains(fmt.Sprint(as[0].(map[string]any)["error"]), "refused")
	})
	if n := hits.Load(); n != 0 {
		t.Fatalf("the rebound name reached the loopback receiver %d times", n)
	}
}

// TestZonedLoopbackNeverReached: with loopback not allowed, a receiver listening on [::1] is
// refused when registered as http://[::1%25<loopback>]:PORT/ (the zone made the old check's
// prefix match fail, so deliveries reached [::1]), and an endpoint with that URL written
// straight into the database is refused at connect time by the worker: the receiver never
// sees a request.
func TestZonedLoopbackNeverReached(t *testing.T) {
	b := newBacking(t)
	s := b.start(t, map[string]string{"SPACECAST_WEBHOOKS_ALLOW_NETWORKS": "", "SPACECAST_WEBHOOKS_RETRY_SCHEDULE": "100ms,100ms,100ms"}) // production guard
	ln, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	var hits atomic.Int32
	rcv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { hits.Add(1) }))
	rcv.Listener = ln
	rcv.Start()
	t.Cleanup(rcv.Close)
	lo := loopbackName(t)
	u := fmt.Sprintf("http://[::1%%25%s]:%d/h", lo, ln.Addr().(*net.TCPAddr).Port)

	for _, url := range []string{u, strings.Replace(u, "[::1", "[::ffff:127.0.0.1", 1), fmt.Sprintf("http://[::]:%d/h", ln.Addr().(*net.TCPAddr).Port)} {
		st, out := s.call(credsA, "POST", "/system/v1/webhook-endpoints", `{"url":"`+url+`"}`)
		if e, _ := out["error"].(map[string]any); st != 400 || !strings.HasPrefix(fmt.Sprint(e["messages"]), "[url") {
			t.Fatalf("create %s = %d %v, want 400 naming url", url, st, out)
		}
	}

	id := "ep-zoned"
	now := time.Now().UnixNano()
	if _, err := b.db.ExecContext(context.Background(), `INSERT INTO endpoints (id, environment_id, url, events, enabled, secret, rate_limit, created_ns, updated_ns)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)`, id, "envA", u, "[]", true, "whsec_dGVzdHRlc3R0ZXN0dGVzdHRlc3R0ZXN0dGVzdHRlc3Q=", 0, now); err != nil {
		t.Fatal(err)
	}
	b.publish(t, events.TopicSpaces, "space.created", "envA", "zoned")
	waitFor(t, 15*time.Second, "attempts refused at connect time", func() bool {
		if hits.Load() > 0 {
			return true // reached: reported below
		}
		_, out := s.call(credsA, "GET", "/system/v1/webhook-endpoints/"+id+"/deliveries", "")
		ds, _ := out["data"].([]any)
		if len(ds) != 1 {
			return false
		}
		as, _ := ds[0].(map[string]any)["attempts"].([]any)
		return len(as) >= 2 && strings.Contains(fmt.Sprint(as[0].(map[string]any)["error"]), "refused")
	})
	if n := hits.Load(); n != 0 {
		t.Fatalf("the zoned address reached the [::1] receiver %d times", n)
	}
}

func loopbackName(t *testing.T) string {
	t.Helper()
	ifs, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range ifs {
		if i.Flags&net.FlagLoopback != 0 {
			return i.Name
		}
	}
	t.Skip("no loopback interface")
	return ""
}
