// Package testenv gives tests real or embedded backing services: Kafka (embedded kfake),
// Redis (SPACECAST_TEST_REDIS_URL or embedded miniredis) and SQL (SQLite always, PostgreSQL
// when SPACECAST_TEST_POSTGRES_URL is set), each isolated per test.
package testenv

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/redis/go-redis/v9"

	"github.com/spacecast/spacecast/libs/embedded"
	"github.com/spacecast/spacecast/libs/idgen"
	"github.com/spacecast/spacecast/libs/redisconn"
	"github.com/spacecast/spacecast/libs/sqldb"
)

// Environment variables naming real servers for integration tests.
const (
	RedisURLEnv    = "SPACECAST_TEST_REDIS_URL"
	PostgresURLEnv = "SPACECAST_TEST_POSTGRES_URL"
)

// Kafka starts an embedded broker for the test and returns its bootstrap addresses.
func Kafka(t testing.TB) []string {
	t.Helper()
	k, err := embedded.StartKafka(embedded.KafkaOptions{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(k.Close)
	return k.Brokers()
}

// Redis returns a client and a key prefix unique to this test. With SPACECAST_TEST_REDIS_URL
// it talks to that server and deletes the prefix's keys afterwards; otherwise to a fresh
// embedded server.
func Redis(t testing.TB) (redis.UniversalClient, string) {
	t.Helper()
	prefix := "t" + idgen.New()[:12] + ":"
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if u := os.Getenv(RedisURLEnv); u != "" {
		c, err := redisconn.Open(ctx, u)
		if err != nil {
			t.Fatalf("%s: %v", RedisURLEnv, err)
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			iter := c.Scan(ctx, 0, prefix+"*", 500).Iterator()
			for iter.Next(ctx) {
				c.Del(ctx, iter.Val())
			}
			c.Close()
		})
		return c, prefix
	}
	r, err := embedded.StartRedis("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c, err := redisconn.Open(ctx, r.URL())
	if err != nil {
		r.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); r.Close() })
	return c, prefix
}

// RedisURL returns a Redis URL for components that open their own client (embedded
// server if SPACECAST_TEST_REDIS_URL is unset) and a unique key prefix.
func RedisURL(t testing.TB) (string, string) {
	t.Helper()
	prefix := "t" + idgen.New()[:12] + ":"
	if u := os.Getenv(RedisURLEnv); u != "" {
		return u, prefix
	}
	r, err := embedded.StartRedis("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r.URL(), prefix
}

// SQLBackend names one SQL engine to run a store suite against.
type SQLBackend struct {
	Name string // "sqlite" or "postgres"
	url  string
}

// SQLBackends returns SQLite, plus PostgreSQL when SPACECAST_TEST_POSTGRES_URL is set.
func SQLBackends(t testing.TB) []SQLBackend {
	out := []SQLBackend{{Name: "sqlite"}}
	if u := os.Getenv(PostgresURLEnv); u != "" {
		out = append(out, SQLBackend{Name: "postgres", url: u})
	} else {
		t.Logf("%s not set: PostgreSQL store tests skipped", PostgresURLEnv)
	}
	return out
}

// OpenSQL opens a fresh, empty database on the backend, dropped when the test ends.
func OpenSQL(t testing.TB, b SQLBackend) *sqldb.DB {
	t.Helper()
	dsn := DSN(t, b)
	db, err := sqldb.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// DSN creates a fresh empty database on the backend and returns its DSN (for components
// that open it themselves). It is dropped when the test ends.
func DSN(t testing.TB, b SQLBackend) string {
	t.Helper()
	if b.Name == "sqlite" {
		return "sqlite:" + filepath.Join(t.TempDir(), "test.db")
	}
	admin, err := sql.Open("pgx", b.url)
	if err != nil {
		t.Fatal(err)
	}
	name := "sctest_" + strings.ToLower(idgen.New()[:16])
	if _, err := admin.Exec("CREATE DATABASE " + name); err != nil {
		admin.Close()
		t.Fatalf("create database: %v", err)
	}
	t.Cleanup(func() {
		_, _ = admin.Exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)")
		admin.Close()
	})
	u, err := url.Parse(b.url)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	return u.String()
}

// SQLite opens a fresh temporary SQLite database.
func SQLite(t testing.TB) *sqldb.DB { return OpenSQL(t, SQLBackend{Name: "sqlite"}) }

// Logger returns a slog logger writing to t.Log (debug level when SPACECAST_TEST_DEBUG is set).
func Logger(t testing.TB) *slog.Logger {
	level := slog.LevelInfo
	if os.Getenv("SPACECAST_TEST_DEBUG") != "" {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: level}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	defer func() { _ = recover() }() // a log line after the test ended must not crash the run
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

var _ io.Writer = tWriter{}

// Eventually polls cond every 20 ms until it is true or timeout passes.
func Eventually(t testing.TB, timeout time.Duration, cond func() bool, format string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("condition not met within %v: %s", timeout, fmt.Sprintf(format, args...))
}

// WalkCursor lists path page by page with ?limit= and ?cursor= as the Mux SDKs' cursor
// iterators do, calling between after each page but the last, and returns the ids in the
// order served. get performs one GET and returns the status and the decoded body. Every page
// must answer 200, hold at most limit rows and carry a next_cursor member (null on the last).
func WalkCursor(t testing.TB, path string, limit int, get func(path string) (int, map[string]any), between func(page int, ids []string)) []string {
	t.Helper()
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	var all []string
	cursor := ""
	for page := 1; page < 1000; page++ {
		q := fmt.Sprintf("%slimit=%d", sep, limit)
		if cursor != "" {
			q += "&cursor=" + url.QueryEscape(cursor)
		}
		st, body := get(path + q)
		if st != 200 {
			t.Fatalf("%s page %d: %d %v", path, page, st, body)
		}
		rows, _ := body["data"].([]any)
		if len(rows) > limit {
			t.Fatalf("%s page %d has %d rows, limit %d", path, page, len(rows), limit)
		}
		var ids []string
		for _, r := range rows {
			ids = append(ids, r.(map[string]any)["id"].(string))
		}
		all = append(all, ids...)
		nc, present := body["next_cursor"]
		if !present {
			t.Fatalf("%s page %d has no next_cursor member: %v", path, page, body)
		}
		if nc == nil {
			return all
		}
		cursor = nc.(string)
		if between != nil {
			between(page, ids)
		}
	}
	t.Fatalf("%s: the walk never ended", path)
	return nil
}
