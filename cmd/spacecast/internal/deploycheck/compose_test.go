package deploycheck

import (
	"fmt"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/spacecast/spacecast/libs/events"
)

type composeService struct {
	Image       string         `yaml:"image"`
	Command     []string       `yaml:"command"`
	Environment any            `yaml:"environment"` // map or KEY=value list
	DependsOn   any            `yaml:"depends_on"`  // list or map of conditions
	Ports       []string       `yaml:"ports"`
	Healthcheck *composeHealth `yaml:"healthcheck"`
}

type composeHealth struct {
	Test []string `yaml:"test"`
}

type composeFile struct {
	Services map[string]composeService `yaml:"services"`
	Volumes  map[string]any            `yaml:"volumes"`
}

var interpRE = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*))?\}`)

// interpolate applies compose's ${NAME:-default} / ${NAME-default} / ${NAME} with NAME unset,
// which is what `docker compose up` does without a .env file.
func interpolate(s string) string {
	return interpRE.ReplaceAllString(s, "$2")
}

func (s composeService) env(t testing.TB) map[string]string {
	t.Helper()
	out := map[string]string{}
	switch e := s.Environment.(type) {
	case nil:
	case map[string]any:
		for k, v := range e {
			if v == nil {
				v = ""
			}
			out[k] = interpolate(fmt.Sprint(v))
		}
	case []any:
		for _, kv := range e {
			k, v, _ := strings.Cut(fmt.Sprint(kv), "=")
			out[k] = interpolate(v)
		}
	default:
		t.Fatalf("environment has an unexpected shape %T", e)
	}
	return out
}

// dependsOn returns each dependency and its condition ("service_started" for the list form).
func (s composeService) dependsOn() map[string]string {
	out := map[string]string{}
	switch d := s.DependsOn.(type) {
	case []any:
		for _, n := range d {
			out[fmt.Sprint(n)] = "service_started"
		}
	case map[string]any:
		for n, v := range d {
			cond := "service_started"
			if m, ok := v.(map[string]any); ok && m["condition"] != nil {
				cond = fmt.Sprint(m["condition"])
			}
			out[n] = cond
		}
	}
	return out
}

func loadCompose(t testing.TB) composeFile {
	t.Helper()
	var c composeFile
	if err := yaml.Unmarshal([]byte(readRepoFile(t, "docker-compose.yml")), &c); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	if len(c.Services) == 0 {
		t.Fatal("docker-compose.yml defines no services")
	}
	return c
}

// spacecastServices returns the compose services that run a Spacecast binary (the image built
// from deploy/Dockerfile), by service name.
func spacecastServices(t testing.TB, c composeFile) map[string]composeService {
	out := map[string]composeService{}
	for name, s := range c.Services {
		if s.Image == "spacecast:latest" {
			out[name] = s
		}
	}
	if len(out) == 0 {
		t.Fatal("no compose service runs the spacecast:latest image")
	}
	return out
}

func hostPort(t testing.TB, addr string) (string, string) {
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("%q: %v", addr, err)
	}
	return h, p
}

func TestComposeServicesRunKnownBinaries(t *testing.T) {
	c := loadCompose(t)
	svcs := spacecastServices(t, c)
	for name, s := range svcs {
		if len(s.Command) != 1 || s.Command[0] != name {
			t.Errorf("compose service %s runs %v; want [%q] (service name = binary name)", name, s.Command, name)
		}
		if _, ok := binaries[name]; !ok {
			t.Errorf("compose service %s runs a binary the binaries table does not know", name)
		}
	}
	for name := range binaries {
		if _, ok := svcs[name]; !ok {
			t.Errorf("binary %s is not in docker-compose.yml (list it in notDeployed with a reason if that is deliberate)", name)
		}
	}
	for name := range notDeployed {
		if _, ok := c.Services[name]; ok {
			t.Errorf("%s is in docker-compose.yml: move it from notDeployed to the binaries table", name)
		}
	}
}

func TestComposeEnvironmentMatchesBinaries(t *testing.T) {
	c := loadCompose(t)
	for name, s := range spacecastServices(t, c) {
		t.Run(name, func(t *testing.T) {
			for _, p := range envProblems(name, s.env(t)) {
				t.Error(p)
			}
		})
	}
}

// TestComposeAddresses checks that every address a binary is given points at the compose
// service that serves it, on the right port and database, and that the binary waits for it.
func TestComposeAddresses(t *testing.T) {
	c := loadCompose(t)
	svcs := spacecastServices(t, c)
	httpPort := func(svc string) string {
		addr := svcs[svc].env(t)["SPACECAST_HTTP_ADDR"]
		if addr == "" {
			addr = ":8080" // LoadBase's default
		}
		_, p := hostPort(t, addr)
		return p
	}
	initSQL := readRepoFile(t, "deploy/postgres/init.sql")
	pg, ok := c.Services["postgres"]
	if !ok {
		t.Fatal("compose has no postgres service")
	}
	pgPassword := pg.env(t)["POSTGRES_PASSWORD"]
	kafka, ok := c.Services["kafka"]
	if !ok {
		t.Fatal("compose has no kafka service")
	}
	var advertised []string
	for _, l := range strings.Split(kafka.env(t)["KAFKA_ADVERTISED_LISTENERS"], ",") {
		if _, hp, ok := strings.Cut(l, "://"); ok {
			advertised = append(advertised, hp)
		}
	}
	databases := map[string]string{}
	secrets := map[string]bool{}
	for name, s := range svcs {
		env := s.env(t)
		deps := s.dependsOn()
		needDep := func(dep, cond string) {
			if got := deps[dep]; got != cond {
				t.Errorf("%s: depends_on %s is %q, want condition %s", name, dep, got, cond)
			}
		}
		// Database: the postgres service, its own database made by init.sql, the right password
		// (none for a binary that keeps no SQL state).
		u, err := url.Parse(env["SPACECAST_DATABASE_URL"])
		if b, known := binaries[name]; known && b.needs.NoDatabase {
			if _, dep := deps["postgres"]; dep {
				t.Errorf("%s keeps no SQL database but depends on postgres", name)
			}
		} else if err != nil || u.Scheme != "postgres" {
			t.Errorf("%s: SPACECAST_DATABASE_URL %q is not a postgres:// URL", name, env["SPACECAST_DATABASE_URL"])
		} else {
			db := strings.TrimPrefix(u.Path, "/")
			if u.Hostname() != "postgres" || u.Port() != "5432" {
				t.Errorf("%s: database host %s, want postgres:5432", name, u.Host)
			}
			if !regexp.MustCompile(`(?im)^\s*CREATE DATABASE\s+"?` + regexp.QuoteMeta(db) + `"?\s*;`).MatchString(initSQL) {
				t.Errorf("%s: database %q is not created by deploy/postgres/init.sql", name, db)
			}
			if other, dup := databases[db]; dup {
				t.Errorf("%s and %s share database %q (one database per service)", name, other, db)
			}
			databases[db] = name
			if pw, _ := u.User.Password(); pw != pgPassword {
				t.Errorf("%s: database password %q, but postgres is started with %q", name, pw, pgPassword)
			}
			needDep("postgres", "service_healthy")
		}
		// Kafka: an advertised in-compose listener; topics exist before the service starts.
		for _, b := range strings.Split(env["SPACECAST_KAFKA_BROKERS"], ",") {
			if !slices.Contains(advertised, strings.TrimSpace(b)) {
				t.Errorf("%s: broker %q is not one of kafka's advertised listeners %v", name, b, advertised)
			}
			if h, _ := hostPort(t, strings.TrimSpace(b)); h == "localhost" || h == "127.0.0.1" {
				t.Errorf("%s: broker %q is the host listener, unreachable from a container", name, b)
			}
		}
		needDep("kafka-init", "service_completed_successfully")
		if v, ok := env["SPACECAST_REDIS_URL"]; ok {
			u, err := url.Parse(v)
			if err != nil || u.Scheme != "redis" || !strings.HasPrefix(c.Services[u.Hostname()].Image, "redis:") {
				t.Errorf("%s: SPACECAST_REDIS_URL %q does not point at a redis service", name, v)
			} else {
				needDep(u.Hostname(), "service_healthy")
			}
		}
		for k, target := range map[string]string{"SPACECAST_KEYS_URL": "keys", "SPACECAST_SPACES_URL": "spaces-api"} {
			v, ok := env[k]
			if !ok {
				continue
			}
			u, err := url.Parse(v)
			if err != nil || u.Scheme != "http" || u.Hostname() != target || u.Port() != httpPort(target) || strings.Trim(u.Path, "/") != "" {
				t.Errorf("%s: %s=%q, want http://%s:%s", name, k, v, target, httpPort(target))
				continue
			}
			needDep(target, "service_healthy")
		}
		if v := env["SPACECAST_INTERNAL_SECRET"]; v != "" {
			secrets[v] = true
		}
	}
	if len(secrets) > 1 {
		t.Errorf("services use %d different SPACECAST_INTERNAL_SECRET values; keys checks the others' with its own", len(secrets))
	}
	// sfu: ICE ports are published 1:1 (the candidates carry the container's port).
	if s, ok := svcs["sfu"]; ok {
		env := s.env(t)
		for k, proto := range map[string]string{"SPACECAST_SFU_UDP_PORT": "udp", "SPACECAST_SFU_TCP_PORT": "tcp"} {
			p := env[k]
			if p == "" || p == "-1" {
				continue
			}
			want := fmt.Sprintf("%s:%s/%s", p, p, proto)
			if !slices.Contains(s.Ports, want) {
				t.Errorf("sfu: %s=%s but ports %v do not publish %q", k, p, s.Ports, want)
			}
		}
	}
}

// TestComposeHealthchecks: every service has one; the Spacecast ones probe the port the
// binary listens on, on a path it serves, with a program the runtime image has.
func TestComposeHealthchecks(t *testing.T) {
	c := loadCompose(t)
	runtime := runtimeStage(t)
	for name, s := range c.Services {
		if name == "kafka-init" || name == "gateway" {
			continue // a one-shot job; Caddy (nothing depends on it)
		}
		if s.Healthcheck == nil || len(s.Healthcheck.Test) < 2 {
			t.Errorf("%s has no healthcheck", name)
			continue
		}
		if s.Image != "spacecast:latest" {
			continue
		}
		test := s.Healthcheck.Test
		if test[0] != "CMD" {
			t.Errorf("%s: healthcheck %v must be exec form [\"CMD\", ...]: the image has no shell tools beyond curl", name, test)
			continue
		}
		if !regexp.MustCompile(`apt-get install[^\n]*\b` + regexp.QuoteMeta(test[1]) + `\b`).MatchString(runtime) {
			t.Errorf("%s: healthcheck runs %s, which deploy/Dockerfile's runtime stage does not install", name, test[1])
		}
		var probe *url.URL
		for _, a := range test[2:] {
			if u, err := url.Parse(a); err == nil && u.Scheme == "http" {
				probe = u
			}
		}
		if probe == nil {
			t.Errorf("%s: healthcheck %v probes no http:// URL", name, test)
			continue
		}
		addr := s.env(t)["SPACECAST_HTTP_ADDR"]
		if addr == "" {
			addr = ":8080"
		}
		if _, p := hostPort(t, addr); probe.Port() != p {
			t.Errorf("%s: healthcheck probes port %s, the binary listens on %s", name, probe.Port(), addr)
		}
		if probe.Path != "/healthz" && probe.Path != "/readyz" {
			t.Errorf("%s: healthcheck probes %s, want /healthz or /readyz", name, probe.Path)
		}
	}
}

func TestComposeVolumesAndKafkaListeners(t *testing.T) {
	c := loadCompose(t)
	env := c.Services["kafka"].env(t)
	if env["KAFKA_PROCESS_ROLES"] != "broker,controller" {
		t.Errorf("kafka is not a single KRaft node: KAFKA_PROCESS_ROLES=%q", env["KAFKA_PROCESS_ROLES"])
	}
	if !strings.Contains(env["KAFKA_ADVERTISED_LISTENERS"], "localhost:9092") || !slices.Contains(c.Services["kafka"].Ports, "9092:9092") {
		t.Error("kafka must advertise and publish localhost:9092 for clients on the host (kcat)")
	}
	for _, want := range []struct{ svc, mount string }{
		{"kafka", "kafka-data:" + env["KAFKA_LOG_DIRS"]},
		{"redis", "redis-data:/data"},
		{"postgres", "postgres-data:/var/lib/postgresql/data"},
	} {
		var vols struct {
			Services map[string]struct {
				Volumes []string `yaml:"volumes"`
			} `yaml:"services"`
		}
		if err := yaml.Unmarshal([]byte(readRepoFile(t, "docker-compose.yml")), &vols); err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(vols.Services[want.svc].Volumes, want.mount) {
			t.Errorf("%s: no persistent volume %q (has %v)", want.svc, want.mount, vols.Services[want.svc].Volumes)
		}
		if name, _, _ := strings.Cut(want.mount, ":"); c.Volumes == nil || !hasKey(c.Volumes, name) {
			t.Errorf("volume %s is not declared at the top level", name)
		}
	}
	redis := c.Services["redis"]
	if !strings.HasPrefix(redis.Image, "redis:7") || !slices.Contains(redis.Command, "--appendonly") {
		t.Errorf("redis must be Redis 7 with AOF: image %s, command %v", redis.Image, redis.Command)
	}
}

func hasKey(m map[string]any, k string) bool { _, ok := m[k]; return ok }

func TestTopicSetupMatchesEvents(t *testing.T) {
	want := slices.Clone(events.AllTopics)
	slices.Sort(want)
	for _, f := range []string{"deploy/kafka/create-topics.sh", "deploy/k8s/kafka-topics-job.yaml"} {
		if got := scriptTopics(readRepoFile(t, f)); !slices.Equal(got, want) {
			t.Errorf("%s creates %v, libs/events has %v", f, got, want)
		}
	}
	c := loadCompose(t)
	if env := c.Services["kafka-init"].env(t); env["PARTITIONS"] != "3" {
		t.Errorf("kafka-init: PARTITIONS=%q, want 3", env["PARTITIONS"])
	}
}

// runtimeStage returns deploy/Dockerfile from its last FROM on.
func runtimeStage(t testing.TB) string {
	df := readRepoFile(t, "deploy/Dockerfile")
	i := strings.LastIndex(df, "\nFROM ")
	if i < 0 {
		t.Fatal("deploy/Dockerfile has no runtime stage")
	}
	return df[i:]
}

func TestDockerfileBuildsEveryServiceBinary(t *testing.T) {
	df := readRepoFile(t, "deploy/Dockerfile")
	built := map[string]bool{}
	for _, m := range regexp.MustCompile(`\./services/([a-z0-9-]+)/cmd/([a-z0-9-]+)`).FindAllStringSubmatch(df, -1) {
		built[m[2]] = true
	}
	for _, name := range serviceMains(t) {
		if !built[name] {
			t.Errorf("deploy/Dockerfile does not build services/%s/cmd/%s", name, name)
		}
	}
	for name := range built {
		if !slices.Contains(serviceMains(t), name) {
			t.Errorf("deploy/Dockerfile builds %s, which has no services/%s/cmd/%s/main.go", name, name, name)
		}
	}
	if !strings.Contains(df, "CGO_ENABLED=0") {
		t.Error("deploy/Dockerfile must build static binaries (CGO_ENABLED=0) for the slim runtime image")
	}
	if !regexp.MustCompile(`COPY --from=build /out/ /usr/local/bin/`).MatchString(runtimeStage(t)) {
		t.Error("the runtime stage must put the binaries on PATH (compose runs them by name)")
	}
}
