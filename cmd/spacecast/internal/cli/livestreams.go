package cli

import (
	"fmt"
	"net/http"
	"net/url"

	"github.com/spf13/cobra"
)

func newLiveStreamsCmd(g *globalFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "live-streams", Aliases: []string{"ls"},
		Short: "Create, list and manage live streams (RTMP in, HLS out)"}
	var (
		policies    []string
		window      int
		maxDuration int
		passthrough string
		latency     string
		assetPols   []string
	)
	create := &cobra.Command{
		Use: "create", Short: "Create a live stream and print it with its stream key", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			body := map[string]any{"playback_policies": policies}
			f := cmd.Flags()
			// As on Mux, the recordings take their playback ids from new_asset_settings.
			if !f.Changed("asset-playback-policy") {
				assetPols = policies
			}
			if len(assetPols) > 0 {
				body["new_asset_settings"] = map[string]any{"playback_policies": assetPols}
			}
			if f.Changed("reconnect-window") {
				body["reconnect_window"] = window
			}
			if f.Changed("max-continuous-duration") {
				body["max_continuous_duration"] = maxDuration
			}
			if f.Changed("passthrough") {
				body["passthrough"] = passthrough
			}
			if f.Changed("latency-mode") {
				body["latency_mode"] = latency
			}
			var out map[string]any
			if err := g.client().do(cmd.Context(), http.MethodPost, "/video/v1/live-streams", body, &out); err != nil {
				return err
			}
			return printJSON(cmd, out)
		},
	}
	cf := create.Flags()
	cf.StringSliceVar(&policies, "playback-policy", []string{"public"}, "playback policies of the playback ids to create: public, signed (repeat or comma-separate)")
	cf.IntVar(&window, "reconnect-window", 60, "seconds an encoder may take to reconnect into the same recording (0-1800)")
	cf.IntVar(&maxDuration, "max-continuous-duration", 43200, "longest session in seconds (60-43200)")
	cf.StringVar(&passthrough, "passthrough", "", "arbitrary string stored with the live stream")
	cf.StringVar(&latency, "latency-mode", "standard", "standard, reduced or low")
	cf.StringSliceVar(&assetPols, "asset-playback-policy", nil, "playback policies of each recording's asset (default: the --playback-policy values; empty for none)")

	update := &cobra.Command{
		Use: "update LIVE_STREAM_ID", Short: "Change a live stream's settings (only the flags given)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			body := map[string]any{}
			f := cmd.Flags()
			if f.Changed("reconnect-window") {
				body["reconnect_window"] = window
			}
			if f.Changed("max-continuous-duration") {
				body["max_continuous_duration"] = maxDuration
			}
			if f.Changed("passthrough") {
				body["passthrough"] = passthrough
			}
			if f.Changed("latency-mode") {
				body["latency_mode"] = latency
			}
			if len(body) == 0 {
				return fmt.Errorf("nothing to change: give --reconnect-window, --max-continuous-duration, --passthrough or --latency-mode")
			}
			var out map[string]any
			if err := g.client().do(cmd.Context(), http.MethodPatch, "/video/v1/live-streams/"+url.PathEscape(args[0]), body, &out); err != nil {
				return err
			}
			return printJSON(cmd, out)
		},
	}
	uf := update.Flags()
	uf.IntVar(&window, "reconnect-window", 60, "seconds an encoder may take to reconnect into the same recording (0-1800)")
	uf.IntVar(&maxDuration, "max-continuous-duration", 43200, "longest session in seconds (60-43200)")
	uf.StringVar(&passthrough, "passthrough", "", "arbitrary string stored with the live stream")
	uf.StringVar(&latency, "latency-mode", "standard", "standard, reduced or low")

	list := &cobra.Command{Use: "list", Short: "List live streams, newest first", Args: cobra.NoArgs}
	q := listFlags(list)
	var status string
	list.Flags().StringVar(&status, "status", "", "only streams with this status: idle, active or disabled")
	list.RunE = func(cmd *cobra.Command, _ []string) error {
		path := "/video/v1/live-streams?" + q()
		if status != "" {
			path += "&status=" + url.QueryEscape(status)
		}
		var out []map[string]any
		if err := g.client().do(cmd.Context(), http.MethodGet, path, nil, &out); err != nil {
			return err
		}
		return printJSON(cmd, out)
	}

	one := func(use, short, method, suffix string) *cobra.Command {
		return &cobra.Command{
			Use: use + " LIVE_STREAM_ID", Short: short, Args: cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				var out map[string]any
				if err := g.client().do(cmd.Context(), method, "/video/v1/live-streams/"+url.PathEscape(args[0])+suffix, nil, &out); err != nil {
					return err
				}
				if len(out) == 0 { // complete, enable, disable answer {"data":{}}
					cmd.Println(use, "done:", args[0])
					return nil
				}
				return printJSON(cmd, out)
			},
		}
	}
	del := &cobra.Command{
		Use: "delete LIVE_STREAM_ID", Short: "Delete a live stream (ends any ingest)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := g.client().do(cmd.Context(), http.MethodDelete, "/video/v1/live-streams/"+url.PathEscape(args[0]), nil, nil); err != nil {
				return err
			}
			cmd.Println("deleted", args[0])
			return nil
		},
	}
	cmd.AddCommand(create, list, update,
		one("get", "Show a live stream", http.MethodGet, ""),
		one("reset-key", "Give a live stream a new stream key; the old one stops working at once", http.MethodPost, "/reset-stream-key"),
		one("enable", "Accept publishers again", http.MethodPut, "/enable"),
		one("disable", "Refuse publishers, end the recording now and close the encoder", http.MethodPut, "/disable"),
		one("complete", "End the current recording now (no reconnect wait)", http.MethodPut, "/complete"),
		del)
	return cmd
}
