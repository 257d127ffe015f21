package deliver

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/spacecast/spacecast/libs/events"
	"github.com/spacecast/spacecast/libs/testenv"
	"github.com/spacecast/spacecast/libs/timers"
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

// TestBusyEndpointDeferral: deliveries that find an endpoint's slots and queue full wait in
// Redis about one observed attempt latency per PerEndpoint deliveries ahead of them, however
// long the endpoint has been busy (under a steady load it never goes idle, and waiting by that
// age pushed its deliveries ever further out); before any attempt has finished, the age of
// the attempts in flight is used.
func TestBusyEndpointDeferral(t *testing.T) {
	for _, tc := range []struct {
		name      string
		busySince time.Duration
		latency   time.Duration // 0: none observed yet
		waiting   int
		min, max  time.Duration
	}{
		{"steady load, fast endpoint", 10 * time.Minute, 20 * time.Millisecond, 0, 50 * time.Millisecond, 200 * time.Millisecond},
		{"steady load, slow endpoint", 10 * time.Minute, 3 * time.Second, 0, 3 * time.Second, 7 * time.Second},
		{"first attempts still in flight", 2 * time.Second, 0, 0, 2 * time.Second, 5 * time.Second},
		{"behind a full queue", 10 * time.Minute, 20 * time.Millisecond, 40, time.Second, 1100 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := NewWorker(WorkerConfig{PerEndpoint: 2})
			now := time.Now()
			q := &endpointQueue{busy: 2, started: now.Add(-tc.busySince), waiting: make([]held, tc.waiting)}
			if tc.latency > 0 {
				w.latency["ep"] = tc.latency
			}
			if wait := w.deferFor("ep", q, now); wait < tc.min || wait > tc.max {
				t.Fatalf("deferFor = %v; want a wait in [%v, %v]", wait, tc.min, tc.max)
			}
		})
	}
}

// TestEndpointQueueDepth: an endpoint's queue holds what it gets through in queueHorizon, and
// at most a quarter of what the worker holds in all, so a dead endpoint's queue stays short.
func TestEndpointQueueDepth(t *testing.T) {
	for _, tc := range []struct {
		name    string
		latency time.Duration // 0: none observed yet
		want    int
	}{
		{"unknown endpoint", 0, 32},
		{"endpoint at 100 ms: 30 s of its work", 100 * time.Millisecond, 1200},
		{"fast endpoint: capped at a quarter of MaxHeld", 5 * time.Millisecond, 4096},
		{"timing out at 5 s", 5 * time.Second, 24},
		{"slower than the lease: one round", time.Minute, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := NewWorker(WorkerConfig{PerEndpoint: 4, Lease: 35 * time.Second})
			if tc.latency > 0 {
				w.latency["ep"] = tc.latency
			}
			if got := w.depth("ep"); got != tc.want {
				t.Fatalf("depth = %d, want %d", got, tc.want)
			}
		})
	}
}

// TestNextPassesSlotInOrder: a finished attempt's slot goes to the endpoint's next waiting
// delivery, in claim order; a waiting delivery whose lease is half gone goes back to Redis
// instead; with nobody waiting the slot is freed.
func TestNextPassesSlotInOrder(t *testing.T) {
	rdb, prefix := testenv.Redis(t)
	queue, err := timers.New(rdb, prefix+"due")
	if err != nil {
		t.Fatal(err)
	}
	w := NewWorker(WorkerConfig{Queue: queue, PerEndpoint: 1, Lease: 30 * time.Second})
	now := time.Now()
	w.eps["ep"] = &endpointQueue{busy: 1, started: now, waiting: []held{
		{member: "ep/a", claimed: now}, {member: "ep/stale", claimed: now.Add(-20 * time.Second)}, {member: "ep/c", claimed: now},
	}}
	w.held = 3
	for _, want := range []string{"ep/a", "ep/c"} {
		if got, ok := w.next("ep/x"); !ok || got.member != want {
			t.Fatalf("next = %q, %v; want %q", got.member, ok, want)
		}
	}
	if got, ok := w.next("ep/c"); ok {
		t.Fatalf("next = %q with nothing waiting", got.member)
	}
	if _, busy := w.eps["ep"]; busy || w.held != 0 {
		t.Fatalf("after the last attempt: endpoint still tracked %v, held %d", busy, w.held)
	}
	due, ok, err := queue.Due(context.Background(), "ep/stale")
	if err != nil || !ok || due.After(time.Now()) {
		t.Fatalf("stale delivery back in Redis: due %v, %v, %v; want due now", due, ok, err)
	}
}

