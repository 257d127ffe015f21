package webhooks_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/spacecast/spacecast/libs/events"
)

// TestMuxWebhooksAPI drives /system/v1/webhooks in Mux's shape ({id, address, created_at
// ISO 8601, enabled, signing_secret on create only}) with Spacecast's extras, and checks the
// legacy /system/v1/webhook-endpoints alias shows the same endpoint in its old shape.
func TestMuxWebhooksAPI(t *testing.T) {
	b := newBacking(t)
	s := b.start(t, nil)
	rcv := newReceiver(t, nil)

	st, out := s.call(credsA, "POST", "/system/v1/webhooks", `{"address":"`+rcv.srv.URL+`/hook"}`)
	d, _ := out["data"].(map[string]any)
	if st != 201 {
		t.Fatalf("create = %d %v", st, out)
	}
	id, _ := d["id"].(string)
	secret, _ := d["signing_secret"].(string)
	if id == "" || !strings.HasPrefix(secret, "whsec_") || d["address"] != rcv.srv.URL+"/hook" || d["enabled"] != true {
		t.Fatalf("create = %v", d)
	}
	if _, err := time.Parse(time.RFC3339, d["created_at"].(string)); err != nil {
		t.Fatalf("created_at %v is not ISO 8601: %v", d["created_at"], err)
	}
	for _, k := range []string{"url", "secret"} {
		if _, ok := d[k]; ok {
			t.Fatalf("create answers %q: %v", k, d)
		}
	}
	if evs, ok := d["events"].([]any); !ok || len(evs) != 0 || d["rate_limit"] != float64(0) {
		t.Fatalf("extras = %v", d)
	}

	_, out = s.call(credsA, "GET", "/system/v1/webhooks/"+id, "")
	if g := out["data"].(map[string]any); g["address"] != d["address"] || g["created_at"] != d["created_at"] || g["signing_secret"] != nil {
		t.Fatalf("get = %v", g)
	}
	_, out = s.call(credsA, "GET", "/system/v1/webhooks?limit=10", "")
	ls, _ := out["data"].([]any)
	if _, ok := out["next_cursor"]; !ok || len(ls) != 1 || ls[0].(map[string]any)["id"] != id || ls[0].(map[string]any)["signing_secret"] != nil {
		t.Fatalf("list = %v", out)
	}
	// The alias shows the same endpoint in the old shape.
	_, out = s.call(credsA, "GET", "/system/v1/webhook-endpoints/"+id, "")
	if a := out["data"].(map[string]any); a["url"] != d["address"] || a["address"] != nil {
		t.Fatalf("alias get = %v", a)
	}

	for _, tt := range []struct{ body, want string }{
		{`{}`, "at least one of address"},
		{`{"url":"http://127.0.0.1:9/x"}`, `"url"`},
		{`{"address":"ftp://127.0.0.1/x"}`, "address:"},
	} {
		st, out := s.call(credsA, "PATCH", "/system/v1/webhooks/"+id, tt.body)
		if st != 400 || !strings.Contains(strings.Join(messages(out), " "), tt.want) {
			t.Errorf("PATCH %s = %d %v, want 400 naming %s", tt.body, st, out, tt.want)
		}
	}
	if st, out := s.call(credsA, "POST", "/system/v1/webhooks", `{"url":"`+rcv.srv.URL+`"}`); st != 400 {
		t.Errorf("create with url = %d %v", st, out)
	}
	st, out = s.call(credsA, "PATCH", "/system/v1/webhooks/"+id, `{"enabled":false}`)
	if st != 200 || out["data"].(map[string]any)["enabled"] != false {
		t.Fatalf("disable = %d %v", st, out)
	}
	st, out = s.call(credsA, "PATCH", "/system/v1/webhooks/"+id, `{"enabled":true,"events":["video.space.created"]}`)
	if st != 200 || out["data"].(map[string]any)["enabled"] != true {
		t.Fatalf("enable = %d %v", st, out)
	}

	// A delivery verifies with the signing_secret; the delivery log is a sub-resource.
	rcv.setSecrets(secret)
	b.publish(t, events.TopicSpaces, "space.created", "envA", "sp1")
	waitFor(t, 15*time.Second, "delivery", func() bool { g, bad := rcv.snapshot(); return len(g)+len(bad) > 0 })
	if _, bad := rcv.snapshot(); len(bad) > 0 {
		t.Fatalf("signatures: %v", bad)
	}
	waitFor(t, 5*time.Second, "delivery log", func() bool {
		_, out := s.call(credsA, "GET", "/system/v1/webhooks/"+id+"/deliveries", "")
		ds, _ := out["data"].([]any)
		return len(ds) == 1 && ds[0].(map[string]any)["webhook_id"] == id && ds[0].(map[string]any)["status"] == "succeeded"
	})

	st, out = s.call(credsA, "POST", "/system/v1/webhooks/"+id+"/rotate-secret", "")
	if ns, _ := out["data"].(map[string]any)["signing_secret"].(string); st != 200 || !strings.HasPrefix(ns, "whsec_") || ns == secret {
		t.Fatalf("rotate = %d %v", st, out)
	}
	if st, _ := s.call(credsB, "GET", "/system/v1/webhooks/"+id, ""); st != 404 {
		t.Fatalf("other environment's GET = %d", st)
	}
	if st, _ := s.call(credsA, "DELETE", "/system/v1/webhooks/"+id, ""); st != 204 {
		t.Fatalf("delete = %d", st)
	}
	if st, _ := s.call(credsA, "GET", "/system/v1/webhooks/"+id, ""); st != 404 {
		t.Fatalf("GET after delete = %d", st)
	}
}

