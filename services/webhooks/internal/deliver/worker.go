package deliver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/spacecast/spacecast/libs/events"
	"github.com/spacecast/spacecast/libs/timers"
	"github.com/spacecast/spacecast/services/webhooks/internal/resource"
	"github.com/spacecast/spacecast/services/webhooks/internal/signing"
	"github.com/spacecast/spacecast/services/webhooks/internal/store"
)

// DefaultSchedule is the delay before each retry: 9 retries over about 2.5 days, well past
// the 24 h the contract asks for.
var DefaultSchedule = []time.Duration{5 * time.Second, time.Minute, 5 * time.Minute, 30 * time.Minute,
	2 * time.Hour, 5 * time.Hour, 10 * time.Hour, 14 * time.Hour, 24 * time.Hour}

// Notifier wakes the outbox relay.
type Notifier interface{ Notify() }

// WorkerConfig tunes a Worker.
type WorkerConfig struct {
	Store         *store.Store
	Queue         *timers.Queue
	Sender        *Sender
	Relay         Notifier
	Log           *slog.Logger
	Schedule      []time.Duration // retry delays (DefaultSchedule)
	PerEndpoint   int             // concurrent attempts per endpoint (4)
	MaxInFlight   int             // concurrent attempts in all (256)
	DisableAfter  time.Duration   // an endpoint failing this long is disabled (72 h)
	MaxRetryAfter time.Duration   // Retry-After is honoured up to this (1 h)
	Lease         time.Duration   // claim lease; longer than the HTTP timeout (30 s)
	Poll          time.Duration   // idle poll (100 ms)
	MaxHeld       int             // claimed deliveries waiting in endpoint queues, in all (16384)
}

// Worker claims due deliveries and attempts them.
type Worker struct {
	c    WorkerConfig
	wake chan struct{}
	slot chan struct{}

	recs chan recordReq // attempts waiting for the group commit (at most MaxHeld: beyond that a slow commit holds up the attempts)

	mu       sync.Mutex
	eps      map[string]*endpointQueue // endpoints with attempts in flight
	held     int                       // claimed deliveries waiting in endpoint queues
	buckets  map[string]*bucket        // per-endpoint rate limits
	latency  map[string]time.Duration  // recent attempt latency per endpoint (moving average)
	deferred map[string]deferral       // deferrals of busy endpoints in the current window
}

// endpointQueue is one endpoint's share of the worker: its attempts in flight (at most
// PerEndpoint) and the claimed deliveries waiting for one of them to finish. A delivery that
// finds its endpoint busy waits here instead of going back to Redis, so an endpoint with a
// backlog gets its next delivery the moment a slot frees; the queue is short enough that a
// waiting delivery's lease never runs out.
type endpointQueue struct {
	busy    int
	started time.Time // when the attempts in flight began (busy 0 -> 1)
	waiting []held
}

// held is a claimed delivery: its timer member and, when known, its row as read at claim
// time. The row stays true while the claim lasts (nobody else attempts a delivery whose timer
// this worker has leased), so the attempt needs no read of its own.
type held struct {
	member  string
	claimed time.Time
	d       *store.Delivery // nil: read it before the attempt
}

type bucket struct {
	tokens float64
	last   time.Time
}

// NewWorker fills defaults.
func NewWorker(c WorkerConfig) *Worker {
	if len(c.Schedule) == 0 {
		c.Schedule = DefaultSchedule
	}
	if c.PerEndpoint <= 0 {
		c.PerEndpoint = 4
	}
	if c.MaxInFlight <= 0 {
		c.MaxInFlight = 256
	}
	if c.DisableAfter <= 0 {
		c.DisableAfter = 72 * time.Hour
	}
	if c.MaxRetryAfter <= 0 {
		c.MaxRetryAfter = time.Hour
	}
	if c.Lease <= 0 {
		c.Lease = 30 * time.Second
	}
	if c.Poll <= 0 {
		c.Poll = 100 * time.Millisecond
	}
	if c.MaxHeld <= 0 {
		c.MaxHeld = 16384
	}
	return &Worker{c: c, wake: make(chan struct{}, 1), slot: make(chan struct{}, c.MaxInFlight), recs: make(chan recordReq, max(c.MaxInFlight, c.MaxHeld)),
		eps: map[string]*endpointQueue{}, buckets: map[string]*bucket{}, latency: map[string]time.Duration{}, deferred: map[string]deferral{}}
}

