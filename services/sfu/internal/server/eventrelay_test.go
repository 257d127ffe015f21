package server

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/spacecast/spacecast/libs/events"
	"github.com/spacecast/spacecast/libs/kafkabus"
	"github.com/spacecast/spacecast/libs/testenv"
	"github.com/spacecast/spacecast/services/sfu/internal/registry"
)

// fakeBroker records what it acknowledged; while down it refuses everything.
type fakeBroker struct {
	mu   sync.Mutex
	down bool
	got  []kafkabus.Message
}

var _ Publisher = (*fakeBroker)(nil)

func (b *fakeBroker) Publish(_ context.Context, msgs ...kafkabus.Message) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.down {
		return errors.New("broker down")
	}
	b.got = append(b.got, msgs...)
	return nil
}

func (b *fakeBroker) setDown(down bool) { b.mu.Lock(); b.down = down; b.mu.Unlock() }

func (b *fakeBroker) values() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]string, len(b.got))
	for i, m := range b.got {
		out[i] = m.Topic + " " + string(m.Key) + " " + string(m.Value)
	}
	return out
}

// The relay publishes a space's events in order to spacecast.rtc keyed by the space, keeps
// them while the broker refuses them, and drops the space from the node's list once its
// stream is empty and the node does not host it; a flush drains everything.
func TestEventRelayPublishesInOrderAndRetries(t *testing.T) {
	rdb, prefix := testenv.Redis(t)
	reg, err := registry.New(rdb, prefix)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	broker := &fakeBroker{down: true}
	var mu sync.Mutex
	hosted := map[string]bool{"sp": true}
	idle := func(ctx context.Context, space string) {
		mu.Lock()
		defer mu.Unlock()
		if !hosted[space] {
			_ = reg.ForgetSpace(ctx, "n1", space)
		}
	}
	r := newEventRelay("n1", reg, broker, testenv.Logger(t), idle)
	done := make(chan struct{})
	go func() { defer close(done); r.run(ctx) }()
	defer func() { cancel(); <-done }()

	if err := reg.AddNodeSpace(ctx, "n1", "sp"); err != nil {
		t.Fatal(err)
	}
	var want []string
	for i := range 5 {
		ev := registry.Event{JSON: []byte(fmt.Sprintf(`{"id":"e%d"}`, i))}
		if err := reg.SetTrack(ctx, "sp", "c1", registry.Track{TrackID: fmt.Sprint(i)}, ev); err != nil {
			t.Fatal(err)
		}
		want = append(want, events.TopicRTC+" sp "+string(ev.JSON))
		r.Notify("sp")
	}
	time.Sleep(300 * time.Millisecond)
	if n, _ := reg.PendingEvents(ctx, "sp"); n != 5 || len(broker.values()) != 0 {
		t.Fatalf("broker down: %d events pending in Redis, %d published; want 5 and 0", n, len(broker.values()))
	}
	broker.setDown(false) // the relay retries on its own (every relayRetry)
	testenv.Eventually(t, 5*time.Second, func() bool { return len(broker.values()) >= len(want) }, "events published after the broker came back")
	if got := broker.values(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("published\n%v\nwant\n%v", got, want)
	}
	if n, _ := reg.PendingEvents(ctx, "sp"); n != 0 {
		t.Fatalf("%d events left in Redis after publishing", n)
	}
	if sp, _ := reg.NodeSpaces(ctx, "n1"); len(sp) != 1 {
		t.Fatalf("hosted space dropped from the node's list: %v", sp)
	}

	// The node stops hosting the space; a last event is appended: a flush publishes it and
	// the space leaves the node's list.
	mu.Lock()
	hosted["sp"] = false
	mu.Unlock()
	last := registry.Event{JSON: []byte(`{"id":"last"}`)}
	if _, err := reg.RemoveTrack(ctx, "sp", "c1", "0", last); err != nil {
		t.Fatal(err)
	}
	fctx, fcancel := context.WithTimeout(ctx, 3*time.Second)
	defer fcancel()
	if n, err := r.Flush(fctx); err != nil || n != 0 {
		t.Fatalf("flush = %d %v", n, err)
	}
	if got := broker.values(); len(got) != 6 || got[5] != events.TopicRTC+" sp "+string(last.JSON) {
		t.Fatalf("after flush published %v", got)
	}
	if sp, _ := reg.NodeSpaces(ctx, "n1"); len(sp) != 0 {
		t.Fatalf("published, unhosted space still in the node's list: %v", sp)
	}
}

// Events of a space another relay holds are left to it; once its lock is broken (its node
// died) they are published here.
func TestEventRelayLeavesLockedSpacesToTheirHolder(t *testing.T) {
	rdb, prefix := testenv.Redis(t)
	reg, err := registry.New(rdb, prefix)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ev := registry.Event{JSON: []byte(`{"id":"e"}`)}
	if err := reg.SetTrack(ctx, "sp", "c1", registry.Track{TrackID: "t"}, ev); err != nil {
		t.Fatal(err)
	}
	if evs, held, err := reg.TakeEvents(ctx, "sp", "other", 10*time.Second, 1); err != nil || !held || len(evs) != 1 {
		t.Fatalf("the other relay's take = %v %v %v", evs, held, err)
	}
	broker := &fakeBroker{}
	r := newEventRelay("n1", reg, broker, testenv.Logger(t), func(context.Context, string) {})
	done := make(chan struct{})
	go func() { defer close(done); r.run(ctx) }()
	defer func() { cancel(); <-done }()
	r.Notify("sp")
	time.Sleep(300 * time.Millisecond)
	if got := broker.values(); len(got) != 0 {
		t.Fatalf("published a space another relay holds: %v", got)
	}
	if err := reg.BreakRelayLock(ctx, "sp", "other"); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 3*time.Second, func() bool { return len(broker.values()) == 1 }, "event published after the lock was broken")
}