func messages(out map[string]any) []string {
	e, _ := out["error"].(map[string]any)
	ms, _ := e["messages"].([]any)
	var s []string
	for _, m := range ms {
		s = append(s, m.(string))
	}
	return s
}

// TestSecretsNeverInEventsOrBodies disables an endpoint (410) after a rotation and checks that
// neither its current nor its rotated-out secret appears in any event on spacecast.webhooks or
// in the system.webhook_endpoint.disabled webhook another endpoint receives, whose data is the
// resource in Mux's shape.
func TestSecretsNeverInEventsOrBodies(t *testing.T) {
	b := newBacking(t)
	s := b.start(t, nil)
	gone := newReceiver(t, func(_ int, w http.ResponseWriter) { w.WriteHeader(410) })
	watcher := newReceiver(t, nil)

	st, out := s.call(credsA, "POST", "/system/v1/webhooks", `{"address":"`+gone.srv.URL+`","events":["video.space.created"]}`)
	if st != 201 {
		t.Fatalf("create = %d %v", st, out)
	}
	id, first := out["data"].(map[string]any)["id"].(string), out["data"].(map[string]any)["signing_secret"].(string)
	_, out = s.call(credsA, "POST", "/system/v1/webhooks/"+id+"/rotate-secret", "")
	second := out["data"].(map[string]any)["signing_secret"].(string)
	gone.setSecrets(second)
	_, out = s.call(credsA, "POST", "/system/v1/webhooks", `{"address":"`+watcher.srv.URL+`","events":["system.webhook_endpoint.disabled"]}`)
	watcher.setSecrets(out["data"].(map[string]any)["signing_secret"].(string))

	b.publish(t, events.TopicSpaces, "space.created", "envA", "sp9")
	waitFor(t, 20*time.Second, "system.webhook_endpoint.disabled webhook", func() bool { g, bad := watcher.snapshot(); return len(g)+len(bad) > 0 })
	got, bad := watcher.snapshot()
	if len(bad) > 0 {
		t.Fatalf("signatures: %v", bad)
	}
	body := got[0].body
	data, _ := body["data"].(map[string]any)
	if body["type"] != "system.webhook_endpoint.disabled" || data["id"] != id || data["address"] != gone.srv.URL || data["enabled"] != false {
		t.Fatalf("disabled webhook = %v", body)
	}
	for _, sec := range []string{first, second} {
		if strings.Contains(string(got[0].raw), sec) || strings.Contains(string(got[0].raw), "secret") {
			t.Fatalf("the disabled webhook's body carries a secret: %s", got[0].raw)
		}
	}

	cl, err := kgo.NewClient(kgo.SeedBrokers(b.brokers...), kgo.ConsumeTopics(events.TopicWebhooks), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	seen := map[string]bool{}
	deadline := time.Now().Add(15 * time.Second)
	for !seen["webhook_endpoint.disabled"] && time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			ev, err := events.Parse(r.Value)
			if err != nil {
				return
			}
			seen[ev.Type] = true
			for _, sec := range []string{first, second} {
				if strings.Contains(string(r.Value), sec) || strings.Contains(string(r.Value), strings.TrimPrefix(sec, "whsec_")) {
					t.Errorf("%s event carries a signing secret: %s", ev.Type, r.Value)
				}
			}
		})
		cancel()
	}
	if !seen["webhook_endpoint.disabled"] {
		t.Fatalf("events on %s: %v", events.TopicWebhooks, seen)
	}
}
