package webhooks_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spacecast/spacecast/libs/kafkabus"
	"github.com/spacecast/spacecast/libs/testenv"
)

// backingOn is newBacking on a chosen SQL engine.
func backingOn(t *testing.T, be testenv.SQLBackend) *backing {
	t.Helper()
	db := testenv.OpenSQL(t, be)
	rdb, prefix := testenv.Redis(t)
	brokers := testenv.Kafka(t)
	prod, err := kafkabus.NewProducer(kafkabus.ProducerConfig{Brokers: brokers})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { prod.Close() })
	return &backing{db: db, rdb: rdb, prefix: prefix, brokers: brokers, prod: prod}
}

// walk lists path page by page with ?cursor= (the Mux SDKs' cursor iterator), calling between
// after each page, and returns the ids in the order served.
func (s *svc) walk(c creds, path string, limit int, between func(page int, ids []string)) []string {
	s.t.Helper()
	return testenv.WalkCursor(s.t, path, limit, func(p string) (int, map[string]any) { return s.call(c, "GET", p, "") }, between)
}

func TestListsWalkEveryPageByCursor(t *testing.T) {
	for _, be := range testenv.SQLBackends(t) {
		t.Run(be.Name, func(t *testing.T) {
			b := backingOn(t, be)
			s := b.start(t, nil)
			create := func(c creds) string {
				id, _ := s.endpoint(c, `{"url":"http://127.0.0.1:9/hook"}`)
				return id
			}
			var want []string
			for i := 0; i < 11; i++ {
				want = append(want, create(credsA))
				create(credsB)
			}
			slices.Reverse(want)
			created := 0
			got := s.walk(credsA, "/system/v1/webhook-endpoints", 4, func(int, []string) { create(credsA); created++ })
			if !slices.Equal(got, want) {
				t.Fatalf("cursor walk served %v\nwant the endpoints that existed when it started, newest first: %v", got, want)
			}
			// A second walk sees the rows made during the first one first.
			if got := s.walk(credsA, "/system/v1/webhook-endpoints", 5, nil); len(got) != len(want)+created || !slices.Equal(got[created:], want) {
				t.Fatalf("second walk served %v\nwant %d new ones, then %v", got, created, want)
			}

			// Deliveries of one endpoint, several sharing a creation time.
			ep := want[0]
			base := time.Now().UnixNano()
			insert := func(id string, ns int64) {
				if _, err := b.db.Exec(`INSERT INTO deliveries (id, endpoint_id, environment_id, event_id, event_type, payload, status, created_ns, updated_ns)
					VALUES ($1, $2, 'envA', $1, 'video.space.created', '{}', 'failed', $3, $3)`, id, ep, ns); err != nil {
					t.Fatal(err)
				}
			}
			var wantD []string
			for i := 0; i < 7; i++ {
				insert(fmt.Sprintf("d%02da", i), base+int64(i))
				insert(fmt.Sprintf("d%02db", i), base+int64(i))
				wantD = append([]string{fmt.Sprintf("d%02db", i), fmt.Sprintf("d%02da", i)}, wantD...)
			}
			n := 0
			got = s.walk(credsA, "/system/v1/webhook-endpoints/"+ep+"/deliveries", 3, func(int, []string) {
				n++
				insert(fmt.Sprintf("new%02d", n), base+int64(time.Hour))
			})
			if !slices.Equal(got, wantD) {
				t.Fatalf("deliveries walk served %v\nwant %v", got, wantD)
			}
			st, body := s.call(credsA, "GET", "/system/v1/webhook-endpoints?limit=100&page=1000000", "")
			if eb, _ := body["error"].(map[string]any); st != 400 || !strings.Contains(fmt.Sprint(eb["messages"]), "cursor") {
				t.Fatalf("deep page: %d %v, want 400 pointing at cursor", st, body)
			}
			for _, tt := range []struct{ method, path, body, mentions string }{
				{"POST", "/system/v1/webhook-endpoints", `{"url":"http://127.0.0.1:9/a\u0000"}`, `field "url"`},
				{"PATCH", "/system/v1/webhook-endpoints/" + ep, `{"url":"http://127.0.0.1:9/\u007f"}`, `field "url"`},
				{"GET", "/system/v1/webhook-endpoints/a%00b", "", `path parameter "id"`},
				{"GET", "/system/v1/webhook-endpoints/" + ep + "/deliveries/%FF/x", "", ""},
			} {
				st, body := s.call(credsA, tt.method, tt.path, tt.body)
				if tt.mentions == "" {
					if st >= 500 {
						t.Fatalf("%s %s: %d %v", tt.method, tt.path, st, body)
					}
					continue
				}
				if eb, _ := body["error"].(map[string]any); st != 400 || !strings.Contains(fmt.Sprint(eb["messages"]), tt.mentions) {
					t.Fatalf("%s %s %q: %d %v, want 400 mentioning %s", tt.method, tt.path, tt.body, st, body, tt.mentions)
				}
			}
		})
	}
}