// TestRenewExtendsWaitingLeases: deliveries that have waited a quarter of their lease in an
// endpoint queue get their lease extended in Redis and their claim time moved, so next does
// not send them back; younger ones are left alone, and a timer done meanwhile is not revived.
func TestRenewExtendsWaitingLeases(t *testing.T) {
	ctx := context.Background()
	rdb, prefix := testenv.Redis(t)
	queue, err := timers.New(rdb, prefix+"due")
	if err != nil {
		t.Fatal(err)
	}
	lease := 40 * time.Second
	w := NewWorker(WorkerConfig{Queue: queue, Log: testenv.Logger(t), PerEndpoint: 1, Lease: lease})
	now := time.UnixMilli(time.Now().UnixMilli())
	old, young := now.Add(-15*time.Second), now.Add(-time.Second)
	for _, m := range []string{"ep/old", "ep/young"} {
		if err := queue.Schedule(ctx, m, now.Add(lease-15*time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	w.eps["ep"] = &endpointQueue{busy: 1, started: now, waiting: []held{
		{member: "ep/old", claimed: old}, {member: "ep/young", claimed: young}, {member: "ep/gone", claimed: old},
	}}
	w.held = 3
	w.renew(ctx, now)
	if due, ok, err := queue.Due(ctx, "ep/old"); err != nil || !ok || !due.Equal(now.Add(lease)) {
		t.Fatalf("old delivery due %v (%v, %v); want its lease extended to %v", due, ok, err, now.Add(lease))
	}
	if due, _, _ := queue.Due(ctx, "ep/young"); !due.Equal(now.Add(lease - 15*time.Second)) {
		t.Fatalf("young delivery due %v; want it untouched", due)
	}
	if _, ok, _ := queue.Due(ctx, "ep/gone"); ok {
		t.Fatal("a timer that was done came back")
	}
	q := w.eps["ep"]
	if !q.waiting[0].claimed.Equal(now) || !q.waiting[1].claimed.Equal(young) {
		t.Fatalf("claim times %v, %v; want %v, %v", q.waiting[0].claimed, q.waiting[1].claimed, now, young)
	}
	// Renewed, the old delivery is no longer stale: next hands it the slot.
	if got, ok := w.next("ep/x"); !ok || got.member != "ep/old" {
		t.Fatalf("next = %q, %v; want ep/old", got.member, ok)
	}
}

// TestFastEndpointBurstWaitsInItsQueue: a burst to a fast endpoint waits in that endpoint's
// queue, in claim order, instead of going back to Redis to come back in a trickle (with a
// queue capped at 256, 244 of these 500 went back); a dead endpoint's queue stays short and
// the rest of its burst goes back to Redis.
func TestFastEndpointBurstWaitsInItsQueue(t *testing.T) {
	for _, tc := range []struct {
		name     string
		latency  time.Duration
		queued   int
		deferred int
	}{
		{"fast endpoint", 2 * time.Millisecond, 500, 0},
		{"endpoint timing out at 5 s", 5 * time.Second, 24, 476},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := NewWorker(WorkerConfig{PerEndpoint: 4, Lease: 35 * time.Second})
			w.latency["ep"] = tc.latency
			w.eps["ep"] = &endpointQueue{busy: 4, started: time.Now()} // its slots are all taken
			deferred := 0
			for i := range 500 {
				if _, d := w.admit(context.Background(), nil, held{member: Member("ep", fmt.Sprint(i)), claimed: time.Now()}); d {
					deferred++
				}
			}
			q := w.eps["ep"]
			if len(q.waiting) != tc.queued || deferred != tc.deferred || w.held != tc.queued {
				t.Fatalf("queued %d (held %d), deferred %d; want %d queued, %d deferred", len(q.waiting), w.held, deferred, tc.queued, tc.deferred)
			}
			for i, h := range q.waiting {
				if h.member != Member("ep", fmt.Sprint(i)) {
					t.Fatalf("queue position %d holds %s: not claim order", i, h.member)
				}
			}
		})
	}
}
