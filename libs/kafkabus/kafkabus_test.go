package kafkabus_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/spacecast/spacecast/libs/kafkabus"
	"github.com/spacecast/spacecast/libs/testenv"
)

// runBusSuite is the contract every bus deployment must meet. newBrokers returns the bootstrap
// addresses of a fresh cluster; each subtest uses its own topics and groups, so a shared real
// cluster works as well as one embedded cluster per test.
func runBusSuite(t *testing.T, newBrokers func(t *testing.T) []string) {
	tests := []struct {
		name string
		fn   func(t *testing.T, brokers []string)
	}{
		{"PublishThenConsumeGetsEverything", testPublishConsumeAll},
		{"PerKeyOrderAcrossPartitions", testPerKeyOrder},
		{"FailingHandlerRetriedWithBackoffNotSkippedNotReordered", testRetryNotSkipped},
		{"OffsetsCommittedOnlyAfterSuccess", testCommitAfterSuccess},
		{"IndependentKgoClientReadsProducerRecords", testIndependentClient},
		{"RunReturnsOnCancelWhileHandlerFails", testCancelWhileFailing},
		{"BatchesKeepPerKeyOrderAndGetEverythingOnce", testBatchOrder},
		{"FailingBatchRetriedWholeNotSkipped", testBatchRetryNotSkipped},
		{"BatchOffsetsCommittedOnlyAfterSuccess", testBatchCommitAfterSuccess},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, newBrokers(t)) })
	}
}

func TestBusEmbeddedKafka(t *testing.T) {
	runBusSuite(t, func(t *testing.T) []string { return testenv.Kafka(t) })
}

// uniq returns a topic or group name unique to this test (a shared real cluster keeps state).
func uniq(t *testing.T, what string) string {
	return fmt.Sprintf("%s-%d", what, time.Now().UnixNano())
}

