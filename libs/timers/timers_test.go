package timers_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/spacecast/spacecast/libs/testenv"
	"github.com/spacecast/spacecast/libs/timers"
)

func TestQueue(t *testing.T) {
	rdb, prefix := testenv.Redis(t)
	q, err := timers.New(rdb, "{"+prefix+"t}:due")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	now := time.Now()
	_ = q.Schedule(ctx, "due", now.Add(-time.Second))
	_ = q.Schedule(ctx, "later", now.Add(time.Hour))
	_ = q.Schedule(ctx, "cancelled", now.Add(-time.Second))
	if ok, _ := q.Cancel(ctx, "cancelled"); !ok {
		t.Fatal("cancel")
	}
	got, err := q.Claim(ctx, now, 10*time.Second, 10)
	if err != nil || fmt.Sprint(got) != "[due]" {
		t.Fatalf("claim = %v, %v", got, err)
	}
	if got, _ := q.Claim(ctx, now.Add(5*time.Second), 10*time.Second, 10); len(got) != 0 {
		t.Fatalf("leased timer claimed again: %v", got)
	}
	if got, _ := q.Claim(ctx, now.Add(11*time.Second), 10*time.Second, 10); fmt.Sprint(got) != "[due]" {
		t.Fatalf("expired lease not reclaimed: %v", got)
	}
	_ = q.Done(ctx, "due")
	if _, ok, _ := q.Due(ctx, "due"); ok {
		t.Fatal("done timer still there")
	}
	_ = q.ScheduleIfAbsent(ctx, "later", now) // must not move it
	if d, ok, _ := q.Due(ctx, "later"); !ok || d.Before(now.Add(59*time.Minute)) {
		t.Fatalf("ScheduleIfAbsent moved a timer to %v", d)
	}
	if _, err := q.Claim(ctx, now, 0, 1); !errors.Is(err, timers.ErrBadArgs) {
		t.Fatalf("zero lease: %v", err)
	}
}

func TestClaimedExactlyOnceAcrossReplicas(t *testing.T) {
	rdb, prefix := testenv.Redis(t)
	key := "{" + prefix + "race}:due"
	q, _ := timers.New(rdb, key)
	ctx := context.Background()
	past := time.Now().Add(-time.Second)
	for i := 0; i < 500; i++ {
		_ = q.Schedule(ctx, fmt.Sprint(i), past)
	}
	var mu sync.Mutex
	seen := map[string]int{}
	var wg sync.WaitGroup
	for r := 0; r < 8; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rq, _ := timers.New(rdb, key)
			for {
				got, err := rq.Claim(ctx, time.Now(), time.Minute, 7)
				if err != nil {
					t.Error(err)
					return
				}
				if len(got) == 0 {
					return
				}
				mu.Lock()
				for _, m := range got {
					seen[m]++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(seen) != 500 {
		t.Fatalf("%d of 500 timers claimed", len(seen))
	}
	for m, n := range seen {
		if n != 1 {
			t.Fatalf("timer %s claimed %d times", m, n)
		}
	}
}