// Wake makes the worker look for due deliveries now.
func (w *Worker) Wake() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// Run claims and attempts deliveries until ctx ends; attempts in flight finish first.
func (w *Worker) Run(ctx context.Context) error {
	recorded := make(chan struct{})
	go func() { defer close(recorded); w.record() }()
	var wg sync.WaitGroup
	defer func() {
		wg.Wait()
		close(w.recs)
		<-recorded
	}()
	const claimMax = 1000
	var renewed time.Time
	for {
		if now := time.Now(); now.Sub(renewed) >= w.c.Lease/8 {
			w.renew(context.WithoutCancel(ctx), now)
			renewed = now
		}
		// Claim only while the endpoint queues are at most half full: a full set of queues
		// means the endpoints are already as busy as they can be, and more claims would only
		// go back to Redis. next wakes this loop when the queues fall below half.
		free := 0
		w.mu.Lock()
		if w.held < w.c.MaxHeld/2 {
			free = min(w.c.MaxHeld-w.held, claimMax)
		}
		w.mu.Unlock()
		var ids []string
		if free > 0 {
			var err error
			ids, err = w.c.Queue.Claim(ctx, time.Now(), w.c.Lease, free)
			if err != nil && ctx.Err() == nil {
				w.c.Log.Warn("claiming deliveries failed", "err", err)
			}
		}
		// Deliveries that must wait in Redis are put back in one round trip after the rest
		// have started, so a dead endpoint's backlog costs the others no time.
		var later []timers.Timer
		for _, h := range w.load(ctx, ids) {
			if t, deferred := w.admit(ctx, &wg, h); deferred {
				later = append(later, t)
			}
		}
		if err := w.c.Queue.ScheduleAll(context.WithoutCancel(ctx), later...); err != nil {
			w.c.Log.Warn("deferring deliveries of busy endpoints failed; they come back after their leases", "err", err)
		}
		if len(ids) > 0 && len(ids) == free {
			continue
		}
		t := time.NewTimer(w.c.Poll)
		select {
		case <-ctx.Done():
			t.Stop()
			// Deliveries still waiting in endpoint queues go back to Redis now rather than
			// when their leases run out.
			_ = w.c.Queue.ScheduleAll(context.WithoutCancel(ctx), w.drain()...)
			return nil
		case <-w.wake:
		case <-t.C:
		}
		t.Stop()
	}
}

