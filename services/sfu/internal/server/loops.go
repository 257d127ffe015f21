package server

import (
	"context"
	"time"

	"github.com/spacecast/spacecast/services/sfu/rtcproto"
)

// Heartbeat records this node as alive now.
func (s *Server) Heartbeat(ctx context.Context) error {
	return s.reg.Heartbeat(ctx, s.cfg.NodeID, s.cfg.PublicURL, time.Now())
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

// RunCleanup looks for dead nodes every CleanupInterval and removes their participants,
// emitting participant.left (and track.unpublished) for them. It also disconnects local
// participants of spaces deleted while a pub/sub announcement was missed.
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

// cleanNodeSpace removes node's participants of space, events first (so a crash here
// repeats them rather than losing them). It reports success.
func (s *Server) cleanNodeSpace(ctx context.Context, node, space string) bool {
	orphans, err := s.reg.NodeParticipants(ctx, node, space)
	if err != nil {
		s.log.Warn("reading dead node's participants failed", "err", err, "node", node, "space_id", space)
		return false
	}
	for _, o := range orphans {
		var evs []pending
		for _, t := range o.Tracks {
			evs = append(evs, pending{typ: EventTrackUnpublished, p: o.Participant, data: trackData(o.Participant, t)})
		}
		evs = append(evs, pending{typ: EventParticipantLeft, p: o.Participant, data: participantData(o.Participant)})
		if err := s.ev.emit(ctx, evs...); err != nil {
			s.log.Error("recording participant.left for a dead node failed", "err", err)
			return false
		}
		if _, err := s.reg.Release(ctx, o.Participant); err != nil {
			s.log.Warn("removing dead node's participant failed", "err", err)
			return false
		}
		s.log.Info("removed participant of a dead node", "node", node, "space_id", space, "participant_id", o.Participant.ParticipantID)
	}
	if err := s.reg.ReleaseNodeAssignment(ctx, node, space); err != nil {
		return false
	}
	_ = s.reg.ForgetSpace(ctx, node, space)
	return true
}

func (s *Server) checkTombstones(ctx context.Context) {
	s.mu.Lock()
	ids := make([]string, 0, len(s.rooms))
	for id := range s.rooms {
		ids = append(ids, id)
	}
	s.mu.Unlock()
	for _, id := range ids {
		if del, err := s.reg.IsDeleted(ctx, id); err == nil && del {
			s.DisconnectSpace(id, rtcproto.CodeSpaceDeleted, "the space was deleted")
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
			s.DisconnectSpace(m.Payload, rtcproto.CodeSpaceDeleted, "the space was deleted")
		}
	}
}
