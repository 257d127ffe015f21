package timers_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/spacecast/spacecast/libs/redisconn"
	"github.com/spacecast/spacecast/libs/testenv"
	"github.com/spacecast/spacecast/libs/timers"
)

// base is a fixed instant with whole milliseconds: timers store unix ms.
var base = time.UnixMilli(1_900_000_000_123)

func newQueue(t *testing.T) (*timers.Queue, redis.UniversalClient, string) {
	t.Helper()
	rdb, prefix := testenv.Redis(t)
	key := "{" + prefix + "timers}:due"
	q, err := timers.New(rdb, key)
	if err != nil {
		t.Fatal(err)
	}
	return q, rdb, key
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func claim(t *testing.T, q *timers.Queue, now time.Time, lease time.Duration, limit int) []string {
	t.Helper()
	got, err := q.Claim(context.Background(), now, lease, limit)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func TestScheduleCancelDue(t *testing.T) {
	q, _, _ := newQueue(t)
	ctx := context.Background()
	must(t, q.Schedule(ctx, "a", base.Add(time.Minute)))
	d, ok, err := q.Due(ctx, "a")
	if err != nil || !ok || !d.Equal(base.Add(time.Minute)) {
		t.Fatalf("Due(a) = %v, %v, %v; want %v", d, ok, err, base.Add(time.Minute))
	}
	// Schedule again moves it.
	must(t, q.Schedule(ctx, "a", base.Add(-time.Minute)))
	if d, _, _ := q.Due(ctx, "a"); !d.Equal(base.Add(-time.Minute)) {
		t.Fatalf("rescheduled timer due at %v", d)
	}
	// ScheduleIfAbsent never moves an existing one, but adds a missing one.
	must(t, q.ScheduleIfAbsent(ctx, "a", base.Add(time.Hour)))
	if d, _, _ := q.Due(ctx, "a"); !d.Equal(base.Add(-time.Minute)) {
		t.Fatalf("ScheduleIfAbsent moved a timer to %v", d)
	}
	must(t, q.ScheduleIfAbsent(ctx, "b", base.Add(time.Hour)))
	if d, ok, _ := q.Due(ctx, "b"); !ok || !d.Equal(base.Add(time.Hour)) {
		t.Fatalf("ScheduleIfAbsent did not add b: %v %v", d, ok)
	}
	if n, err := q.Len(ctx); err != nil || n != 2 {
		t.Fatalf("Len = %d, %v; want 2", n, err)
	}
	for _, tt := range []struct {
		member string
		want   bool
	}{{"a", true}, {"a", false}, {"never", false}} {
		if ok, err := q.Cancel(ctx, tt.member); err != nil || ok != tt.want {
			t.Fatalf("Cancel(%s) = %v, %v; want %v", tt.member, ok, err, tt.want)
		}
	}
	if _, ok, err := q.Due(ctx, "a"); ok || err != nil {
		t.Fatalf("cancelled timer still due (%v)", err)
	}
	if got := claim(t, q, base.Add(2*time.Hour), time.Second, 10); !slices.Equal(got, []string{"b"}) {
		t.Fatalf("claim after cancel = %v, want [b]", got)
	}
}

func TestClaimOnlyDueAndLeases(t *testing.T) {
	q, _, _ := newQueue(t)
	ctx := context.Background()
	const lease = 10 * time.Second
	must(t, q.Schedule(ctx, "late", base.Add(-time.Second)))
	must(t, q.Schedule(ctx, "later", base.Add(-2*time.Second))) // older: first
	must(t, q.Schedule(ctx, "exactly-now", base))
	must(t, q.Schedule(ctx, "future", base.Add(time.Millisecond)))

	if got := claim(t, q, base, lease, 2); !slices.Equal(got, []string{"later", "late"}) {
		t.Fatalf("claim limit 2 = %v, want the two oldest due [later late]", got)
	}
	if got := claim(t, q, base, lease, 10); !slices.Equal(got, []string{"exactly-now"}) {
		t.Fatalf("second claim = %v, want [exactly-now] (leased ones and future ones excluded)", got)
	}
	// A lease moves the timer to now+lease.
	if d, _, _ := q.Due(ctx, "late"); !d.Equal(base.Add(lease)) {
		t.Fatalf("leased timer due %v, want %v", d, base.Add(lease))
	}
	if got := claim(t, q, base.Add(lease-time.Millisecond), lease, 10); !slices.Equal(got, []string{"future"}) {
		t.Fatalf("claim just before the lease ends = %v, want only [future]", got)
	}
	// Done removes a claimed timer; unacknowledged ones come back when their lease ends.
	must(t, q.Done(ctx, "late"))
	got := claim(t, q, base.Add(lease), lease, 10)
	slices.Sort(got)
	if !slices.Equal(got, []string{"exactly-now", "later"}) {
		t.Fatalf("claim when the lease ended = %v, want [exactly-now later]", got)
	}
	if _, ok, _ := q.Due(ctx, "late"); ok {
		t.Fatal("Done did not remove the timer")
	}
	if got := claim(t, q, base.Add(lease), lease, 10); len(got) != 0 {
		t.Fatalf("claimed %v twice at the same instant", got)
	}
	if n, _ := q.Len(ctx); n != 3 {
		t.Fatalf("Len = %d, want 3 (leased timers stay until Done)", n)
	}
}

func TestClaimEmptyQueue(t *testing.T) {
	q, _, _ := newQueue(t)
	got, err := q.Claim(context.Background(), base, time.Second, 10)
	if err != nil || len(got) != 0 {
		t.Fatalf("claim on an empty queue = %v, %v", got, err)
	}
}

func TestBadArgs(t *testing.T) {
	q, _, _ := newQueue(t)
	must(t, q.Schedule(context.Background(), "a", base))
	for _, tt := range []struct {
		lease time.Duration
		limit int
	}{{0, 1}, {-time.Second, 1}, {time.Second, 0}, {time.Second, -3}} {
		t.Run(fmt.Sprintf("lease=%v,limit=%d", tt.lease, tt.limit), func(t *testing.T) {
			if got, err := q.Claim(context.Background(), base, tt.lease, tt.limit); !errors.Is(err, timers.ErrBadArgs) || got != nil {
				t.Fatalf("Claim = %v, %v; want ErrBadArgs", got, err)
			}
		})
	}
	// Bad input changes nothing.
	if d, ok, _ := q.Due(context.Background(), "a"); !ok || !d.Equal(base) {
		t.Fatalf("a rejected claim moved the timer: %v %v", d, ok)
	}
	if _, err := timers.New(nil, "k"); err == nil {
		t.Error("New accepted a nil client")
	}
	rdb, _ := testenv.Redis(t)
	if _, err := timers.New(rdb, ""); err == nil {
		t.Error("New accepted an empty key")
	}
}

// Eight replicas, each with its own connection, race to claim 600 due timers: each is handed
// out exactly once.
func TestConcurrentClaimersEachTimerOnce(t *testing.T) {
	const timersN, replicas = 600, 8
	url, prefix := testenv.RedisURL(t)
	key := "{" + prefix + "race}:due"
	ctx := context.Background()
	clients := make([]redis.UniversalClient, replicas)
	for i := range clients {
		c, err := redisconn.Open(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Del(context.Background(), key); c.Close() })
		clients[i] = c
	}
	q0, _ := timers.New(clients[0], key)
	for i := 0; i < timersN; i++ {
		must(t, q0.Schedule(ctx, fmt.Sprint(i), base.Add(-time.Duration(i)*time.Millisecond)))
	}
	var mu sync.Mutex
	seen := map[string]int{}
	perReplica := make([]int, replicas)
	total := 0
	var wg sync.WaitGroup
	start := make(chan struct{})
	for r := 0; r < replicas; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			q, err := timers.New(clients[r], key)
			if err != nil {
				t.Error(err)
				return
			}
			<-start
			for {
				got, err := q.Claim(ctx, base, time.Hour, 5)
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
				perReplica[r] += len(got)
				total += len(got)
				runaway := total > 2*timersN // claims that do not lease would loop forever
				mu.Unlock()
				if runaway {
					return
				}
			}
		}()
	}
	close(start)
	wg.Wait()
	if len(seen) != timersN {
		t.Fatalf("%d of %d timers claimed", len(seen), timersN)
	}
	for m, n := range seen {
		if n != 1 {
			t.Fatalf("timer %s claimed %d times", m, n)
		}
	}
	busy := 0
	for _, n := range perReplica {
		if n > 0 {
			busy++
		}
	}
	t.Logf("claims per replica: %v", perReplica)
	if busy < 2 {
		t.Fatalf("only %d replica claimed anything: no concurrency was exercised", busy)
	}
}