// load reads what the claimed deliveries' attempts need: the ones this process inserted
// moments ago from memory, the others in one query. A delivery that no longer exists or is no
// longer pending is done with (its timer removed) and not returned; one whose read failed is
// returned without its row (the attempt reads it). Deliveries beyond what their endpoint has
// room for (they go back to Redis in admit) are not read at all: a dead endpoint's backlog
// costs no database work.
func (w *Worker) load(ctx context.Context, members []string) []held {
	now := time.Now()
	hs := make([]held, 0, len(members))
	var unread []string
	room := map[string]int{}
	w.mu.Lock()
	wanted := make([]bool, len(members))
	for i, m := range members {
		ep, _ := splitMember(m)
		left, ok := room[ep]
		if !ok {
			left = w.c.PerEndpoint + w.depth(ep)
			if q := w.eps[ep]; q != nil {
				left = max(0, w.c.PerEndpoint-q.busy) + max(0, w.depth(ep)-len(q.waiting))
			}
		}
		if left > 0 {
			wanted[i], left = true, left-1
		}
		room[ep] = left
	}
	w.mu.Unlock()
	for i, m := range members {
		_, id := splitMember(m)
		h := held{member: m, claimed: now}
		if !wanted[i] {
			hs = append(hs, h) // admit defers it, most likely; if not, its attempt reads it
			continue
		}
		if d, ok := w.c.Store.TakeFresh(id); ok {
			h.d = &d
		} else {
			unread = append(unread, id)
		}
		hs = append(hs, h)
	}
	if len(unread) == 0 {
		return hs
	}
	rows, err := w.c.Store.GetDeliveries(ctx, unread)
	if err != nil {
		w.c.Log.Warn("loading claimed deliveries failed; each attempt reads its own", "err", err)
		return hs
	}
	read := make(map[string]bool, len(unread))
	for _, id := range unread {
		read[id] = true
	}
	var over []string
	out := hs[:0]
	for _, h := range hs {
		if _, id := splitMember(h.member); h.d == nil && read[id] {
			d, ok := rows[id]
			if !ok || d.Status != store.StatusPending {
				over = append(over, h.member)
				continue
			}
			h.d = &d
		}
		out = append(out, h)
	}
	if err := w.c.Queue.DoneAll(context.WithoutCancel(ctx), over); err != nil {
		w.c.Log.Warn("removing the timers of finished deliveries failed; they come back after their leases", "err", err)
	}
	return out
}

// admit starts a claimed delivery at once if its endpoint has a free slot, or queues it behind
// the endpoint's attempts in flight if the queue has room; otherwise it returns the timer that
// puts it back in Redis for about as long as the endpoint needs to get through its queue.
func (w *Worker) admit(ctx context.Context, wg *sync.WaitGroup, h held) (timers.Timer, bool) {
	member := h.member
	epID, _ := splitMember(member)
	now := time.Now()
	w.mu.Lock()
	q := w.eps[epID]
	if q == nil {
		q = &endpointQueue{started: now}
		w.eps[epID] = q
	}
	if q.busy < w.c.PerEndpoint {
		q.busy++
		w.mu.Unlock()
		w.slot <- struct{}{}
		w.start(ctx, wg, h)
		return timers.Timer{}, false
	}
	if len(q.waiting) < w.depth(epID) {
		q.waiting = append(q.waiting, h)
		w.held++
		w.mu.Unlock()
		return timers.Timer{}, false
	}
	wait := w.deferFor(epID, q, now)
	w.mu.Unlock()
	return timers.Timer{Member: member, Due: now.Add(wait)}, true
}

// start runs the attempt of h, then those of the endpoint's waiting deliveries one after
// another, in one goroutine that holds one of the endpoint's slots and one of the worker's
// in-flight slots until the endpoint's queue is empty (a goroutine per attempt would grow a
// fresh stack for each). Each attempt is handed to the group commit without waiting for it,
// so the next one starts as soon as the HTTP request is over.
func (w *Worker) start(ctx context.Context, wg *sync.WaitGroup, h held) {
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			w.process(context.WithoutCancel(ctx), h)
			next, ok := w.next(h.member)
			if !ok {
				break
			}
			h = next
		}
		<-w.slot
		w.Wake()
	}()
}

// next hands the endpoint slot of a finished attempt to the endpoint's next waiting delivery,
// or frees it. A waiting delivery whose lease is half gone is put back in Redis instead (it
// would risk being claimed elsewhere while it is sent).
func (w *Worker) next(member string) (held, bool) {
	epID, _ := splitMember(member)
	now := time.Now()
	var stale []timers.Timer
	defer func() { _ = w.c.Queue.ScheduleAll(context.Background(), stale...) }()
	w.mu.Lock()
	defer w.mu.Unlock()
	q := w.eps[epID]
	for len(q.waiting) > 0 {
		h := q.waiting[0]
		q.waiting[0] = held{}
		q.waiting = q.waiting[1:]
		if w.held--; w.held == w.c.MaxHeld/2-1 {
			w.Wake()
		}
		if now.Sub(h.claimed) > w.c.Lease/2 {
			stale = append(stale, timers.Timer{Member: h.member, Due: now})
			continue
		}
		return h, true
	}
	if q.busy--; q.busy <= 0 {
		delete(w.eps, epID)
	}
	return held{}, false
}

