package embedded_test

import (
	"context"
	"errors"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/spacecast/spacecast/libs/embedded"
	"github.com/spacecast/spacecast/libs/events"
	"github.com/spacecast/spacecast/libs/redisconn"
)

func startKafka(t *testing.T, o embedded.KafkaOptions) *embedded.Kafka {
	t.Helper()
	k, err := embedded.StartKafka(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(k.Close) // registered before the clients', so it runs after them (Close is idempotent)
	return k
}

func client(t *testing.T, brokers []string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(brokers...), kgo.AllowAutoTopicCreation()}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

func produce(t *testing.T, cl *kgo.Client, topic string, values ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var recs []*kgo.Record
	for _, v := range values {
		recs = append(recs, &kgo.Record{Topic: topic, Key: []byte("k"), Value: []byte(v)})
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

func readAll(t *testing.T, brokers []string, topic string, n int) []string {
	t.Helper()
	cl := client(t, brokers, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	var got []string
	deadline := time.Now().Add(15 * time.Second)
	for len(got) < n && time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
		cancel()
	}
	return got
}

func TestKafkaOnFreePort(t *testing.T) {
	k := startKafka(t, embedded.KafkaOptions{Addr: "127.0.0.1:0"})
	brokers := k.Brokers()
	if len(brokers) != 1 {
		t.Fatalf("brokers %v", brokers)
	}
	host, port, err := net.SplitHostPort(brokers[0])
	if err != nil || port == "0" || !net.ParseIP(host).IsLoopback() {
		t.Fatalf("broker address %q: want a real port on loopback", brokers[0])
	}
	cl := client(t, brokers)
	// Every spacecast topic exists up front with 3 partitions; others are auto-created.
	req := kmsg.NewPtrMetadataRequest()
	for _, name := range events.AllTopics {
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr(name)
		req.Topics = append(req.Topics, rt)
	}
	req.AllowAutoTopicCreation = false
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	for _, rt := range resp.Topics {
		if rt.ErrorCode != 0 || len(rt.Partitions) != 3 {
			t.Errorf("topic %s: error code %d, %d partitions; want seeded with 3", *rt.Topic, rt.ErrorCode, len(rt.Partitions))
		}
	}
	if len(resp.Topics) != len(events.AllTopics) {
		t.Fatalf("metadata for %d topics, want %d", len(resp.Topics), len(events.AllTopics))
	}
	produce(t, cl, events.TopicSpaces, "a", "b", "c")
	produce(t, cl, "auto.created", "x")
	if got := readAll(t, brokers, events.TopicSpaces, 3); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Fatalf("read %v", got)
	}
	if got := readAll(t, brokers, "auto.created", 1); !slices.Equal(got, []string{"x"}) {
		t.Fatalf("auto-created topic: %v", got)
	}
	// Two clusters on port 0 do not collide.
	k2 := startKafka(t, embedded.KafkaOptions{Addr: "127.0.0.1:0", Partitions: 1})
	if k2.Brokers()[0] == brokers[0] {
		t.Fatal("second cluster got the same address")
	}
}

func TestKafkaDataDirSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	k := startKafka(t, embedded.KafkaOptions{Addr: "127.0.0.1:0", DataDir: dir})
	cl, err := kgo.NewClient(kgo.SeedBrokers(k.Brokers()...), kgo.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	produce(t, cl, events.TopicRTC, "one", "two")
	produce(t, cl, "custom.topic", "three")
	// A consumer group commits its position.
	group, err := kgo.NewClient(kgo.SeedBrokers(k.Brokers()...), kgo.ConsumerGroup("g1"), kgo.ConsumeTopics(events.TopicRTC),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DisableAutoCommit())
	if err != nil {
		t.Fatal(err)
	}
	var first []string
	deadline := time.Now().Add(15 * time.Second)
	for len(first) < 2 && time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		group.PollFetches(ctx).EachRecord(func(r *kgo.Record) { first = append(first, string(r.Value)) })
		cancel()
	}
	if len(first) != 2 {
		t.Fatalf("group read %v", first)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	if err := group.CommitUncommittedOffsets(ctx); err != nil {
		t.Fatal(err)
	}
	cancel()
	group.Close()
	cl.Close()
	k.Close()

	k2 := startKafka(t, embedded.KafkaOptions{Addr: "127.0.0.1:0", DataDir: dir})
	if got := readAll(t, k2.Brokers(), events.TopicRTC, 2); !slices.Equal(got, []string{"one", "two"}) {
		t.Fatalf("after restart %s holds %v, want [one two]", events.TopicRTC, got)
	}
	if got := readAll(t, k2.Brokers(), "custom.topic", 1); !slices.Equal(got, []string{"three"}) {
		t.Fatalf("after restart custom.topic holds %v", got)
	}
	// The group's committed offsets survived too: it resumes after "two".
	cl2 := client(t, k2.Brokers())
	produce(t, cl2, events.TopicRTC, "four")
	g2 := client(t, k2.Brokers(), kgo.ConsumerGroup("g1"), kgo.ConsumeTopics(events.TopicRTC), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	var resumed []string
	deadline = time.Now().Add(15 * time.Second)
	for len(resumed) < 1 && time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		g2.PollFetches(ctx).EachRecord(func(r *kgo.Record) { resumed = append(resumed, string(r.Value)) })
		cancel()
	}
	if !slices.Equal(resumed, []string{"four"}) {
		t.Fatalf("group resumed with %v, want [four]", resumed)
	}
}

func TestKafkaBadAddr(t *testing.T) {
	for _, addr := range []string{"nonsense", "127.0.0.1:http", "127.0.0.1:-1x"} {
		if k, err := embedded.StartKafka(embedded.KafkaOptions{Addr: addr}); err == nil {
			k.Close()
			t.Errorf("StartKafka(%q) succeeded", addr)
		}
	}
}

func TestRedisTTLFollowsWallTime(t *testing.T) {
	r, err := embedded.StartRedis("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if !strings.HasPrefix(r.URL(), "redis://127.0.0.1:") || !strings.Contains(r.URL(), r.Addr()) {
		t.Fatalf("URL %q, Addr %q", r.URL(), r.Addr())
	}
	ctx := context.Background()
	c, err := redisconn.Open(ctx, r.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	if err := c.Set(ctx, "short", "v", 300*time.Millisecond).Err(); err != nil {
		t.Fatal(err)
	}
	if err := c.Set(ctx, "long", "v", time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
	if v, err := c.Get(ctx, "short").Result(); err != nil || v != "v" {
		t.Fatalf("key gone at once: %q %v", v, err)
	}
	// Poll: the key must go by itself, without anyone fast-forwarding the server's clock.
	var gone time.Duration
	for gone == 0 {
		_, err := c.Get(ctx, "short").Result()
		switch {
		case errors.Is(err, redis.Nil):
			gone = time.Since(start)
		case err != nil:
			t.Fatal(err)
		case time.Since(start) > 2*time.Second:
			t.Fatal("a 300 ms TTL key still exists after 2 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The server's clock advances in 100 ms ticks, so a key may go up to one tick early.
	if gone < 200*time.Millisecond {
		t.Fatalf("a 300 ms TTL key expired after %v", gone)
	}
	t.Logf("300 ms TTL key gone after %v", gone)
	if err := c.Get(ctx, "long").Err(); err != nil {
		t.Fatalf("an hour-long key expired: %v", err)
	}
	// TIME follows wall time too (scripts and timers use it).
	srv, err := c.Time(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(srv); d < -time.Second || d > time.Second {
		t.Fatalf("server TIME %v is %v off wall time", srv, d)
	}
	r.Close()
	r.Close() // idempotent
	pctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	if err := c.Ping(pctx).Err(); err == nil {
		t.Fatal("server still answers after Close")
	}
}
