// Package embedded starts the in-process servers used by `spacecast dev` and by tests:
// a Kafka broker speaking the real wire protocol (franz-go kfake) and a Redis server
// (miniredis) whose clock follows wall time.
package embedded

import (
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/spacecast/spacecast/libs/events"
)

// Kafka is an embedded single-broker Kafka cluster.
type Kafka struct {
	cluster *kfake.Cluster
}

// KafkaOptions configure StartKafka.
type KafkaOptions struct {
	Addr       string // host:port to listen on; port 0 picks a free one (host must be loopback or empty)
	DataDir    string // when set, topics and offsets persist there across restarts
	Partitions int32  // partitions of the seeded spacecast.* topics (default 3)
}

// StartKafka starts the broker with every spacecast.* topic created and topic
// auto-creation allowed.
func StartKafka(o KafkaOptions) (*Kafka, error) {
	port := 0
	if o.Addr != "" {
		_, p, err := net.SplitHostPort(o.Addr)
		if err != nil {
			return nil, fmt.Errorf("kafka addr %q: %w", o.Addr, err)
		}
		if port, err = strconv.Atoi(p); err != nil {
			return nil, fmt.Errorf("kafka addr %q: bad port", o.Addr)
		}
	}
	if o.Partitions <= 0 {
		o.Partitions = 3
	}
	opts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.Ports(port),
		kfake.AllowAutoTopicCreation(),
		kfake.DefaultNumPartitions(int(o.Partitions)),
		kfake.SeedTopics(o.Partitions, events.AllTopics...),
		kfake.ClusterID("spacecast-dev"),
	}
	if o.DataDir != "" {
		opts = append(opts, kfake.DataDir(o.DataDir))
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return nil, fmt.Errorf("start embedded kafka: %w", err)
	}
	return &Kafka{cluster: c}, nil
}

// Brokers returns the bootstrap addresses.
func (k *Kafka) Brokers() []string { return k.cluster.ListenAddrs() }

// Close stops the broker.
func (k *Kafka) Close() { k.cluster.Close() }

// Redis is an embedded Redis server whose clock ticks with wall time, so TTLs and TIME behave.
type Redis struct {
	m    *miniredis.Miniredis
	stop chan struct{}
	once sync.Once
}

// StartRedis listens on addr ("127.0.0.1:0" for any free port).
func StartRedis(addr string) (*Redis, error) {
	m := miniredis.NewMiniRedis()
	if err := m.StartAddr(addr); err != nil {
		return nil, fmt.Errorf("start embedded redis: %w", err)
	}
	r := &Redis{m: m, stop: make(chan struct{})}
	m.SetTime(time.Now())
	go r.tick()
	return r, nil
}

func (r *Redis) tick() {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	last := time.Now()
	for {
		select {
		case <-r.stop:
			return
		case now := <-t.C:
			r.m.SetTime(now)
			r.m.FastForward(now.Sub(last))
			last = now
		}
	}
}

// Addr is host:port of the server.
func (r *Redis) Addr() string { return r.m.Addr() }

// URL is a redis:// URL for redisconn.Open.
func (r *Redis) URL() string { return "redis://" + r.m.Addr() + "/0" }

// Close stops the server.
func (r *Redis) Close() {
	r.once.Do(func() { close(r.stop); r.m.Close() })
}
