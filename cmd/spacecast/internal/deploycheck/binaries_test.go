package deploycheck

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/spacecast/spacecast/libs/envconfig"
	"github.com/spacecast/spacecast/libs/service"
	"github.com/spacecast/spacecast/services/keys"
	"github.com/spacecast/spacecast/services/livestream"
	"github.com/spacecast/spacecast/services/sfu"
	spacesapi "github.com/spacecast/spacecast/services/spaces-api"
	"github.com/spacecast/spacecast/services/webhooks"
)

// binary is what one service binary's main passes to service.Main: its Needs and the function
// that reads its own settings. extra lists settings a deployment must set beyond what Needs
// implies (their defaults only make sense in dev mode).
type binary struct {
	needs service.Needs
	load  func(r *envconfig.Reader)
	extra []string
}

// binaries mirrors services/<name>/cmd/<name>/main.go, one line per binary. Keep it in step
// when a main changes.
var binaries = map[string]binary{
	"keys":       {service.Needs{}, func(r *envconfig.Reader) { keys.LoadConfig(r) }, []string{"SPACECAST_INTERNAL_SECRET", "SPACECAST_BOOTSTRAP_TOKEN_ID", "SPACECAST_BOOTSTRAP_TOKEN_SECRET"}},
	"spaces-api": {service.Needs{Keys: true}, func(r *envconfig.Reader) { spacesapi.LoadConfig(r) }, nil},
	"sfu":        {service.Needs{Redis: true, Keys: true, NoDatabase: true}, func(r *envconfig.Reader) { sfu.LoadConfig(r); r.String("SPACECAST_SPACES_URL", "") }, []string{"SPACECAST_SPACES_URL", "SPACECAST_SFU_PUBLIC_URL", "SPACECAST_SFU_PUBLIC_IP"}},
	"webhooks":   {service.Needs{Redis: true, Keys: true}, func(r *envconfig.Reader) { webhooks.LoadConfig(r) }, nil},
	"livestream": {service.Needs{Redis: true, Keys: true}, func(r *envconfig.Reader) { livestream.LoadConfig(r) }, []string{"SPACECAST_RECORDINGS_DIR"}},
}

// notDeployed lists service binaries that exist but are deliberately absent from the
// deployment files, with the reason.
var notDeployed = map[string]string{}

// read runs the binary's settings loading over env as service.Load does, and returns the names
// it read and every bad value.
func (b binary) read(env map[string]string) ([]string, error) {
	r := envconfig.FromMap(env)
	base := service.LoadBase(r, "")
	b.load(r)
	if b.needs.Keys && base.InternalSecret == "" {
		r.Fail("SPACECAST_INTERNAL_SECRET", "required: it authenticates lookups at the keys service")
	}
	return r.Names(), r.Err()
}

// required lists the settings a deployment (compose or cluster) must set for the binary.
func (b binary) required() []string {
	// Every binary keeps its per-token rate limits in Redis (libs/ratelimit), also those that
	// hold no other state there.
	req := []string{"SPACECAST_KAFKA_BROKERS", "SPACECAST_REDIS_URL"}
	if !b.needs.NoDatabase {
		req = append(req, "SPACECAST_DATABASE_URL")
	}
	if b.needs.Keys {
		req = append(req, "SPACECAST_KEYS_URL", "SPACECAST_INTERNAL_SECRET")
	}
	for _, k := range b.extra {
		if !slices.Contains(req, k) {
			req = append(req, k)
		}
	}
	return req
}

// envProblems checks one deployment's environment for the named binary: every SPACECAST_*
// setting is one the binary reads and uses, every required one is set, and the binary accepts
// every value. Each problem is one string.
func envProblems(name string, env map[string]string) []string {
	b, ok := binaries[name]
	if !ok {
		return []string{fmt.Sprintf("%s is not a known Spacecast binary", name)}
	}
	var out []string
	names, err := b.read(env)
	if err != nil {
		out = append(out, fmt.Sprintf("%s rejects its settings: %v", name, err))
	}
	for k := range env {
		if !strings.HasPrefix(k, "SPACECAST_") {
			continue
		}
		switch {
		case !slices.Contains(names, k):
			out = append(out, fmt.Sprintf("%s is set but the %s binary never reads it", k, name))
		// LoadBase reads this for every binary; only those that look tokens up use it.
		case k == "SPACECAST_KEYS_URL" && !b.needs.Keys:
			out = append(out, fmt.Sprintf("%s is set but %s makes no lookups at the keys service", k, name))
		case k == "SPACECAST_DATABASE_URL" && b.needs.NoDatabase:
			out = append(out, fmt.Sprintf("%s is set but %s keeps no SQL database", k, name))
		}
	}
	for _, k := range b.required() {
		if strings.TrimSpace(env[k]) == "" {
			out = append(out, fmt.Sprintf("%s is not set; %s needs it outside dev mode", k, name))
		}
	}
	slices.Sort(out)
	return out
}

func repoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
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

func readRepoFile(t testing.TB, rel string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), filepath.FromSlash(rel)))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// serviceMains lists the service binaries of the workspace: services/<name>/cmd/<name>.
func serviceMains(t testing.TB) []string {
	t.Helper()
	matches, err := filepath.Glob(filepath.Join(repoRoot(t), "services", "*", "cmd", "*", "main.go"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range matches {
		cmdName := filepath.Base(filepath.Dir(m))
		svcName := filepath.Base(filepath.Dir(filepath.Dir(filepath.Dir(m))))
		if cmdName == svcName { // other commands (benchmarks, load generators) are tools
			out = append(out, cmdName)
		}
	}
	slices.Sort(out)
	return out
}

var topicLoopRE = regexp.MustCompile(`for t in ([^;]+);`)

// scriptTopics returns the topics a `for t in ...; do kafka-topics.sh --create` loop makes.
func scriptTopics(script string) []string {
	m := topicLoopRE.FindStringSubmatch(script)
	if m == nil || !strings.Contains(script, "kafka-topics.sh") || !strings.Contains(script, "--create") {
		return nil
	}
	ts := strings.Fields(m[1])
	slices.Sort(ts)
	return ts
}

func TestBinariesTableMatchesWorkspace(t *testing.T) {
	for _, name := range serviceMains(t) {
		_, checked := binaries[name]
		_, skipped := notDeployed[name]
		if !checked && !skipped {
			t.Errorf("services/%s/cmd/%s has no line in the binaries table (or notDeployed)", name, name)
		}
	}
	for name := range binaries {
		if !slices.Contains(serviceMains(t), name) {
			t.Errorf("binaries table names %s, but services/%s/cmd/%s/main.go does not exist", name, name, name)
		}
	}
}

// TestEnvProblemsCatches makes sure the environment check fails on what it is meant to catch.
func TestEnvProblemsCatches(t *testing.T) {
	good := map[string]string{
		"SPACECAST_DATABASE_URL": "postgres://p@db/x", "SPACECAST_KAFKA_BROKERS": "k:9092",
		"SPACECAST_KEYS_URL": "http://keys:8080", "SPACECAST_INTERNAL_SECRET": "s", "SPACECAST_REDIS_URL": "redis://r:6379/0",
	}
	with := func(k, v string) map[string]string {
		m := map[string]string{}
		for a, b := range good {
			m[a] = b
		}
		if v == "" {
			delete(m, k)
		} else {
			m[k] = v
		}
		return m
	}
	tests := []struct {
		name string
		env  map[string]string
		want string
	}{
		{"clean", good, ""},
		{"typo", with("SPACECAST_KAFKA_BROKER", "k:9092"), "SPACECAST_KAFKA_BROKER is set but"},
		{"missing redis url", with("SPACECAST_REDIS_URL", ""), "SPACECAST_REDIS_URL is not set"},
		{"missing keys url", with("SPACECAST_KEYS_URL", ""), "SPACECAST_KEYS_URL is not set"},
		{"missing secret", with("SPACECAST_INTERNAL_SECRET", ""), "SPACECAST_INTERNAL_SECRET"},
		{"bad value", with("SPACECAST_LOG_FORMAT", "xml"), "rejects its settings"},
		{"bad http addr", with("SPACECAST_HTTP_ADDR", "8080"), "SPACECAST_HTTP_ADDR"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := strings.Join(envProblems("spaces-api", tt.env), "\n")
			if tt.want == "" && got != "" {
				t.Fatalf("unexpected problems: %s", got)
			}
			if !strings.Contains(got, tt.want) {
				t.Fatalf("problems %q do not mention %q", got, tt.want)
			}
		})
	}
	if p := envProblems("keys", with("SPACECAST_KEYS_URL", "")); !slices.ContainsFunc(p, func(s string) bool {
		return strings.Contains(s, "SPACECAST_BOOTSTRAP_TOKEN_ID is not set")
	}) {
		t.Errorf("keys without bootstrap token: %v", p)
	}
}
