package sfu_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/redis/go-redis/v9"

	"github.com/spacecast/spacecast/libs/redisconn"
	"github.com/spacecast/spacecast/libs/testenv"
	"github.com/spacecast/spacecast/services/sfu"
	"github.com/spacecast/spacecast/services/sfu/internal/registry"
	"github.com/spacecast/spacecast/services/sfu/spacesclient"
)

const relaySecret = "relay-test-secret"

func withRelaySecret(c *sfu.Config) { c.InternalSecret = relaySecret }

// gateway is one address in front of several nodes: each new connection goes to the next
// node that is up (round-robin), unless the test pins the next one.
type gateway struct {
	base  string // ws://gw/spaces
	nodes []*url.URL

	mu     sync.Mutex
	next   int
	pinned int // -1: round-robin
	down   map[int]bool
	hits   []int
}

func newGateway(t *testing.T, nodes ...*node) *gateway {
	t.Helper()
	g := &gateway{pinned: -1, down: map[int]bool{}, hits: make([]int, len(nodes))}
	for _, n := range nodes {
		u, err := url.Parse(n.http)
		if err != nil {
			t.Fatal(err)
		}
		g.nodes = append(g.nodes, u)
	}
	rp := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
		pr.SetURL(g.nodes[g.pick()])
		pr.Out.Host = pr.In.Host
	}}
	hs := httptest.NewServer(rp)
	t.Cleanup(hs.Close)
	g.base = "ws" + strings.TrimPrefix(hs.URL, "http") + strings.TrimSuffix(sfu.SpacesPath, "/v1")
	return g
}

func (g *gateway) pick() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	i := g.pinned
	if i < 0 {
		for range g.nodes {
			i = g.next % len(g.nodes)
			g.next++
			if !g.down[i] {
				break
			}
		}
	}
	g.hits[i]++
	return i
}

// pin sends the following connections to node i (-1: round-robin again).
func (g *gateway) pin(i int) {
	g.mu.Lock()
	g.pinned = i
	g.mu.Unlock()
}

func (g *gateway) setDown(i int) {
	g.mu.Lock()
	g.down[i] = true
	g.mu.Unlock()
}

func (g *gateway) hitsOf(i int) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.hits[i]
}

// rtpCounter counts the RTP packets of every remote track a client receives.
type rtpCounter struct {
	mu    sync.Mutex
	byTID map[string]*atomic.Int64
}

func countingOptions(o spacesclient.Options) (spacesclient.Options, *rtpCounter) {
	rc := &rtpCounter{byTID: map[string]*atomic.Int64{}}
	o.OnTrack = func(rt *spacesclient.RemoteTrack) {
		rc.mu.Lock()
		n := rc.byTID[rt.TID]
		if n == nil {
			n = &atomic.Int64{}
			rc.byTID[rt.TID] = n
		}
		rc.mu.Unlock()
		go func() {
			for {
				if _, _, err := rt.Track.ReadRTP(); err != nil {
					return
				}
				n.Add(1)
			}
		}()
	}
	return o, rc
}

func (rc *rtpCounter) packets(tid string) int64 {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if n := rc.byTID[tid]; n != nil {
		return n.Load()
	}
	return 0
}

// waitPackets waits until more than min packets of tid arrived after now.
func (rc *rtpCounter) waitPackets(t *testing.T, who, tid string, min int64) {
	t.Helper()
	start := rc.packets(tid)
	testenv.Eventually(t, 20*time.Second, func() bool { return rc.packets(tid)-start >= min },
		"%s receiving %d RTP packets of %s (has %d)", who, min, tid, rc.packets(tid)-start)
}

func newRegistry(t *testing.T, w *world) *registry.Registry {
	t.Helper()
	reg, err := registry.New(w.rdb, w.prefix)
	if err != nil {
		t.Fatal(err)
	}
	return reg
}

func spaceNodes(t *testing.T, reg *registry.Registry, spaceID string) map[string]string {
	t.Helper()
	ps, err := reg.Participants(context.Background(), spaceID)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, p := range ps {
		out[p.ParticipantID] = p.NodeID
	}
	return out
}

