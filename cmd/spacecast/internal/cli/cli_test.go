package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/spacecast/spacecast/cmd/spacecast/internal/dev"
	"github.com/spacecast/spacecast/libs/envconfig"
	"github.com/spacecast/spacecast/libs/testenv"
)

const (
	cliTokenID     = "cli-admin"
	cliTokenSecret = "cli-admin-secret-12345678"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startDev runs the dev mode in-process for the test and returns its base URL.
func startDev(t *testing.T) string {
	t.Helper()
	httpAddr, kafkaAddr := freeAddr(t), freeAddr(t)
	// The data directory is made here, not in the goroutine: t.TempDir registers its removal as a
	// cleanup, and cleanups run last-in first-out, so it must come before the stop below or the
	// directory is removed while the embedded broker still writes to it.
	dataDir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- dev.Run(ctx, dev.Options{DataDir: dataDir, HTTPAddr: httpAddr, KafkaAddr: kafkaAddr, RTMPAddr: "127.0.0.1:0",
			SFUTCPPort: -1, Logger: testenv.Logger(t), Out: &bytes.Buffer{},
			Env: envconfig.FromMap(map[string]string{"SPACECAST_BOOTSTRAP_TOKEN_ID": cliTokenID, "SPACECAST_BOOTSTRAP_TOKEN_SECRET": cliTokenSecret})})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Error("dev mode did not stop")
		}
	})
	base := "http://" + httpAddr
	testenv.Eventually(t, 30*time.Second, func() bool {
		res, err := http.Get(base + "/readyz")
		if err != nil {
			return false
		}
		res.Body.Close()
		return res.StatusCode == 200
	}, "dev mode never became ready")
	return base
}

// run executes the spacecast command line with args against base and returns its output.
func run(t *testing.T, base string, args ...string) (string, error) {
	t.Helper()
	root := newRoot()
	out := &bytes.Buffer{}
	root.SetOut(out)
	root.SetErr(out)
	root.SetArgs(append([]string{"--base-url", base, "--token-id", cliTokenID, "--token-secret", cliTokenSecret}, args...))
	err := root.ExecuteContext(context.Background())
	return out.String(), err
}

