package cli

import (
	"fmt"
	"net/http"
	"net/url"

	"github.com/spf13/cobra"
)

// webhookEndpointCmds manage webhook endpoints through Mux's /system/v1/webhooks API.
func webhookEndpointCmds(g *globalFlags) []*cobra.Command {
	const base = "/system/v1/webhooks"
	var (
		evs       []string
		rateLimit int
	)
	create := &cobra.Command{
		Use: "create URL", Short: "Register a webhook endpoint; prints it with its signing secret (shown only here)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			body := map[string]any{"address": args[0]}
			if len(evs) > 0 {
				body["events"] = evs
			}
			if cmd.Flags().Changed("rate-limit") {
				body["rate_limit"] = rateLimit
			}
			var out map[string]any
			if err := g.client().do(cmd.Context(), http.MethodPost, base, body, &out); err != nil {
				return err
			}
			return printJSON(cmd, out)
		},
	}
	create.Flags().StringSliceVar(&evs, "event", nil, "only these webhook types (repeat or comma-separate; default all)")
	create.Flags().IntVar(&rateLimit, "rate-limit", 0, "deliveries per second to this endpoint")

	list := &cobra.Command{Use: "list", Short: "List webhook endpoints, newest first", Args: cobra.NoArgs}
	q := listFlags(list)
	list.RunE = func(cmd *cobra.Command, _ []string) error {
		var out []map[string]any
		if err := g.client().do(cmd.Context(), http.MethodGet, base+"?"+q(), nil, &out); err != nil {
			return err
		}
		return printJSON(cmd, out)
	}
	get := &cobra.Command{
		Use: "get WEBHOOK_ID", Short: "Show a webhook endpoint", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return getJSON(cmd, g, base+"/"+url.PathEscape(args[0]))
		},
	}
	del := &cobra.Command{
		Use: "delete WEBHOOK_ID", Short: "Delete a webhook endpoint (pending deliveries to it stop)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := g.client().do(cmd.Context(), http.MethodDelete, base+"/"+url.PathEscape(args[0]), nil, nil); err != nil {
				return err
			}
			cmd.Println("deleted", args[0])
			return nil
		},
	}
	rotate := &cobra.Command{
		Use: "rotate-secret WEBHOOK_ID", Short: "Give an endpoint a new signing secret (the old one keeps verifying for 24 h)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var out map[string]any
			if err := g.client().do(cmd.Context(), http.MethodPost, base+"/"+url.PathEscape(args[0])+"/rotate-secret", nil, &out); err != nil {
				return err
			}
			return printJSON(cmd, out)
		},
	}
	deliveries := &cobra.Command{Use: "deliveries WEBHOOK_ID", Short: "List an endpoint's deliveries and their attempts, newest first", Args: cobra.ExactArgs(1)}
	dq := listFlags(deliveries)
	deliveries.RunE = func(cmd *cobra.Command, args []string) error {
		var out []map[string]any
		path := fmt.Sprintf("%s/%s/deliveries?%s", base, url.PathEscape(args[0]), dq())
		if err := g.client().do(cmd.Context(), http.MethodGet, path, nil, &out); err != nil {
			return err
		}
		return printJSON(cmd, out)
	}
	return []*cobra.Command{create, list, get, del, rotate, deliveries}
}