// TestRelayTwoNodesOneGateway: four participants join one space through one gateway address
// that alternates between two nodes. The node not hosting the space relays their signaling
// to the hosting node, which holds every participant and forwards the media itself; everybody
// sees everybody, receives the published tracks, and each join and leave is one event.
func TestRelayTwoNodesOneGateway(t *testing.T) {
	w := newWorld(t)
	n1, n2 := w.node("n1", withRelaySecret), w.node("n2", withRelaySecret)
	gw := newGateway(t, n1, n2)
	reg := newRegistry(t, w)
	evs := w.watchRTC()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	ao, ac := countingOptions(spacesclient.Options{})
	alice := spacesJoin(t, ctx, gw.base, w.token("space-1", "publisher", "alice"), ao) // n1: hosts
	apub := spacesPublishVP8(t, ctx, alice)
	bo, bc := countingOptions(spacesclient.Options{})
	bob := spacesJoin(t, ctx, gw.base, w.token("space-1", "publisher", "bob"), bo) // n2: relayed
	bpub := spacesPublishVP8(t, ctx, bob)
	co, cc := countingOptions(spacesclient.Options{})
	carol := spacesJoin(t, ctx, gw.base, w.token("space-1", "subscriber", "carol"), co) // n1
	do, dc := countingOptions(spacesclient.Options{})
	dave := spacesJoin(t, ctx, gw.base, w.token("space-1", "subscriber", "dave"), do) // n2: relayed
	if gw.hitsOf(0) != 2 || gw.hitsOf(1) != 2 {
		t.Fatalf("gateway sent %d and %d connections to n1 and n2, want 2 and 2", gw.hitsOf(0), gw.hitsOf(1))
	}
	if got := dave.Info().Participants; len(got) != 3 {
		t.Fatalf("dave's joined lists %d participants (%+v), want 3", len(got), got)
	}
	nodes := spaceNodes(t, reg, "space-1")
	for _, p := range []string{"alice", "bob", "carol", "dave"} {
		if nodes[p] != "n1" {
			t.Fatalf("registry: participants on nodes %v, want every one on n1 (the hosting node)", nodes)
		}
	}
	if v := metricValue(t, n2, "spacecast_sfu_relayed_connections_total"); v != 2 {
		t.Fatalf("n2 relayed %v connections, want 2", v)
	}
	if v := metricValue(t, n2, "spacecast_sfu_relays"); v != 2 {
		t.Fatalf("n2 has %v relays open, want 2", v)
	}
	if v := metricValue(t, n1, "spacecast_sfu_relayed_connections_total"); v != 0 {
		t.Fatalf("n1 relayed %v connections, want 0", v)
	}
	if sp := n2.svc.HostedSpace("space-1"); sp {
		t.Fatal("n2 hosts an owner of space-1")
	}
	// Media: each publisher's video reaches every other participant (from n1, also through
	// the relayed clients: their candidates are n1's).
	for _, c := range []struct {
		who string
		rc  *rtpCounter
		tid string
	}{{"alice", ac, bpub.TID}, {"bob", bc, apub.TID}, {"carol", cc, apub.TID}, {"carol", cc, bpub.TID},
		{"dave", dc, apub.TID}, {"dave", dc, bpub.TID}} {
		c.rc.waitPackets(t, c.who, c.tid, 60)
	}
	// Signaling through the relay both ways: a custom event from bob (relayed) reaches alice
	// and dave (relayed).
	if _, err := bob.CustomEvent(ctx, "hello from n2"); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*spacesclient.Client{alice, dave} {
		nextEvent(t, c, 10*time.Second, "bob's custom event", func(m spacesclient.Message) bool {
			return m.CustomEvent != nil && m.CustomEvent.Payload == "hello from n2"
		})
	}
	// A refusal passes through the relay: alice again, through n2 (the 4th connection went
	// to n2, the 5th to n1, so pin).
	gw.pin(1)
	_, err := spacesclient.Join(ctx, gw.base, w.token("space-1", "publisher", "alice"), spacesclient.Options{LoopbackOnly: true})
	var se *spacesclient.ServerError
	if !errors.As(err, &se) || se.Type != 3 {
		t.Fatalf("duplicate alice through the relay: %v, want error type 3", err)
	}
	gw.pin(-1)
	// bob leaves (a close without status, passed through): alice sees one disconnect, the
	// relay closes.
	bconn := bob.Info().ConnectionID
	if err := bob.Leave(); err != nil {
		t.Logf("leave: %v", err)
	}
	nextEvent(t, alice, 10*time.Second, "participant_disconnected bob", func(m spacesclient.Message) bool {
		return m.ParticipantDisconnected != nil && m.ParticipantDisconnected.ConnectionID == bconn
	})
	evs.wait(t, "participant.left", map[string]string{"participant_id": "bob"}, 1)
	testenv.Eventually(t, 10*time.Second, func() bool { return metricValue(t, n2, "spacecast_sfu_relays") == 1 },
		"n2's relays down to 1")
	for _, c := range []*spacesclient.Client{alice, carol, dave} {
		_ = c.Leave()
	}
	for _, p := range []string{"alice", "carol", "dave"} {
		evs.wait(t, "participant.left", map[string]string{"participant_id": p}, 1)
	}
	time.Sleep(500 * time.Millisecond)
	for _, p := range []string{"alice", "bob", "carol", "dave"} {
		if j := evs.find("participant.joined", map[string]string{"participant_id": p}); len(j) != 1 {
			t.Errorf("participant.joined for %s: %d events, want 1", p, len(j))
		}
		if l := evs.find("participant.left", map[string]string{"participant_id": p}); len(l) != 1 {
			t.Errorf("participant.left for %s: %d events, want 1", p, len(l))
		}
	}
	testenv.Eventually(t, 15*time.Second, func() bool { return metricValue(t, n2, "spacecast_sfu_relays") == 0 },
		"n2's relays closed")
}

