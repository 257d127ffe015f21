package events

import (
	"encoding/json"
	"errors"
	"testing"
)

func TestEnvelopeRoundTrip(t *testing.T) {
	e, err := New("spacecast/spaces-api", "space.created", "sp1", "env1", map[string]string{"id": "sp1"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := e.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	var raw map[string]any
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"specversion", "id", "source", "type", "subject", "time", "datacontenttype", "environment", "data"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("missing attribute %q in %s", k, b)
		}
	}
	got, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != e.ID || got.Type != "space.created" || got.Environment != "env1" || string(got.Data) != `{"id":"sp1"}` {
		t.Fatalf("round trip changed the event: %+v", got)
	}
}

func TestParseRejects(t *testing.T) {
	for _, in := range []string{``, `{`, `{"specversion":"0.3","id":"x","type":"t","source":"s"}`, `{"specversion":"1.0"}`} {
		if _, err := Parse([]byte(in)); !errors.Is(err, ErrInvalidEnvelope) {
			t.Errorf("Parse(%q) = %v, want ErrInvalidEnvelope", in, err)
		}
	}
}

func TestWebhookTable(t *testing.T) {
	tests := []struct{ in, want, obj string }{
		{"space.created", "video.space.created", "space"},
		{"livestream.idle", "video.live_stream.idle", "live_stream"},
		{"asset.ready", "video.asset.ready", "asset"},
		{"participant.joined", "video.space.participant.joined", "space"},
		{"space.broadcast.active", "video.space.broadcast.active", "broadcast"},
		{"livestream.simulcast_target.broadcasting", "video.live_stream.simulcast_target.broadcasting", "simulcast_target"},
		{"asset.static_rendition.ready", "video.asset.static_rendition.ready", "static_rendition"},
		{"asset.static_rendition.deleted", "video.asset.static_rendition.deleted", "static_rendition"},
	}
	for _, tt := range tests {
		got, ok := WebhookType(tt.in)
		if !ok || got != tt.want {
			t.Errorf("WebhookType(%q) = %q, %v", tt.in, got, ok)
		}
		if o := ObjectType(tt.in); o != tt.obj {
			t.Errorf("ObjectType(%q) = %q", tt.in, o)
		}
	}
	if _, ok := WebhookType("webhook.delivery.succeeded"); ok {
		t.Error("delivery outcomes must not be webhooks")
	}
}
