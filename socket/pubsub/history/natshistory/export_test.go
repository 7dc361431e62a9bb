package natshistory

// ForgetRecreation makes s believe, as a node whose consumer missed the
// stream's deletion would, that the stream of epoch is still current and
// holds seq.
func (s *Store) ForgetRecreation(epoch string, seq uint64) {
	s.posMu.Lock()
	s.epoch, s.seen = epoch, seq
	s.posMu.Unlock()
}
