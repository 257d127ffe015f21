package webhooks_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/spacecast/spacecast/libs/events"
	"github.com/spacecast/spacecast/libs/timers"
)

func TestDeliveryCarriesBothSignatures(t *testing.T) {
	b := newBacking(t)
	s := b.start(t, nil)
	rcv := newReceiver(t, nil)
	epID, secret := s.endpoint(credsA, `{"url":"`+rcv.srv.URL+`/hook"}`)
	rcv.setSecrets(secret)
	ev := b.publish(t, events.TopicSpaces, "space.created", "envA", "sp1")
	waitFor(t, 15*time.Second, "delivery", func() bool { g, bad := rcv.snapshot(); return len(g)+len(bad) > 0 })
	got, bad := rcv.snapshot()
	if len(bad) > 0 {
		t.Fatalf("signature problems: %v", bad)
	}
	body := got[0].body
	if got[0].id != ev.ID || body["id"] != ev.ID || body["type"] != "video.space.created" {
		t.Fatalf("delivery %v (webhook-id %s)", body, got[0].id)
	}
	obj := body["object"].(map[string]any)
	env := body["environment"].(map[string]any)
	if obj["type"] != "space" || obj["id"] != "sp1" || env["id"] != "envA" || env["name"] != "Alpha" {
		t.Fatalf("object/environment %v %v", obj, env)
	}
	if body["data"].(map[string]any)["id"] != "sp1" || body["attempts"] == nil || body["created_at"] == nil {
		t.Fatalf("body %v", body)
	}
	waitFor(t, 5*time.Second, "delivery log", func() bool {
		_, out := s.call(credsA, "GET", "/system/v1/webhook-endpoints/"+epID+"/deliveries", "")
		ds, _ := out["data"].([]any)
		return len(ds) == 1 && ds[0].(map[string]any)["status"] == "succeeded"
	})
	_, out := s.call(credsA, "GET", "/system/v1/webhook-endpoints/"+epID, "")
	if d := out["data"].(map[string]any); d["secret"] != nil {
		t.Fatal("GET shows the secret")
	}

	// Rotation: the new secret signs, the old one keeps signing alongside.
	st, out := s.call(credsA, "POST", "/system/v1/webhook-endpoints/"+epID+"/rotate-secret", "")
	newSecret, _ := out["data"].(map[string]any)["secret"].(string)
	if st != 200 || newSecret == "" || newSecret == secret {
		t.Fatalf("rotate = %d %v", st, out)
	}
	rcv.setSecrets(secret, newSecret)
	b.publish(t, events.TopicSpaces, "space.deleted", "envA", "sp1")
	waitFor(t, 15*time.Second, "delivery after rotation", func() bool { g, bad := rcv.snapshot(); return len(g)+len(bad) > 1 })
	got, bad = rcv.snapshot()
	if len(bad) > 0 || got[1].muxSigs != 2 {
		t.Fatalf("after rotation: %v, %d Mux v1 signatures", bad, got[1].muxSigs)
	}
}

func TestRetryAfterFailureThenSuccess(t *testing.T) {
	b := newBacking(t)
	s := b.start(t, nil)
	rcv := newReceiver(t, func(n int, w http.ResponseWriter) {
		if n == 1 {
			w.WriteHeader(500)
			return
		}
		w.WriteHeader(204)
	})
	epID, secret := s.endpoint(credsA, `{"url":"`+rcv.srv.URL+`"}`)
	rcv.setSecrets(secret)
	b.publish(t, events.TopicLivestreams, "livestream.idle", "envA", "ls1")
	waitFor(t, 15*time.Second, "two attempts", func() bool { g, _ := rcv.snapshot(); return len(g) >= 2 })
	got, _ := rcv.snapshot()
	if got[0].body["type"] != "video.live_stream.idle" || got[0].id != got[1].id {
		t.Fatalf("retry is not the same event: %v / %v", got[0].body, got[1].body)
	}
	if a := got[1].body["attempts"].([]any); len(a) != 1 || a[0].(map[string]any)["response_status_code"] != float64(500) {
		t.Fatalf("second attempt's attempts = %v", a)
	}
	waitFor(t, 5*time.Second, "succeeded with 2 attempts", func() bool {
		_, out := s.call(credsA, "GET", "/system/v1/webhook-endpoints/"+epID+"/deliveries", "")
		ds, _ := out["data"].([]any)
		if len(ds) != 1 {
			return false
		}
		d := ds[0].(map[string]any)
		return d["status"] == "succeeded" && d["attempt_count"] == float64(2) && len(d["attempts"].([]any)) == 2
	})
}