// TestScheduleAllIfAbsent: many timers in one call; existing ones (scheduled or leased) keep
// their due time, missing ones are added.
func TestScheduleAllMovesAndAdds(t *testing.T) {
	ctx := context.Background()
	rdb, prefix := testenv.Redis(t)
	q, err := timers.New(rdb, prefix+"all")
	must(t, err)
	base := time.UnixMilli(time.Now().UnixMilli())
	must(t, q.Schedule(ctx, "m-0", base))
	var ts []timers.Timer
	for i := range 1500 { // more than one chunk
		ts = append(ts, timers.Timer{Member: fmt.Sprintf("m-%d", i), Due: base.Add(time.Duration(i) * time.Second)})
	}
	must(t, q.ScheduleAll(ctx, ts...))
	if n, err := q.Len(ctx); err != nil || n != 1500 {
		t.Fatalf("Len = %d, %v; want 1500", n, err)
	}
	for _, i := range []int{0, 1, 1499} {
		if d, ok, err := q.Due(ctx, fmt.Sprintf("m-%d", i)); err != nil || !ok || !d.Equal(base.Add(time.Duration(i)*time.Second)) {
			t.Fatalf("m-%d due %v (%v, %v)", i, d, ok, err)
		}
	}
	must(t, q.ScheduleAll(ctx, timers.Timer{Member: "m-1499", Due: base}))
	if d, _, err := q.Due(ctx, "m-1499"); err != nil || !d.Equal(base) {
		t.Fatalf("m-1499 not moved: due %v (%v)", d, err)
	}
	must(t, q.ScheduleAll(ctx)) // nothing to do
}

