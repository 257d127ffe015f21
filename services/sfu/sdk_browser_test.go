package sfu_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spacecast/spacecast/libs/spacejwt"
	"github.com/spacecast/spacecast/services/sfu"
)

// sdkEnv finds Chromium, node and the e2e packages (the unchanged @mux/spaces-web from npm);
// it skips when one is missing, except under CI where that is a failure.
func sdkEnv(t *testing.T) (chromium, node, dir string) {
	t.Helper()
	missing := func(msg string) {
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	chromium = os.Getenv("CHROMIUM")
	if chromium == "" {
		chromium = "/usr/bin/chromium"
	}
	if _, err := os.Stat(chromium); err != nil {
		missing("chromium not found at " + chromium + " (apt-get install chromium, or set CHROMIUM)")
	}
	node, err := exec.LookPath("node")
	if err != nil {
		missing("node not found (apt-get install nodejs)")
	}
	dir, _ = filepath.Abs("e2e")
	for _, pkg := range []string{"playwright-core", "@mux/spaces-web"} {
		if _, err := os.Stat(filepath.Join(dir, "node_modules", pkg)); err != nil {
			missing("e2e/node_modules/" + pkg + " missing: run `npm ci` in services/sfu/e2e")
		}
	}
	return chromium, node, dir
}

// sdkPage serves the test page and the npm copy of the SDK (never from the repository).
func sdkPage(t *testing.T, dir string) string {
	mux := http.NewServeMux()
	mux.Handle("/sdk-page/", http.StripPrefix("/sdk-page/", http.FileServer(http.Dir(filepath.Join(dir, "sdk-page")))))
	mux.Handle("/mux/", http.StripPrefix("/mux/", http.FileServer(http.Dir(filepath.Join(dir, "node_modules", "@mux", "spaces-web", "dist")))))
	hs := httptest.NewServer(mux)
	t.Cleanup(hs.Close)
	return hs.URL + "/sdk-page/index.html"
}

// TestMuxSpacesSDK runs the unchanged Mux Spaces Web SDK in headless Chromium tabs against
// one SFU node, one scenario per subtest (scenarios in e2e/sdk.mjs).
func TestMuxSpacesSDK(t *testing.T) {
	chromium, node, dir := sdkEnv(t)
	page := sdkPage(t, dir)
	scenarios := []string{"two", "four", "mute", "republish", "screenshare", "custom", "names", "duplicate", "errors",
		"reconnect", "reconnect-simulcast", "badoffer", "speaker", "simulcast", "manual", "limit"}
	if only := os.Getenv("SDK_SCENARIOS"); only != "" {
		scenarios = strings.Split(only, ",")
	}
	for _, sc := range scenarios {
		t.Run(sc, func(t *testing.T) {
			w := newWorld(t)
			// Three encodings per camera cost the tabs CPU: only the simulcast scenarios (or
			// SDK_SIMULCAST=true, for all) ask for them.
			simulcastOn := sc == "simulcast" || strings.HasSuffix(sc, "-simulcast") || os.Getenv("SDK_SIMULCAST") == "true"
			n := w.node("n1", func(c *sfu.Config) { c.Simulcast = simulcastOn })
			runSDK(t, chromium, node, dir, sc, page, "ws"+strings.TrimPrefix(n.http, "http")+strings.TrimSuffix(sfu.SpacesPath, "/v1"), w)
		})
	}
}

// runSDK runs one scenario of e2e/sdk.mjs; env adds NAME=value settings for it.
func runSDK(t *testing.T, chromium, node, dir, scenario, page, backend string, w *world, env ...string) {
	t.Helper()
	toks := map[string]string{}
	for _, p := range []string{"alice", "bob", "carol", "dave"} {
		toks[p] = w.token("space-1", "publisher", p)
	}
	toks["viewer"] = w.token("space-1", "subscriber", "viewer")
	toks["nospace"] = w.token("space-404", "publisher", "alice")
	toks["badkey"] = foreignToken(t)
	tj, _ := json.Marshal(toks)
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "sdk.mjs", scenario, page, backend)
	cmd.Dir = dir
	cmd.Env = append(append(os.Environ(), "CHROMIUM="+chromium, "SDK_TOKENS="+string(tj)), env...)
	if scenario == "speaker" {
		cmd.Env = append(cmd.Env, "FAKE_AUDIO="+toneFile(t))
	}
	out, err := cmd.CombinedOutput()
	t.Logf("browser output:\n%s", out)
	if err != nil {
		t.Fatalf("scenario %s failed: %v", scenario, err)
	}
}

// toneFile writes a 300 Hz tone at -18 dBFS (ffmpeg) for Chromium's fake microphone.
func toneFile(t *testing.T) string {
	ffmpeg, err := exec.LookPath("ffmpeg")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("ffmpeg not found")
		}
		t.Skip("ffmpeg not found (apt-get install ffmpeg)")
	}
	f := filepath.Join(t.TempDir(), "tone.wav")
	out, err := exec.Command(ffmpeg, "-loglevel", "error", "-f", "lavfi", "-i", "sine=frequency=300:duration=60",
		"-ar", "48000", "-ac", "1", f).CombinedOutput()
	if err != nil {
		t.Fatalf("ffmpeg: %v: %s", err, out)
	}
	return f
}

// foreignToken is signed by a key the SFU does not know.
func foreignToken(t *testing.T) string {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pemKey := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	tok, err := spacejwt.Sign(pemKey, "key-unknown", spacejwt.SignClaims{Audience: spacejwt.AudienceRT, Subject: "space-1",
		Role: "publisher", ParticipantID: "mallory", TTL: 10 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}