// TestRelayReconnects: a participant whose relayed connection drops comes back with
// reconnect_id, first through the relay again, then (after the relaying node dropped its
// relays as a crash would) directly on the hosting node: the same connection every time,
// nothing seen by the others, media flowing again.
func TestRelayReconnects(t *testing.T) {
	w := newWorld(t)
	n1, n2 := w.node("n1", withRelaySecret), w.node("n2", withRelaySecret)
	gw := newGateway(t, n1, n2)
	evs := w.watchRTC()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	gw.pin(0)
	alice := spacesJoin(t, ctx, gw.base, w.token("space-1", "publisher", "alice"), spacesclient.Options{})
	apub := spacesPublishVP8(t, ctx, alice)
	gw.pin(1)
	bo, bc := countingOptions(spacesclient.Options{})
	bob := spacesJoin(t, ctx, gw.base, w.token("space-1", "publisher", "bob"), bo)
	conn := bob.Info().ConnectionID
	bc.waitPackets(t, "bob", apub.TID, 30)
	nextEvent(t, alice, 10*time.Second, "participant_connected bob", func(m spacesclient.Message) bool {
		return m.ParticipantConnected != nil && m.ParticipantConnected.ParticipantID == "bob"
	})

	// 1. bob's socket drops (no leave); he comes back through the relay.
	bob.Drop()
	bo2, bc2 := countingOptions(spacesclient.Options{ReconnectID: "bob"})
	bob2 := spacesJoin(t, ctx, gw.base, w.token("space-1", "publisher", "bob"), bo2)
	if bob2.Info().ConnectionID != conn {
		t.Fatalf("reconnect through the relay: connection %s, want %s", bob2.Info().ConnectionID, conn)
	}
	bc2.waitPackets(t, "bob after reconnecting through the relay", apub.TID, 30)

	// 2. n2 drops its relays as if it crashed: bob's client sees its socket end, and comes
	// back through the gateway, this time to n1 directly.
	if n := n2.svc.CloseRelays(); n != 1 {
		t.Fatalf("n2 closed %d relays, want 1", n)
	}
	select {
	case <-bob2.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("bob's connection stayed open after n2 dropped its relay")
	}
	gw.pin(0)
	bo3, bc3 := countingOptions(spacesclient.Options{ReconnectID: "bob"})
	bob3 := spacesJoin(t, ctx, gw.base, w.token("space-1", "publisher", "bob"), bo3)
	if bob3.Info().ConnectionID != conn {
		t.Fatalf("reconnect after the relay's failure: connection %s, want %s", bob3.Info().ConnectionID, conn)
	}
	bc3.waitPackets(t, "bob after the relay's failure", apub.TID, 30)
	quiet := time.After(1500 * time.Millisecond)
	for done := false; !done; {
		select {
		case m := <-alice.Events():
			if m.ParticipantDisconnected != nil || m.ParticipantConnected != nil {
				t.Fatalf("alice saw %+v during bob's reconnects", m)
			}
		case <-quiet:
			done = true
		}
	}
	if v := metricValue(t, n1, "spacecast_sfu_reconnects_total"); v != 2 {
		t.Fatalf("n1 counted %v reconnects, want 2", v)
	}
	if j := evs.find("participant.joined", map[string]string{"participant_id": "bob"}); len(j) != 1 {
		t.Fatalf("participant.joined for bob: %d events, want 1", len(j))
	}
	if l := evs.find("participant.left", map[string]string{"participant_id": "bob"}); len(l) != 0 {
		t.Fatalf("participant.left for bob: %d events, want 0", len(l))
	}
}

