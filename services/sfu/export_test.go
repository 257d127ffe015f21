package sfu

// Halt plays a crash: connections drop, heartbeats and cleanup stop, and nothing is
// cleaned up in Redis or emitted.
func (s *Service) Halt() { s.srv.Halt() }

// CloseRelays drops the connections this node relays, as its crash would.
func (s *Service) CloseRelays() int { return s.srv.CloseRelays() }

// HostedSpace reports whether this node has an owner of the space.
func (s *Service) HostedSpace(id string) bool { return s.srv.HostedSpace(id) != nil }