func TestScheduleAllIfAbsent(t *testing.T) {
	ctx := context.Background()
	rdb, prefix := testenv.Redis(t)
	q, err := timers.New(rdb, prefix+"bulk")
	must(t, err)
	base := time.UnixMilli(time.Now().UnixMilli())
	must(t, q.Schedule(ctx, "m-0", base))
	var ts []timers.Timer
	for i := range 2500 { // more than one chunk
		ts = append(ts, timers.Timer{Member: fmt.Sprintf("m-%d", i), Due: base.Add(time.Hour)})
	}
	must(t, q.ScheduleAllIfAbsent(ctx, ts...))
	if n, err := q.Len(ctx); err != nil || n != 2500 {
		t.Fatalf("Len = %d, %v; want 2500", n, err)
	}
	if d, ok, err := q.Due(ctx, "m-0"); err != nil || !ok || !d.Equal(base) {
		t.Fatalf("existing timer moved to %v (%v, %v)", d, ok, err)
	}
	if d, ok, err := q.Due(ctx, "m-2499"); err != nil || !ok || !d.Equal(base.Add(time.Hour)) {
		t.Fatalf("new timer due %v (%v, %v)", d, ok, err)
	}
}

func TestDoneAllRemovesAndReschedules(t *testing.T) {
	ctx := context.Background()
	rdb, prefix := testenv.Redis(t)
	q, err := timers.New(rdb, prefix+"doneall")
	must(t, err)
	base := time.UnixMilli(time.Now().UnixMilli())
	var ts []timers.Timer
	var done []string
	for i := range 2500 { // more than one chunk of each
		ts = append(ts, timers.Timer{Member: fmt.Sprintf("m-%d", i), Due: base})
		if i < 1200 {
			done = append(done, fmt.Sprintf("m-%d", i))
		}
	}
	must(t, q.ScheduleAll(ctx, ts...))
	var again []timers.Timer
	for i := 1200; i < 2500; i++ {
		again = append(again, timers.Timer{Member: fmt.Sprintf("m-%d", i), Due: base.Add(time.Minute)})
	}
	must(t, q.DoneAll(ctx, append(done, "never-scheduled"), again...))
	if n, err := q.Len(ctx); err != nil || n != 1300 {
		t.Fatalf("Len = %d, %v; want 1300", n, err)
	}
	if _, ok, err := q.Due(ctx, "m-1199"); err != nil || ok {
		t.Fatalf("m-1199 still scheduled (%v)", err)
	}
	if d, ok, err := q.Due(ctx, "m-2499"); err != nil || !ok || !d.Equal(base.Add(time.Minute)) {
		t.Fatalf("m-2499 due %v (%v, %v); want moved a minute on", d, ok, err)
	}
	must(t, q.DoneAll(ctx, nil)) // nothing to do
}

