package server

import "github.com/spacecast/spacecast/services/sfu/internal/space"

// HostedSpace is the owner of a space this node hosts (nil when it hosts none).
func (s *Server) HostedSpace(id string) *space.Space {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.owners[id]
}
