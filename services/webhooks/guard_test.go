package webhooks_test

import (
	"fmt"
	"net/http"
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
