package server

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/spacecast/spacecast/libs/idgen"
	"github.com/spacecast/spacecast/libs/spacejwt"
	"github.com/spacecast/spacecast/services/sfu/internal/registry"
	"github.com/spacecast/spacecast/services/sfu/internal/space"
)

// SpacesPath is the Mux Spaces signaling WebSocket: pages set
// MUX_SPACES_BACKEND_URL = "ws(s)://<host>/spaces" and the SDK appends /v1.
const SpacesPath = "/spaces/v1"

// wsConn is one Mux Spaces WebSocket as a space sees it (space.Conn).
type wsConn struct {
	c    *websocket.Conn
	out  chan []byte
	done chan struct{}
	once sync.Once

	mu     sync.Mutex
	code   websocket.StatusCode
	reason string
	route  route // relaying decisions (relay.go)
}

var _ space.Conn = (*wsConn)(nil)

func newWSConn(c *websocket.Conn) *wsConn {
	return &wsConn{c: c, out: make(chan []byte, 512), done: make(chan struct{})}
}

// Send implements space.Conn.
func (w *wsConn) Send(m space.Out) {
	b, err := json.Marshal(m)
	if err != nil {
		return
	}
	select {
	case <-w.done:
		return
	default:
	}
	select {
	case w.out <- b:
	default:
		w.Close(1011, "client does not read its signaling messages")
	}
}

// Close implements space.Conn: queued messages go out first.
func (w *wsConn) Close(code int, reason string) {
	w.once.Do(func() {
		w.mu.Lock()
		w.code, w.reason = websocket.StatusCode(code), reason
		w.mu.Unlock()
		close(w.done)
	})
}

// writer sends queued frames until Close, then flushes and closes the socket.
func (w *wsConn) writer(ctx context.Context) {
	write := func(b []byte) error {
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		return w.c.Write(wctx, websocket.MessageText, b)
	}
	for {
		select {
		case b := <-w.out:
			if write(b) != nil {
				w.Close(1011, "write failed")
			}
		case <-w.done:
			for {
				select {
				case b := <-w.out:
					if write(b) != nil {
						_ = w.c.CloseNow()
						return
					}
				default:
					w.mu.Lock()
					code, reason, off := w.code, w.reason, w.route.handedOff
					w.mu.Unlock()
					if !off {
						_ = w.c.Close(code, reason)
					}
					return
				}
			}
		}
	}
}

// refuse sends an error before joined and closes with 4000 (the SDK's "do not retry").
func (w *wsConn) refuse(typ int, msg string) {
	w.Send(space.Out{Error: &space.Error{Type: typ, Message: msg, Fatal: true}})
	w.Close(4000, msg)
}

