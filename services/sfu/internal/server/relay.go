package server

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/spacecast/spacecast/services/sfu/internal/space"
)

// A Mux Spaces connection that reaches a node not hosting its space is relayed to the node
// that does: the SDK cannot follow a redirect (the page fixes the URL), so any node accepts
// the socket and copies its frames to and from a node-to-node WebSocket. The hosting node
// does everything else (SDP, ICE with its own candidates: media goes to it directly).
const (
	// InternalHeader carries SPACECAST_INTERNAL_SECRET on a relayed connection.
	InternalHeader = "X-Spacecast-Internal"
	// RelayedByHeader names the relaying node (logs only).
	RelayedByHeader = "X-Spacecast-Relayed-By"
)

// wrongNodeError is what the Claim hook answers when another live node hosts the space.
type wrongNodeError struct{ nodeID string }

func (e *wrongNodeError) Error() string { return "the space is hosted by node " + e.nodeID }

// route is what a connection's relaying decided (guarded by its wsConn's mu).
type route struct {
	relayed   bool   // the connection came from another node: never relayed again
	target    string // node to relay to ("" to host here)
	handedOff bool   // the socket belongs to the relay: the writer must not close it
}

func (w *wsConn) relayTarget() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.route.target
}

func (w *wsConn) setRelayTarget(node string) {
	w.mu.Lock()
	w.route.target = node
	w.mu.Unlock()
}

// handOff ends the connection's writer without closing the socket (nothing was queued:
// the relay decision comes before any message).
func (w *wsConn) handOff() {
	w.mu.Lock()
	w.route.handedOff = true
	w.mu.Unlock()
	w.Close(0, "")
}

// incomingRelay checks a relayed connection's secret; false means it was refused (403).
func (s *Server) incomingRelay(w http.ResponseWriter, r *http.Request) (relayed, ok bool) {
	s.relays.init(s.cfg.Registerer)
	got := r.Header.Get(InternalHeader)
	if got == "" {
		return false, true
	}
	if s.cfg.InternalSecret == "" || subtle.ConstantTimeCompare([]byte(got), []byte(s.cfg.InternalSecret)) != 1 {
		http.Error(w, "bad internal secret", http.StatusForbidden)
		return false, false
	}
	return true, true
}

// canRelay reports whether this node may relay conn at all.
func (s *Server) canRelay(conn *wsConn) bool {
	conn.mu.Lock()
	relayed := conn.route.relayed
	conn.mu.Unlock()
	return !relayed && s.cfg.InternalSecret != ""
}

// routeElsewhere decides, before a local owner is created, whether another live node hosts
// the space; then conn is to be relayed there.
func (s *Server) routeElsewhere(ctx context.Context, conn *wsConn, spaceID string) bool {
	if !s.canRelay(conn) || s.HostedSpace(spaceID) != nil {
		return false
	}
	node, err := s.reg.SpaceNode(ctx, spaceID)
	if err != nil || node == "" || node == s.cfg.NodeID {
		return false // a failing registry fails the claim of the local attempt
	}
	alive, err := s.reg.Alive(ctx, node, s.cfg.NodeTimeout, time.Now())
	if err != nil || !alive {
		return false // the claim cleans a dead node's assignment up
	}
	conn.setRelayTarget(node)
	return true
}

// relayAfterClaim handles a local attempt that lost the space to another node (the atomic
// claim decided; the local owner retires on its own): conn is relayed there, or refused when
// it cannot be. It reports whether err was that.
func (s *Server) relayAfterClaim(conn *wsConn, err error) bool {
	var wn *wrongNodeError
	if !errors.As(err, &wn) {
		return false
	}
	if s.canRelay(conn) {
		conn.setRelayTarget(wn.nodeID)
		return true
	}
	// A relayed connection whose space moved meanwhile, or relaying is off (no secret):
	// an error before joined makes the SDK try again (a plain close would leave it waiting).
	conn.refuse(space.ErrTypeUnknown, wn.Error()+"; try again")
	return true
}

