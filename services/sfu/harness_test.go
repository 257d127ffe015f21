package sfu_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/spacecast/spacecast/libs/events"
	"github.com/spacecast/spacecast/libs/httpapi"
	"github.com/spacecast/spacecast/libs/kafkabus"
	"github.com/spacecast/spacecast/libs/redisconn"
	"github.com/spacecast/spacecast/libs/spacejwt"
	"github.com/spacecast/spacecast/libs/testenv"
	"github.com/spacecast/spacecast/services/sfu"
	"github.com/spacecast/spacecast/services/sfu/spacesclient"
)

const (
	envA = "env-a"
	envB = "env-b"
)

// keySet is an in-test key source: RSA keys the test generated, one per environment.
type keySet struct {
	mu   sync.Mutex
	keys []spacejwt.PublicKey
	priv map[string][]byte // kid -> PEM
}

func (k *keySet) PublicKeys(context.Context) ([]spacejwt.PublicKey, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]spacejwt.PublicKey(nil), k.keys...), nil
}

// remove deletes a signing key, as DELETE /system/v1/signing-keys/{id} does.
func (k *keySet) remove(kid string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for i, pk := range k.keys {
		if pk.ID == kid {
			k.keys = append(k.keys[:i], k.keys[i+1:]...)
			return
		}
	}
}

func (k *keySet) add(t testing.TB, kid, env string) *rsa.PrivateKey {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.priv == nil {
		k.priv = map[string][]byte{}
	}
	k.keys = append(k.keys, spacejwt.PublicKey{ID: kid, EnvironmentID: env, Key: &key.PublicKey})
	k.priv[kid] = pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	return key
}

// world is what several SFU nodes of one test share: Kafka, Redis, keys, spaces.
type world struct {
	t        *testing.T
	brokers  []string
	rdb      redis.UniversalClient
	redisURL string
	prefix   string
	keys     *keySet
	keyA     *rsa.PrivateKey
	keyA2    *rsa.PrivateKey   // a second key of env A
	spaces   map[string]string // space id -> environment
	smu      sync.Mutex
}

func newWorld(t *testing.T) *world {
	t.Helper()
	url, prefix := testenv.RedisURL(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	rdb, err := redisconn.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		iter := rdb.Scan(ctx, 0, prefix+"*", 500).Iterator()
		for iter.Next(ctx) {
			rdb.Del(ctx, iter.Val())
		}
		rdb.Close()
	})
	w := &world{t: t, brokers: testenv.Kafka(t), rdb: rdb, redisURL: url, prefix: prefix, keys: &keySet{},
		spaces: map[string]string{"space-1": envA, "space-2": envA, "space-b": envB}}
	w.keyA = w.keys.add(t, "key-a", envA)
	w.keyA2 = w.keys.add(t, "key-a2", envA)
	w.keys.add(t, "key-b", envB)
	return w
}

func (w *world) lookup() sfu.SpaceLookup {
	return sfu.SpaceLookupFunc(func(_ context.Context, id string) (sfu.SpaceInfo, error) {
		w.smu.Lock()
		defer w.smu.Unlock()
		env, ok := w.spaces[id]
		if !ok {
			return sfu.SpaceInfo{}, sfu.ErrSpaceNotFound
		}
		return sfu.SpaceInfo{ID: id, EnvironmentID: env, Status: "idle"}, nil
	})
}

type node struct {
	svc     *sfu.Service
	metrics *prometheus.Registry
	url     string // ws://host/spaces: the base a page sets as MUX_SPACES_BACKEND_URL
	http    string
	cancel  context.CancelFunc
	done    chan struct{}
}

type nodeOpt func(*sfu.Config)

func (w *world) node(id string, opts ...nodeOpt) *node {
	w.t.Helper()
	return w.nodeWithRedis(id, w.rdb, opts...)
}

