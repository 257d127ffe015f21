package deliver

import (
	"testing"
	"time"

	"github.com/spacecast/spacecast/libs/events"
)

// TestOwnEventsDoNotLoop: the service's delivery outcomes on spacecast.webhooks must never
// become webhooks (each delivery would cause another, forever), even under a type the table
// maps; webhook_endpoint.disabled is the one event of that topic receivers get.
func TestOwnEventsDoNotLoop(t *testing.T) {
	tests := []struct {
		topic, typ string
		want       string // "" = not delivered
	}{
		{events.TopicWebhooks, "webhook.delivery.succeeded", ""},
		{events.TopicWebhooks, "webhook.delivery.failed", ""},
		{events.TopicWebhooks, "space.created", ""},
		{events.TopicWebhooks, "webhook_endpoint.disabled", "system.webhook_endpoint.disabled"},
		{events.TopicSpaces, "space.created", "video.space.created"},
		{events.TopicLivestreams, "livestream.idle", "video.live_stream.idle"},
		{events.TopicLivestreams, "asset.ready", "video.asset.ready"},
		{events.TopicSpaces, "space.exploded", ""},
	}
	for _, tt := range tests {
		got, ok := deliverable(tt.topic, tt.typ)
		if ok != (tt.want != "") || got != tt.want {
			t.Errorf("deliverable(%s, %s) = %q, %v; want %q", tt.topic, tt.typ, got, ok, tt.want)
		}
	}
}

// TestBusyEndpointDeferral: deliveries of an endpoint without a free slot wait about one
// observed attempt latency, however long the endpoint has been busy (under a steady load it
// never goes idle, and waiting by that age pushed its deliveries ever further out); before any
// attempt has finished, the age of the attempts in flight is used.
func TestBusyEndpointDeferral(t *testing.T) {
	for _, tc := range []struct {
		name      string
		busySince time.Duration
		latency   time.Duration // 0: none observed yet
		min, max  time.Duration
	}{
		{"steady load, fast endpoint", 10 * time.Minute, 20 * time.Millisecond, 50 * time.Millisecond, 200 * time.Millisecond},
		{"steady load, slow endpoint", 10 * time.Minute, 3 * time.Second, 3 * time.Second, 7 * time.Second},
		{"first attempts still in flight", 2 * time.Second, 0, 2 * time.Second, 5 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := NewWorker(WorkerConfig{PerEndpoint: 2})
			w.busy["ep"] = 2
			w.started["ep"] = time.Now().Add(-tc.busySince)
			if tc.latency > 0 {
				w.latency["ep"] = tc.latency
			}
			busy, wait := w.busyFor("ep")
			if !busy || wait < tc.min || wait > tc.max {
				t.Fatalf("busyFor = %v, %v; want busy and a wait in [%v, %v]", busy, wait, tc.min, tc.max)
			}
			w.busy["ep"] = 1
			if busy, _ := w.busyFor("ep"); busy {
				t.Fatal("an endpoint with a free slot is reported busy")
			}
		})
	}
}