// relaySpaces copies c's frames to and from the node hosting the space until either side
// ends; it runs on the connection's handler goroutine.
func (s *Server) relaySpaces(ctx context.Context, c *websocket.Conn, r *http.Request, node string) {
	log := s.log.With("relay_to", node)
	fail := func(msg string) {
		s.relays.m.failures.Inc()
		log.Warn("relay failed", "err", msg)
		refuseRaw(ctx, c, msg)
	}
	base, err := s.reg.InternalURL(ctx, node)
	if err != nil || base == "" {
		fail("the node hosting the space cannot be reached (no internal URL)")
		return
	}
	h := http.Header{}
	h.Set(InternalHeader, s.cfg.InternalSecret)
	h.Set(RelayedByHeader, s.cfg.NodeID)
	if ua := r.Header.Get("User-Agent"); ua != "" {
		h.Set("User-Agent", ua)
	}
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	up, resp, err := websocket.Dial(dctx, strings.TrimSuffix(base, "/")+SpacesPath+"?"+r.URL.RawQuery,
		&websocket.DialOptions{HTTPHeader: h})
	cancel()
	if resp != nil && resp.Body != nil {
		_ = resp.Body.Close()
	}
	if err != nil {
		fail("the node hosting the space cannot be reached")
		return
	}
	up.SetReadLimit(4 << 20)
	rl := newRelay(c, up)
	s.relays.add(rl)
	defer s.relays.remove(rl)
	log.Debug("relaying a spaces connection")
	rl.run(ctx)
}

// refuseRaw sends the SDK an error before joined (it then retries) and closes with 4000.
func refuseRaw(ctx context.Context, c *websocket.Conn, msg string) {
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if b, err := json.Marshal(space.Out{Error: &space.Error{Type: space.ErrTypeUnknown, Message: msg, Fatal: true}}); err == nil {
		_ = c.Write(wctx, websocket.MessageText, b)
	}
	go func() {
		for {
			if _, _, err := c.Read(ctx); err != nil {
				return
			}
		}
	}()
	_ = c.Close(4000, "relay failed")
}

// relay is one relayed connection: the client's socket and the one to the hosting node.
type relay struct {
	client, up *websocket.Conn

	once  sync.Once
	stop  chan struct{} // closed by end
	crash bool          // set before stop closes
}

func newRelay(client, up *websocket.Conn) *relay {
	return &relay{client: client, up: up, stop: make(chan struct{})}
}

// end stops the relay from this node's side: both sockets close with 1012 (the client
// reconnects, the hosting node keeps the participant for the reconnect window), or without
// a close frame when crash is set.
func (rl *relay) end(crash bool) {
	rl.once.Do(func() {
		rl.crash = crash
		close(rl.stop)
	})
}

type pumpEnd struct {
	fromClient bool
	err        error
	write      bool // the error came from writing to the other side
}

func pump(ctx context.Context, src, dst *websocket.Conn, fromClient bool, out chan<- pumpEnd) {
	for {
		typ, b, err := src.Read(ctx)
		if err != nil {
			out <- pumpEnd{fromClient: fromClient, err: err}
			return
		}
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err = dst.Write(wctx, typ, b)
		cancel()
		if err != nil {
			out <- pumpEnd{fromClient: fromClient, err: err, write: true}
			return
		}
	}
}

// run copies frames both ways (message types kept) and pings the client; the first side
// to end ends the other: a close code and reason are passed on, a side that vanished
// without one makes the other see an abnormal end (client gone: the hosting node keeps the
// participant for the reconnect window) or a 1014 (hosting node gone: the SDK reconnects).
func (rl *relay) run(parent context.Context) {
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	ends := make(chan pumpEnd, 2)
	go pump(ctx, rl.client, rl.up, true, ends)
	go pump(ctx, rl.up, rl.client, false, ends)
	pingDone := make(chan struct{})
	go func() { defer close(pingDone); rl.pingClient(ctx, rl.stop) }()
	pending := 2
	select {
	case first := <-ends:
		pending--
		rl.finish(first)
	case <-rl.stop:
		if rl.crash {
			_ = rl.client.CloseNow()
			_ = rl.up.CloseNow()
		} else {
			upDone := make(chan struct{})
			go func() {
				defer close(upDone)
				_ = rl.up.Close(websocket.StatusServiceRestart, "the relaying node is shutting down")
			}()
			_ = rl.client.Close(websocket.StatusServiceRestart, "the node is shutting down")
			<-upDone
		}
	}
	cancel() // a read cut by the context closes its socket
	for ; pending > 0; pending-- {
		<-ends
	}
	<-pingDone
}

