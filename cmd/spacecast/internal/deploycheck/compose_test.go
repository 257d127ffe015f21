package deploycheck

import (
	"bufio"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/spacecast/spacecast/libs/envconfig"
	"github.com/spacecast/spacecast/libs/service"
	"github.com/spacecast/spacecast/services/keys"
	"github.com/spacecast/spacecast/services/sfu"
	spacesapi "github.com/spacecast/spacecast/services/spaces-api"
	"github.com/spacecast/spacecast/services/webhooks"
)

// binaries lists each compose service that runs a Spacecast binary: the settings its main
// reads (the same calls, in the same order, as its cmd/<name>/main.go) and the ones compose
// mode must set.
var binaries = map[string]struct {
	read     func(r *envconfig.Reader)
	required []string
}{
	"keys": {func(r *envconfig.Reader) { service.LoadBase(r, ""); keys.LoadConfig(r) },
		[]string{"SPACECAST_DATABASE_URL", "SPACECAST_KAFKA_BROKERS", "SPACECAST_INTERNAL_SECRET", "SPACECAST_BOOTSTRAP_TOKEN_ID", "SPACECAST_BOOTSTRAP_TOKEN_SECRET"}},
	"spaces-api": {func(r *envconfig.Reader) { service.LoadBase(r, ""); spacesapi.LoadConfig(r) },
		[]string{"SPACECAST_DATABASE_URL", "SPACECAST_KAFKA_BROKERS", "SPACECAST_INTERNAL_SECRET", "SPACECAST_KEYS_URL"}},
	"sfu": {func(r *envconfig.Reader) {
		service.LoadBase(r, "")
		sfu.LoadConfig(r)
		r.String("SPACECAST_SPACES_URL", "")
	},
		[]string{"SPACECAST_DATABASE_URL", "SPACECAST_KAFKA_BROKERS", "SPACECAST_INTERNAL_SECRET", "SPACECAST_KEYS_URL", "SPACECAST_REDIS_URL", "SPACECAST_SPACES_URL", "SPACECAST_SFU_PUBLIC_URL"}},
	"webhooks": {func(r *envconfig.Reader) { service.LoadBase(r, ""); webhooks.LoadConfig(r) },
		[]string{"SPACECAST_DATABASE_URL", "SPACECAST_KAFKA_BROKERS", "SPACECAST_INTERNAL_SECRET", "SPACECAST_KEYS_URL", "SPACECAST_REDIS_URL"}},
}

type composeFile struct {
	Services map[string]struct {
		Command     []string          `yaml:"command"`
		Environment map[string]string `yaml:"environment"`
		Image       string            `yaml:"image"`
	} `yaml:"services"`
}

func repoRoot(t *testing.T) string {
	dir, _ := os.Getwd()
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.work not found above the test directory")
		}
		dir = parent
	}
}

func loadCompose(t *testing.T) composeFile {
	raw, err := os.ReadFile(filepath.Join(repoRoot(t), "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var c composeFile
	if err := yaml.Unmarshal(raw, &c); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	return c
}

func TestComposeEnvironmentMatchesBinaries(t *testing.T) {
	c := loadCompose(t)
	for name, bin := range binaries {
		t.Run(name, func(t *testing.T) {
			svc, ok := c.Services[name]
			if !ok {
				t.Fatalf("compose has no service %q", name)
			}
			if len(svc.Command) == 0 || svc.Command[0] != name {
				t.Fatalf("service %s runs %v, want the %s binary", name, svc.Command, name)
			}
			r := envconfig.FromMap(svc.Environment)
			bin.read(r)
			if err := r.Err(); err != nil {
				t.Fatalf("compose values the binary rejects: %v", err)
			}
			read := r.Names()
			for k := range svc.Environment {
				if strings.HasPrefix(k, "SPACECAST_") && !slices.Contains(read, k) {
					t.Errorf("compose sets %s, which the %s binary never reads", k, name)
				}
			}
			for _, k := range bin.required {
				if svc.Environment[k] == "" {
					t.Errorf("compose does not set %s, which %s needs outside dev mode", k, name)
				}
			}
		})
	}
	for name, svc := range c.Services {
		if svc.Image == "spacecast:latest" {
			if _, ok := binaries[name]; !ok {
				t.Errorf("compose service %s runs a Spacecast binary this test does not check", name)
			}
		}
	}
}

// TestGatewayRoutes reads the Caddyfile: every upstream is a compose service, every public path
// of the built services is routed, and /internal/ is not exposed.
func TestGatewayRoutes(t *testing.T) {
	c := loadCompose(t)
	f, err := os.Open(filepath.Join(repoRoot(t), "deploy", "caddy", "Caddyfile"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	type route struct{ prefix, upstream string }
	var routes []route
	internalBlocked := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) == 3 && fs[0] == "reverse_proxy" {
			routes = append(routes, route{strings.TrimSuffix(fs[1], "*"), strings.Split(fs[2], ":")[0]})
		}
		if len(fs) == 3 && fs[0] == "respond" && fs[1] == "/internal/*" && len(routes) == 0 {
			internalBlocked = true
		}
	}
	if !internalBlocked {
		t.Error("the gateway must refuse /internal/* before any proxy route")
	}
	match := func(path string) string {
		for _, r := range routes { // first match wins, as in Caddy's route block
			if strings.HasPrefix(path, r.prefix) {
				return r.upstream
			}
		}
		return ""
	}
	for _, r := range routes {
		if _, ok := c.Services[r.upstream]; !ok {
			t.Errorf("gateway routes %s to %s, which compose does not define", r.prefix, r.upstream)
		}
	}
	tests := []struct{ path, want string }{
		{"/video/v1/spaces", "spaces-api"},
		{"/video/v1/spaces/abc", "spaces-api"},
		{"/video/v1/signing-keys/abc", "keys"},
		{"/system/v1/signing-keys", "keys"},
		{"/system/v1/whoami", "keys"},
		{"/system/v1/access-tokens", "keys"},
		{"/system/v1/environments", "keys"},
		{"/system/v1/webhook-endpoints/x/deliveries", "webhooks"},
		{"/rtc/v1/ws", "sfu"},
		{"/demo/spaces", "sfu"},
		{"/sdk/spacecast-rtc.js", "sfu"},
		{"/internal/v1/jwks", ""},
	}
	for _, tt := range tests {
		if got := match(tt.path); got != tt.want {
			t.Errorf("%s routes to %q, want %q", tt.path, got, tt.want)
		}
	}
}