// nodeWithRedis is node with its own Redis client (one with hooks, say).
func (w *world) nodeWithRedis(id string, rdb redis.UniversalClient, opts ...nodeOpt) *node {
	t := w.t
	t.Helper()
	log := testenv.Logger(t).With("node", id)
	cfg := sfu.Config{NodeID: id, ICEBindIP: "127.0.0.1", UDPPort: 0, TCPPort: 0, RedisPrefix: w.prefix,
		HeartbeatInterval: 300 * time.Millisecond, NodeTimeout: 1500 * time.Millisecond, CleanupInterval: 300 * time.Millisecond,
		ConsumerGroup: "sfu-" + id}
	for _, o := range opts {
		o(&cfg)
	}
	prod, err := kafkabus.NewProducer(kafkabus.ProducerConfig{Brokers: w.brokers, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { prod.Close() })
	verifier, err := spacejwt.NewVerifier(w.keys, spacejwt.Options{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	// The public URL must be known before New (heartbeats carry it): reserve the listener first.
	e := httpapi.NewServer(httpapi.Options{Logger: log})
	hs := httptest.NewUnstartedServer(e)
	if cfg.InternalURL == "" {
		cfg.InternalURL = "ws://" + hs.Listener.Addr().String()
	}
	wsURL := "ws://" + hs.Listener.Addr().String() + strings.TrimSuffix(sfu.SpacesPath, "/v1")
	cfg.PublicURL = wsURL + "/v1"
	ctx, cancel := context.WithCancel(context.Background())
	metrics := prometheus.NewRegistry()
	svc, err := sfu.New(ctx, cfg, sfu.Deps{Logger: log, Publisher: prod, Brokers: w.brokers,
		Redis: rdb, JWT: verifier, Spaces: w.lookup(), Metrics: metrics})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	svc.Register(e)
	hs.Start()
	n := &node{svc: svc, metrics: metrics, url: wsURL, http: hs.URL, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(n.done)
		if err := svc.Run(ctx); err != nil {
			t.Errorf("node %s: %v", id, err)
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-n.done
		hs.Close()
	})
	return n
}

// token signs a space JWT with env A's key.
func (w *world) token(space, role, participant string) string {
	w.t.Helper()
	return w.tokenWith("key-a", space, role, participant)
}

// tokenWith signs a space JWT with the key kid.
func (w *world) tokenWith(kid, space, role, participant string) string {
	w.t.Helper()
	tok, err := spacejwt.Sign(w.keys.priv[kid], kid, spacejwt.SignClaims{Audience: spacejwt.AudienceRT,
		Subject: space, Role: role, ParticipantID: participant, TTL: 10 * time.Minute})
	if err != nil {
		w.t.Fatal(err)
	}
	return tok
}

// rtcEvents reads spacecast.rtc with an independent Kafka client.
type rtcEvents struct {
	mu   sync.Mutex
	list []events.Envelope
}

func (w *world) watchRTC() *rtcEvents {
	t := w.t
	cl, err := kgo.NewClient(kgo.SeedBrokers(w.brokers...), kgo.ConsumeTopics(events.TopicRTC),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	r := &rtcEvents{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			fs := cl.PollFetches(ctx)
			fs.EachRecord(func(rec *kgo.Record) {
				env, err := events.Parse(rec.Value)
				if err != nil {
					t.Errorf("bad event on %s: %v", events.TopicRTC, err)
					return
				}
				if string(rec.Key) != env.Subject {
					t.Errorf("event key %q != subject %q", rec.Key, env.Subject)
				}
				r.mu.Lock()
				r.list = append(r.list, env)
				r.mu.Unlock()
			})
		}
	}()
	t.Cleanup(func() { cancel(); <-done; cl.Close() })
	return r
}

// find returns events of typ whose data matches every key/value in match.
func (r *rtcEvents) find(typ string, match map[string]string) []map[string]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []map[string]string
	for _, e := range r.list {
		if e.Type != typ {
			continue
		}
		var raw map[string]any
		dec := json.NewDecoder(bytes.NewReader(e.Data))
		dec.UseNumber()
		if dec.Decode(&raw) != nil {
			continue
		}
		d := make(map[string]string, len(raw))
		for k, v := range raw {
			d[k] = fmt.Sprint(v)
		}
		ok := true
		for k, v := range match {
			if d[k] != v {
				ok = false
			}
		}
		if ok {
			d["_environment"] = e.Environment
			d["_source"] = e.Source
			out = append(out, d)
		}
	}
	return out
}

func (r *rtcEvents) wait(t *testing.T, typ string, match map[string]string, n int) []map[string]string {
	t.Helper()
	var got []map[string]string
	testenv.Eventually(t, 10*time.Second, func() bool {
		got = r.find(typ, match)
		return len(got) >= n
	}, "%d %s events matching %v (have %d)", n, typ, match, len(got))
	return got
}

// serverError is the error message err carries (type -1 when it carries none).
func serverError(err error) spacesclient.ServerError {
	var se *spacesclient.ServerError
	if errors.As(err, &se) {
		return *se
	}
	return spacesclient.ServerError{Type: -1, CloseCode: -1}
}

// tryJoin connects with loopback-only ICE and returns the refusal, if any.
func tryJoin(ctx context.Context, n *node, token string, o spacesclient.Options) (*spacesclient.Client, error) {
	o.LoopbackOnly = true
	return spacesclient.Join(ctx, n.url, token, o)
}
