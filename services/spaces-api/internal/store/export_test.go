package store

// PendingCreates is how many creates wait for their group commit.
func (s *Store) PendingCreates() int { return s.creates.Pending() }
