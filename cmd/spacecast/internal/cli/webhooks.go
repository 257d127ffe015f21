package cli

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

func newWebhooksCmd(g *globalFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "webhooks", Short: "Manage webhook endpoints and receive webhooks locally"}
	var port int
	var evs []string
	listen := &cobra.Command{
		Use:   "listen",
		Short: "Register a local receiver as a webhook endpoint, verify each delivery's signatures and print it",
		Long: "Starts an HTTP receiver on 127.0.0.1:PORT, registers it as a webhook endpoint of the token's " +
			"environment, verifies both Mux-Signature and Standard Webhooks signatures of every delivery with the " +
			"endpoint's secret, prints each event, and deletes the endpoint on Ctrl-C. The server must allow " +
			"loopback receivers (spacecast dev does).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
			if err != nil {
				return err
			}
			defer ln.Close()
			cl := g.client()
			body := map[string]any{"url": "http://" + ln.Addr().String() + "/webhooks"}
			if len(evs) > 0 {
				body["events"] = evs
			}
			var ep struct {
				ID     string `json:"id"`
				Secret string `json:"secret"`
			}
			if err := cl.do(ctx, http.MethodPost, "/system/v1/webhook-endpoints", body, &ep); err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "listening on http://%s/webhooks as endpoint %s (secret %s); Ctrl-C to stop\n", ln.Addr(), ep.ID, ep.Secret)
			srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				raw, err := io.ReadAll(io.LimitReader(r.Body, 16<<20))
				if err != nil {
					w.WriteHeader(http.StatusBadRequest)
					return
				}
				muxOK := verifyMuxSignature(r.Header.Get("Mux-Signature"), ep.Secret, raw, 5*time.Minute)
				stdOK := verifyStandardSignature(r.Header, ep.Secret, raw, 5*time.Minute)
				var ev struct {
					Type   string          `json:"type"`
					ID     string          `json:"id"`
					Object json.RawMessage `json:"object"`
					Data   json.RawMessage `json:"data"`
				}
				_ = json.Unmarshal(raw, &ev)
				if !muxOK || !stdOK {
					fmt.Fprintf(out, "%s REJECTED %s %s (Mux-Signature ok=%v, webhook-signature ok=%v)\n", time.Now().Format(time.TimeOnly), ev.Type, ev.ID, muxOK, stdOK)
					w.WriteHeader(http.StatusUnauthorized)
					return
				}
				fmt.Fprintf(out, "%s %s %s object=%s data=%s\n", time.Now().Format(time.TimeOnly), ev.Type, ev.ID, ev.Object, ev.Data)
				w.WriteHeader(http.StatusNoContent)
			})}
			go func() { _ = srv.Serve(ln) }()
			<-ctx.Done()
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = srv.Shutdown(sctx)
			if err := cl.do(sctx, http.MethodDelete, "/system/v1/webhook-endpoints/"+ep.ID, nil, nil); err != nil {
				return fmt.Errorf("removing endpoint %s: %w", ep.ID, err)
			}
			fmt.Fprintf(out, "endpoint %s removed\n", ep.ID)
			return nil
		},
	}
	listen.Flags().IntVar(&port, "port", 4242, "local port to receive on")
	listen.Flags().StringSliceVar(&evs, "events", nil, "webhook types to receive (default all)")
	cmd.AddCommand(listen)
	cmd.AddCommand(webhookEndpointCmds(g)...)
	return cmd
}

// verifyMuxSignature checks "t=<unix>,v1=<hex HMAC-SHA256(secret, t.body)>" and the timestamp's age.
func verifyMuxSignature(header, secret string, body []byte, tolerance time.Duration) bool {
	var ts string
	var sigs []string
	for _, p := range strings.Split(header, ",") {
		k, v, _ := strings.Cut(p, "=")
		if k == "t" {
			ts = v
		} else if k == "v1" {
			sigs = append(sigs, v)
		}
	}
	if !fresh(ts, tolerance) {
		return false
	}
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(ts + "."))
	m.Write(body)
	want := hex.EncodeToString(m.Sum(nil))
	for _, s := range sigs {
		if hmac.Equal([]byte(s), []byte(want)) {
			return true
		}
	}
	return false
}

// verifyStandardSignature checks Standard Webhooks headers with the whsec_ secret.
func verifyStandardSignature(h http.Header, secret string, body []byte, tolerance time.Duration) bool {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil || !fresh(h.Get("webhook-timestamp"), tolerance) {
		return false
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte(h.Get("webhook-id") + "." + h.Get("webhook-timestamp") + "."))
	m.Write(body)
	want := base64.StdEncoding.EncodeToString(m.Sum(nil))
	for _, s := range strings.Fields(h.Get("webhook-signature")) {
		if v, sig, ok := strings.Cut(s, ","); ok && v == "v1" && hmac.Equal([]byte(sig), []byte(want)) {
			return true
		}
	}
	return false
}

func fresh(ts string, tolerance time.Duration) bool {
	n, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return false
	}
	d := time.Since(time.Unix(n, 0))
	return d < tolerance && d > -tolerance
}
