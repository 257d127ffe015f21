package sfu

// Halt plays a crash: connections drop, heartbeats and cleanup stop, and nothing is
// cleaned up in Redis or emitted.
func (s *Service) Halt() { s.srv.Halt() }
