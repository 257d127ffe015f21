// Package consume reads a Kafka consumer group in batches: the handler gets every message that
// is ready (up to a limit) at once, so the dispatcher records many events' deliveries in one SQL
// transaction. Offsets are committed only after the handler returned nil for the whole batch;
// a failing batch is retried with backoff, never skipped. (libs/kafkabus hands messages over
// one at a time, which caps the dispatcher at one transaction per event.)
package consume

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/spacecast/spacecast/libs/kafkabus"
)

// Handler processes a batch; nil means the effect of every message in it is durable.
type Handler func(ctx context.Context, batch []kafkabus.Message) error

// Config configures a Consumer.
type Config struct {
	Brokers []string
	GroupID string
	Topics  []string
	Logger  *slog.Logger
	Max     int           // messages per batch (default 200)
	Linger  time.Duration // how long a batch waits for more ready messages (default 2 ms)
	// MinBackoff and MaxBackoff bound the delay between retries of a failing batch
	// (defaults 100 ms and 10 s).
	MinBackoff, MaxBackoff time.Duration
}

// Consumer reads one consumer group.
type Consumer struct {
	c   Config
	log *slog.Logger
}

// New checks cfg.
func New(c Config) (*Consumer, error) {
	if len(c.Brokers) == 0 || c.GroupID == "" || len(c.Topics) == 0 {
		return nil, errors.New("consume: brokers, group id and topics are required")
	}
	if c.Max <= 0 {
		c.Max = 200
	}
	if c.Linger <= 0 {
		c.Linger = 2 * time.Millisecond
	}
	if c.MinBackoff <= 0 {
		c.MinBackoff = 100 * time.Millisecond
	}
	if c.MaxBackoff < c.MinBackoff {
		c.MaxBackoff = 10 * time.Second
	}
	log := c.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Consumer{c: c, log: log.With("group", c.GroupID)}, nil
}

// Run consumes until ctx ends (then it returns nil). A new group starts at the earliest offset.
func (c *Consumer) Run(ctx context.Context, h Handler) error {
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers:          c.c.Brokers,
		GroupID:          c.c.GroupID,
		GroupTopics:      c.c.Topics,
		StartOffset:      kafka.FirstOffset,
		MinBytes:         1,
		MaxBytes:         10 << 20,
		MaxWait:          100 * time.Millisecond,
		CommitInterval:   200 * time.Millisecond,
		JoinGroupBackoff: time.Second,
		ReadBackoffMin:   50 * time.Millisecond,
		ReadBackoffMax:   500 * time.Millisecond,
		ErrorLogger: kafka.LoggerFunc(func(msg string, args ...any) {
			c.log.Debug("kafka reader: " + fmt.Sprintf(msg, args...))
		}),
	})
	defer r.Close()
	kms := make([]kafka.Message, 0, c.c.Max)
	batch := make([]kafkabus.Message, 0, c.c.Max)
	for {
		km, err := r.FetchMessage(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			c.log.Warn("kafka fetch failed", "err", err)
			if !sleep(ctx, c.c.MinBackoff) {
				return nil
			}
			continue
		}
		kms = append(kms[:0], km)
		// Take what is ready now; a fetch cut short by the linger deadline leaves its message
		// in the reader for the next batch.
		lctx, cancel := context.WithTimeout(ctx, c.c.Linger)
		for len(kms) < c.c.Max {
			km, err := r.FetchMessage(lctx)
			if err != nil {
				break
			}
			kms = append(kms, km)
		}
		cancel()
		batch = batch[:0]
		for _, km := range kms {
			batch = append(batch, kafkabus.Message{Topic: km.Topic, Key: km.Key, Value: km.Value, Partition: km.Partition, Offset: km.Offset, Time: km.Time})
		}
		if !c.handle(ctx, h, batch) {
			return nil
		}
		if err := r.CommitMessages(ctx, kms...); err != nil && ctx.Err() == nil {
			c.log.Warn("kafka commit failed", "err", err)
		}
	}
}

// handle retries h until it succeeds; false means ctx ended first.
func (c *Consumer) handle(ctx context.Context, h Handler, batch []kafkabus.Message) bool {
	backoff := c.c.MinBackoff
	for attempt := 1; ; attempt++ {
		err := h(ctx, batch)
		if err == nil {
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		c.log.Warn("event batch failed; retrying", "err", err, "attempt", attempt, "messages", len(batch), "retry_in", backoff)
		if !sleep(ctx, backoff) {
			return false
		}
		backoff = min(2*backoff, c.c.MaxBackoff)
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
