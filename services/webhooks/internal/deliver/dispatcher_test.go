package deliver

import (
	"testing"

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
