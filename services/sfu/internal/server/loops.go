package server

import (
	"context"
	"time"

	"github.com/spacecast/spacecast/services/sfu/internal/registry"
)

// Heartbeat records this node as alive now.
func (s *Server) Heartbeat(ctx context.Context) error {
	if err := s.reg.Heartbeat(ctx, s.cfg.NodeID, s.cfg.PublicURL, time.Now()); err != nil {
		return err
	}
	if s.cfg.InternalURL == "" {
		return nil
	}
	return s.reg.SetInternalURL(ctx, s.cfg.NodeID, s.cfg.InternalURL)
}

// RunHeartbeats heartbeats every HeartbeatInterval until ctx ends or the node is halted.
func (s *Server) RunHeartbeats(ctx context.Context) {
	t := time.NewTicker(s.cfg.HeartbeatInterval)
	defer t.Stop()
	for {
		if s.isHalted() {
			return
		}
		if err := s.Heartbeat(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("heartbeat failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// RunCleanup looks for dead nodes every CleanupInterval, removes their participants with
// their participant.left (and track.unpublished) and publishes what they left unpublished.
// It also disconnects local participants of spaces deleted while a pub/sub announcement was
// missed.
func (s *Server) RunCleanup(ctx context.Context) {
	t := time.NewTicker(s.cfg.CleanupInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if s.isHalted() {
			return
		}
		s.CleanupOnce(ctx)
		s.checkTombstones(ctx)
	}
}

// CleanupOnce cleans every dead node once.
func (s *Server) CleanupOnce(ctx context.Context) {
	dead, err := s.reg.DeadNodes(ctx, s.cfg.NodeTimeout, time.Now())
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("listing dead nodes failed", "err", err)
		}
		return
	}
	for _, node := range dead {
		if node == s.cfg.NodeID {
			continue
		}
		ok, err := s.reg.LockCleanup(ctx, node, s.cfg.NodeID, 30*time.Second)
		if err != nil || !ok {
			continue
		}
		spaces, err := s.reg.NodeSpaces(ctx, node)
		if err != nil {
			continue
		}
		clean := true
		for _, sp := range spaces {
			if !s.cleanNodeSpace(ctx, node, sp) {
				clean = false
			}
		}
		if clean {
			if err := s.reg.ForgetNode(ctx, node); err != nil {
				s.log.Warn("forgetting dead node failed", "err", err, "node", node)
			}
			s.log.Info("cleaned up dead node", "node", node, "spaces", len(spaces))
		}
	}
}

// CleanupOwn removes what an earlier run of this node id left in Redis (call at start,
// before accepting connections).
func (s *Server) CleanupOwn(ctx context.Context) error {
	spaces, err := s.reg.NodeSpaces(ctx, s.cfg.NodeID)
	if err != nil {
		return err
	}
	for _, sp := range spaces {
		s.cleanNodeSpace(ctx, s.cfg.NodeID, sp)
	}
	return nil
}

// cleanNodeSpace removes node's participants of space: each goes in one step with its
// tracks' track.unpublished and its participant.left (Redis decides the occupancy it
// carries). The space joins this node's list first, so this node's relay publishes them (and
// what node appended there and did not publish) and, should this node die too, its cleaner
// does. It reports success.
func (s *Server) cleanNodeSpace(ctx context.Context, node, space string) bool {
	if err := s.adopt(ctx, space); err != nil {
		s.log.Warn("adding a dead node's space to this node's list failed", "err", err, "node", node, "space_id", space)
		return false
	}
	defer s.unadopt(space)
	if node != s.cfg.NodeID {
		if err := s.reg.BreakRelayLock(ctx, space, node); err != nil {
			s.log.Warn("releasing a dead node's relay lock failed", "err", err, "node", node, "space_id", space)
		}
	}
	orphans, err := s.reg.NodeParticipants(ctx, node, space)
	if err != nil {
		s.log.Warn("reading dead node's participants failed", "err", err, "node", node, "space_id", space)
		return false
	}
	for _, o := range orphans {
		evs, err := orphanEvents(o)
		ok := false
		if err == nil {
			_, ok, err = s.reg.Release(ctx, o.Participant, evs...)
		}
		if err != nil {
			s.log.Warn("removing dead node's participant failed", "err", err)
			return false
		}
		if !ok {
			continue // it left meanwhile
		}
		s.log.Info("removed participant of a dead node", "node", node, "space_id", space, "participant_id", o.Participant.ParticipantID)
	}
	if err := s.reg.ReleaseNodeAssignment(ctx, node, space); err != nil {
		return false
	}
	if node != s.cfg.NodeID {
		_ = s.reg.ForgetSpace(ctx, node, space)
	}
	return true
}

// orphanEvents are the events of a dead node's participant: track.unpublished of each of its
// tracks, then participant.left.
func orphanEvents(o registry.Orphan) ([]registry.Event, error) {
	evs := make([]registry.Event, 0, len(o.Tracks)+1)
	for _, t := range o.Tracks {
		ev, err := trackEvent(EventTrackUnpublished, o.Participant, t)
		if err != nil {
			return nil, err
		}
		evs = append(evs, ev)
	}
	left, err := participantEvent(EventParticipantLeft, o.Participant)
	if err != nil {
		return nil, err
	}
	return append(evs, left), nil
}

// RunReconcile reconciles once at start and then every ReconcileInterval until ctx ends.
func (s *Server) RunReconcile(ctx context.Context) {
	if s.active == nil {
		return
	}
	t := time.NewTicker(s.cfg.ReconcileInterval)
	defer t.Stop()
	for {
		if s.isHalted() {
			return
		}
		if err := s.ReconcileOnce(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("reconciling space status failed; retrying", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// reconcilePage is how many active spaces one request asks for.
const reconcilePage = 500

// ReconcileOnce asks spaces-api which spaces it shows active and emits space.vacated for
// each that has nobody connected on any node (participants that died with Redis, or whose
// events were lost). A space with participants of a dead node is left to the dead-node sweep.
func (s *Server) ReconcileOnce(ctx context.Context) error {
	after := ""
	n := 0
	for {
		page, err := s.active.ActiveSpaces(ctx, after, reconcilePage)
		if err != nil {
			return err
		}
		for _, sp := range page {
			vacant, err := s.announceVacant(ctx, sp)
			if err != nil {
				return err
			}
			if vacant {
				n++
			}
		}
		if len(page) < reconcilePage {
			break
		}
		after = page[len(page)-1].ID
	}
	if n > 0 {
		s.log.Info("space status reconciled: active spaces without participants announced vacant", "count", n)
	}
	return nil
}

// announceVacant appends space.vacated to sp's stream (published by this node's relay) if
// nobody is connected to it on any node.
func (s *Server) announceVacant(ctx context.Context, sp SpaceInfo) (bool, error) {
	if n, err := s.reg.ParticipantCount(ctx, sp.ID); err != nil || n > 0 {
		return false, err // occupied: no need to add it to this node's list
	}
	ev, err := vacatedEvent(sp, s.cfg.NodeID)
	if err != nil {
		return false, err
	}
	if err := s.adopt(ctx, sp.ID); err != nil {
		return false, err
	}
	defer s.unadopt(sp.ID)
	_, vacant, err := s.reg.Vacant(ctx, sp.ID, ev)
	return vacant, err
}

// RunKeyCheck disconnects, every KeyCheckInterval, the participants whose token's signing
// key was deleted (the verifier's key set follows the keys service within its refresh period).
func (s *Server) RunKeyCheck(ctx context.Context) {
	t := time.NewTicker(s.cfg.KeyCheckInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if s.isHalted() {
			return
		}
		s.CheckKeysOnce(ctx)
	}
}

// CheckKeysOnce closes the local connections whose signing key no longer exists.
func (s *Server) CheckKeysOnce(ctx context.Context) {
	s.mu.Lock()
	kids := map[string]bool{}
	for _, ci := range s.spaceConns {
		kids[ci.keyID] = true
	}
	s.mu.Unlock()
	for kid := range kids {
		if kid == "" || s.jwt.HasKey(ctx, kid) {
			continue
		}
		n := s.closeSpaceConns(func(ci connInfo) bool { return ci.keyID == kid }, "the signing key of this participant's token was deleted")
		s.log.Info("signing key deleted: participants disconnected", "kid", kid, "count", n)
	}
}

func (s *Server) checkTombstones(ctx context.Context) {
	s.mu.Lock()
	ids := make([]string, 0, len(s.owners))
	for id := range s.owners {
		ids = append(ids, id)
	}
	s.mu.Unlock()
	for _, id := range ids {
		if del, err := s.reg.IsDeleted(ctx, id); err == nil && del {
			s.DisconnectSpace(id, "the space was deleted")
		}
	}
}

// RunDeletedSubscription disconnects local participants of spaces other nodes saw deleted.
func (s *Server) RunDeletedSubscription(ctx context.Context) {
	ps := s.reg.SubscribeDeleted(ctx)
	defer ps.Close()
	ch := ps.Channel()
	for {
		select {
		case <-ctx.Done():
			return
		case m, ok := <-ch:
			if !ok {
				return
			}
			s.DisconnectSpace(m.Payload, "the space was deleted")
		}
	}
}
