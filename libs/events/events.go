// Package events defines the CloudEvents 1.0 envelope every Spacecast service publishes,
// the Kafka topic names, and the fixed table from internal event types to webhook types.
package events

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/spacecast/spacecast/libs/idgen"
)

// Topics: one per producing service, keyed by the aggregate id.
const (
	TopicSpaces      = "spacecast.spaces"
	TopicRTC         = "spacecast.rtc"
	TopicLivestreams = "spacecast.livestreams"
	TopicKeys        = "spacecast.keys"
	TopicWebhooks    = "spacecast.webhooks"
)

// AllTopics lists every topic, for consumers that read them all.
var AllTopics = []string{TopicSpaces, TopicRTC, TopicLivestreams, TopicKeys, TopicWebhooks}

// Envelope is a CloudEvents 1.0 event in structured JSON mode plus the `environment` extension.
type Envelope struct {
	SpecVersion     string          `json:"specversion"`
	ID              string          `json:"id"`
	Source          string          `json:"source"`
	Type            string          `json:"type"`
	Subject         string          `json:"subject"`
	Time            time.Time       `json:"time"`
	DataContentType string          `json:"datacontenttype"`
	Environment     string          `json:"environment"`
	Data            json.RawMessage `json:"data"`
}

// New builds an envelope with a fresh UUID and the current time.
func New(source, typ, subject, environmentID string, data any) (Envelope, error) {
	raw, err := json.Marshal(data)
	if err != nil {
		return Envelope{}, fmt.Errorf("marshal %s data: %w", typ, err)
	}
	return Envelope{
		SpecVersion:     "1.0",
		ID:              idgen.UUID(),
		Source:          source,
		Type:            typ,
		Subject:         subject,
		Time:            time.Now().UTC().Truncate(time.Microsecond),
		DataContentType: "application/json",
		Environment:     environmentID,
		Data:            raw,
	}, nil
}

// Marshal returns the JSON form of e.
func (e Envelope) Marshal() ([]byte, error) { return json.Marshal(e) }

// Parse decodes and checks an envelope.
func Parse(b []byte) (Envelope, error) {
	var e Envelope
	if err := json.Unmarshal(b, &e); err != nil {
		return Envelope{}, fmt.Errorf("%w: %v", ErrInvalidEnvelope, err)
	}
	if e.SpecVersion != "1.0" || e.ID == "" || e.Type == "" || e.Source == "" {
		return Envelope{}, fmt.Errorf("%w: specversion, id, type and source are required", ErrInvalidEnvelope)
	}
	return e, nil
}

// webhookTypes is the fixed internal → public webhook type table.
var webhookTypes = map[string]string{
	"space.created":           "video.space.created",
	"space.updated":           "video.space.updated",
	"space.deleted":           "video.space.deleted",
	"space.active":            "video.space.active",
	"space.idle":              "video.space.idle",
	"space.broadcast.created": "video.space.broadcast.created",
	"space.broadcast.active":  "video.space.broadcast.active",
	"space.broadcast.idle":    "video.space.broadcast.idle",
	"space.broadcast.deleted": "video.space.broadcast.deleted",

	"participant.joined": "video.space.participant.joined",
	"participant.left":   "video.space.participant.left",
	"track.published":    "video.space.participant.track.published",
	"track.unpublished":  "video.space.participant.track.unpublished",

	"livestream.created":      "video.live_stream.created",
	"livestream.updated":      "video.live_stream.updated",
	"livestream.deleted":      "video.live_stream.deleted",
	"livestream.enabled":      "video.live_stream.enabled",
	"livestream.disabled":     "video.live_stream.disabled",
	"livestream.connected":    "video.live_stream.connected",
	"livestream.recording":    "video.live_stream.recording",
	"livestream.active":       "video.live_stream.active",
	"livestream.disconnected": "video.live_stream.disconnected",
	"livestream.idle":         "video.live_stream.idle",

	"livestream.simulcast_target.created":      "video.live_stream.simulcast_target.created",
	"livestream.simulcast_target.idle":         "video.live_stream.simulcast_target.idle",
	"livestream.simulcast_target.starting":     "video.live_stream.simulcast_target.starting",
	"livestream.simulcast_target.broadcasting": "video.live_stream.simulcast_target.broadcasting",
	"livestream.simulcast_target.errored":      "video.live_stream.simulcast_target.errored",
	"livestream.simulcast_target.deleted":      "video.live_stream.simulcast_target.deleted",

	"asset.created":               "video.asset.created",
	"asset.ready":                 "video.asset.ready",
	"asset.errored":               "video.asset.errored",
	"asset.updated":               "video.asset.updated",
	"asset.deleted":               "video.asset.deleted",
	"asset.live_stream_completed": "video.asset.live_stream_completed",

	"asset.static_rendition.created": "video.asset.static_rendition.created",
	"asset.static_rendition.ready":   "video.asset.static_rendition.ready",
	"asset.static_rendition.skipped": "video.asset.static_rendition.skipped",
	"asset.static_rendition.errored": "video.asset.static_rendition.errored",
	"asset.static_rendition.deleted": "video.asset.static_rendition.deleted",

	"signing_key.created":  "system.signing_key.created",
	"signing_key.deleted":  "system.signing_key.deleted",
	"access_token.created": "system.access_token.created",
	"access_token.revoked": "system.access_token.revoked",
	"environment.created":  "system.environment.created",

	"webhook_endpoint.disabled": "system.webhook_endpoint.disabled",
}

// WebhookType maps an internal event type to its public webhook type.
// Types without an entry (for example delivery outcomes) are not sent as webhooks.
func WebhookType(internal string) (string, bool) {
	t, ok := webhookTypes[internal]
	return t, ok
}

// WebhookTypes returns every public webhook type (for validating endpoint filters).
func WebhookTypes() []string {
	out := make([]string, 0, len(webhookTypes))
	for _, v := range webhookTypes {
		out = append(out, v)
	}
	return out
}

// ObjectType names the kind of object an internal event type is about ("space", "live_stream", ...).
func ObjectType(internal string) string {
	prefix, _, _ := strings.Cut(internal, ".")
	switch prefix {
	case "livestream":
		if strings.HasPrefix(internal, "livestream.simulcast_target.") {
			return "simulcast_target"
		}
		return "live_stream"
	case "space":
		if strings.HasPrefix(internal, "space.broadcast.") {
			return "broadcast"
		}
		return "space"
	case "participant", "track":
		return "space"
	case "asset":
		if strings.HasPrefix(internal, "asset.static_rendition.") {
			return "static_rendition"
		}
		return "asset"
	default:
		return prefix
	}
}
