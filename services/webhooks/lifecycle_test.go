package webhooks_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spacecast/spacecast/libs/events"
)

func TestEndpointFailingForThePeriodIsDisabled(t *testing.T) {
	b := newBacking(t)
	s := b.start(t, map[string]string{
		"SPACECAST_WEBHOOKS_DISABLE_AFTER":  "1500ms",
		"SPACECAST_WEBHOOKS_RETRY_SCHEDULE": strings.Repeat("200ms,", 29) + "200ms",
	})
	dead := newReceiver(t, func(_ int, w http.ResponseWriter) { w.WriteHeader(500) })
	watcher := newReceiver(t, nil)
	epID, sd := s.endpoint(credsA, `{"url":"`+dead.srv.URL+`"}`)
	_, sw := s.endpoint(credsA, `{"url":"`+watcher.srv.URL+`"}`)
	dead.setSecrets(sd)
	watcher.setSecrets(sw)
	start := time.Now()
	b.publish(t, events.TopicSpaces, "space.created", "envA", "doomed")
	waitFor(t, 20*time.Second, "endpoint disabled after failing for 1.5 s", func() bool {
		_, out := s.call(credsA, "GET", "/system/v1/webhook-endpoints/"+epID, "")
		d, _ := out["data"].(map[string]any)
		return d["enabled"] == false && strings.Contains(fmt.Sprint(d["disabled_reason"]), "failed every delivery")
	})
	if el := time.Since(start); el < 1500*time.Millisecond {
		t.Fatalf("disabled after %v, before the period", el)
	}
	// The environment's other endpoint hears about it, and never about delivery outcomes.
	waitFor(t, 15*time.Second, "system.webhook_endpoint.disabled delivered", func() bool {
		got, _ := watcher.snapshot()
		for _, g := range got {
			if g.body["type"] == "system.webhook_endpoint.disabled" && g.body["object"].(map[string]any)["id"] == epID {
				return true
			}
		}
		return false
	})
	n, _ := dead.snapshot()
	_, bad := dead.snapshot()
	time.Sleep(time.Second)
	if after, _ := dead.snapshot(); len(after) != len(n) || len(bad) > 0 {
		t.Fatalf("attempts went on after disabling (%d -> %d) or were badly signed (%v)", len(n), len(after), bad)
	}
	got, _ := watcher.snapshot()
	for _, g := range got {
		if typ := fmt.Sprint(g.body["type"]); strings.Contains(typ, "delivery") {
			t.Fatalf("a delivery outcome became a webhook: %s", typ)
		}
	}
}

func TestRateLimitSpreadsDeliveries(t *testing.T) {
	b := newBacking(t)
	s := b.start(t, map[string]string{"SPACECAST_WEBHOOKS_DEFAULT_RATE_LIMIT": "4"})
	rcv := newReceiver(t, nil)
	epID, secret := s.endpoint(credsA, `{"url":"`+rcv.srv.URL+`"}`)
	rcv.setSecrets(secret)
	if _, out := s.call(credsA, "GET", "/system/v1/webhook-endpoints/"+epID, ""); out["data"].(map[string]any)["rate_limit"] != float64(4) {
		t.Fatalf("default rate limit not applied: %v", out)
	}
	for i := 0; i < 12; i++ {
		b.publish(t, events.TopicSpaces, "space.created", "envA", fmt.Sprintf("rl%d", i))
	}
	waitFor(t, 20*time.Second, "12 deliveries", func() bool { g, _ := rcv.snapshot(); return len(g) >= 12 })
	got, _ := rcv.snapshot()
	// 4 at once, then 4 per second: the last 8 need at least 2 s.
	if span := got[11].at.Sub(got[0].at); span < 1700*time.Millisecond {
		t.Fatalf("12 deliveries in %v despite 4/s", span)
	}
	// Per-endpoint setting: a higher limit on the endpoint itself is honoured.
	if st, out := s.call(credsA, "PATCH", "/system/v1/webhook-endpoints/"+epID, `{"rate_limit":1000}`); st != 200 || out["data"].(map[string]any)["rate_limit"] != float64(1000) {
		t.Fatalf("PATCH rate_limit = %d %v", st, out)
	}
}

// TestRedisLosesTimersWhileRunning: the retry timer vanishes (Redis restarted without
// persistence) while the service runs; the periodic rebuild from SQL brings it back.
func TestRedisLosesTimersWhileRunning(t *testing.T) {
	b := newBacking(t)
	var mu sync.Mutex
	fail := true
	rcv := newReceiver(t, func(_ int, w http.ResponseWriter) {
		mu.Lock()
		defer mu.Unlock()
		if fail {
			w.WriteHeader(500)
			return
		}
		w.WriteHeader(200)
	})
	s := b.start(t, map[string]string{"SPACECAST_WEBHOOKS_RETRY_SCHEDULE": "2s,2s", "SPACECAST_WEBHOOKS_RECONCILE_INTERVAL": "300ms"})
	_, secret := s.endpoint(credsA, `{"url":"`+rcv.srv.URL+`"}`)
	rcv.setSecrets(secret)
	b.publish(t, events.TopicSpaces, "space.created", "envA", "lost")
	waitFor(t, 15*time.Second, "first attempt", func() bool { g, _ := rcv.snapshot(); return len(g) == 1 })
	time.Sleep(100 * time.Millisecond) // the retry is scheduled
	if n, err := b.rdb.Del(context.Background(), "{"+b.prefix+"deliveries}:due").Result(); err != nil || n != 1 {
		t.Fatalf("deleting the timers: %d %v", n, err)
	}
	mu.Lock()
	fail = false
	mu.Unlock()
	waitFor(t, 15*time.Second, "retry after the timers were lost", func() bool { g, _ := rcv.snapshot(); return len(g) == 2 })
}
