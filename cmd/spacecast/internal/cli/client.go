package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// globalFlags are the settings every API command shares.
type globalFlags struct {
	BaseURL     string
	TokenID     string
	TokenSecret string
	Brokers     []string
}

func (g *globalFlags) bind(cmd *cobra.Command) {
	pf := cmd.PersistentFlags()
	pf.StringVar(&g.BaseURL, "base-url", envOr("SPACECAST_URL", "http://localhost:8080"), "API base URL (env SPACECAST_URL)")
	pf.StringVar(&g.TokenID, "token-id", os.Getenv("SPACECAST_TOKEN_ID"), "access token id (env SPACECAST_TOKEN_ID)")
	pf.StringVar(&g.TokenSecret, "token-secret", os.Getenv("SPACECAST_TOKEN_SECRET"), "access token secret (env SPACECAST_TOKEN_SECRET)")
	pf.StringSliceVar(&g.Brokers, "brokers", strings.Split(envOr("SPACECAST_KAFKA_BROKERS", "127.0.0.1:9092"), ","), "Kafka bootstrap brokers (env SPACECAST_KAFKA_BROKERS)")
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// client is a minimal Spacecast REST client.
type client struct {
	g    *globalFlags
	http *http.Client
}

func (g *globalFlags) client() *client {
	return &client{g: g, http: &http.Client{Timeout: 30 * time.Second}}
}

// apiError is an error envelope returned by the API.
type apiError struct {
	Status   int
	Type     string
	Messages []string
}

func (e *apiError) Error() string {
	return fmt.Sprintf("%d %s: %s", e.Status, e.Type, strings.Join(e.Messages, "; "))
}

// do sends body (marshalled to JSON when non-nil) and decodes the "data" member into out
// (when non-nil). Non-2xx answers become *apiError.
func (c *client) do(ctx context.Context, method, path string, body, out any) error {
	if c.g.TokenID == "" || c.g.TokenSecret == "" {
		return fmt.Errorf("no access token: set SPACECAST_TOKEN_ID and SPACECAST_TOKEN_SECRET (spacecast dev prints them on first start)")
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(c.g.BaseURL, "/")+path, rd)
	if err != nil {
		return err
	}
	req.SetBasicAuth(c.g.TokenID, c.g.TokenSecret)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(res.Body, 32<<20))
	if err != nil {
		return err
	}
	if res.StatusCode < 200 || res.StatusCode > 299 {
		var env struct {
			Error struct {
				Type     string   `json:"type"`
				Messages []string `json:"messages"`
			} `json:"error"`
		}
		_ = json.Unmarshal(raw, &env)
		return &apiError{Status: res.StatusCode, Type: env.Error.Type, Messages: env.Error.Messages}
	}
	if out == nil || len(raw) == 0 {
		return nil
	}
	var env struct {
		Data json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(raw, &env); err != nil {
		return fmt.Errorf("decoding response: %w", err)
	}
	return json.Unmarshal(env.Data, out)
}

// printJSON writes v indented to stdout.
func printJSON(cmd *cobra.Command, v any) error {
	enc := json.NewEncoder(cmd.OutOrStdout())
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// listFlags adds --limit and --page to a list command and returns the query string maker.
func listFlags(cmd *cobra.Command) func() string {
	limit := cmd.Flags().Int("limit", 25, "items per page (1-100)")
	page := cmd.Flags().Int("page", 1, "page number (1-based)")
	return func() string { return fmt.Sprintf("limit=%d&page=%d", *limit, *page) }
}