func mustRun(t *testing.T, base string, args ...string) string {
	t.Helper()
	out, err := run(t, base, args...)
	if err != nil {
		t.Fatalf("spacecast %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func decode[T any](t *testing.T, s string) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, s)
	}
	return v
}

// TestCLICommands drives the commands a user reaches for (live-streams update, assets,
// playback-ids, webhook endpoints) against a dev mode, and checks that API errors come back as
// errors naming the problem.
func TestCLICommands(t *testing.T) {
	base := startDev(t)

	ls := decode[map[string]any](t, mustRun(t, base, "live-streams", "create", "--playback-policy", "public", "--reconnect-window", "5"))
	id, _ := ls["id"].(string)
	nas, _ := ls["new_asset_settings"].(map[string]any)
	if id == "" || nas == nil {
		t.Fatalf("live-streams create printed %v: want an id and new_asset_settings (recordings take their playback ids from it)", ls)
	}
	up := decode[map[string]any](t, mustRun(t, base, "live-streams", "update", id, "--passthrough", "from-cli", "--reconnect-window", "30"))
	if up["passthrough"] != "from-cli" || up["reconnect_window"] != float64(30) {
		t.Fatalf("live-streams update printed %v", up)
	}
	if _, err := run(t, base, "live-streams", "update", id); err == nil || !strings.Contains(err.Error(), "nothing to change") {
		t.Fatalf("update without flags: %v", err)
	}

	pid := ls["playback_ids"].([]any)[0].(map[string]any)["id"].(string)
	p := decode[map[string]any](t, mustRun(t, base, "playback-ids", "get", pid))
	obj, _ := p["object"].(map[string]any)
	if p["id"] != pid || obj["type"] != "live_stream" || obj["id"] != id {
		t.Fatalf("playback-ids get printed %v", p)
	}

	if assets := decode[[]any](t, mustRun(t, base, "assets", "list", "--live-stream", id)); len(assets) != 0 {
		t.Fatalf("assets of a stream that never published: %v", assets)
	}
	var ae *apiError
	if _, err := run(t, base, "assets", "get", "no-such-asset"); !errors.As(err, &ae) || ae.Status != 404 {
		t.Fatalf("assets get of an unknown id: %v, want a 404 API error", err)
	}
	if _, err := run(t, base, "assets", "delete", "no-such-asset"); !errors.As(err, &ae) || ae.Status != 404 {
		t.Fatalf("assets delete of an unknown id: %v, want a 404 API error", err)
	}

	wh := decode[map[string]any](t, mustRun(t, base, "webhooks", "create", "http://127.0.0.1:9/hook", "--event", "video.live_stream.idle"))
	whID, _ := wh["id"].(string)
	secret, _ := wh["signing_secret"].(string)
	if whID == "" || secret == "" || wh["address"] != "http://127.0.0.1:9/hook" {
		t.Fatalf("webhooks create printed %v: want id, address and the signing secret", wh)
	}
	list := decode[[]map[string]any](t, mustRun(t, base, "webhooks", "list"))
	if len(list) != 1 || list[0]["id"] != whID || list[0]["signing_secret"] != nil {
		t.Fatalf("webhooks list printed %v: want the one endpoint, without its secret", list)
	}
	if got := decode[map[string]any](t, mustRun(t, base, "webhooks", "get", whID)); got["id"] != whID {
		t.Fatalf("webhooks get printed %v", got)
	}
	rot := decode[map[string]any](t, mustRun(t, base, "webhooks", "rotate-secret", whID))
	if s, _ := rot["signing_secret"].(string); s == "" || s == secret {
		t.Fatalf("rotate-secret printed %v: want a new signing secret", rot)
	}
	if d := decode[[]any](t, mustRun(t, base, "webhooks", "deliveries", whID)); d == nil {
		t.Fatal("webhooks deliveries printed null, want a list")
	}
	if _, err := run(t, base, "webhooks", "create", "http://[::1%25lo]:9/"); !errors.As(err, &ae) || ae.Status != 400 {
		t.Fatalf("webhooks create with a zoned loopback address: %v, want a 400", err)
	}
	if out := mustRun(t, base, "webhooks", "delete", whID); !strings.Contains(out, "deleted "+whID) {
		t.Fatalf("webhooks delete printed %q", out)
	}
	if _, err := run(t, base, "webhooks", "get", whID); !errors.As(err, &ae) || ae.Status != 404 {
		t.Fatalf("webhooks get after delete: %v, want 404", err)
	}
}

// TestCLIBroadcasts: spaces broadcasts create/get/start/delete against a dev mode; start on an
// idle space comes back as an error naming the problem.
func TestCLIBroadcasts(t *testing.T) {
	base := startDev(t)
	ls := decode[map[string]any](t, mustRun(t, base, "live-streams", "create"))
	sp := decode[map[string]any](t, mustRun(t, base, "spaces", "create"))
	space := sp["id"].(string)
	var b map[string]any
	testenv.Eventually(t, 10*time.Second, func() bool {
		out, err := run(t, base, "spaces", "broadcasts", "create", space, "--live-stream-id", ls["id"].(string), "--layout", "crop", "--resolution", "720x1280")
		if err != nil {
			return false // spaces-api has not seen the live stream yet
		}
		b = decode[map[string]any](t, out)
		return true
	}, "broadcasts create never succeeded")
	bid, _ := b["id"].(string)
	if bid == "" || b["layout"] != "crop" || b["resolution"] != "720x1280" || b["status"] != "idle" {
		t.Fatalf("create printed %v", b)
	}
	if got := decode[map[string]any](t, mustRun(t, base, "spaces", "broadcasts", "get", space, bid)); got["id"] != bid {
		t.Fatalf("get printed %v", got)
	}
	if _, err := run(t, base, "spaces", "broadcasts", "start", space, bid); err == nil || !strings.Contains(err.Error(), "not active") {
		t.Fatalf("start on an idle space: %v", err)
	}
	if _, err := run(t, base, "spaces", "broadcasts", "create", space); err == nil || !strings.Contains(err.Error(), "live-stream-id") {
		t.Fatalf("create without --live-stream-id: %v", err)
	}
	if out := mustRun(t, base, "spaces", "broadcasts", "delete", space, bid); !strings.Contains(out, "deleted "+bid) {
		t.Fatalf("delete printed %q", out)
	}
}