// ServeSpaces accepts a Mux Spaces SDK connection.
func (s *Server) ServeSpaces(w http.ResponseWriter, r *http.Request) {
	relayed, ok := s.incomingRelay(w, r)
	if !ok {
		return
	}
	// The token in the query is the only credential: pages of any origin may connect.
	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
	if err != nil {
		return
	}
	c.SetReadLimit(1 << 20)
	s.wg.Add(1)
	defer s.wg.Done()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	conn := newWSConn(c)
	conn.route.relayed = relayed
	wdone := make(chan struct{})
	go func() { defer close(wdone); conn.writer(ctx) }()
	defer func() { <-wdone }()
	q := r.URL.Query()
	h, ok := s.admit(ctx, conn, q.Get("token"), q.Get("managed_subscriptions"), q.Get("display_name"), q.Get("reconnect_id"))
	if !ok && conn.relayTarget() != "" {
		conn.handOff()
		<-wdone
		s.relaySpaces(ctx, c, r, conn.relayTarget())
		return
	}
	if !ok {
		// Read until the client goes so the error reaches it before the close.
		go func() {
			for {
				if _, _, err := c.Read(ctx); err != nil {
					return
				}
			}
		}()
		<-conn.done
		return
	}
	s.trackConn(conn, connInfo{h: h, spaceID: h.SpaceID(), keyID: h.KeyID}, true)
	defer s.trackConn(conn, connInfo{}, false)
	go s.pinger(ctx, conn)
	for {
		typ, b, err := c.Read(ctx)
		if err != nil {
			st := websocket.CloseStatus(err)
			// A page that leaves closes without a status (1005) or goes away (1001); anything
			// else (no close frame, an error code) may come back with reconnect_id.
			clean := st == websocket.StatusNormalClosure || st == websocket.StatusGoingAway || st == websocket.StatusNoStatusRcvd
			select {
			case <-conn.done:
				// We closed it: 4000 ends the participant; other codes tell the SDK to reconnect.
				conn.mu.Lock()
				clean = conn.code == 4000
				conn.mu.Unlock()
			default:
			}
			h.Leave(!clean)
			conn.Close(int(websocket.StatusNormalClosure), "")
			return
		}
		if typ != websocket.MessageText {
			continue
		}
		var in space.In
		if err := json.Unmarshal(b, &in); err != nil {
			s.log.Debug("unparsable spaces message ignored", "err", err)
			continue
		}
		h.Message(in)
	}
}

func (s *Server) pinger(ctx context.Context, conn *wsConn) {
	t := time.NewTicker(15 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-conn.done:
			return
		case <-t.C:
			pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			err := conn.c.Ping(pctx)
			cancel()
			if err != nil {
				_ = conn.c.CloseNow()
				return
			}
		}
	}
}

// connInfo is what the node keeps about a Mux Spaces connection.
type connInfo struct {
	h       *space.Handle
	spaceID string
	keyID   string // signing key of the token
}

func (s *Server) trackConn(c *wsConn, ci connInfo, add bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if add {
		s.spaceConns[c] = ci
	} else {
		delete(s.spaceConns, c)
	}
}

// closeSpaceConns ends the Mux Spaces connections matching keep with a fatal error
// (close 4000: the SDK does not retry); it reports how many.
func (s *Server) closeSpaceConns(match func(connInfo) bool, msg string) int {
	s.mu.Lock()
	var list []*wsConn
	for c, ci := range s.spaceConns {
		if match(ci) {
			list = append(list, c)
		}
	}
	s.mu.Unlock()
	for _, c := range list {
		c.Send(space.Out{Error: &space.Error{Type: space.ErrTypeDisconnected, Message: msg, Fatal: true}})
		c.Close(4000, msg)
	}
	return len(list)
}