// TestRelayHostKilled: the hosting node dies; the relayed client's socket ends (so the SDK
// reconnects), and once the dead node's lease is over the space moves to the node the next
// join reaches.
func TestRelayHostKilled(t *testing.T) {
	w := newWorld(t)
	n1, n2 := w.node("n1", withRelaySecret), w.node("n2", withRelaySecret)
	gw := newGateway(t, n1, n2)
	reg := newRegistry(t, w)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	alice := spacesJoin(t, ctx, gw.base, w.token("space-1", "publisher", "alice"), spacesclient.Options{}) // n1
	spacesPublishVP8(t, ctx, alice)
	bob := spacesJoin(t, ctx, gw.base, w.token("space-1", "publisher", "bob"), spacesclient.Options{}) // n2 → n1
	if nodes := spaceNodes(t, reg, "space-1"); nodes["bob"] != "n1" {
		t.Fatalf("bob on %q, want n1", nodes["bob"])
	}
	n1.svc.Halt()
	gw.setDown(0)
	select {
	case <-bob.Done():
	case <-time.After(15 * time.Second):
		t.Fatal("bob's relayed connection stayed open after the hosting node died")
	}
	// n2's sweep removes n1's participants and its hold on the space once the lease expires.
	testenv.Eventually(t, 20*time.Second, func() bool {
		node, err := reg.SpaceNode(ctx, "space-1")
		return err == nil && node == ""
	}, "space-1 released by the dead n1")
	bo, bc := countingOptions(spacesclient.Options{ReconnectID: "bob"})
	bob2 := spacesJoin(t, ctx, gw.base, w.token("space-1", "publisher", "bob"), bo)
	bpub := spacesPublishVP8(t, ctx, bob2)
	carol := spacesJoin(t, ctx, gw.base, w.token("space-1", "subscriber", "carol"), spacesclient.Options{})
	if node, _ := reg.SpaceNode(ctx, "space-1"); node != "n2" {
		t.Fatalf("space-1 is on %q, want n2", node)
	}
	if got := carol.Info().Participants; len(got) != 1 || got[0].ParticipantID != "bob" {
		t.Fatalf("carol's joined.participants = %+v, want bob only", got)
	}
	waitTrack(t, carol, bpub.TID)
	_ = bc
}

// claimBarrier holds each node's first claim of a space in Redis until every node's claim has
// arrived, so that those claims are made at the same time: the first joins of a space nobody
// hosts yet, one per node, each with a local owner already started.
type claimBarrier struct {
	nodeKey string // the space's node key, among the claim script's KEYS
	want    int
	mu      sync.Mutex
	arrived []string
	release chan struct{}
	timeout atomic.Bool
}

func newClaimBarrier(w *world, spaceID string, nodes int) *claimBarrier {
	return &claimBarrier{nodeKey: w.prefix + "{space:" + spaceID + "}:node", want: nodes, release: make(chan struct{})}
}

// client is a Redis client of node whose first claim of the space waits at the barrier.
func (b *claimBarrier) client(t *testing.T, w *world, node string) redis.UniversalClient {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	rdb, err := redisconn.Open(ctx, w.redisURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rdb.Close() })
	rdb.AddHook(&barrierHook{b: b, node: node})
	return rdb
}

func (b *claimBarrier) wait(node string) {
	b.mu.Lock()
	b.arrived = append(b.arrived, node)
	if len(b.arrived) == b.want {
		close(b.release)
	}
	b.mu.Unlock()
	select {
	case <-b.release:
	case <-time.After(15 * time.Second):
		b.timeout.Store(true)
	}
}

