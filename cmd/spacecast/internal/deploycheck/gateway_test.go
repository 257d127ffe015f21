package deploycheck

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/spacecast/spacecast/libs/auth"
	"github.com/spacecast/spacecast/libs/envconfig"
	"github.com/spacecast/spacecast/libs/kafkabus"
	"github.com/spacecast/spacecast/libs/spacejwt"
	"github.com/spacecast/spacecast/libs/testenv"
	"github.com/spacecast/spacecast/services/keys"
	"github.com/spacecast/spacecast/services/livestream"
	"github.com/spacecast/spacecast/services/sfu"
	spacesapi "github.com/spacecast/spacecast/services/spaces-api"
	"github.com/spacecast/spacecast/services/webhooks"
)

// gateway is one gateway config and the services its deployment defines.
type gateway struct {
	name      string
	caddyfile string
	deployed  func(t *testing.T) []string
}

var gateways = []gateway{
	{"compose", "deploy/caddy/Caddyfile", func(t *testing.T) []string { return sortedKeys(spacecastServices(t, loadCompose(t))) }},
	{"k8s", "deploy/k8s/gateway/Caddyfile", func(t *testing.T) []string { return sortedKeys(k8sSpacecastDeployments(t)) }},
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// notDeployedPaths are public paths (API.md) of services that have no deployment yet: the
// gateways must not send them to some other service.
var notDeployedPaths = map[string][]string{}

var proxyLineRE = regexp.MustCompile(`^\s*reverse_proxy\s+(\S+)\s+(\S+)\s*$`)

// TestGatewayConfigStatic needs no Caddy: every upstream of each gateway config is a service its
// deployment defines, and /internal/* is refused before any proxy route.
func TestGatewayConfigStatic(t *testing.T) {
	for _, gw := range gateways {
		t.Run(gw.name, func(t *testing.T) {
			deployed := gw.deployed(t)
			first := ""
			proxies := 0
			sc := bufio.NewScanner(strings.NewReader(readRepoFile(t, gw.caddyfile)))
			for sc.Scan() {
				line := strings.TrimSpace(sc.Text())
				if line == "" || strings.HasPrefix(line, "#") || strings.HasSuffix(line, "{") || line == "}" {
					continue
				}
				if first == "" {
					first = line
				}
				m := proxyLineRE.FindStringSubmatch(line)
				if m == nil {
					continue
				}
				proxies++
				host, _ := hostPort(t, m[2])
				if !slices.Contains(deployed, host) {
					t.Errorf("%s routes %s to %s, which the %s deployment does not define (it has %v)", gw.caddyfile, m[1], host, gw.name, deployed)
				}
			}
			if first != "respond /internal/* 404" {
				t.Errorf("%s: the first directive is %q; the gateway must refuse /internal/* before any route", gw.caddyfile, first)
			}
			if proxies == 0 {
				t.Errorf("%s has no reverse_proxy routes", gw.caddyfile)
			}
		})
	}
}

// app is one real service's HTTP handler and the routes its Register mounts.
type app struct {
	handler http.Handler
	routes  []*echo.Route
}

const (
	hdrUpstream = "X-Deploycheck-Upstream"
	hdrRoute    = "X-Deploycheck-Route"
)

// buildApps builds each known binary's service (as its main does, with SQLite, an embedded
// Kafka and Redis) and records the routes its Register mounts.
func buildApps(t *testing.T) map[string]app {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	log := testenv.Logger(t)
	env := map[string]map[string]string{}
	for name, s := range spacecastServices(t, loadCompose(t)) {
		env[name] = s.env(t)
	}
	brokers := testenv.Kafka(t)
	prod, err := kafkabus.NewProducer(kafkabus.ProducerConfig{Brokers: brokers, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { prod.Close() })
	rdb, prefix := testenv.Redis(t)

	keysSvc, err := keys.New(ctx, keys.LoadConfig(envconfig.FromMap(env["keys"])), keys.Deps{Logger: log, DB: testenv.SQLite(t), Publisher: prod})
	if err != nil {
		t.Fatal(err)
	}
	authn, err := auth.NewVerifier(keysSvc, auth.VerifierOptions{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	spacesSvc, err := spacesapi.New(ctx, spacesapi.LoadConfig(envconfig.FromMap(env["spaces-api"])),
		spacesapi.Deps{Logger: log, DB: testenv.SQLite(t), Publisher: prod, Brokers: brokers, Auth: authn})
	if err != nil {
		t.Fatal(err)
	}
	jwtv, err := spacejwt.NewVerifier(keysSvc, spacejwt.Options{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	sfuCfg := sfu.LoadConfig(envconfig.FromMap(env["sfu"]))
	sfuCfg.ICEBindIP, sfuCfg.UDPPort, sfuCfg.TCPPort = "127.0.0.1", 0, -1 // no fixed ports in tests
	sfuCfg.RedisPrefix = prefix + sfuCfg.RedisPrefix
	sfuSvc, err := sfu.New(ctx, sfuCfg, sfu.Deps{Logger: log, Publisher: prod, Brokers: brokers, Redis: rdb, JWT: jwtv,
		Spaces: sfu.SpaceLookupFunc(func(context.Context, string) (sfu.SpaceInfo, error) { return sfu.SpaceInfo{}, sfu.ErrSpaceNotFound })})
	if err != nil {
		t.Fatal(err)
	}
	whCfg := webhooks.LoadConfig(envconfig.FromMap(env["webhooks"]))
	whCfg.RedisPrefix = prefix + whCfg.RedisPrefix
	whSvc, err := webhooks.New(ctx, whCfg, webhooks.Deps{Logger: log, DB: testenv.SQLite(t), Publisher: prod, Brokers: brokers, Redis: rdb,
		Auth: authn, Environments: keysSvc})
	if err != nil {
		t.Fatal(err)
	}

	lsCfg := livestream.LoadConfig(envconfig.FromMap(env["livestream"]))
	lsCfg.RedisKeyPrefix = prefix + lsCfg.RedisKeyPrefix
	lsCfg.RecordingsDir = t.TempDir()
	rtmpLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rtmpLn.Close() })
	lsSvc, err := livestream.New(ctx, lsCfg, livestream.Deps{Logger: log, DB: testenv.SQLite(t), Publisher: prod, Auth: authn, Redis: rdb,
		JWT: jwtv, RTMPListener: rtmpLn})
	if err != nil {
		t.Fatal(err)
	}

	regs := map[string]interface{ Register(*echo.Echo) }{"keys": keysSvc, "spaces-api": spacesSvc, "sfu": sfuSvc, "webhooks": whSvc, "livestream": lsSvc}
	apps := map[string]app{}
	for name := range binaries {
		reg, ok := regs[name]
		if !ok {
			t.Fatalf("buildApps does not build %s: add it", name)
		}
		e := echo.New()
		e.HideBanner, e.HidePort = true, true
		e.Pre(func(next echo.HandlerFunc) echo.HandlerFunc {
			return func(c echo.Context) error { c.Response().Header().Set(hdrUpstream, name); return next(c) }
		})
		e.Use(func(next echo.HandlerFunc) echo.HandlerFunc {
			return func(c echo.Context) error { c.Response().Header().Set(hdrRoute, c.Path()); return next(c) }
		})
		reg.Register(e)
		var routes []*echo.Route
		for _, r := range e.Routes() {
			if slices.Contains([]string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete}, r.Method) {
				routes = append(routes, r)
			}
		}
		if len(routes) == 0 {
			t.Fatalf("%s registers no routes", name)
		}
		apps[name] = app{handler: e, routes: routes}
	}
	return apps
}

var paramRE = regexp.MustCompile(`:[^/]+|\*`)

// concrete turns a route pattern into a path that matches it.
func concrete(pattern string) string { return paramRE.ReplaceAllString(pattern, "x0") }

func isPublic(path string) bool {
	return !strings.HasPrefix(path, "/internal/") && !slices.Contains([]string{"/healthz", "/readyz", "/metrics"}, path)
}

// startCaddy runs the gateway config in a real Caddy with each upstream host replaced by the
// address of that service's test server, and returns the gateway's base URL.
func startCaddy(t *testing.T, caddyBin, caddyfile string, upstreams map[string]string) string {
	out, err := exec.Command(caddyBin, "adapt", "--config", filepath.Join(repoRoot(t), filepath.FromSlash(caddyfile)), "--adapter", "caddyfile").Output()
	if err != nil {
		t.Fatalf("caddy adapt %s: %v", caddyfile, err)
	}
	var cfg map[string]any
	if err := json.Unmarshal(out, &cfg); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			if d, ok := x["dial"].(string); ok {
				host, _ := hostPort(t, d)
				if a, ok := upstreams[host]; ok {
					x["dial"] = a
				} else {
					t.Errorf("%s proxies to %s, which is not deployed", caddyfile, d)
					x["dial"] = "127.0.0.1:1"
				}
			}
			if l, ok := x["listen"].([]any); ok && len(l) > 0 {
				x["listen"] = []any{addr}
			}
			for _, c := range x {
				walk(c)
			}
		case []any:
			for _, c := range x {
				walk(c)
			}
		}
	}
	walk(cfg)
	cfg["admin"] = map[string]any{"disabled": true}
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "caddy.json")
	b, _ := json.Marshal(cfg)
	if err := os.WriteFile(cfgPath, b, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(caddyBin, "run", "--config", cfgPath)
	cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir)
	logf, err := os.Create(filepath.Join(dir, "caddy.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait(); logf.Close() })
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return "http://" + addr
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(logf.Name())
			t.Fatalf("caddy did not listen on %s: %s", addr, log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestGatewayRoutesThroughCaddy runs each gateway config in a real Caddy in front of the real
// services' routes: every public route of a deployed service reaches that service and that
// route; nothing reaches /internal/, /healthz, /readyz or /metrics; the routes of services a
// deployment lacks are not sent anywhere.
func TestGatewayRoutesThroughCaddy(t *testing.T) {
	caddyBin, err := exec.LookPath("caddy")
	if err != nil {
		t.Skip("caddy is not installed (apt-get install caddy): the gateway configs are only checked statically")
	}
	apps := buildApps(t)
	client := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, gw := range gateways {
		t.Run(gw.name, func(t *testing.T) {
			deployed := gw.deployed(t)
			upstreams := map[string]string{}
			for _, name := range deployed {
				srv := httptest.NewServer(apps[name].handler)
				t.Cleanup(srv.Close)
				upstreams[name] = strings.TrimPrefix(srv.URL, "http://")
			}
			base := startCaddy(t, caddyBin, gw.caddyfile, upstreams)
			do := func(method, path string) *http.Response {
				req, err := http.NewRequest(method, base+path, nil)
				if err != nil {
					t.Fatal(err)
				}
				resp, err := client.Do(req)
				if err != nil {
					t.Fatalf("%s %s: %v", method, path, err)
				}
				resp.Body.Close()
				return resp
			}
			checked := 0
			for _, name := range sortedKeys(apps) {
				for _, r := range apps[name].routes {
					path := concrete(r.Path)
					resp := do(r.Method, path)
					up, route := resp.Header.Get(hdrUpstream), resp.Header.Get(hdrRoute)
					switch {
					case isPublic(r.Path) && slices.Contains(deployed, name):
						checked++
						if up != name || route != r.Path {
							t.Errorf("%s %s (route %s of %s) reached %q route %q (status %d)", r.Method, path, r.Path, name, up, route, resp.StatusCode)
						}
					case up != "":
						t.Errorf("%s %s (route %s of %s, not public here) reached %s route %q", r.Method, path, r.Path, name, up, route)
					}
				}
			}
			if checked == 0 {
				t.Fatal("no public route was checked")
			}
			t.Logf("%d public routes of %v reach their service through %s", checked, deployed, gw.caddyfile)
			var extra []string
			for _, ps := range notDeployedPaths {
				extra = append(extra, ps...)
			}
			extra = append(extra, "/healthz", "/readyz", "/metrics", "/internal/v1/jwks", "/", "/video/v1/unknown")
			for _, p := range extra {
				if resp := do(http.MethodGet, p); resp.Header.Get(hdrUpstream) != "" || resp.StatusCode != http.StatusNotFound {
					t.Errorf("GET %s reached %q (status %d); want the gateway's 404", p, resp.Header.Get(hdrUpstream), resp.StatusCode)
				}
			}
			// Raw request targets that try to reach /internal/ through a public prefix.
			host := strings.TrimPrefix(base, "http://")
			for _, target := range []string{"/system/v1/../../internal/v1/jwks", "/system/v1/%2e%2e/%2e%2e/internal/v1/jwks", "//internal/v1/jwks", "/INTERNAL/v1/jwks", "/%69nternal/v1/jwks"} {
				up, route, status := rawGet(t, host, target)
				if strings.HasPrefix(route, "/internal/") {
					t.Errorf("GET %s reached %s route %s (status %d)", target, up, route, status)
				}
			}
		})
	}
}

// rawGet sends a request target as is (net/http would clean it).
func rawGet(t *testing.T, host, target string) (upstream, route string, status int) {
	c, err := net.DialTimeout("tcp", host, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", target, host)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("GET %s: %v", target, err)
	}
	resp.Body.Close()
	return resp.Header.Get(hdrUpstream), resp.Header.Get(hdrRoute), resp.StatusCode
}
