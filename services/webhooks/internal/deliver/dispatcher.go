package deliver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
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

	mu   sync.Mutex
	envs map[string]cachedEnv // environment names, kept a minute (they are informational)
}

type cachedEnv struct {
	env     auth.Environment
	fetched time.Time
}

const envTTL = time.Minute

// environment returns the environment's id and name, cached.
func (d *Dispatcher) environment(ctx context.Context, id string) (auth.Environment, error) {
	d.mu.Lock()
	c, ok := d.envs[id]
	d.mu.Unlock()
	if ok && time.Since(c.fetched) < envTTL {
		return c.env, nil
	}
	env, err := d.Envs.LookupEnvironment(ctx, id)
	if errors.Is(err, auth.ErrEnvironmentNotFound) {
		env, err = auth.Environment{ID: id}, nil
	}
	if err != nil {
		if ok { // the keys service is away: a stale name beats holding up every delivery
			return c.env, nil
		}
		return auth.Environment{}, err
	}
	d.mu.Lock()
	if d.envs == nil || len(d.envs) > 10_000 {
		d.envs = map[string]cachedEnv{}
	}
	d.envs[id] = cachedEnv{env: env, fetched: time.Now()}
	d.mu.Unlock()
	return env, nil
}

// deliverable says whether an event becomes a webhook, and as which public type. The
// service's own analytics events on spacecast.webhooks never do (they would loop: every
// delivery would make another), whatever the type table says; only webhook_endpoint.disabled
// is announced to the environment's other endpoints.
func deliverable(topic, typ string) (string, bool) {
	if topic == events.TopicWebhooks && typ != "webhook_endpoint.disabled" {
		return "", false
	}
	return events.WebhookType(typ)
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

// HandleBatch records the deliveries of a batch of events in one transaction and schedules
// them; it returns nil only once all of them are durable in SQL and scheduled in Redis, so the
// consumer may then commit the batch's offsets.
func (d *Dispatcher) HandleBatch(ctx context.Context, ms []kafkabus.Message) error {
	var ds []store.Delivery
	endpoints := map[string][]store.Endpoint{} // per environment, read once per batch
	for _, m := range ms {
		if m.Topic == events.TopicWebhooks && !bytes.Contains(m.Value, []byte(`"webhook_endpoint.disabled"`)) {
			// This service's own outcome events, one per attempt, never become webhooks (see
			// deliverable): skipped without decoding them.
			continue
		}
		ev, err := events.Parse(m.Value)
		if err != nil {
			d.Log.Error("skipping malformed event", "err", err, "topic", m.Topic, "offset", m.Offset)
			continue
		}
		pub, ok := deliverable(m.Topic, ev.Type)
		if !ok || ev.Environment == "" {
			continue
		}
		if ev.Time.IsZero() {
			// Without a time nothing says the event is newer than an endpoint: a consumer
			// group reading old history must not send it to endpoints created since.
			d.Log.Error("skipping event without a time", "topic", m.Topic, "offset", m.Offset, "id", ev.ID)
			continue
		}
		at := ev.Time.UnixMicro() // events carry microseconds; created_ns is compared at that precision
		eps, ok := endpoints[ev.Environment]
		if !ok {
			if eps, err = d.Store.EnabledEndpoints(ctx, ev.Environment); err != nil {
				return fmt.Errorf("endpoints of %s: %w", ev.Environment, err)
			}
			endpoints[ev.Environment] = eps
		}
		var payload []byte
		for _, ep := range eps {
			if !ep.Wants(pub) || at < ep.CreatedNS/1000 {
				continue // not subscribed, or the event happened before the endpoint existed
			}
			if payload == nil {
				env, err := d.environment(ctx, ev.Environment)
				if err != nil {
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
	}
	if len(ds) == 0 {
		return nil
	}
	pending, err := d.Store.CreateDeliveries(ctx, ds)
	if err != nil {
		return fmt.Errorf("record %d deliveries: %w", len(ds), err)
	}
	now := time.Now()
	due := make([]timers.Timer, len(pending))
	for i, p := range pending {
		due[i] = timers.Timer{Member: Member(p.EndpointID, p.ID), Due: now}
	}
	// If-absent: an event read again must not pull a delivery's retry timer forward.
	if err := d.Queue.ScheduleAllIfAbsent(ctx, due...); err != nil {
		return fmt.Errorf("schedule %d deliveries: %w", len(due), err)
	}
	if d.Wake != nil {
		d.Wake()
	}
	return nil
}