type barrierHook struct {
	b    *claimBarrier
	node string
	held atomic.Bool
}

func (h *barrierHook) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *barrierHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}
func (h *barrierHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if n := cmd.Name(); (n == "evalsha" || n == "eval") && slices.Contains(cmd.Args(), any(h.b.nodeKey)) &&
			h.held.CompareAndSwap(false, true) {
			h.b.wait(h.node)
		}
		return next(ctx, cmd)
	}
}

// TestRelayConcurrentFirstJoins: the first two participants of a space nobody hosts join at
// the same moment, one on each node. Both nodes find no host, start a local owner and claim
// the space in Redis at once (a barrier holds each node's claim until the other's arrived);
// the atomic claim gives the space to exactly one node, the other node's owner retires and
// relays its participant there, and the two participants see each other.
func TestRelayConcurrentFirstJoins(t *testing.T) {
	w := newWorld(t)
	bar := newClaimBarrier(w, "space-2", 2)
	n1 := w.nodeWithRedis("n1", bar.client(t, w, "n1"), withRelaySecret)
	n2 := w.nodeWithRedis("n2", bar.client(t, w, "n2"), withRelaySecret)
	reg := newRegistry(t, w)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	names := []string{"pa", "pb"}
	clients := make([]*spacesclient.Client, 2)
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for i, n := range []*node{n1, n2} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			clients[i], errs[i] = spacesclient.Join(ctx, n.url, w.token("space-2", "publisher", names[i]),
				spacesclient.Options{LoopbackOnly: true})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("%s: %v", names[i], err)
		}
		t.Cleanup(func() { clients[i].Close() })
	}
	bar.mu.Lock()
	arrived := slices.Clone(bar.arrived)
	bar.mu.Unlock()
	if bar.timeout.Load() || len(arrived) != 2 {
		t.Fatalf("the claims did not race: %v reached the barrier", arrived)
	}
	host, err := reg.SpaceNode(ctx, "space-2")
	if err != nil || (host != "n1" && host != "n2") {
		t.Fatalf("space-2 host %q, %v", host, err)
	}
	hostNode, other := n1, n2
	if host == "n2" {
		hostNode, other = n2, n1
	}
	// The losing owner retires right after its refused join (on its own goroutine).
	for end := time.Now().Add(2 * time.Second); other.svc.HostedSpace("space-2") && time.Now().Before(end); {
		time.Sleep(20 * time.Millisecond)
	}
	if !hostNode.svc.HostedSpace("space-2") || other.svc.HostedSpace("space-2") {
		t.Fatalf("owners of space-2: n1 %v, n2 %v; want only %s", n1.svc.HostedSpace("space-2"), n2.svc.HostedSpace("space-2"), host)
	}
	nodes := spaceNodes(t, reg, "space-2")
	if len(nodes) != 2 || nodes["pa"] != host || nodes["pb"] != host {
		t.Fatalf("registry: %v, want pa and pb on %s", nodes, host)
	}
	if v := metricValue(t, other, "spacecast_sfu_relayed_connections_total"); v != 1 {
		t.Fatalf("%s relayed %v connections, want 1", map[*node]string{n1: "n1", n2: "n2"}[other], v)
	}
	// Each sees the other: in its joined (the later one) or by participant_connected.
	for i, c := range clients {
		peerName := names[1-i]
		listed := false
		for _, p := range c.Info().Participants {
			listed = listed || p.ParticipantID == peerName
		}
		if !listed {
			nextEvent(t, c, 10*time.Second, names[i]+" told of "+peerName, func(m spacesclient.Message) bool {
				return m.ParticipantConnected != nil && m.ParticipantConnected.ParticipantID == peerName
			})
		}
	}
}

