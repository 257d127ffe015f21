package deliver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/spacecast/spacecast/libs/auth"
	"github.com/spacecast/spacecast/libs/events"
	"github.com/spacecast/spacecast/libs/idgen"
	"github.com/spacecast/spacecast/libs/kafkabus"
	"github.com/spacecast/spacecast/libs/timers"
	"github.com/spacecast/spacecast/services/webhooks/internal/store"
)

// Dispatcher records one delivery per matching endpoint for every event it consumes. The
// deliveries are durable in SQL and their timers in Redis before the handler returns, so the
// consumer commits the offset only after nothing can be lost.
type Dispatcher struct {
	Store *store.Store
	Queue *timers.Queue
	Envs  auth.EnvironmentLookup
	Log   *slog.Logger
	Wake  func()
}

// Member is a delivery's timer member: "<endpoint id>/<delivery id>", so the worker can tell
// a busy endpoint's deliveries apart without reading the database.
func Member(endpointID, deliveryID string) string { return endpointID + "/" + deliveryID }

func splitMember(m string) (endpointID, deliveryID string) {
	endpointID, deliveryID, ok := strings.Cut(m, "/")
	if !ok {
		return "", m
	}
	return endpointID, deliveryID
}

// Body is the webhook payload as receivers get it (attempts are added per attempt).
type Body struct {
	Type        string           `json:"type"`
	ID          string           `json:"id"`
	CreatedAt   string           `json:"created_at"`
	Object      Object           `json:"object"`
	Environment auth.Environment `json:"environment"`
	Data        json.RawMessage  `json:"data"`
}

// Object names what an event is about.
type Object struct {
	Type string `json:"type"`
	ID   string `json:"id"`
}

// Handle implements kafkabus.Handler.
func (d *Dispatcher) Handle(ctx context.Context, m kafkabus.Message) error {
	ev, err := events.Parse(m.Value)
	if err != nil {
		d.Log.Error("skipping malformed event", "err", err, "topic", m.Topic, "offset", m.Offset)
		return nil
	}
	pub, ok := events.WebhookType(ev.Type)
	if !ok || ev.Environment == "" {
		return nil
	}
	eps, err := d.Store.EnabledEndpoints(ctx, ev.Environment)
	if err != nil {
		return fmt.Errorf("endpoints of %s: %w", ev.Environment, err)
	}
	var ds []store.Delivery
	var payload []byte
	for _, ep := range eps {
		if !ep.Wants(pub) {
			continue
		}
		if payload == nil {
			env, err := d.Envs.LookupEnvironment(ctx, ev.Environment)
			if errors.Is(err, auth.ErrEnvironmentNotFound) {
				env = auth.Environment{ID: ev.Environment}
			} else if err != nil {
				return fmt.Errorf("environment %s: %w", ev.Environment, err)
			}
			payload, err = json.Marshal(Body{Type: pub, ID: ev.ID, CreatedAt: ev.Time.UTC().Format(time.RFC3339Nano),
				Object: Object{Type: events.ObjectType(ev.Type), ID: ev.Subject}, Environment: env, Data: ev.Data})
			if err != nil {
				return err
			}
		}
		ds = append(ds, store.Delivery{ID: idgen.New(), EndpointID: ep.ID, EnvironmentID: ev.Environment, EventID: ev.ID, EventType: pub, Payload: payload})
	}
	if len(ds) == 0 {
		return nil
	}
	pending, err := d.Store.CreateDeliveries(ctx, ds)
	if err != nil {
		return fmt.Errorf("record deliveries of %s: %w", ev.ID, err)
	}
	now := time.Now()
	for _, p := range pending {
		// If-absent: a redelivered event must not pull a delivery's retry timer forward.
		if err := d.Queue.ScheduleIfAbsent(ctx, Member(p.EndpointID, p.ID), now); err != nil {
			return fmt.Errorf("schedule delivery %s: %w", p.ID, err)
		}
	}
	if d.Wake != nil {
		d.Wake()
	}
	return nil
}
