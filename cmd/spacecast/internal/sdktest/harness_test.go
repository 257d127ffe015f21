// Package sdktest drives the official Mux Node SDKs from npm (@mux/mux-node 15.3.0, and 7.3.5
// for spaces and jwt.signSpaceId) against a Spacecast dev mode running in the test process:
// the SDKs are the judges of whether a backend written for Mux works unchanged. Each test runs
// one node script from js/ with the dev mode's base URL and an admin token in its environment;
// the script prints one JSON line per check and exits non-zero on the first failure.
package sdktest

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/spacecast/spacecast/cmd/spacecast/internal/dev"
	"github.com/spacecast/spacecast/libs/envconfig"
	"github.com/spacecast/spacecast/libs/testenv"
)

const (
	adminID     = "sdk-admin"
	adminSecret = "sdk-admin-secret-1234567"
)

// devEnv is a dev mode started for one test.
type devEnv struct {
	Base     string // http://127.0.0.1:PORT
	RTMPAddr string // 127.0.0.1:PORT
	DataDir  string
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startDev runs the dev mode in-process until the test ends. extra settings are read as the
// process environment would be.
func startDev(t *testing.T, extra map[string]string) devEnv {
	t.Helper()
	env := map[string]string{"SPACECAST_BOOTSTRAP_TOKEN_ID": adminID, "SPACECAST_BOOTSTRAP_TOKEN_SECRET": adminSecret}
	for k, v := range extra {
		env[k] = v
	}
	httpAddr, kafkaAddr, rtmpAddr := freeAddr(t), freeAddr(t), freeAddr(t)
	d := devEnv{Base: "http://" + httpAddr, RTMPAddr: rtmpAddr, DataDir: t.TempDir()}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	out := &bytes.Buffer{}
	go func() {
		done <- dev.Run(ctx, dev.Options{DataDir: d.DataDir, HTTPAddr: httpAddr, KafkaAddr: kafkaAddr, RTMPAddr: rtmpAddr,
			SFUUDPPort: 0, SFUTCPPort: -1, Logger: testenv.Logger(t), Out: out, Env: envconfig.FromMap(env)})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("dev mode stopped with %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Error("dev mode did not stop")
		}
	})
	testenv.Eventually(t, 30*time.Second, func() bool {
		res, err := http.Get(d.Base + "/readyz")
		if err != nil {
			return false
		}
		res.Body.Close()
		return res.StatusCode == 200
	}, "dev mode never became ready")
	return d
}

// runScript runs js/<name> with node. The script gets SPACECAST_BASE_URL, MUX_TOKEN_ID and
// MUX_TOKEN_SECRET (the admin token) plus env; its output is logged and a non-zero exit fails
// the test.
func runScript(t *testing.T, d devEnv, name string, env map[string]string) {
	t.Helper()
	node, err := exec.LookPath("node")
	_, modErr := os.Stat(filepath.Join("js", "node_modules", "@mux", "mux-node"))
	if err != nil || modErr != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("SDK test prerequisites missing (node %v, js/node_modules %v): CI must run npm ci in %s", err, modErr, "cmd/spacecast/internal/sdktest/js")
		}
		t.Skip("needs node and `npm ci` in cmd/spacecast/internal/sdktest/js")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, name)
	cmd.Dir = "js"
	cmd.Env = append(os.Environ(), "SPACECAST_BASE_URL="+d.Base, "MUX_TOKEN_ID="+adminID, "MUX_TOKEN_SECRET="+adminSecret)
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out, err := cmd.CombinedOutput()
	t.Logf("%s:\n%s", name, out)
	if err != nil {
		t.Fatalf("%s failed: %v", name, err)
	}
}
