package outbox_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
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

const topic = "spacecast.test"

func migrated(t *testing.T, db *sqldb.DB) *sqldb.DB {
	t.Helper()
	if err := outbox.Migrate(context.Background(), db); err != nil {
		t.Fatal(err)
	}
	return db
}

func openDB(t *testing.T, b testenv.SQLBackend) *sqldb.DB { return migrated(t, testenv.OpenSQL(t, b)) }

// add commits (or, with fail, rolls back) one transaction that changes a state table and adds
// events numbered from..from+n-1 for subject.
func add(t *testing.T, db *sqldb.DB, subject string, from, n int, fail bool) error {
	t.Helper()
	ctx := context.Background()
	return db.InTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO state (subject, n) VALUES ($1, $2)`, subject, from); err != nil {
			return err
		}
		for i := from; i < from+n; i++ {
			ev, err := events.New("spacecast/test", "thing.happened", subject, "env1", map[string]int{"n": i})
			if err != nil {
				return err
			}
			if err := outbox.Add(ctx, tx, topic, ev); err != nil {
				return err
			}
		}
		if fail {
			return errors.New("state change failed")
		}
		return nil
	})
}

func withState(t *testing.T, db *sqldb.DB) *sqldb.DB {
	t.Helper()
	if _, err := db.ExecContext(context.Background(), `CREATE TABLE state (subject TEXT NOT NULL, n BIGINT NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	return db
}

func mustAdd(t *testing.T, db *sqldb.DB, subject string, from, n int) {
	t.Helper()
	if err := add(t, db, subject, from, n, false); err != nil {
		t.Fatal(err)
	}
}

func pending(t *testing.T, db *sqldb.DB) int {
	t.Helper()
	n, err := outbox.Pending(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// recorder is a Publisher test double (the relay is under test, not the broker): while down it
// fails every call; block makes calls wait for their context.
type recorder struct {
	mu       sync.Mutex
	down     bool
	block    bool
	failures int
	got      []kafkabus.Message
}

func (r *recorder) Publish(ctx context.Context, msgs ...kafkabus.Message) error {
	r.mu.Lock()
	if r.block {
		r.mu.Unlock()
		<-ctx.Done()
		return ctx.Err()
	}
	defer r.mu.Unlock()
	if r.down {
		r.failures++
		return errors.New("broker unavailable")
	}
	r.got = append(r.got, msgs...)
	return nil
}

func (r *recorder) set(f func(r *recorder)) { r.mu.Lock(); defer r.mu.Unlock(); f(r) }

func (r *recorder) snapshot() ([]kafkabus.Message, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got), r.failures
}

func (r *recorder) count() int { m, _ := r.snapshot(); return len(m) }

// decoded is one published event: its key, the number in its data and its envelope.
type decoded struct {
	key string
	n   int
	env events.Envelope
}

func decode(t *testing.T, topicGot string, key, value []byte) decoded {
	t.Helper()
	if topicGot != topic {
		t.Errorf("published to %q, want %q", topicGot, topic)
	}
	env, err := events.Parse(value)
	if err != nil {
		t.Fatalf("published value is not an event: %v: %s", err, value)
	}
	var d struct{ N int }
	if err := json.Unmarshal(env.Data, &d); err != nil {
		t.Fatalf("event data %s: %v", env.Data, err)
	}
	if env.Subject != string(key) {
		t.Errorf("key %q but subject %q: the key must be the subject", key, env.Subject)
	}
	return decoded{key: string(key), n: d.N, env: env}
}

// checkSequences checks that, per key, got holds exactly events 0..want[key]-1 in order.
func checkSequences(t *testing.T, got []decoded, want map[string]int) {
	t.Helper()
	per := map[string][]int{}
	for _, d := range got {
		per[d.key] = append(per[d.key], d.n)
	}
	for key, n := range want {
		var exp []int
		for i := 0; i < n; i++ {
			exp = append(exp, i)
		}
		if !slices.Equal(per[key], exp) {
			t.Fatalf("key %s published as %v, want %v", key, per[key], exp)
		}
	}
	if len(per) != len(want) {
		t.Fatalf("published keys %v, want %v", per, want)
	}
}

func decodeAll(t *testing.T, msgs []kafkabus.Message) []decoded {
	var out []decoded
	for _, m := range msgs {
		out = append(out, decode(t, m.Topic, m.Key, m.Value))
	}
	return out
}

func run(t *testing.T, cfg outbox.RelayConfig) (*outbox.Relay, func()) {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = testenv.Logger(t)
	}
	r, err := outbox.NewRelay(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	stop := func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run returned %v on cancel", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("relay did not stop after cancel")
		}
	}
	t.Cleanup(cancel)
	return r, stop
}