// admit checks the token and the space and joins the space's owner.
func (s *Server) admit(ctx context.Context, conn *wsConn, token, managed, displayName, reconnectID string) (*space.Handle, bool) {
	vctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	claims, err := s.jwt.Verify(vctx, token, spacejwt.AudienceRT)
	if err != nil {
		conn.refuse(space.ErrTypeInvalidJWT, "invalid token: "+err.Error())
		return nil, false
	}
	if issuedInFuture(token, time.Now(), s.cfg.Leeway) {
		conn.refuse(space.ErrTypeInvalidJWT, "invalid token: issued in the future (iat)")
		return nil, false
	}
	info, err := s.spaces.LookupSpace(vctx, claims.Subject)
	if errors.Is(err, ErrSpaceNotFound) || (err == nil && info.EnvironmentID != claims.EnvironmentID) {
		if del, _ := s.reg.IsDeleted(vctx, claims.Subject); del {
			conn.refuse(space.ErrTypeInvalidJWT, "space not found: the space was deleted")
			return nil, false
		}
		conn.refuse(space.ErrTypeInvalidJWT, "space not found: "+claims.Subject)
		return nil, false
	}
	if err != nil {
		s.log.Error("space lookup failed", "err", err, "space_id", claims.Subject)
		conn.refuse(space.ErrTypeUnknown, "space lookup failed")
		return nil, false
	}
	n := 16
	if managed != "" {
		n, err = strconv.Atoi(managed)
		if err != nil || n < 0 || n > 20 {
			conn.refuse(space.ErrTypeUnknown, "managed_subscriptions must be 0..20")
			return nil, false
		}
	}
	if len([]rune(displayName)) > 64 {
		conn.refuse(space.ErrTypeUnknown, "display_name is longer than 64 characters")
		return nil, false
	}
	pid := claims.ParticipantID
	if pid == "" {
		pid = idgen.New()
	}
	req := space.JoinRequest{Member: space.Member{SpaceID: info.ID, EnvironmentID: info.EnvironmentID, ParticipantID: pid,
		Role: claims.Role, JoinedAt: time.Now()}, DisplayName: displayName, Managed: n, ReconnectID: reconnectID, Conn: conn}
	if s.routeElsewhere(ctx, conn, info.ID) {
		return nil, false
	}
	for range 5 {
		sp, err := s.spaceOwner(info.ID, info.EnvironmentID)
		if err != nil {
			conn.refuse(space.ErrTypeUnknown, "could not open the space")
			return nil, false
		}
		h, err := sp.Join(ctx, req)
		if errors.Is(err, space.ErrClosed) {
			continue
		}
		if s.relayAfterClaim(conn, err) {
			return nil, false
		}
		var je *space.JoinError
		if errors.As(err, &je) {
			conn.refuse(je.Type, je.Message)
			return nil, false
		}
		if err != nil {
			s.log.Error("join failed", "err", err, "space_id", info.ID)
			conn.refuse(space.ErrTypeUnknown, "could not join the space")
			return nil, false
		}
		h.KeyID = claims.KeyID
		return h, true
	}
	conn.refuse(space.ErrTypeUnknown, "could not join the space")
	return nil, false
}

// spaceOwner returns the owner of a space on this node, starting it if needed.
func (s *Server) spaceOwner(id, env string) (*space.Space, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sp := s.owners[id]; sp != nil {
		return sp, nil
	}
	if s.metrics == nil {
		s.metrics = space.NewMetrics(s.cfg.Registerer)
	}
	sp, err := space.New(space.Config{ID: id, EnvironmentID: env, NodeID: s.cfg.NodeID, Peers: s.engine, Hooks: spaceHooks{s},
		Logger: s.log, Metrics: s.metrics, ICEServers: s.spaceICEServers(), ReconnectWindow: s.cfg.ReconnectWindow,
		MaxParticipants: s.cfg.MaxParticipants, CameraEncodings: s.cameraEncodings(),
		Limits: space.Limits{CustomEventsPerSecond: 5, DefaultTrackLimit: 1, SecondsPerSetDisplayName: 1},
		OnEmpty: func(sp *space.Space) {
			s.mu.Lock()
			if s.owners[id] == sp {
				delete(s.owners, id)
			}
			s.mu.Unlock()
			// The relay drops the space from the node's list once its events are published.
			s.relay.Notify(id)
			if f := s.cfg.OnSpaceRetired; f != nil {
				go f(id)
			}
		}})
	if err != nil {
		return nil, err
	}
	s.owners[id] = sp
	return sp, nil
}

// CameraLayers are the simulcast layers camera publishers are asked for (SPACECAST_SFU_SIMULCAST).
var CameraLayers = []space.Encoding{
	{RID: "q", MaxBitrate: 150_000, ScaleResolutionDownBy: 4, MaxFramerate: 30},
	{RID: "h", MaxBitrate: 500_000, ScaleResolutionDownBy: 2, MaxFramerate: 30},
	{RID: "f", MaxBitrate: 1_200_000, ScaleResolutionDownBy: 1, MaxFramerate: 30},
}

func (s *Server) cameraEncodings() []space.Encoding {
	if !s.cfg.Simulcast {
		return []space.Encoding{}
	}
	return CameraLayers
}

