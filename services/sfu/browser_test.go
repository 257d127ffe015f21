package sfu_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/spacecast/spacecast/services/sfu"
)

// TestBrowserDemoPagesSeeEachOther opens the demo page twice in headless Chromium (fake
// camera and microphone): each page must decode the other's video.
func TestBrowserDemoPagesSeeEachOther(t *testing.T) {
	chromium := os.Getenv("CHROMIUM")
	if chromium == "" {
		chromium = "/usr/bin/chromium"
	}
	if _, err := os.Stat(chromium); err != nil {
		t.Skipf("chromium not found at %s (apt-get install chromium, or set CHROMIUM)", chromium)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node not found (apt-get install nodejs)")
	}
	dir, _ := filepath.Abs("e2e")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "playwright-core")); err != nil {
		t.Skip("e2e/node_modules missing: run `npm ci` in services/sfu/e2e")
	}
	w := newWorld(t)
	n := w.node("n1")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "demo.mjs", n.http+sfu.DemoPath,
		w.token("space-1", "publisher", "browser-1"), w.token("space-1", "publisher", "browser-2"))
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CHROMIUM="+chromium)
	out, err := cmd.CombinedOutput()
	t.Logf("browser output:\n%s", out)
	if err != nil {
		t.Fatalf("browser test failed: %v", err)
	}
}