func TestRetryAfterHeaderIsHonoured(t *testing.T) {
	b := newBacking(t)
	s := b.start(t, nil)
	rcv := newReceiver(t, func(n int, w http.ResponseWriter) {
		if n == 1 {
			w.Header().Set("Retry-After", "2")
			w.WriteHeader(503)
			return
		}
		w.WriteHeader(200)
	})
	_, secret := s.endpoint(credsA, `{"url":"`+rcv.srv.URL+`"}`)
	rcv.setSecrets(secret)
	b.publish(t, events.TopicSpaces, "space.created", "envA", "sp2")
	waitFor(t, 15*time.Second, "second attempt", func() bool { g, _ := rcv.snapshot(); return len(g) >= 2 })
	got, _ := rcv.snapshot()
	if gap := got[1].at.Sub(got[0].at); gap < 1900*time.Millisecond {
		t.Fatalf("retried after %v although Retry-After said 2 s (schedule says 100 ms)", gap)
	}
}

func TestGoneDisablesEndpoint(t *testing.T) {
	b := newBacking(t)
	s := b.start(t, nil)
	rcv := newReceiver(t, func(int, http.ResponseWriter) {})
	rcv.respond = func(_ int, w http.ResponseWriter) { w.WriteHeader(410) }
	epID, secret := s.endpoint(credsA, `{"url":"`+rcv.srv.URL+`"}`)
	rcv.setSecrets(secret)
	b.publish(t, events.TopicSpaces, "space.created", "envA", "sp3")
	waitFor(t, 15*time.Second, "endpoint disabled", func() bool {
		_, out := s.call(credsA, "GET", "/system/v1/webhook-endpoints/"+epID, "")
		d, _ := out["data"].(map[string]any)
		return d["enabled"] == false && strings.Contains(fmt.Sprint(d["disabled_reason"]), "410")
	})
	b.publish(t, events.TopicSpaces, "space.created", "envA", "sp4")
	time.Sleep(time.Second)
	if g, _ := rcv.snapshot(); len(g) != 1 {
		t.Fatalf("a disabled endpoint got %d deliveries", len(g))
	}
	// webhook_endpoint.disabled is on spacecast.webhooks for other consumers.
	cl, _ := kgo.NewClient(kgo.SeedBrokers(b.brokers...), kgo.ConsumeTopics(events.TopicWebhooks), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	defer cl.Close()
	seen := map[string]bool{}
	deadline := time.Now().Add(10 * time.Second)
	for !seen["webhook_endpoint.disabled"] && time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			if ev, err := events.Parse(r.Value); err == nil && ev.Subject == epID {
				seen[ev.Type] = true
			}
		})
		cancel()
	}
	if !seen["webhook_endpoint.disabled"] || !seen["webhook.delivery.failed"] {
		t.Fatalf("events on %s: %v", events.TopicWebhooks, seen)
	}
}

func TestTimeoutAtFiveSeconds(t *testing.T) {
	if testing.Short() {
		t.Skip("takes over 5 s")
	}
	b := newBacking(t)
	s := b.start(t, nil) // default 5 s timeout
	release := make(chan struct{})
	rcv := newReceiver(t, func(n int, w http.ResponseWriter) {
		if n == 1 {
			select {
			case <-release:
			case <-time.After(8 * time.Second):
			}
		}
		w.WriteHeader(200)
	})
	defer close(release)
	epID, secret := s.endpoint(credsA, `{"url":"`+rcv.srv.URL+`"}`)
	rcv.setSecrets(secret)
	b.publish(t, events.TopicSpaces, "space.created", "envA", "sp5")
	waitFor(t, 20*time.Second, "timed-out attempt then success", func() bool {
		_, out := s.call(credsA, "GET", "/system/v1/webhook-endpoints/"+epID+"/deliveries", "")
		ds, _ := out["data"].([]any)
		if len(ds) != 1 || ds[0].(map[string]any)["status"] != "succeeded" {
			return false
		}
		first := ds[0].(map[string]any)["attempts"].([]any)[0].(map[string]any)
		lat := first["latency_ms"].(float64)
		return strings.Contains(fmt.Sprint(first["error"]), "timed out") && lat >= 4900 && lat < 6500
	})
}