// TestRelayAfterLostClaim: a node whose local attempt loses the claim (Redis gives the space
// to another live node) relays the connection there instead of refusing it; a local owner
// whose first join was refused retires instead of lingering.
func TestRelayAfterLostClaim(t *testing.T) {
	w := newWorld(t)
	n1, n2 := w.node("n1", withRelaySecret), w.node("n2", withRelaySecret)
	gw := newGateway(t, n1, n2)
	reg := newRegistry(t, w)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	gw.pin(1)
	spacesJoin(t, ctx, gw.base, w.token("space-2", "publisher", "alice"), spacesclient.Options{})
	// The space moves to n1 under n2's feet: n2 still has its owner, so its next join is
	// attempted locally and the claim answers wrong_node.
	if err := w.rdb.Set(ctx, w.prefix+"{space:space-2}:node", "n1", 0).Err(); err != nil {
		t.Fatal(err)
	}
	bob := spacesJoin(t, ctx, gw.base, w.token("space-2", "publisher", "bob"), spacesclient.Options{})
	if nodes := spaceNodes(t, reg, "space-2"); nodes["bob"] != "n1" || nodes["alice"] != "n2" {
		t.Fatalf("registry: %v, want bob on n1 (relayed) and alice on n2", nodes)
	}
	if got := bob.Info().Participants; len(got) != 0 {
		t.Fatalf("bob's joined lists %+v; n1's owner has nobody else", got)
	}
	if v := metricValue(t, n2, "spacecast_sfu_relayed_connections_total"); v != 1 {
		t.Fatalf("n2 relayed %v connections, want 1", v)
	}
	// A first join refused by the claim (the participant is connected through another node)
	// leaves no owner behind.
	if err := w.rdb.HSet(ctx, w.prefix+"{space:space-1}:participants", "ghost",
		`{"space_id":"space-1","participant_id":"ghost","connection_id":"c-ghost","node_id":"n1"}`).Err(); err != nil {
		t.Fatal(err)
	}
	_, err := spacesclient.Join(ctx, gw.base, w.token("space-1", "publisher", "ghost"), spacesclient.Options{LoopbackOnly: true})
	var se *spacesclient.ServerError
	if !errors.As(err, &se) || se.Type != 3 {
		t.Fatalf("ghost's join: %v, want error type 3", err)
	}
	testenv.Eventually(t, 5*time.Second, func() bool { return !n2.svc.HostedSpace("space-1") },
		"n2's refused owner of space-1 retired")
}

// TestRelayingNodeShutdown: a relaying node that shuts down closes its relayed clients with
// 1012 (the SDK reconnects) and the hosting node keeps them for the reconnect window.
func TestRelayingNodeShutdown(t *testing.T) {
	w := newWorld(t)
	n1, n2 := w.node("n1", withRelaySecret), w.node("n2", withRelaySecret)
	gw := newGateway(t, n1, n2)
	evs := w.watchRTC()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	alice := spacesJoin(t, ctx, gw.base, w.token("space-1", "publisher", "alice"), spacesclient.Options{}) // n1
	bob := spacesJoin(t, ctx, gw.base, w.token("space-1", "publisher", "bob"), spacesclient.Options{})     // n2 → n1
	conn := bob.Info().ConnectionID
	nextEvent(t, alice, 10*time.Second, "participant_connected bob", func(m spacesclient.Message) bool {
		return m.ParticipantConnected != nil && m.ParticipantConnected.ParticipantID == "bob"
	})
	n2.cancel()
	select {
	case <-bob.Done():
	case <-time.After(15 * time.Second):
		t.Fatal("bob's relayed connection stayed open while n2 shut down")
	}
	if st := websocket.CloseStatus(bob.Err()); st != websocket.StatusServiceRestart {
		t.Fatalf("bob's socket closed with %v (%v), want 1012", st, bob.Err())
	}
	<-n2.done
	gw.setDown(1)
	bob2 := spacesJoin(t, ctx, gw.base, w.token("space-1", "publisher", "bob"), spacesclient.Options{ReconnectID: "bob"})
	if bob2.Info().ConnectionID != conn {
		t.Fatalf("bob came back as connection %s, want %s", bob2.Info().ConnectionID, conn)
	}
	quiet := time.After(1 * time.Second)
	for done := false; !done; {
		select {
		case m := <-alice.Events():
			if m.ParticipantDisconnected != nil || m.ParticipantConnected != nil {
				t.Fatalf("alice saw %+v during bob's move", m)
			}
		case <-quiet:
			done = true
		}
	}
	if l := evs.find("participant.left", map[string]string{"participant_id": "bob"}); len(l) != 0 {
		t.Fatalf("participant.left for bob: %d events, want 0", len(l))
	}
}
