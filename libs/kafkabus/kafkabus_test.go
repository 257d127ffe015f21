package kafkabus_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/spacecast/spacecast/libs/kafkabus"
	"github.com/spacecast/spacecast/libs/testenv"
)

// busSuite is the shared suite every bus implementation runs; newBrokers gives a fresh broker.
func busSuite(t *testing.T, newBrokers func(t *testing.T) []string) {
	t.Run("PerKeyOrder", func(t *testing.T) { testPerKeyOrder(t, newBrokers(t)) })
	t.Run("FailingHandlerIsRetriedNotSkipped", func(t *testing.T) { testRetryNotSkipped(t, newBrokers(t)) })
	t.Run("CommitOnlyAfterSuccess", func(t *testing.T) { testCommitAfterSuccess(t, newBrokers(t)) })
	t.Run("IndependentClientReads", func(t *testing.T) { testIndependentClient(t, newBrokers(t)) })
}

func TestEmbeddedKafka(t *testing.T) {
	busSuite(t, func(t *testing.T) []string { return testenv.Kafka(t) })
}

func producer(t *testing.T, brokers []string) *kafkabus.Producer {
	p, err := kafkabus.NewProducer(kafkabus.ProducerConfig{Brokers: brokers})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func publish(t *testing.T, p *kafkabus.Producer, topic string, n, keys int) {
	t.Helper()
	var msgs []kafkabus.Message
	for i := 0; i < n; i++ {
		msgs = append(msgs, kafkabus.Message{Topic: topic, Key: []byte("k" + strconv.Itoa(i%keys)), Value: []byte(strconv.Itoa(i))})
	}
	if err := p.Publish(context.Background(), msgs...); err != nil {
		t.Fatal(err)
	}
}

// consume runs a consumer until stop returns true or timeout.
func consume(t *testing.T, brokers []string, group, topic string, h kafkabus.Handler, stop func() bool) {
	t.Helper()
	c, err := kafkabus.NewConsumer(kafkabus.ConsumerConfig{Brokers: brokers, GroupID: group, Topics: []string{topic},
		MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond, CommitInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = c.Run(ctx, h) }()
	testenv.Eventually(t, 30*time.Second, stop, "consumer did not finish")
	time.Sleep(100 * time.Millisecond) // let the last commit flush
	cancel()
	<-done
}

func testPerKeyOrder(t *testing.T, brokers []string) {
	p := producer(t, brokers)
	publish(t, p, "order", 600, 7)
	var mu sync.Mutex
	last := map[string]int{}
	n := 0
	consume(t, brokers, "g-order", "order", func(_ context.Context, m kafkabus.Message) error {
		v, _ := strconv.Atoi(string(m.Value))
		mu.Lock()
		defer mu.Unlock()
		if prev, ok := last[string(m.Key)]; ok && v <= prev {
			t.Errorf("key %s: %d after %d", m.Key, v, prev)
		}
		last[string(m.Key)] = v
		n++
		return nil
	}, func() bool { mu.Lock(); defer mu.Unlock(); return n >= 600 })
}

func testRetryNotSkipped(t *testing.T, brokers []string) {
	p := producer(t, brokers)
	// One key: one partition, so order is total.
	publish(t, p, "retry", 20, 1)
	var mu sync.Mutex
	var seen []int
	failures := 0
	consume(t, brokers, "g-retry", "retry", func(_ context.Context, m kafkabus.Message) error {
		v, _ := strconv.Atoi(string(m.Value))
		mu.Lock()
		defer mu.Unlock()
		if v == 5 && failures < 4 {
			failures++
			return errors.New("transient")
		}
		seen = append(seen, v)
		return nil
	}, func() bool { mu.Lock(); defer mu.Unlock(); return len(seen) >= 20 })
	if failures != 4 {
		t.Fatalf("handler failed %d times, want 4 retries", failures)
	}
	for i, v := range seen {
		if v != i {
			t.Fatalf("handled %v: a message was skipped or reordered", seen)
		}
	}
}

func testCommitAfterSuccess(t *testing.T, brokers []string) {
	p := producer(t, brokers)
	publish(t, p, "commit", 10, 1)
	var mu sync.Mutex
	handled := map[int]int{}
	// First consumer: handles 0..4, then message 5 fails forever; stop it.
	consume(t, brokers, "g-commit", "commit", func(_ context.Context, m kafkabus.Message) error {
		v, _ := strconv.Atoi(string(m.Value))
		mu.Lock()
		defer mu.Unlock()
		if v >= 5 {
			handled[-1]++ // failing attempts
			return errors.New("down")
		}
		handled[v]++
		return nil
	}, func() bool { mu.Lock(); defer mu.Unlock(); return handled[-1] >= 3 })
	// Second consumer in the same group: message 5 comes again; 0..4 were committed.
	var again []int
	consume(t, brokers, "g-commit", "commit", func(_ context.Context, m kafkabus.Message) error {
		v, _ := strconv.Atoi(string(m.Value))
		mu.Lock()
		defer mu.Unlock()
		again = append(again, v)
		return nil
	}, func() bool { mu.Lock(); defer mu.Unlock(); return len(again) > 0 && again[len(again)-1] == 9 })
	if again[0] != 5 {
		t.Fatalf("after restart the group resumed at %v, want the failed message 5 first", again)
	}
	for v := 0; v < 5; v++ {
		if handled[v] != 1 {
			t.Fatalf("message %d handled %d times by the first consumer", v, handled[v])
		}
	}
}

func testIndependentClient(t *testing.T, brokers []string) {
	p := producer(t, brokers)
	publish(t, p, "indep", 5, 1)
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics("indep"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var got []string
	deadline := time.Now().Add(10 * time.Second)
	for len(got) < 5 && time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) { got = append(got, string(r.Key)+"="+string(r.Value)) })
		cancel()
	}
	if fmt.Sprint(got) != "[k0=0 k0=1 k0=2 k0=3 k0=4]" {
		t.Fatalf("franz-go read %v", got)
	}
}

func TestConfigErrors(t *testing.T) {
	if _, err := kafkabus.NewProducer(kafkabus.ProducerConfig{}); !errors.Is(err, kafkabus.ErrConfig) {
		t.Fatalf("producer without brokers: %v", err)
	}
	if _, err := kafkabus.NewConsumer(kafkabus.ConsumerConfig{Brokers: []string{"x:1"}}); !errors.Is(err, kafkabus.ErrConfig) {
		t.Fatalf("consumer without group: %v", err)
	}
}
