package store

// WaitingCreates is how many creates wait for the next group commit.
func (s *Store) WaitingCreates() int { return s.creates.Waiting() }