// drain empties every endpoint queue, returning its deliveries due now.
func (w *Worker) drain() []timers.Timer {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []timers.Timer
	now := time.Now()
	for _, q := range w.eps {
		for _, h := range q.waiting {
			out = append(out, timers.Timer{Member: h.member, Due: now})
		}
		q.waiting = nil
	}
	w.held = 0
	return out
}

// queueHorizon is how much of an endpoint's work its queue holds: what it gets through in
// this long at its observed latency.
const queueHorizon = 30 * time.Second

// depth is how many claimed deliveries may wait for the endpoint: as many as it gets through
// in queueHorizon at its observed latency (at least PerEndpoint, at most a quarter of
// MaxHeld, so no endpoint's backlog fills the worker; a dead endpoint's queue stays short).
// A fast endpoint's burst waits here, in claim order, rather than going back to Redis for a
// guessed time and coming back in a trickle; the leases of deliveries that wait long are
// extended (renew). Before any attempt has finished, 8 × PerEndpoint may wait. w.mu is held.
func (w *Worker) depth(endpointID string) int {
	lat, ok := w.latency[endpointID]
	if !ok {
		return 8 * w.c.PerEndpoint
	}
	n := int(int64(w.c.PerEndpoint) * int64(queueHorizon) / int64(max(lat, time.Millisecond)))
	return max(w.c.PerEndpoint, min(max(w.c.PerEndpoint, w.c.MaxHeld/4), n))
}

// renew extends, in one round trip, the leases of the deliveries that have waited in endpoint
// queues for a quarter of their lease, so no waiting delivery's lease runs out (it would be
// claimed again elsewhere while it waits here). A delivery whose renewal failed keeps its old
// claim time, and next puts it back in Redis once half of that lease is gone.
func (w *Worker) renew(ctx context.Context, now time.Time) {
	w.mu.Lock()
	var ms []string
	for _, q := range w.eps {
		for _, h := range q.waiting {
			if now.Sub(h.claimed) >= w.c.Lease/4 {
				ms = append(ms, h.member)
			}
		}
	}
	w.mu.Unlock()
	if len(ms) == 0 {
		return
	}
	if err := w.c.Queue.Extend(ctx, now.Add(w.c.Lease), ms...); err != nil {
		w.c.Log.Warn("extending the leases of queued deliveries failed; they go back to Redis when half their lease is gone", "err", err)
		return
	}
	renewed := make(map[string]bool, len(ms))
	for _, m := range ms {
		renewed[m] = true
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, q := range w.eps {
		for i := range q.waiting {
			if renewed[q.waiting[i].member] && q.waiting[i].claimed.Before(now) {
				q.waiting[i].claimed = now
			}
		}
	}
}

// deferFor says how long a delivery that finds its endpoint's slots and queue full waits in
// Redis: about one attempt's latency at that endpoint per PerEndpoint deliveries deferred in
// that window, so a slow or dead endpoint's backlog is looked at rarely and never crowds out
// the others. w.mu is held.
func (w *Worker) deferFor(endpointID string, q *endpointQueue, now time.Time) time.Duration {
	// Before any attempt has finished, the age of the attempts in flight is the best estimate;
	// after that, the observed latency (the age would grow without bound while the endpoint
	// stays busy under a steady load, and push its deliveries ever further out).
	lat, known := w.latency[endpointID]
	if !known {
		lat = now.Sub(q.started)
	}
	lat = max(50*time.Millisecond, lat)
	d := w.deferred[endpointID]
	if now.Sub(d.since) > lat {
		d = deferral{since: now}
	}
	d.n++
	w.deferred[endpointID] = d
	return min(15*time.Minute, lat*time.Duration(1+(len(q.waiting)+d.n)/w.c.PerEndpoint))
}

type deferral struct {
	since time.Time
	n     int
}

func (w *Worker) observe(endpointID string, d time.Duration) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if old, ok := w.latency[endpointID]; ok {
		w.latency[endpointID] = (old*3 + d) / 4
	} else {
		w.latency[endpointID] = d
	}
	if len(w.latency) > 100_000 {
		clear(w.latency)
		clear(w.deferred)
	}
}

