package outbox_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/spacecast/spacecast/libs/events"
	"github.com/spacecast/spacecast/libs/kafkabus"
	"github.com/spacecast/spacecast/libs/outbox"
	"github.com/spacecast/spacecast/libs/sqldb"
	"github.com/spacecast/spacecast/libs/testenv"
)

func openDB(t *testing.T, b testenv.SQLBackend) *sqldb.DB {
	db := testenv.OpenSQL(t, b)
	if err := outbox.Migrate(context.Background(), db); err != nil {
		t.Fatal(err)
	}
	return db
}

func add(t *testing.T, db *sqldb.DB, subject string, n int, fail bool) error {
	t.Helper()
	return db.InTx(context.Background(), func(tx *sql.Tx) error {
		for i := 0; i < n; i++ {
			ev, _ := events.New("test", "thing.happened", subject, "env", map[string]int{"n": i})
			if err := outbox.Add(context.Background(), tx, "spacecast.test", ev); err != nil {
				return err
			}
		}
		if fail {
			return errors.New("state change failed")
		}
		return nil
	})
}

// flaky fails its first `fails` calls, then records what it publishes.
type flaky struct {
	mu    sync.Mutex
	fails int
	got   []kafkabus.Message
}

func (f *flaky) Publish(_ context.Context, msgs ...kafkabus.Message) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fails > 0 {
		f.fails--
		return errors.New("broker unavailable")
	}
	f.got = append(f.got, msgs...)
	return nil
}

func (f *flaky) count() int { f.mu.Lock(); defer f.mu.Unlock(); return len(f.got) }

func TestOutbox(t *testing.T) {
	for _, b := range testenv.SQLBackends(t) {
		t.Run(b.Name, func(t *testing.T) {
			t.Run("RolledBackChangePublishesNothing", func(t *testing.T) {
				db := openDB(t, b)
				if err := add(t, db, "a", 3, true); err == nil {
					t.Fatal("want the transaction's error")
				}
				if n, _ := outbox.Pending(context.Background(), db); n != 0 {
					t.Fatalf("%d rows pending after a rollback", n)
				}
			})
			t.Run("CrashBetweenCommitAndPublish", func(t *testing.T) {
				db := openDB(t, b)
				// The service committed and "crashed" before any relay ran.
				if err := add(t, db, "a", 5, false); err != nil {
					t.Fatal(err)
				}
				pub := &flaky{fails: 2} // and the broker is briefly down when it comes back
				r, _ := outbox.NewRelay(outbox.RelayConfig{DB: db, Publisher: pub, Poll: 20 * time.Millisecond})
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				go r.Run(ctx)
				testenv.Eventually(t, 10*time.Second, func() bool { return pub.count() == 5 }, "rows never published")
				if n, _ := outbox.Pending(context.Background(), db); n != 0 {
					t.Fatalf("%d rows still pending", n)
				}
				for i, m := range pub.got {
					ev, _ := events.Parse(m.Value)
					if string(m.Key) != "a" || string(ev.Data) != fmt.Sprintf(`{"n":%d}`, i) {
						t.Fatalf("message %d out of order: %s %s", i, m.Key, ev.Data)
					}
				}
			})
			t.Run("FailedPublishLeavesRowsPending", func(t *testing.T) {
				db := openDB(t, b)
				_ = add(t, db, "b", 2, false)
				r, _ := outbox.NewRelay(outbox.RelayConfig{DB: db, Publisher: &flaky{fails: 1}})
				if _, err := r.Flush(context.Background()); err == nil {
					t.Fatal("want the publish error")
				}
				if n, _ := outbox.Pending(context.Background(), db); n != 2 {
					t.Fatalf("%d pending after a failed publish, want 2", n)
				}
			})
			t.Run("EndToEndKafkaPerKeyOrder", func(t *testing.T) {
				db := openDB(t, b)
				brokers := testenv.Kafka(t)
				p, _ := kafkabus.NewProducer(kafkabus.ProducerConfig{Brokers: brokers})
				defer p.Close()
				r, _ := outbox.NewRelay(outbox.RelayConfig{DB: db, Publisher: p, Poll: time.Hour})
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				go r.Run(ctx)
				for _, k := range []string{"x", "y", "z"} {
					_ = add(t, db, k, 4, false)
					r.Notify() // with an hour-long poll, only Notify can make this prompt
				}
				cl, _ := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics("spacecast.test"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
				defer cl.Close()
				last := map[string]int{}
				n := 0
				deadline := time.Now().Add(10 * time.Second)
				for n < 12 && time.Now().Before(deadline) {
					pctx, pcancel := context.WithTimeout(context.Background(), time.Second)
					cl.PollFetches(pctx).EachRecord(func(rec *kgo.Record) {
						ev, _ := events.Parse(rec.Value)
						var i int
						fmt.Sscanf(string(ev.Data), `{"n":%d}`, &i)
						if prev, ok := last[string(rec.Key)]; ok && i != prev+1 {
							t.Errorf("key %s: %d after %d", rec.Key, i, prev)
						}
						last[string(rec.Key)] = i
						n++
					})
					pcancel()
				}
				if n != 12 {
					t.Fatalf("read %d of 12 events", n)
				}
			})
		})
	}
}
