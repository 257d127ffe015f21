package cli

import (
	"net/http"
	"net/url"

	"github.com/spf13/cobra"
)

// newBroadcastsCmd is `spacecast spaces broadcasts ...`: a space sent to a live stream.
func newBroadcastsCmd(g *globalFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "broadcasts", Short: "Create, get, start, stop and delete a space's broadcast to a live stream"}
	path := func(space string, rest ...string) string {
		p := "/video/v1/spaces/" + url.PathEscape(space) + "/broadcasts"
		for _, r := range rest {
			p += "/" + url.PathEscape(r)
		}
		return p
	}
	var liveStream, layout, resolution, background, passthrough string
	create := &cobra.Command{
		Use: "create SPACE_ID --live-stream-id ID", Short: "Create an idle broadcast of a space to a live stream", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			body := map[string]any{"live_stream_id": liveStream}
			for flag, v := range map[string]string{"layout": layout, "resolution": resolution, "background": background, "passthrough": passthrough} {
				if cmd.Flags().Changed(flag) {
					body[flag] = v
				}
			}
			var out map[string]any
			if err := g.client().do(cmd.Context(), http.MethodPost, path(args[0]), body, &out); err != nil {
				return err
			}
			return printJSON(cmd, out)
		},
	}
	create.Flags().StringVar(&liveStream, "live-stream-id", "", "the live stream to send the space to (required)")
	create.Flags().StringVar(&layout, "layout", "gallery", "gallery, active-speaker or crop")
	create.Flags().StringVar(&resolution, "resolution", "1920x1080", "1920x1080, 1280x720, 1080x1920, 720x1280, 1080x1080 or 720x720")
	create.Flags().StringVar(&background, "background", "", "http(s) URL of a background image")
	create.Flags().StringVar(&passthrough, "passthrough", "", "arbitrary string stored with the broadcast")
	_ = create.MarkFlagRequired("live-stream-id")
	get := &cobra.Command{
		Use: "get SPACE_ID BROADCAST_ID", Short: "Show a broadcast", Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			var out map[string]any
			if err := g.client().do(cmd.Context(), http.MethodGet, path(args[0], args[1]), nil, &out); err != nil {
				return err
			}
			return printJSON(cmd, out)
		},
	}
	action := func(name, short string) *cobra.Command {
		return &cobra.Command{
			Use: name + " SPACE_ID BROADCAST_ID", Short: short, Args: cobra.ExactArgs(2),
			RunE: func(cmd *cobra.Command, args []string) error {
				if err := g.client().do(cmd.Context(), http.MethodPost, path(args[0], args[1], name), nil, nil); err != nil {
					return err
				}
				cmd.Println(name, args[1])
				return nil
			},
		}
	}
	del := &cobra.Command{
		Use: "delete SPACE_ID BROADCAST_ID", Short: "Delete an idle broadcast", Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := g.client().do(cmd.Context(), http.MethodDelete, path(args[0], args[1]), nil, nil); err != nil {
				return err
			}
			cmd.Println("deleted", args[1])
			return nil
		},
	}
	cmd.AddCommand(create, get, action("start", "Start sending an active space to its live stream"),
		action("stop", "Stop the broadcast and complete the live stream"), del)
	return cmd
}