func TestRestartMidScheduleStillDelivers(t *testing.T) {
	for _, lose := range []bool{false, true} {
		t.Run(fmt.Sprintf("redis_lost=%v", lose), func(t *testing.T) {
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
			slow := map[string]string{"SPACECAST_WEBHOOKS_RETRY_SCHEDULE": "3s,3s,3s"}
			s := b.start(t, slow)
			_, secret := s.endpoint(credsA, `{"url":"`+rcv.srv.URL+`"}`)
			rcv.setSecrets(secret)
			b.publish(t, events.TopicSpaces, "space.created", "envA", "sp6")
			waitFor(t, 15*time.Second, "first attempt", func() bool { g, _ := rcv.snapshot(); return len(g) == 1 })
			s.stop() // killed while the retry waits
			if lose {
				q, _ := timers.New(b.rdb, "{"+b.prefix+"deliveries}:due")
				if n, _ := q.Len(context.Background()); n != 1 {
					t.Fatalf("%d timers pending, want 1", n)
				}
				b.rdb.Del(context.Background(), "{"+b.prefix+"deliveries}:due") // Redis restarted without persistence
			}
			mu.Lock()
			fail = false
			mu.Unlock()
			b.start(t, slow)
			waitFor(t, 20*time.Second, "delivery after restart", func() bool { g, _ := rcv.snapshot(); return len(g) == 2 })
		})
	}
}

func TestThousandEventsFlappingReceiverNoneLost(t *testing.T) {
	b := newBacking(t)
	s := b.start(t, nil)
	var mu sync.Mutex
	seen := map[string]int{}
	rcv := newReceiver(t, func(n int, w http.ResponseWriter) {
		switch n % 5 {
		case 1:
			w.WriteHeader(500)
		case 3:
			// reset the connection mid-request
			if hj, ok := w.(http.Hijacker); ok {
				c, _, err := hj.Hijack()
				if err == nil {
					if tc, ok := c.(*net.TCPConn); ok {
						tc.SetLinger(0)
					}
					c.Close()
					return
				}
			}
			w.WriteHeader(502)
		default:
			w.WriteHeader(200)
		}
	})
	orig := rcv.respond
	rcv.respond = func(n int, w http.ResponseWriter) {
		orig(n, w)
	}
	_, secret := s.endpoint(credsA, `{"url":"`+rcv.srv.URL+`","events":["video.space.created"]}`)
	rcv.setSecrets(secret)
	want := map[string]bool{}
	for i := 0; i < 1000; i++ {
		ev := b.publish(t, events.TopicSpaces, "space.created", "envA", fmt.Sprintf("s%04d", i))
		want[ev.ID] = true
	}
	b.publish(t, events.TopicSpaces, "space.deleted", "envA", "filtered-out")
	waitFor(t, 90*time.Second, "all 1000 events delivered", func() bool {
		got, _ := rcv.snapshot()
		mu.Lock()
		defer mu.Unlock()
		for _, g := range got {
			seen[g.id]++
		}
		ok := 0
		for id := range want {
			if seen[id] > 0 {
				ok++
			}
		}
		clear(seen)
		return ok == len(want)
	})
	got, bad := rcv.snapshot()
	if len(bad) > 0 {
		t.Fatalf("signature problems: %v", bad[:1])
	}
	for _, g := range got {
		if g.body["type"] != "video.space.created" {
			t.Fatalf("filtered event delivered: %v", g.body["type"])
		}
	}
	t.Logf("%d requests for 1000 events", len(got))
}

func TestEnvironmentIsolation(t *testing.T) {
	b := newBacking(t)
	s := b.start(t, nil)
	ra, rb := newReceiver(t, nil), newReceiver(t, nil)
	epA, secA := s.endpoint(credsA, `{"url":"`+ra.srv.URL+`"}`)
	_, secB := s.endpoint(credsB, `{"url":"`+rb.srv.URL+`"}`)
	ra.setSecrets(secA)
	rb.setSecrets(secB)
	b.publish(t, events.TopicSpaces, "space.created", "envA", "only-a")
	waitFor(t, 15*time.Second, "A's delivery", func() bool { g, _ := ra.snapshot(); return len(g) == 1 })
	time.Sleep(500 * time.Millisecond)
	if g, _ := rb.snapshot(); len(g) != 0 {
		t.Fatalf("environment B received A's event: %v", g[0].body)
	}
	if st, _ := s.call(credsB, "GET", "/system/v1/webhook-endpoints/"+epA, ""); st != 404 {
		t.Fatalf("B reads A's endpoint: %d", st)
	}
	if st, _ := s.call(credsB, "DELETE", "/system/v1/webhook-endpoints/"+epA, ""); st != 404 {
		t.Fatalf("B deletes A's endpoint: %d", st)
	}
}