func TestClaimNextReportsEarliest(t *testing.T) {
	q, _, _ := newQueue(t)
	ctx := context.Background()
	claimNext := func(now time.Time) ([]string, time.Time) {
		t.Helper()
		due, next, err := q.ClaimNext(ctx, now, 30*time.Second, 10)
		if err != nil {
			t.Fatal(err)
		}
		return due, next
	}
	if due, next := claimNext(base); len(due) != 0 || !next.IsZero() {
		t.Fatalf("empty queue: %v, next %v", due, next)
	}
	must(t, q.Schedule(ctx, "later", base.Add(time.Minute)))
	must(t, q.Schedule(ctx, "due", base.Add(-time.Second)))
	// "due" is claimed and leased until base+30s: that is the earliest now.
	if due, next := claimNext(base); !slices.Equal(due, []string{"due"}) || !next.Equal(base.Add(30*time.Second)) {
		t.Fatalf("claim: %v, next %v; want [due], %v", due, next, base.Add(30*time.Second))
	}
	must(t, q.Done(ctx, "due"))
	if due, next := claimNext(base); len(due) != 0 || !next.Equal(base.Add(time.Minute)) {
		t.Fatalf("after Done: %v, next %v; want none, %v", due, next, base.Add(time.Minute))
	}
	if _, _, err := q.ClaimNext(ctx, base, 0, 1); !errors.Is(err, timers.ErrBadArgs) {
		t.Fatalf("lease 0: %v", err)
	}
}

// TestExtendMovesOnlyPresentTimers: Extend moves leases in bulk and never brings back a timer
// that was done meanwhile.
func TestExtendMovesOnlyPresentTimers(t *testing.T) {
	ctx := context.Background()
	q, _, _ := newQueue(t)
	now := time.UnixMilli(time.Now().UnixMilli())
	var ms []string
	for i := range 1500 { // more than one chunk
		m := fmt.Sprintf("m-%d", i)
		ms = append(ms, m)
		must(t, q.Schedule(ctx, m, now))
	}
	if got := claim(t, q, now, time.Second, 2000); len(got) != 1500 {
		t.Fatalf("claimed %d, want 1500", len(got))
	}
	must(t, q.Done(ctx, "m-7"))
	until := now.Add(time.Minute)
	must(t, q.Extend(ctx, until, ms...))
	if n, err := q.Len(ctx); err != nil || n != 1499 {
		t.Fatalf("Len = %d, %v; want 1499 (the done timer stays gone)", n, err)
	}
	for _, m := range []string{"m-0", "m-1499"} {
		if d, ok, err := q.Due(ctx, m); err != nil || !ok || !d.Equal(until) {
			t.Fatalf("%s due %v (%v, %v); want its lease moved to %v", m, d, ok, err, until)
		}
	}
	if got := claim(t, q, now.Add(2*time.Second), time.Second, 2000); len(got) != 0 {
		t.Fatalf("after the first lease ran out %d timers were claimable; want none (extended)", len(got))
	}
	must(t, q.Extend(ctx, until)) // nothing to do
}
