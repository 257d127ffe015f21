// Package resource holds the shapes the webhooks service shows to others, apart from the rows
// it stores: the REST resources (Mux's webhook shape and the legacy webhook-endpoint shape)
// and the event payloads. Only the REST resource of a create or a rotation carries a signing
// secret; the event payload type has no field for one.
package resource

import (
	"strconv"
	"time"

	"github.com/spacecast/spacecast/services/webhooks/internal/store"
)

// Webhook is an endpoint as /system/v1/webhooks shows it: Mux's shape (id, address,
// created_at as ISO 8601 UTC, enabled, signing_secret) plus Spacecast's extras.
type Webhook struct {
	ID        string `json:"id"`
	Address   string `json:"address"`
	CreatedAt string `json:"created_at"`
	Enabled   bool   `json:"enabled"`
	// SigningSecret is set only in the answers to create and rotate-secret.
	SigningSecret  string   `json:"signing_secret,omitempty"`
	Events         []string `json:"events"`
	RateLimit      int      `json:"rate_limit"`
	DisabledReason *string  `json:"disabled_reason,omitempty"`
}

// NewWebhook is ep's resource, without a secret.
func NewWebhook(ep store.Endpoint) Webhook {
	return Webhook{ID: ep.ID, Address: ep.URL, CreatedAt: iso(ep.CreatedNS), Enabled: ep.Enabled, Events: events(ep.Events),
		RateLimit: ep.RateLimit, DisabledReason: ep.DisabledReason}
}

// Endpoint is an endpoint as the legacy alias /system/v1/webhook-endpoints shows it.
type Endpoint struct {
	ID             string   `json:"id"`
	CreatedAt      string   `json:"created_at"` // unix seconds
	URL            string   `json:"url"`
	Events         []string `json:"events"`
	Enabled        bool     `json:"enabled"`
	RateLimit      int      `json:"rate_limit"`
	DisabledReason *string  `json:"disabled_reason,omitempty"`
	// Secret is set only in the answers to create and rotate-secret.
	Secret string `json:"secret,omitempty"`
}

// NewEndpoint is ep's legacy resource, without a secret.
func NewEndpoint(ep store.Endpoint) Endpoint {
	return Endpoint{ID: ep.ID, CreatedAt: secs(ep.CreatedNS), URL: ep.URL, Events: events(ep.Events), Enabled: ep.Enabled,
		RateLimit: ep.RateLimit, DisabledReason: ep.DisabledReason}
}

// WebhookEvent is the data of webhook_endpoint.* events (and of the
// system.webhook_endpoint.disabled webhook): the resource without any secret.
type WebhookEvent struct {
	ID             string   `json:"id"`
	Address        string   `json:"address"`
	CreatedAt      string   `json:"created_at"`
	Enabled        bool     `json:"enabled"`
	Events         []string `json:"events"`
	RateLimit      int      `json:"rate_limit"`
	DisabledReason *string  `json:"disabled_reason,omitempty"`
}

// NewWebhookEvent is ep's event payload.
func NewWebhookEvent(ep store.Endpoint) WebhookEvent {
	return WebhookEvent{ID: ep.ID, Address: ep.URL, CreatedAt: iso(ep.CreatedNS), Enabled: ep.Enabled, Events: events(ep.Events),
		RateLimit: ep.RateLimit, DisabledReason: ep.DisabledReason}
}

// Delivery is one event for one endpoint as the delivery log shows it.
type Delivery struct {
	ID string `json:"id"`
	// WebhookID is the endpoint's id; the legacy alias names it webhook_endpoint_id.
	WebhookID         string    `json:"webhook_id,omitempty"`
	WebhookEndpointID string    `json:"webhook_endpoint_id,omitempty"`
	CreatedAt         string    `json:"created_at"`
	EventID           string    `json:"event_id"`
	EventType         string    `json:"event_type"`
	Status            string    `json:"status"`
	AttemptCount      int       `json:"attempt_count"`
	NextAttemptAt     *string   `json:"next_attempt_at,omitempty"`
	Attempts          []Attempt `json:"attempts"`
}

// Attempt is one HTTP try of a delivery.
type Attempt struct {
	CreatedAt    string  `json:"created_at"`
	StatusCode   int     `json:"response_status_code"`
	LatencyMS    int     `json:"latency_ms"`
	Error        *string `json:"error,omitempty"`
	ResponseBody string  `json:"response_body"`
}

// NewDelivery is d's resource; legacy names the endpoint field as the old alias did.
func NewDelivery(d store.Delivery, legacy bool) Delivery {
	out := Delivery{ID: d.ID, CreatedAt: d.CreatedAt, EventID: d.EventID, EventType: d.EventType, Status: d.Status,
		AttemptCount: d.AttemptCount, NextAttemptAt: d.NextAttemptAt, Attempts: make([]Attempt, len(d.Attempts))}
	if legacy {
		out.WebhookEndpointID = d.EndpointID
	} else {
		out.WebhookID = d.EndpointID
	}
	for i, a := range d.Attempts {
		out.Attempts[i] = Attempt{CreatedAt: a.At, StatusCode: a.StatusCode, LatencyMS: a.LatencyMS, Error: a.Error, ResponseBody: a.ResponseBody}
	}
	return out
}

func events(evs []string) []string {
	if evs == nil {
		return []string{}
	}
	return evs
}

func iso(ns int64) string { return time.Unix(0, ns).UTC().Format(time.RFC3339) }

func secs(ns int64) string { return strconv.FormatInt(ns/int64(time.Second), 10) }

// DeliveryEvent is the data of webhook.delivery.succeeded.
type DeliveryEvent struct {
	DeliveryID         string `json:"delivery_id"`
	WebhookEndpointID  string `json:"webhook_endpoint_id"`
	EventID            string `json:"event_id"`
	EventType          string `json:"event_type"`
	Attempt            int    `json:"attempt"`
	ResponseStatusCode int    `json:"response_status_code"`
	LatencyMS          int    `json:"latency_ms"`
}

// DeliveryFailedEvent is the data of webhook.delivery.failed.
type DeliveryFailedEvent struct {
	DeliveryEvent
	Error         *string `json:"error"`
	WillRetry     bool    `json:"will_retry"`
	NextAttemptAt string  `json:"next_attempt_at,omitempty"` // RFC 3339, when it will retry
}