func TestBadEndpointInput(t *testing.T) {
	b := newBacking(t)
	s := b.start(t, map[string]string{"SPACECAST_WEBHOOKS_ALLOW_NETWORKS": ""}) // production guard
	tests := []struct{ name, body, mentions string }{
		{"loopback", `{"url":"http://127.0.0.1:9000/h"}`, "refused"},
		{"private", `{"url":"http://10.0.0.1/h"}`, "refused"},
		{"metadata", `{"url":"http://169.254.169.254/latest/meta-data"}`, "refused"},
		{"ipv6 loopback", `{"url":"http://[::1]:8080/h"}`, "refused"},
		{"mapped loopback", `{"url":"http://[::ffff:127.0.0.1]/h"}`, "refused"},
		{"cgnat", `{"url":"http://100.64.1.1/h"}`, "refused"},
		{"name resolving to loopback", `{"url":"http://localhost:8080/h"}`, "refused"},
		{"scheme", `{"url":"ftp://example.com/h"}`, "http or https"},
		{"no host", `{"url":"http:///h"}`, "host"},
		{"garbage", `{"url":"::not a url"}`, "url"},
		{"missing url", `{}`, "url is required"},
		{"unknown event", `{"url":"http://93.184.216.34/h","events":["video.space.exploded"]}`, "video.space.exploded"},
		{"unknown field", `{"url":"http://x.example/h","color":"red"}`, `"color"`},
		{"rate", `{"url":"http://93.184.216.34/h","rate_limit":-1}`, "rate_limit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, out := s.call(credsA, "POST", "/system/v1/webhook-endpoints", tt.body)
			e, _ := out["error"].(map[string]any)
			if st != 400 || !strings.Contains(fmt.Sprint(e["messages"]), tt.mentions) {
				t.Fatalf("%d %v, want 400 mentioning %q", st, out, tt.mentions)
			}
		})
	}
	if _, out := s.call(credsA, "GET", "/system/v1/webhook-endpoints", ""); len(out["data"].([]any)) != 0 {
		t.Fatal("a refused endpoint was stored")
	}
}

func TestHostileReceiversDoNotHurt(t *testing.T) {
	b := newBacking(t)
	s := b.start(t, nil)
	huge := newReceiver(t, func(_ int, w http.ResponseWriter) {
		w.WriteHeader(200)
		chunk := []byte(strings.Repeat("x", 64<<10))
		for i := 0; i < 160; i++ { // 10 MB
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	})
	garbage := newReceiver(t, func(_ int, w http.ResponseWriter) {
		if hj, ok := w.(http.Hijacker); ok {
			c, buf, _ := hj.Hijack()
			buf.WriteString("NOT HTTP AT ALL\r\n\r\n")
			buf.Flush()
			c.Close()
		}
	})
	good := newReceiver(t, nil)
	epHuge, sh := s.endpoint(credsA, `{"url":"`+huge.srv.URL+`"}`)
	_, sg := s.endpoint(credsA, `{"url":"`+garbage.srv.URL+`"}`)
	_, so := s.endpoint(credsA, `{"url":"`+good.srv.URL+`"}`)
	huge.setSecrets(sh)
	garbage.setSecrets(sg)
	good.setSecrets(so)
	b.publish(t, events.TopicSpaces, "space.created", "envA", "sp10")
	waitFor(t, 15*time.Second, "good receiver served", func() bool { g, _ := good.snapshot(); return len(g) == 1 })
	waitFor(t, 15*time.Second, "huge body logged as success, truncated", func() bool {
		_, out := s.call(credsA, "GET", "/system/v1/webhook-endpoints/"+epHuge+"/deliveries", "")
		ds, _ := out["data"].([]any)
		if len(ds) != 1 || ds[0].(map[string]any)["status"] != "succeeded" {
			return false
		}
		a := ds[0].(map[string]any)["attempts"].([]any)[0].(map[string]any)
		return len(a["response_body"].(string)) == 4096
	})
	if g, _ := garbage.snapshot(); len(g) == 0 {
		t.Fatal("garbage receiver never tried")
	}
}