// finish ends the other side after the first pump ended.
func (rl *relay) finish(first pumpEnd) {
	src, dst := rl.up, rl.client
	if first.fromClient {
		src, dst = rl.client, rl.up
	}
	var ce websocket.CloseError
	switch {
	case !first.write && errors.As(first.err, &ce):
		// src closed with a code (the library answered its close frame): pass it on.
		_ = dst.Close(ce.Code, ce.Reason)
	case first.fromClient != first.write:
		// The client vanished (a read from it failed, or a write to it).
		_ = rl.up.CloseNow()
		_ = rl.client.CloseNow()
	default:
		// The hosting node vanished.
		_ = rl.up.CloseNow()
		_ = rl.client.Close(websocket.StatusBadGateway, "the node hosting the space went away")
	}
	_ = src.CloseNow()
}

// pingClient pings the client as a directly connected one is pinged; the hosting node pings
// the node-to-node socket (answered by its reader).
func (rl *relay) pingClient(ctx context.Context, stop <-chan struct{}) {
	t := time.NewTicker(15 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-stop:
			return
		case <-t.C:
			pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			err := rl.client.Ping(pctx)
			cancel()
			if err != nil {
				if ctx.Err() == nil {
					_ = rl.client.CloseNow() // the client pump ends: handled as a vanished client
				}
				return
			}
		}
	}
}

// relaySet is a node's live relays and their metrics.
type relaySet struct {
	once sync.Once
	m    relayMetrics

	mu   sync.Mutex
	live map[*relay]struct{}
}

type relayMetrics struct {
	total, failures prometheus.Counter
	open            prometheus.Gauge
}

func (rs *relaySet) init(reg prometheus.Registerer) {
	rs.once.Do(func() {
		rs.m = relayMetrics{
			total: prometheus.NewCounter(prometheus.CounterOpts{Name: "spacecast_sfu_relayed_connections_total",
				Help: "Mux Spaces connections this node relayed to the node hosting their space."}),
			failures: prometheus.NewCounter(prometheus.CounterOpts{Name: "spacecast_sfu_relay_failures_total",
				Help: "Connections that were to be relayed but the hosting node could not be reached."}),
			open: prometheus.NewGauge(prometheus.GaugeOpts{Name: "spacecast_sfu_relays",
				Help: "Relayed connections open on this node."}),
		}
		if reg != nil {
			for _, c := range []prometheus.Collector{rs.m.total, rs.m.failures, rs.m.open} {
				_ = reg.Register(c)
			}
		}
	})
}

func (rs *relaySet) add(rl *relay) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if rs.live == nil {
		rs.live = map[*relay]struct{}{}
	}
	rs.live[rl] = struct{}{}
	rs.m.total.Inc()
	rs.m.open.Inc()
}

func (rs *relaySet) remove(rl *relay) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	delete(rs.live, rl)
	rs.m.open.Dec()
}

// closeAll ends every relay (crash: without close handshakes); it reports how many.
func (rs *relaySet) closeAll(crash bool) int {
	rs.mu.Lock()
	list := make([]*relay, 0, len(rs.live))
	for rl := range rs.live {
		list = append(list, rl)
	}
	rs.mu.Unlock()
	for _, rl := range list {
		rl.end(crash)
	}
	return len(list)
}

// CloseRelays drops this node's relayed connections as a crash of the relaying node would
// (tests use it); it reports how many.
func (s *Server) CloseRelays() int { return s.relays.closeAll(true) }