func TestOutbox(t *testing.T) {
	for _, b := range testenv.SQLBackends(t) {
		t.Run(b.Name, func(t *testing.T) {
			t.Run("RolledBackTransactionPublishesNothing", func(t *testing.T) {
				db := withState(t, openDB(t, b))
				if err := add(t, db, "a", 0, 3, true); err == nil {
					t.Fatal("want the transaction's error")
				}
				if n := pending(t, db); n != 0 {
					t.Fatalf("%d rows pending after a rollback", n)
				}
				pub := &recorder{}
				r, _ := outbox.NewRelay(outbox.RelayConfig{DB: db, Publisher: pub})
				if n, err := r.Flush(context.Background()); n != 0 || err != nil || pub.count() != 0 {
					t.Fatalf("flush after rollback published %d (%v): %v", n, err, pub.got)
				}
				// A committed transaction afterwards is unaffected.
				mustAdd(t, db, "a", 0, 2)
				if n, err := r.Flush(context.Background()); n != 2 || err != nil {
					t.Fatalf("flush = %d, %v; want 2", n, err)
				}
			})

			t.Run("AddAllKeepsOrderAndRollsBackWithItsTransaction", func(t *testing.T) {
				db := openDB(t, b)
				ctx := context.Background()
				batch := func(subject string, from, n int) []events.Envelope {
					var out []events.Envelope
					for i := from; i < from+n; i++ {
						ev, err := events.New("spacecast/test", "thing.happened", subject, "env1", map[string]int{"n": i})
						if err != nil {
							t.Fatal(err)
						}
						out = append(out, ev)
					}
					return out
				}
				if err := db.InTx(ctx, func(tx *sql.Tx) error {
					if err := outbox.AddAll(ctx, tx, topic, batch("a", 0, 3)); err != nil {
						return err
					}
					return errors.New("state change failed")
				}); err == nil {
					t.Fatal("want the transaction's error")
				}
				if n := pending(t, db); n != 0 {
					t.Fatalf("%d rows pending after a rollback", n)
				}
				if err := db.InTx(ctx, func(tx *sql.Tx) error {
					if err := outbox.AddAll(ctx, tx, topic, nil); err != nil {
						return err
					}
					return outbox.AddAll(ctx, tx, topic, append(batch("a", 0, 250), batch("b", 0, 2)...)) // more than one INSERT
				}); err != nil {
					t.Fatal(err)
				}
				pub := &recorder{}
				r, _ := outbox.NewRelay(outbox.RelayConfig{DB: db, Publisher: pub})
				for published := 0; published < 252; {
					n, err := r.Flush(ctx)
					if err != nil || n == 0 {
						t.Fatalf("flush = %d, %v after %d; want 252 in all", n, err, published)
					}
					published += n
				}
				got := decodeAll(t, pub.got)
				checkSequences(t, got, map[string]int{"a": 250, "b": 2})
				if len(pub.got) != 252 || string(pub.got[0].Key) != "a" || string(pub.got[251].Key) != "b" {
					t.Fatalf("%d published, keys %q ... %q, want the subjects in insertion order", len(pub.got), pub.got[0].Key, pub.got[len(pub.got)-1].Key)
				}
			})

			t.Run("CommittedRowsSurviveACrashAndANewRelayPublishesThem", func(t *testing.T) {
				dsn := testenv.DSN(t, b)
				// Process 1 commits state + events and dies before any relay ran.
				db1, err := sqldb.Open(context.Background(), dsn)
				if err != nil {
					t.Fatal(err)
				}
				withState(t, migrated(t, db1))
				mustAdd(t, db1, "a", 0, 4)
				mustAdd(t, db1, "b", 0, 3)
				mustAdd(t, db1, "a", 4, 2)
				db1.Close()
				// Process 2 opens the same database and starts a relay.
				db2, err := sqldb.Open(context.Background(), dsn)
				if err != nil {
					t.Fatal(err)
				}
				defer db2.Close()
				migrated(t, db2) // idempotent at startup
				if n := pending(t, db2); n != 9 {
					t.Fatalf("%d pending after restart, want 9", n)
				}
				pub := &recorder{}
				_, stop := run(t, outbox.RelayConfig{DB: db2, Publisher: pub, Poll: 20 * time.Millisecond})
				testenv.Eventually(t, 10*time.Second, func() bool { return pub.count() >= 9 }, "rows never published")
				// The relay marks rows after the broker acknowledged them: wait for that rather
				// than stop it between the publish and the mark (then the rows would rightly be
				// published again by the next relay).
				testenv.Eventually(t, 10*time.Second, func() bool { return pending(t, db2) == 0 }, "published rows never marked")
				stop()
				got, _ := pub.snapshot()
				checkSequences(t, decodeAll(t, got), map[string]int{"a": 6, "b": 3})
			})

			t.Run("RelayKilledMidPublishLeavesRowsForTheNext", func(t *testing.T) {
				db := withState(t, openDB(t, b))
				mustAdd(t, db, "a", 0, 5)
				hung := &recorder{block: true}
				r, _ := outbox.NewRelay(outbox.RelayConfig{DB: db, Publisher: hung})
				ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
				_, err := r.Flush(ctx) // the broker never answers; the process is stopped
				cancel()
				if err == nil {
					t.Fatal("flush with an unanswered publish reported success")
				}
				if n := pending(t, db); n != 5 {
					t.Fatalf("%d pending after an unacknowledged publish, want 5", n)
				}
				pub := &recorder{}
				r2, _ := outbox.NewRelay(outbox.RelayConfig{DB: db, Publisher: pub})
				if n, err := r2.Flush(context.Background()); n != 5 || err != nil {
					t.Fatalf("next relay flushed %d, %v", n, err)
				}
				checkSequences(t, decodeAll(t, pub.got), map[string]int{"a": 5})
			})

			t.Run("FailingPublisherKeepsRowsPendingThenPublishesInOrder", func(t *testing.T) {
				db := withState(t, openDB(t, b))
				pub := &recorder{down: true}
				r, stop := run(t, outbox.RelayConfig{DB: db, Publisher: pub, Poll: 10 * time.Millisecond})
				for i := 0; i < 5; i++ {
					mustAdd(t, db, "x", 2*i, 2)
					mustAdd(t, db, "y", i, 1)
					r.Notify()
				}
				testenv.Eventually(t, 10*time.Second, func() bool { _, f := pub.snapshot(); return f >= 3 }, "relay did not retry")
				if n := pending(t, db); n != 15 {
					t.Fatalf("%d pending while the broker is down, want 15", n)
				}
				pub.set(func(r *recorder) { r.down = false })
				testenv.Eventually(t, 10*time.Second, func() bool { return pending(t, db) == 0 }, "rows not published after recovery")
				stop()
				got, _ := pub.snapshot()
				if len(got) != 15 {
					t.Fatalf("published %d messages, want 15 exactly once", len(got))
				}
				checkSequences(t, decodeAll(t, got), map[string]int{"x": 10, "y": 5})
			})

			t.Run("SmallBatchesKeepInsertionOrderAndNeverRepublish", func(t *testing.T) {
				db := withState(t, openDB(t, b))
				for i := 0; i < 10; i++ {
					mustAdd(t, db, "k"+strconv.Itoa(i%3), i/3, 1)
				}
				pub := &recorder{}
				r, _ := outbox.NewRelay(outbox.RelayConfig{DB: db, Publisher: pub, Batch: 3})
				var sizes []int
				for {
					n, err := r.Flush(context.Background())
					if err != nil {
						t.Fatal(err)
					}
					if n == 0 {
						break
					}
					sizes = append(sizes, n)
				}
				if !slices.Equal(sizes, []int{3, 3, 3, 1}) {
					t.Fatalf("batches %v, want [3 3 3 1]", sizes)
				}
				got := decodeAll(t, pub.got)
				for i, d := range got {
					if d.key != "k"+strconv.Itoa(i%3) || d.n != i/3 {
						t.Fatalf("message %d is %s/%d: not insertion order", i, d.key, d.n)
					}
				}
			})

			t.Run("NotifyWakesTheRelay", func(t *testing.T) {
				db := withState(t, openDB(t, b))
				pub := &recorder{}
				// An hour-long poll: only Notify can get the second event out during the test.
				r, stop := run(t, outbox.RelayConfig{DB: db, Publisher: pub, Poll: time.Hour})
				defer stop()
				mustAdd(t, db, "a", 0, 1)
				r.Notify()
				testenv.Eventually(t, 5*time.Second, func() bool { return pub.count() == 1 }, "first event not published")
				// The relay is now idle (or about to be): a new commit needs Notify.
				mustAdd(t, db, "a", 1, 1)
				r.Notify()
				testenv.Eventually(t, 5*time.Second, func() bool { return pub.count() == 2 }, "Notify did not wake the relay")
				for i := 0; i < 10; i++ {
					r.Notify() // never blocks, even when nobody is waiting
				}
			})

			t.Run("EndToEndThroughKafkaInPerKeyOrder", func(t *testing.T) {
				db := withState(t, openDB(t, b))
				brokers := testenv.Kafka(t)
				p, err := kafkabus.NewProducer(kafkabus.ProducerConfig{Brokers: brokers, Logger: testenv.Logger(t)})
				if err != nil {
					t.Fatal(err)
				}
				defer p.Close()
				r, stop := run(t, outbox.RelayConfig{DB: db, Publisher: p, Poll: time.Hour, Batch: 7})
				defer stop()
				want := map[string]int{}
				for round := 0; round < 4; round++ {
					for _, k := range []string{"sp1", "sp2", "sp3", "sp4", "sp5"} {
						mustAdd(t, db, k, want[k], 3)
						want[k] += 3
						r.Notify()
					}
				}
				cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
				if err != nil {
					t.Fatal(err)
				}
				defer cl.Close()
				var got []decoded
				deadline := time.Now().Add(15 * time.Second)
				for len(got) < 60 && time.Now().Before(deadline) {
					pctx, pcancel := context.WithTimeout(context.Background(), time.Second)
					cl.PollFetches(pctx).EachRecord(func(rec *kgo.Record) {
						d := decode(t, rec.Topic, rec.Key, rec.Value)
						if d.env.Type != "thing.happened" || d.env.Environment != "env1" || d.env.Source != "spacecast/test" {
							t.Errorf("event attributes lost: %+v", d.env)
						}
						got = append(got, d)
					})
					pcancel()
				}
				if len(got) != 60 {
					t.Fatalf("read %d of 60 events from Kafka", len(got))
				}
				checkSequences(t, got, want)
				// The relay marks rows sent right after Kafka acknowledged them.
				testenv.Eventually(t, 5*time.Second, func() bool { return pending(t, db) == 0 }, "rows still pending after Kafka acknowledged them")
			})

			if b.Name == "postgres" {
				t.Run("TwoReplicasPublishEachRowOnceInOrder", func(t *testing.T) {
					dsn := testenv.DSN(t, b)
					var dbs []*sqldb.DB
					for i := 0; i < 2; i++ {
						db, err := sqldb.Open(context.Background(), dsn)
						if err != nil {
							t.Fatal(err)
						}
						defer db.Close()
						dbs = append(dbs, migrated(t, db))
					}
					withState(t, dbs[0])
					pub := &recorder{}
					var relays []*outbox.Relay
					for _, db := range dbs {
						r, stop := run(t, outbox.RelayConfig{DB: db, Publisher: pub, Poll: 5 * time.Millisecond, Batch: 4})
						defer stop()
						relays = append(relays, r)
					}
					want := map[string]int{}
					for i := 0; i < 40; i++ {
						k := "k" + strconv.Itoa(i%4)
						mustAdd(t, dbs[i%2], k, want[k], 2)
						want[k] += 2
						relays[i%2].Notify()
					}
					testenv.Eventually(t, 15*time.Second, func() bool { return pending(t, dbs[0]) == 0 }, "rows still pending")
					got, _ := pub.snapshot()
					if len(got) != 80 {
						t.Fatalf("two relays published %d messages for 80 rows", len(got))
					}
					checkSequences(t, decodeAll(t, got), want)
				})
			}
		})
	}
}

func TestNewRelayRequiresDBAndPublisher(t *testing.T) {
	db := testenv.SQLite(t)
	for name, cfg := range map[string]outbox.RelayConfig{
		"no db":        {Publisher: &recorder{}},
		"no publisher": {DB: db},
	} {
		if _, err := outbox.NewRelay(cfg); err == nil {
			t.Errorf("%s: NewRelay accepted it", name)
		}
	}
}
