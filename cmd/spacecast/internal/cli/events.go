package cli

import (
	"encoding/json"
	"fmt"
	"slices"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/spacecast/spacecast/libs/events"
)

func newEventsCmd(g *globalFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "events", Short: "Read Spacecast's Kafka events"}
	var topics []string
	var fromStart bool
	var max int
	tail := &cobra.Command{
		Use: "tail", Short: "Print events as they arrive (one JSON envelope per line)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			for _, t := range topics {
				if !slices.Contains(events.AllTopics, t) {
					return fmt.Errorf("unknown topic %q: want one of %v", t, events.AllTopics)
				}
			}
			reset := kgo.NewOffset().AtEnd()
			if fromStart {
				reset = kgo.NewOffset().AtStart()
			}
			cl, err := kgo.NewClient(kgo.SeedBrokers(g.Brokers...), kgo.ConsumeTopics(topics...), kgo.ConsumeResetOffset(reset))
			if err != nil {
				return err
			}
			defer cl.Close()
			n := 0
			for {
				fs := cl.PollFetches(cmd.Context())
				if cmd.Context().Err() != nil {
					return nil
				}
				for _, e := range fs.Errors() {
					return fmt.Errorf("kafka %s/%d: %w", e.Topic, e.Partition, e.Err)
				}
				var outErr error
				fs.EachRecord(func(r *kgo.Record) {
					if outErr != nil || (max > 0 && n >= max) {
						return
					}
					if !json.Valid(r.Value) {
						outErr = fmt.Errorf("non-JSON record on %s at offset %d", r.Topic, r.Offset)
						return
					}
					fmt.Fprintln(cmd.OutOrStdout(), string(r.Value))
					n++
				})
				if outErr != nil {
					return outErr
				}
				if max > 0 && n >= max {
					return nil
				}
			}
		},
	}
	tail.Flags().StringSliceVar(&topics, "topic", events.AllTopics, "topics to read")
	tail.Flags().BoolVar(&fromStart, "from-beginning", false, "start at the oldest retained event instead of new ones")
	tail.Flags().IntVar(&max, "max", 0, "stop after this many events (0 = run until interrupted)")
	cmd.AddCommand(tail)
	return cmd
}
