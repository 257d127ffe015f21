package webhooks_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/spacecast/spacecast/libs/events"
)

// TestFreshConsumerGroupDoesNotReplayHistory: a deployment with a new consumer group reads
// the topics from their start; an endpoint created after events happened must not receive
// them, only the events that happen after it was created.
func TestFreshConsumerGroupDoesNotReplayHistory(t *testing.T) {
	b := newBacking(t)
	var old []string
	for i := 0; i < 20; i++ { // one key: one partition, read in order
		old = append(old, b.publish(t, events.TopicSpaces, "space.created", "envA", "history").ID)
	}
	// An instance with its own group serves the API to create the endpoint, then goes away.
	first := b.start(t, map[string]string{"SPACECAST_WEBHOOKS_CONSUMER_GROUP": "first-" + b.prefix})
	rcv := newReceiver(t, nil)
	epID, secret := first.endpoint(credsA, `{"url":"`+rcv.srv.URL+`/h"}`)
	rcv.setSecrets(secret)
	first.stop()

	s := b.start(t, map[string]string{"SPACECAST_WEBHOOKS_CONSUMER_GROUP": "fresh-" + b.prefix})
	fresh := b.publish(t, events.TopicSpaces, "space.created", "envA", "history")
	waitFor(t, 20*time.Second, "the new event delivered", func() bool {
		got, _ := rcv.snapshot()
		for _, r := range got {
			if r.id == fresh.ID {
				return true
			}
		}
		return false
	})
	// The old events came before the new one on the same partition: had they become
	// deliveries, they would be recorded by now.
	_, out := s.call(credsA, "GET", "/system/v1/webhook-endpoints/"+epID+"/deliveries", "")
	ds, _ := out["data"].([]any)
	got, bad := rcv.snapshot()
	if len(ds) != 1 || len(got) != 1 || len(bad) != 0 {
		var ids []string
		for _, r := range got {
			ids = append(ids, r.id)
		}
		t.Fatalf("%d deliveries recorded, %d received %v (old events %v, new %s), %d bad; want only the new event",
			len(ds), len(got), ids, old[:3], fresh.ID, len(bad))
	}
	if id := fmt.Sprint(ds[0].(map[string]any)["event_id"]); id != fresh.ID {
		t.Fatalf("delivery of %s, want %s", id, fresh.ID)
	}
}
