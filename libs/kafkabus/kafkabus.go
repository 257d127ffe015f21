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

// BatchHandler processes messages in partition order, several at a time. A nil return means
// the effect of every message in ms is durable; an error means none of them is taken as done:
// the same batch comes again after a backoff, so the handler must be idempotent, as every
// handler must be under at-least-once delivery.
type BatchHandler func(ctx context.Context, ms []Message) error

// Run consumes until ctx is done. Messages are handled one at a time in partition order;
// a failing handler is retried with exponential backoff until it succeeds or ctx ends, so no
// message is ever skipped. Run returns nil on cancellation.
func (c *Consumer) Run(ctx context.Context, h Handler) error {
	return c.run(ctx, 1, func(ctx context.Context, ms []Message) error { return h(ctx, ms[0]) })
}

// RunBatch is Run for handlers that do better with many messages at once (one transaction
// for a batch, say). It never waits to fill a batch: each batch is the messages already
// fetched when the previous one was done, at least one and at most maxBatch, so a quiet topic
// costs no latency and a busy one gets large batches. Offsets are committed after the
// handler succeeded for the whole batch; a failing batch is retried with backoff, never
// skipped.
func (c *Consumer) RunBatch(ctx context.Context, maxBatch int, h BatchHandler) error {
	return c.run(ctx, max(1, maxBatch), h)
}

func (c *Consumer) run(ctx context.Context, maxBatch int, h BatchHandler) error {
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
	// The fetcher reads ahead while the handler works, so a batch is ready when it is done.
	fetchCtx, cancel := context.WithCancel(ctx)
	fetched := make(chan kafka.Message, maxBatch)
	fetcherDone := make(chan struct{})
	go func() {
		defer close(fetcherDone)
		for {
			km, err := r.FetchMessage(fetchCtx)
			if err != nil {
				if fetchCtx.Err() != nil {
					return
				}
				c.log.Warn("kafka fetch failed", "err", err)
				if !sleep(fetchCtx, c.cfg.MinBackoff) {
					return
				}
				continue
			}
			select {
			case fetched <- km:
			case <-fetchCtx.Done():
				return
			}
		}
	}()
	defer func() { cancel(); <-fetcherDone }()

	kms := make([]kafka.Message, 0, maxBatch)
	ms := make([]Message, 0, maxBatch)
	for {
		select {
		case <-ctx.Done():
			return nil
		case km := <-fetched:
			kms = append(kms[:0], km)
		}
	fill:
		for len(kms) < maxBatch {
			select {
			case km := <-fetched:
				kms = append(kms, km)
			default:
				break fill
			}
		}
		ms = ms[:0]
		for _, km := range kms {
			ms = append(ms, Message{Topic: km.Topic, Key: km.Key, Value: km.Value, Partition: km.Partition, Offset: km.Offset, Time: km.Time})
		}
		if !c.handle(ctx, h, ms) {
			return nil
		}
		if err := r.CommitMessages(ctx, kms...); err != nil && ctx.Err() == nil {
			last := ms[len(ms)-1]
			c.log.Warn("kafka commit failed", "err", err, "messages", len(ms), "topic", last.Topic, "partition", last.Partition, "offset", last.Offset)
		}
	}
}

// handle retries h until it succeeds; false means ctx ended first.
func (c *Consumer) handle(ctx context.Context, h BatchHandler, ms []Message) bool {
	backoff := c.cfg.MinBackoff
	for attempt := 1; ; attempt++ {
		err := h(ctx, ms)
		if err == nil {
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		first := ms[0]
		c.log.Warn("event handler failed; retrying", "err", err, "attempt", attempt, "messages", len(ms),
			"topic", first.Topic, "partition", first.Partition, "offset", first.Offset, "retry_in", backoff)
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