// rateLimited takes a rate-limit token of the endpoint; otherwise it says when to retry.
func (w *Worker) rateLimited(ep store.Endpoint, now time.Time) (bool, time.Duration) {
	if ep.RateLimit <= 0 {
		return false, 0
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	b := w.buckets[ep.ID]
	if b == nil {
		b = &bucket{tokens: float64(ep.RateLimit), last: now}
		w.buckets[ep.ID] = b
	}
	b.tokens = min(float64(ep.RateLimit), b.tokens+now.Sub(b.last).Seconds()*float64(ep.RateLimit))
	b.last = now
	if b.tokens < 1 {
		return true, time.Duration((1 - b.tokens) / float64(ep.RateLimit) * float64(time.Second))
	}
	b.tokens--
	return false, 0
}

// process makes one attempt of h and hands it to the group commit (record), without waiting
// for the commit: holding the endpoint's slot through a database round trip would cap a busy
// endpoint at PerEndpoint / (HTTP + SQL latency) deliveries per second.
func (w *Worker) process(ctx context.Context, h held) {
	member := h.member
	_, id := splitMember(member)
	// The row read at claim time (load) when there is one; else it is read now.
	var d store.Delivery
	if h.d != nil {
		d = *h.d
	} else {
		var err error
		d, err = w.c.Store.GetDelivery(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			_ = w.c.Queue.Done(ctx, member)
			return
		}
		if err != nil {
			w.c.Log.Warn("loading delivery failed; it comes back after its lease", "delivery_id", id, "err", err)
			return
		}
		if d.Status != store.StatusPending {
			_ = w.c.Queue.Done(ctx, member)
			return
		}
	}
	log := deliveryLog{w.c.Log, id}
	ep, err := w.c.Store.CachedEndpoint(ctx, d.EndpointID)
	if errors.Is(err, store.ErrNotFound) || (err == nil && !ep.Enabled) {
		if err := w.c.Store.Abandon(ctx, id); err == nil {
			_ = w.c.Queue.Done(ctx, member)
		}
		return
	}
	if err != nil {
		log.Warn("loading endpoint failed", "err", err)
		return
	}
	now := time.Now()
	if limited, wait := w.rateLimited(ep, now); limited {
		// The endpoint's rate is spent: come back when a token is due, without holding a
		// slot, so other endpoints are never blocked behind it.
		_ = w.c.Queue.Schedule(ctx, member, now.Add(wait))
		return
	}
	w.attempt(ctx, log, member, d, ep)
}

// deliveryLog logs with the delivery's id, without building a logger per attempt.
type deliveryLog struct {
	l  *slog.Logger
	id string
}

func (l deliveryLog) Warn(msg string, args ...any) {
	l.l.Warn(msg, append([]any{"delivery_id", l.id}, args...)...)
}

type attemptSummary struct {
	CreatedAt  string `json:"created_at"`
	StatusCode int    `json:"response_status_code"`
	Address    string `json:"address"`
}

func (w *Worker) attempt(ctx context.Context, log interface {
	Warn(string, ...any)
}, member string, d store.Delivery, ep store.Endpoint) {
	raw, err := withAttempts(d.Payload, d.Attempts, ep.URL)
	if err != nil {
		log.Warn("delivery payload is not a JSON object; abandoning", "err", err)
		_ = w.c.Store.Abandon(ctx, d.ID)
		_ = w.c.Queue.Done(ctx, member)
		return
	}
	now := time.Now()
	headers, err := signing.Headers(d.EventID, now.Unix(), raw, ep.Secrets(now)...)
	if err != nil {
		log.Warn("endpoint secret is unusable; abandoning", "err", err)
		_ = w.c.Store.Abandon(ctx, d.ID)
		_ = w.c.Queue.Done(ctx, member)
		return
	}
	res := w.c.Sender.Send(ctx, ep.URL, raw, headers)
	w.observe(ep.ID, res.Latency)
	w.recs <- recordReq{member: member, r: store.Recorded{Delivery: d, Outcome: w.decide(d, ep, res, now)}}
}

// withAttempts returns the body a receiver gets: the stored payload (a JSON object the
// dispatcher wrote, without "attempts") with the summary of the earlier attempts added as its
// last member. Appending to the object saves decoding and encoding the whole payload per
// attempt; an object that already has "attempts" (not one the dispatcher wrote) is rebuilt.
func withAttempts(payload json.RawMessage, attempts []store.Attempt, url string) ([]byte, error) {
	prev := make([]attemptSummary, len(attempts))
	for i, a := range attempts {
		prev[i] = attemptSummary{CreatedAt: a.At, StatusCode: a.StatusCode, Address: url}
	}
	list, err := json.Marshal(prev)
	if err != nil {
		return nil, err
	}
	p := bytes.TrimSpace(payload)
	if len(p) < 2 || p[0] != '{' || p[len(p)-1] != '}' || bytes.Contains(p, []byte(`"attempts"`)) {
		var body map[string]json.RawMessage
		if err := json.Unmarshal(payload, &body); err != nil {
			return nil, err
		}
		if body == nil {
			return nil, errors.New("payload is null")
		}
		body["attempts"] = list
		return json.Marshal(body)
	}
	out := make([]byte, 0, len(p)+len(list)+16)
	out = append(out, p[:len(p)-1]...)
	if len(bytes.TrimSpace(p[1:len(p)-1])) > 0 {
		out = append(out, ',')
	}
	out = append(out, `"attempts":`...)
	out = append(out, list...)
	return append(out, '}'), nil
}

// decide turns a response into the delivery's next state.
func (w *Worker) decide(d store.Delivery, ep store.Endpoint, res Response, now time.Time) store.Outcome {
	a := store.Attempt{AtNS: now.UnixNano(), StatusCode: res.Status, LatencyMS: int(res.Latency.Milliseconds()), ResponseBody: res.Body}
	if res.Err != nil {
		msg := res.Err.Error()
		a.Error = &msg
	}
	o := store.Outcome{Attempt: a}
	n := d.AttemptCount + 1
	switch {
	case res.Err == nil && res.Status >= 200 && res.Status <= 299:
		o.Status = store.StatusSucceeded
	case res.Status == 410:
		o.Status, o.Failing, o.Disable = store.StatusFailed, true, "the endpoint answered 410 Gone"
	case n > len(w.c.Schedule):
		o.Status, o.Failing = store.StatusFailed, true
	default:
		o.Status, o.Failing = store.StatusPending, true
		delay := w.c.Schedule[n-1]
		delay += time.Duration((rand.Float64()*0.4 - 0.2) * float64(delay)) // ±20 % jitter
		if res.RetryAfter > 0 {
			// Honour Retry-After, bounded: never sooner than asked, never later than the cap.
			delay = max(delay, min(res.RetryAfter, w.c.MaxRetryAfter))
		}
		o.Next = now.Add(max(delay, 100*time.Millisecond))
	}
	if o.Failing && o.Disable == "" && ep.FailingSince != 0 && now.Sub(time.Unix(0, ep.FailingSince)) >= w.c.DisableAfter {
		o.Disable = fmt.Sprintf("the endpoint failed every delivery for %s", w.c.DisableAfter)
	}
	typ, ok := "webhook.delivery.succeeded", resource.DeliveryEvent{DeliveryID: d.ID, WebhookEndpointID: ep.ID, EventID: d.EventID,
		EventType: d.EventType, Attempt: n, ResponseStatusCode: res.Status, LatencyMS: a.LatencyMS}
	var data any = ok
	if o.Status != store.StatusSucceeded {
		f := resource.DeliveryFailedEvent{DeliveryEvent: ok, Error: a.Error, WillRetry: o.Status == store.StatusPending}
		if f.WillRetry {
			f.NextAttemptAt = o.Next.UTC().Format(time.RFC3339)
		}
		typ, data = "webhook.delivery.failed", f
	}
	if ev, err := events.New(store.Source, typ, ep.ID, ep.EnvironmentID, data); err == nil {
		o.Events = append(o.Events, ev)
	}
	if o.Disable != "" {
		ep.Enabled, ep.DisabledReason = false, &o.Disable
		if ev, err := events.New(store.Source, "webhook_endpoint.disabled", ep.ID, ep.EnvironmentID, resource.NewWebhookEvent(ep)); err == nil {
			o.DisabledEvent = &ev
		}
	}
	return o
}

// recordReq is an attempt handed to the group commit. Until the commit its timer stays leased,
// so a crash before it (or a failed commit) sends the delivery again after the lease.
type recordReq struct {
	member string
	r      store.Recorded
}

// record is the group commit: it writes every attempt waiting at that moment in one
// transaction, so the database sees a few transactions per second instead of one per attempt;
// then, in one Redis round trip, it removes the timers of the deliveries that are over and
// moves the others to their next attempt (only after the commit: a crash in between leaves
// the timer leased, and the delivery comes back after its lease with its state in SQL), and
// wakes the outbox relay once. It runs until the attempts are over (Run closes recs).
func (w *Worker) record() {
	const maxBatch = 256
	batch := make([]recordReq, 0, maxBatch)
	rs := make([]store.Recorded, 0, maxBatch)
	for first := range w.recs {
		batch, rs = append(batch[:0], first), append(rs[:0], first.r)
	more:
		for len(batch) < maxBatch {
			select {
			case r, ok := <-w.recs:
				if !ok {
					break more
				}
				batch, rs = append(batch, r), append(rs, r.r)
			default:
				break more
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		errs := make([]error, len(batch))
		if err := w.c.Store.RecordAttempts(ctx, rs); err != nil {
			if len(batch) == 1 {
				errs[0] = err
			} else {
				// One bad row must not fail the others: record them one by one.
				for i, r := range batch {
					errs[i] = w.c.Store.RecordAttempts(ctx, []store.Recorded{r.r})
				}
			}
		}
		var done []string
		var again []timers.Timer
		for i, r := range batch {
			switch {
			case errs[i] != nil:
			case r.r.Outcome.Status == store.StatusPending:
				again = append(again, timers.Timer{Member: r.member, Due: r.r.Outcome.Next})
			default:
				done = append(done, r.member)
			}
		}
		if err := w.c.Queue.DoneAll(ctx, done, again...); err != nil {
			w.c.Log.Warn("updating the timers of recorded attempts failed; those deliveries come back after their leases", "err", err)
		}
		if w.c.Relay != nil && len(done)+len(again) > 0 {
			w.c.Relay.Notify()
		}
		for i, r := range batch {
			if errs[i] != nil {
				w.c.Log.Warn("recording attempt failed; the delivery comes back after its lease", "delivery_id", r.r.Delivery.ID, "err", errs[i])
			}
		}
		cancel()
	}
}