func newProducer(t *testing.T, brokers []string) *kafkabus.Producer {
	t.Helper()
	p, err := kafkabus.NewProducer(kafkabus.ProducerConfig{Brokers: brokers, Logger: testenv.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// publishSeq publishes n messages numbered 0..n-1 with key "k<i%keys>", in batches of batch.
func publishSeq(t *testing.T, p *kafkabus.Producer, topic string, n, keys, batch int) {
	t.Helper()
	for start := 0; start < n; start += batch {
		var msgs []kafkabus.Message
		for i := start; i < min(n, start+batch); i++ {
			msgs = append(msgs, kafkabus.Message{Topic: topic, Key: []byte("k" + strconv.Itoa(i%keys)), Value: []byte(strconv.Itoa(i))})
		}
		if err := p.Publish(context.Background(), msgs...); err != nil {
			t.Fatal(err)
		}
	}
}

func val(t *testing.T, m kafkabus.Message) int {
	v, err := strconv.Atoi(string(m.Value))
	if err != nil {
		t.Errorf("unexpected value %q", m.Value)
	}
	return v
}

type consumerOpts struct {
	minBackoff, maxBackoff time.Duration
}

// consume runs a consumer in group on topic until done returns true (or 30 s pass), then
// cancels it and waits for Run to return.
func consume(t *testing.T, brokers []string, group, topic string, o consumerOpts, h kafkabus.Handler, done func() bool) {
	t.Helper()
	consumeWith(t, brokers, group, topic, o, func(ctx context.Context, c *kafkabus.Consumer) error { return c.Run(ctx, h) }, done)
}

// consumeBatches is consume with RunBatch.
func consumeBatches(t *testing.T, brokers []string, group, topic string, o consumerOpts, maxBatch int, h kafkabus.BatchHandler, done func() bool) {
	t.Helper()
	consumeWith(t, brokers, group, topic, o, func(ctx context.Context, c *kafkabus.Consumer) error { return c.RunBatch(ctx, maxBatch, h) }, done)
}

func consumeWith(t *testing.T, brokers []string, group, topic string, o consumerOpts, run func(context.Context, *kafkabus.Consumer) error, done func() bool) {
	t.Helper()
	if o.minBackoff == 0 {
		o.minBackoff, o.maxBackoff = 10*time.Millisecond, 50*time.Millisecond
	}
	c, err := kafkabus.NewConsumer(kafkabus.ConsumerConfig{Brokers: brokers, GroupID: group, Topics: []string{topic},
		Logger: testenv.Logger(t), MinBackoff: o.minBackoff, MaxBackoff: o.maxBackoff, CommitInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	exited := make(chan error, 1)
	go func() { exited <- run(ctx, c) }()
	defer func() {
		cancel()
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("Run returned %v after cancel, want nil", err)
			}
		case <-time.After(15 * time.Second):
			t.Fatal("Run did not return after its context was canceled")
		}
	}()
	deadline := time.Now().Add(30 * time.Second)
	for !done() {
		select {
		case err := <-exited:
			t.Fatalf("Run returned early: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("consumer did not reach the expected state within 30 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func testPublishConsumeAll(t *testing.T, brokers []string) {
	const n = 300
	topic := uniq(t, "all")
	p := newProducer(t, brokers)
	before := time.Now().Add(-time.Minute)
	publishSeq(t, p, topic, n, 40, 75)
	var mu sync.Mutex
	seen := map[int]int{}
	partitions := map[int]bool{}
	consume(t, brokers, uniq(t, "g"), topic, consumerOpts{}, func(_ context.Context, m kafkabus.Message) error {
		v := val(t, m)
		mu.Lock()
		defer mu.Unlock()
		if m.Topic != topic || string(m.Key) != "k"+strconv.Itoa(v%40) || m.Offset < 0 || m.Time.Before(before) {
			t.Errorf("message %d arrived with wrong metadata: %+v", v, m)
		}
		seen[v]++
		partitions[m.Partition] = true
		return nil
	}, func() bool { mu.Lock(); defer mu.Unlock(); return len(seen) == n })
	for v := 0; v < n; v++ {
		if seen[v] != 1 {
			t.Errorf("message %d handled %d times", v, seen[v])
		}
	}
	if len(partitions) < 2 {
		t.Fatalf("40 keys all landed in partitions %v: the test needs a multi-partition topic", partitions)
	}
}

func testPerKeyOrder(t *testing.T, brokers []string) {
	const n, keys = 2000, 50
	topic := uniq(t, "order")
	p := newProducer(t, brokers)
	publishSeq(t, p, topic, n, keys, 100)
	var mu sync.Mutex
	got := map[string][]int{}
	keyPart := map[string]map[int]bool{}
	total := 0
	consume(t, brokers, uniq(t, "g"), topic, consumerOpts{}, func(_ context.Context, m kafkabus.Message) error {
		v := val(t, m)
		mu.Lock()
		defer mu.Unlock()
		k := string(m.Key)
		got[k] = append(got[k], v)
		if keyPart[k] == nil {
			keyPart[k] = map[int]bool{}
		}
		keyPart[k][m.Partition] = true
		total++
		return nil
	}, func() bool { mu.Lock(); defer mu.Unlock(); return total >= n })
	parts := map[int]bool{}
	for k := 0; k < keys; k++ {
		key := "k" + strconv.Itoa(k)
		var want []int
		for i := k; i < n; i += keys {
			want = append(want, i)
		}
		if !slices.Equal(got[key], want) {
			t.Fatalf("key %s handled in order %v, want %v", key, got[key], want)
		}
		if len(keyPart[key]) != 1 {
			t.Fatalf("key %s spread over partitions %v", key, keyPart[key])
		}
		for p := range keyPart[key] {
			parts[p] = true
		}
	}
	if len(parts) < 2 {
		t.Fatalf("all keys in partitions %v: order across partitions was not exercised", parts)
	}
}

func testRetryNotSkipped(t *testing.T, brokers []string) {
	const n, fails = 60, 4
	const minB, maxB = 20 * time.Millisecond, 80 * time.Millisecond
	topic := uniq(t, "retry")
	p := newProducer(t, brokers)
	publishSeq(t, p, topic, n, 3, n)
	const poison = 31 // key k1, in the middle of its partition
	var mu sync.Mutex
	var attempts []time.Time
	handled := map[int][]int64{} // partition -> offsets handled successfully, in order
	byValue := map[int]int{}
	total := 0
	consume(t, brokers, uniq(t, "g"), topic, consumerOpts{minBackoff: minB, maxBackoff: maxB}, func(_ context.Context, m kafkabus.Message) error {
		v := val(t, m)
		mu.Lock()
		defer mu.Unlock()
		if v == poison {
			attempts = append(attempts, time.Now())
			if len(attempts) <= fails {
				return errors.New("transient failure")
			}
		}
		handled[m.Partition] = append(handled[m.Partition], m.Offset)
		byValue[v]++
		total++
		return nil
	}, func() bool { mu.Lock(); defer mu.Unlock(); return total >= n })

	if len(attempts) != fails+1 {
		t.Fatalf("poison message attempted %d times, want %d failures then a success", len(attempts), fails+1)
	}
	backoff := minB
	for i := 1; i < len(attempts); i++ {
		if gap := attempts[i].Sub(attempts[i-1]); gap < backoff {
			t.Errorf("retry %d came after %v, want a backoff of at least %v", i, gap, backoff)
		}
		backoff = min(2*backoff, maxB)
	}
	for v := 0; v < n; v++ {
		if byValue[v] != 1 {
			t.Errorf("message %d handled %d times", v, byValue[v])
		}
	}
	// Within each partition, successes are exactly the offsets in order: nothing after the
	// poison message was handled before it succeeded, and nothing was skipped.
	for part, offs := range handled {
		for i, o := range offs {
			if o != offs[0]+int64(i) {
				t.Fatalf("partition %d handled offsets %v: skipped or reordered", part, offs)
			}
		}
	}
}

func testCommitAfterSuccess(t *testing.T, brokers []string) {
	const n, failAt = 10, 5
	topic, group := uniq(t, "commit"), uniq(t, "g")
	p := newProducer(t, brokers)
	publishSeq(t, p, topic, n, 1, n) // one key: one partition, a total order
	var mu sync.Mutex
	first := map[int]int{}
	failed := 0
	// First consumer: 0..4 succeed, 5 fails for good; stop it while 5 is still failing.
	consume(t, brokers, group, topic, consumerOpts{}, func(_ context.Context, m kafkabus.Message) error {
		v := val(t, m)
		mu.Lock()
		defer mu.Unlock()
		if v >= failAt {
			if v > failAt {
				t.Errorf("message %d handled while %d had not succeeded", v, failAt)
			}
			failed++
			return errors.New("downstream is down")
		}
		first[v]++
		return nil
	}, func() bool { mu.Lock(); defer mu.Unlock(); return failed >= 3 })
	for v := 0; v < failAt; v++ {
		if first[v] != 1 {
			t.Fatalf("first consumer handled message %d %d times", v, first[v])
		}
	}
	// A new consumer in the same group (the "restarted process") gets 5 again, then the rest;
	// the successes before it were committed and do not come back.
	var again []int
	consume(t, brokers, group, topic, consumerOpts{}, func(_ context.Context, m kafkabus.Message) error {
		mu.Lock()
		defer mu.Unlock()
		again = append(again, val(t, m))
		return nil
	}, func() bool { mu.Lock(); defer mu.Unlock(); return slices.Contains(again, n-1) })
	if want := []int{5, 6, 7, 8, 9}; !slices.Equal(again, want) {
		t.Fatalf("after restart the group handled %v, want %v (failed message redelivered, earlier ones not)", again, want)
	}
}

// testIndependentClient reads the producer's records with franz-go, a different Kafka client,
// and checks the partition of each key is the Java client's murmur2 choice.
func testIndependentClient(t *testing.T, brokers []string) {
	const n, keys = 60, 12
	topic := uniq(t, "indep")
	p := newProducer(t, brokers)
	publishSeq(t, p, topic, n, keys, 20)
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	parts := partitionCount(t, cl, topic)
	javaPartitioner := kgo.StickyKeyPartitioner(nil).ForTopic(topic)
	got := map[string][]int{}
	count := 0
	deadline := time.Now().Add(15 * time.Second)
	for count < n && time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		fs := cl.PollFetches(ctx)
		cancel()
		fs.EachError(func(topic string, p int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("fetch %s/%d: %v", topic, p, err)
			}
		})
		fs.EachRecord(func(r *kgo.Record) {
			v, _ := strconv.Atoi(string(r.Value))
			got[string(r.Key)] = append(got[string(r.Key)], v)
			count++
			if want := javaPartitioner.Partition(&kgo.Record{Key: r.Key}, parts); int(r.Partition) != want {
				t.Errorf("key %s in partition %d, the Java murmur2 partitioner picks %d", r.Key, r.Partition, want)
			}
		})
	}
	if count != n {
		t.Fatalf("franz-go read %d of %d records", count, n)
	}
	for k := 0; k < keys; k++ {
		var want []int
		for i := k; i < n; i += keys {
			want = append(want, i)
		}
		if key := "k" + strconv.Itoa(k); !slices.Equal(got[key], want) {
			t.Fatalf("franz-go read key %s as %v, want %v", key, got[key], want)
		}
	}
}

func partitionCount(t *testing.T, cl *kgo.Client, topic string) int {
	t.Helper()
	req := kmsg.NewPtrMetadataRequest()
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = kmsg.StringPtr(topic)
	req.Topics = append(req.Topics, rt)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := req.RequestWith(ctx, cl)
	if err != nil || len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) == 0 {
		t.Fatalf("metadata for %s: %v %+v", topic, err, resp)
	}
	return len(resp.Topics[0].Partitions)
}

func testCancelWhileFailing(t *testing.T, brokers []string) {
	topic := uniq(t, "cancel")
	publishSeq(t, newProducer(t, brokers), topic, 1, 1, 1)
	var mu sync.Mutex
	attempts := 0
	// Long backoff: Run must still return promptly when canceled mid-sleep (consume fails the
	// test if Run has not returned 15 s after cancel, and the backoff here is an hour).
	consume(t, brokers, uniq(t, "g"), topic, consumerOpts{minBackoff: time.Hour, maxBackoff: time.Hour}, func(context.Context, kafkabus.Message) error {
		mu.Lock()
		defer mu.Unlock()
		attempts++
		return errors.New("never works")
	}, func() bool { mu.Lock(); defer mu.Unlock(); return attempts >= 1 })
	if attempts != 1 {
		t.Fatalf("%d attempts within an hour-long backoff", attempts)
	}
}

func testBatchOrder(t *testing.T, brokers []string) {
	const n, keys, maxBatch = 2000, 50, 64
	topic := uniq(t, "border")
	publishSeq(t, newProducer(t, brokers), topic, n, keys, 100)
	var mu sync.Mutex
	got := map[string][]int{}
	total, largest := 0, 0
	consumeBatches(t, brokers, uniq(t, "g"), topic, consumerOpts{}, maxBatch, func(_ context.Context, ms []kafkabus.Message) error {
		mu.Lock()
		defer mu.Unlock()
		if len(ms) == 0 || len(ms) > maxBatch {
			t.Errorf("batch of %d messages, want 1..%d", len(ms), maxBatch)
		}
		largest = max(largest, len(ms))
		for _, m := range ms {
			got[string(m.Key)] = append(got[string(m.Key)], val(t, m))
			total++
		}
		return nil
	}, func() bool { mu.Lock(); defer mu.Unlock(); return total >= n })
	for k := 0; k < keys; k++ {
		var want []int
		for i := k; i < n; i += keys {
			want = append(want, i)
		}
		if key := "k" + strconv.Itoa(k); !slices.Equal(got[key], want) {
			t.Fatalf("key %s handled as %v, want %v", key, got[key], want)
		}
	}
	// Everything was on the topic before the consumer started: batches must have formed.
	if largest < 2 {
		t.Fatalf("largest batch had %d message(s): the consumer does not batch", largest)
	}
}

func testBatchRetryNotSkipped(t *testing.T, brokers []string) {
	const n, fails, poison = 60, 3, 31
	const minB, maxB = 20 * time.Millisecond, 80 * time.Millisecond
	topic := uniq(t, "bretry")
	publishSeq(t, newProducer(t, brokers), topic, n, 3, n)
	var mu sync.Mutex
	var attempts []time.Time
	var failedBatch []int64
	handled := map[int][]int64{}
	byValue := map[int]int{}
	total := 0
	consumeBatches(t, brokers, uniq(t, "g"), topic, consumerOpts{minBackoff: minB, maxBackoff: maxB}, 8, func(_ context.Context, ms []kafkabus.Message) error {
		mu.Lock()
		defer mu.Unlock()
		for _, m := range ms {
			if val(t, m) == poison {
				attempts = append(attempts, time.Now())
				if len(attempts) <= fails {
					if failedBatch != nil && !slices.Equal(failedBatch, batchOffsets(ms)) {
						t.Errorf("failed batch came back as offsets %v, want the same batch %v", batchOffsets(ms), failedBatch)
					}
					failedBatch = batchOffsets(ms)
					return errors.New("transient failure") // all or nothing: record none of ms
				}
			}
		}
		for _, m := range ms {
			handled[m.Partition] = append(handled[m.Partition], m.Offset)
			byValue[val(t, m)]++
			total++
		}
		return nil
	}, func() bool { mu.Lock(); defer mu.Unlock(); return total >= n })
	if len(attempts) != fails+1 {
		t.Fatalf("batch with the poison message attempted %d times, want %d failures then a success", len(attempts), fails+1)
	}
	backoff := minB
	for i := 1; i < len(attempts); i++ {
		if gap := attempts[i].Sub(attempts[i-1]); gap < backoff {
			t.Errorf("retry %d came after %v, want a backoff of at least %v", i, gap, backoff)
		}
		backoff = min(2*backoff, maxB)
	}
	for v := 0; v < n; v++ {
		if byValue[v] != 1 {
			t.Errorf("message %d handled %d times", v, byValue[v])
		}
	}
	for part, offs := range handled {
		for i, o := range offs {
			if o != offs[0]+int64(i) {
				t.Fatalf("partition %d handled offsets %v: skipped or reordered", part, offs)
			}
		}
	}
}

func batchOffsets(ms []kafkabus.Message) []int64 {
	out := make([]int64, len(ms))
	for i, m := range ms {
		out[i] = m.Offset
	}
	return out
}

func testBatchCommitAfterSuccess(t *testing.T, brokers []string) {
	const n, failFrom = 10, 5
	topic, group := uniq(t, "bcommit"), uniq(t, "g")
	publishSeq(t, newProducer(t, brokers), topic, n, 1, n) // one partition: a total order
	var mu sync.Mutex
	succeeded := -1 // highest value in a batch that succeeded
	failed := 0
	// Batches of at most 3: every batch holding a value >= 5 fails for good.
	consumeBatches(t, brokers, group, topic, consumerOpts{}, 3, func(_ context.Context, ms []kafkabus.Message) error {
		mu.Lock()
		defer mu.Unlock()
		last := val(t, ms[len(ms)-1])
		if last >= failFrom {
			failed++
			return errors.New("downstream is down")
		}
		if first := val(t, ms[0]); first != succeeded+1 {
			t.Errorf("batch starts at %d after %d succeeded", first, succeeded)
		}
		succeeded = last
		return nil
	}, func() bool { mu.Lock(); defer mu.Unlock(); return failed >= 3 })
	if succeeded < 0 || succeeded >= failFrom {
		t.Fatalf("first consumer's successes end at %d", succeeded)
	}
	// The restarted group starts right after the last successful batch: it was committed,
	// and the failing batch was not.
	var again []int
	consumeBatches(t, brokers, group, topic, consumerOpts{}, 3, func(_ context.Context, ms []kafkabus.Message) error {
		mu.Lock()
		defer mu.Unlock()
		for _, m := range ms {
			again = append(again, val(t, m))
		}
		return nil
	}, func() bool { mu.Lock(); defer mu.Unlock(); return slices.Contains(again, n-1) })
	var want []int
	for v := succeeded + 1; v < n; v++ {
		want = append(want, v)
	}
	if !slices.Equal(again, want) {
		t.Fatalf("after restart the group handled %v, want %v", again, want)
	}
}

func TestConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		err  func() error
	}{
		{"producer without brokers", func() error { _, err := kafkabus.NewProducer(kafkabus.ProducerConfig{}); return err }},
		{"consumer without brokers", func() error {
			_, err := kafkabus.NewConsumer(kafkabus.ConsumerConfig{GroupID: "g", Topics: []string{"t"}})
			return err
		}},
		{"consumer without group", func() error {
			_, err := kafkabus.NewConsumer(kafkabus.ConsumerConfig{Brokers: []string{"127.0.0.1:1"}, Topics: []string{"t"}})
			return err
		}},
		{"consumer without topics", func() error {
			_, err := kafkabus.NewConsumer(kafkabus.ConsumerConfig{Brokers: []string{"127.0.0.1:1"}, GroupID: "g"})
			return err
		}},
		{"message without topic", func() error {
			p, err := kafkabus.NewProducer(kafkabus.ProducerConfig{Brokers: []string{"127.0.0.1:1"}})
			if err != nil {
				return err
			}
			defer p.Close()
			return p.Publish(context.Background(), kafkabus.Message{Value: []byte("x")})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.err(); !errors.Is(err, kafkabus.ErrConfig) {
				t.Fatalf("err = %v, want ErrConfig", err)
			}
		})
	}
}

func TestPublishNothingIsNoOp(t *testing.T) {
	// No broker listens on port 1: publishing nothing must not need one.
	p, err := kafkabus.NewProducer(kafkabus.ProducerConfig{Brokers: []string{"127.0.0.1:1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := p.Publish(context.Background()); err != nil {
		t.Fatalf("empty publish: %v", err)
	}
}
