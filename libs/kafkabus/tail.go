package kafkabus

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TailConfig configures a Tail.
type TailConfig struct {
	Brokers []string
	Topics  []string
	Logger  *slog.Logger
}

// Tail reads every partition of its topics from their end on, without a consumer group and
// without committing anything: each replica of a service sees every new message (to drop
// cached rows that another replica changed, say). Nothing is replayed after a restart; use a
// Consumer for anything that must be handled exactly.
type Tail struct {
	cfg TailConfig
	log *slog.Logger
}

// NewTail checks cfg; Run starts reading.
func NewTail(cfg TailConfig) (*Tail, error) {
	if len(cfg.Brokers) == 0 || len(cfg.Topics) == 0 {
		return nil, fmt.Errorf("%w: brokers and topics are required", ErrConfig)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Tail{cfg: cfg, log: log.With("component", "tail")}, nil
}

// Run calls fn for each message read until ctx ends (then it returns nil). Fetch errors are
// logged and retried by the client.
func (t *Tail) Run(ctx context.Context, fn func(Message)) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(t.cfg.Brokers...), kgo.ConsumeTopics(t.cfg.Topics...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtEnd()), kgo.FetchMaxWait(500*time.Millisecond),
		kgo.MetadataMinAge(time.Second))
	if err != nil {
		return fmt.Errorf("tail: %w", err)
	}
	defer cl.Close()
	for ctx.Err() == nil {
		fs := cl.PollFetches(ctx)
		fs.EachError(func(topic string, p int32, err error) {
			if ctx.Err() == nil {
				t.log.Warn("tail fetch failed", "topic", topic, "partition", p, "err", err)
			}
		})
		fs.EachRecord(func(r *kgo.Record) {
			fn(Message{Topic: r.Topic, Key: r.Key, Value: r.Value, Partition: int(r.Partition), Offset: r.Offset, Time: r.Timestamp})
		})
	}
	return nil
}