func (s *Server) spaceICEServers() []space.ICEServer {
	out := []space.ICEServer{}
	return append(out, s.cfg.ICEServers...)
}

// spaceHooks write a space's decisions, with their events, to Redis.
type spaceHooks struct{ s *Server }

var _ space.Hooks = spaceHooks{}

func regPart(s *Server, m space.Member) registry.Participant {
	return registry.Participant{SpaceID: m.SpaceID, ParticipantID: m.ParticipantID, ConnectionID: m.ConnectionID, Role: m.Role,
		NodeID: s.cfg.NodeID, EnvironmentID: m.EnvironmentID, JoinedAt: m.JoinedAt.Unix()}
}

func kindName(t int) string {
	if t == space.KindAudio {
		return "audio"
	}
	return "video"
}

func regTrack(t space.Track) registry.Track {
	return registry.Track{TrackID: t.TID, Kind: kindName(t.Type), Source: t.Source, Mid: t.Mid, Muted: t.Muted}
}

// Claim implements space.Hooks: the participant and its participant.joined, in one step.
func (h spaceHooks) Claim(ctx context.Context, m space.Member) error {
	s := h.s
	part := regPart(s, m)
	joined, err := participantEvent(EventParticipantJoined, part)
	if err != nil {
		s.log.Error("building participant.joined failed", "err", err)
		return &space.JoinError{Type: space.ErrTypeUnknown, Message: "could not record the join"}
	}
	if _, err := s.claim(ctx, part, joined); err != nil {
		return err
	}
	s.relay.Notify(part.SpaceID)
	return nil
}

// Release implements space.Hooks: the participant goes with its participant.left, in one step.
func (h spaceHooks) Release(ctx context.Context, m space.Member) {
	s := h.s
	if s.isHalted() {
		return
	}
	part := regPart(s, m)
	left, err := participantEvent(EventParticipantLeft, part)
	if err == nil {
		var ok bool
		if _, ok, err = s.reg.Release(ctx, part, left); ok {
			s.relay.Notify(part.SpaceID)
		}
	}
	if err != nil {
		s.log.Error("releasing participant failed; the node sweep will remove it", "err", err)
	}
}

// TrackPublished implements space.Hooks: the track and its track.published, in one step.
func (h spaceHooks) TrackPublished(ctx context.Context, m space.Member, t space.Track) {
	s := h.s
	if s.isHalted() {
		return
	}
	part, rt := regPart(s, m), regTrack(t)
	ev, err := trackEvent(EventTrackPublished, part, rt)
	if err == nil {
		err = s.reg.SetTrack(ctx, m.SpaceID, m.ConnectionID, rt, ev)
	}
	if err != nil {
		s.log.Error("recording track and track.published failed", "err", err)
		return
	}
	s.relay.Notify(part.SpaceID)
}

// TrackUnpublished implements space.Hooks: the track goes with its track.unpublished, in one
// step (none when the track was not recorded).
func (h spaceHooks) TrackUnpublished(ctx context.Context, m space.Member, t space.Track) {
	s := h.s
	if s.isHalted() {
		return
	}
	part, rt := regPart(s, m), regTrack(t)
	ev, err := trackEvent(EventTrackUnpublished, part, rt)
	removed := false
	if err == nil {
		removed, err = s.reg.RemoveTrack(ctx, m.SpaceID, m.ConnectionID, t.TID, ev)
	}
	if err != nil {
		s.log.Error("forgetting track and recording track.unpublished failed", "err", err)
		return
	}
	if removed {
		s.relay.Notify(part.SpaceID)
	}
}

// TrackMuted implements space.Hooks.
func (h spaceHooks) TrackMuted(ctx context.Context, m space.Member, t space.Track) {
	s := h.s
	if s.isHalted() {
		return
	}
	_ = s.reg.SetTrack(ctx, m.SpaceID, m.ConnectionID, regTrack(t))
}
