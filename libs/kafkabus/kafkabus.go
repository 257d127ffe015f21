// Package kafkabus publishes and consumes Spacecast events over the Kafka protocol with
// segmentio/kafka-go. Consumers commit an offset only after the handler succeeded for that
// message, and retry a failing handler with backoff instead of skipping it.
package kafkabus

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/segmentio/kafka-go"
)

// Message is one Kafka record.
type Message struct {
	Topic     string
	Key       []byte
	Value     []byte
	Partition int
	Offset    int64
	Time      time.Time
}

// ProducerConfig configures a Producer.
type ProducerConfig struct {
	Brokers []string
	Logger  *slog.Logger
	// BatchTimeout bounds how long a partial batch waits (default 2 ms).
	BatchTimeout time.Duration
}

// Producer writes messages synchronously with acks from all in-sync replicas. Messages with
// the same key go to the same partition (murmur2, as the Java client), so their order holds.
type Producer struct {
	w *kafka.Writer
}

// NewProducer returns a producer; it connects lazily.
func NewProducer(cfg ProducerConfig) (*Producer, error) {
	if len(cfg.Brokers) == 0 {
		return nil, fmt.Errorf("%w: no brokers", ErrConfig)
	}
	if cfg.BatchTimeout <= 0 {
		cfg.BatchTimeout = 2 * time.Millisecond
	}
	w := &kafka.Writer{
		Addr:                   kafka.TCP(cfg.Brokers...),
		Balancer:               &kafka.Murmur2Balancer{},
		RequiredAcks:           kafka.RequireAll,
		BatchTimeout:           cfg.BatchTimeout,
		BatchSize:              500,
		MaxAttempts:            5,
		AllowAutoTopicCreation: true,
	}
	if cfg.Logger != nil {
		l := cfg.Logger
		w.ErrorLogger = kafka.LoggerFunc(func(msg string, args ...any) { l.Warn("kafka writer: " + fmt.Sprintf(msg, args...)) })
	}
	return &Producer{w: w}, nil
}

// Publish writes msgs and returns when the broker has acknowledged all of them.
func (p *Producer) Publish(ctx context.Context, msgs ...Message) error {
	if len(msgs) == 0 {
		return nil
	}
	km := make([]kafka.Message, len(msgs))
	for i, m := range msgs {
		if m.Topic == "" {
			return fmt.Errorf("%w: message without topic", ErrConfig)
		}
		km[i] = kafka.Message{Topic: m.Topic, Key: m.Key, Value: m.Value}
	}
	if err := p.w.WriteMessages(ctx, km...); err != nil {
		return fmt.Errorf("kafka publish: %w", err)
	}
	return nil
}

// Close flushes and closes the producer.
func (p *Producer) Close() error { return p.w.Close() }

// Handler processes one message. A nil return means its effect is durable.
type Handler func(ctx context.Context, m Message) error

// ConsumerConfig configures a Consumer.
type ConsumerConfig struct {
	Brokers []string
	GroupID string
	Topics  []string
	Logger  *slog.Logger
	// MinBackoff and MaxBackoff bound the delay between retries of a failing handler
	// (defaults 100 ms and 10 s).
	MinBackoff, MaxBackoff time.Duration
	// CommitInterval batches offset commits (default 200 ms; offsets are only ever marked
	// after success, so a crash replays at most that window: handlers must be idempotent).
	CommitInterval time.Duration
}

// Consumer reads a consumer group's partitions of one or more topics.
type Consumer struct {
	cfg ConsumerConfig
	log *slog.Logger
}

// NewConsumer checks cfg; Run starts consuming.
func NewConsumer(cfg ConsumerConfig) (*Consumer, error) {
	if len(cfg.Brokers) == 0 || cfg.GroupID == "" || len(cfg.Topics) == 0 {
		return nil, fmt.Errorf("%w: brokers, group id and topics are required", ErrConfig)
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = 100 * time.Millisecond
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		cfg.MaxBackoff = 10 * time.Second
	}
	if cfg.CommitInterval <= 0 {
		cfg.CommitInterval = 200 * time.Millisecond
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Consumer{cfg: cfg, log: log.With("group", cfg.GroupID)}, nil
}

// Run consumes until ctx is done. Messages are handled one at a time in partition order;
// a failing handler is retried with exponential backoff until it succeeds or ctx ends, so no
// message is ever skipped. Run returns nil on cancellation.
func (c *Consumer) Run(ctx context.Context, h Handler) error {
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers:          c.cfg.Brokers,
		GroupID:          c.cfg.GroupID,
		GroupTopics:      c.cfg.Topics,
		StartOffset:      kafka.FirstOffset,
		MinBytes:         1,
		MaxBytes:         10 << 20,
		MaxWait:          100 * time.Millisecond,
		CommitInterval:   c.cfg.CommitInterval,
		JoinGroupBackoff: time.Second,
		ReadBackoffMin:   50 * time.Millisecond,
		ReadBackoffMax:   500 * time.Millisecond,
		ErrorLogger: kafka.LoggerFunc(func(msg string, args ...any) {
			c.log.Debug("kafka reader: " + fmt.Sprintf(msg, args...))
		}),
	})
	defer r.Close()
	for {
		km, err := r.FetchMessage(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			c.log.Warn("kafka fetch failed", "err", err)
			if !sleep(ctx, c.cfg.MinBackoff) {
				return nil
			}
			continue
		}
		m := Message{Topic: km.Topic, Key: km.Key, Value: km.Value, Partition: km.Partition, Offset: km.Offset, Time: km.Time}
		if !c.handle(ctx, h, m) {
			return nil
		}
		if err := r.CommitMessages(ctx, km); err != nil && ctx.Err() == nil {
			c.log.Warn("kafka commit failed", "err", err, "topic", m.Topic, "partition", m.Partition, "offset", m.Offset)
		}
	}
}

// handle retries h until it succeeds; false means ctx ended first.
func (c *Consumer) handle(ctx context.Context, h Handler, m Message) bool {
	backoff := c.cfg.MinBackoff
	for attempt := 1; ; attempt++ {
		err := h(ctx, m)
		if err == nil {
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		c.log.Warn("event handler failed; retrying", "err", err, "attempt", attempt,
			"topic", m.Topic, "partition", m.Partition, "offset", m.Offset, "retry_in", backoff)
		if !sleep(ctx, backoff) {
			return false
		}
		backoff *= 2
		if backoff > c.cfg.MaxBackoff {
			backoff = c.cfg.MaxBackoff
		}
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
