package storage

// Counters returns the store's counters without its extent (OldestData and
// NewestData stay zero). Unlike Stats it takes no lock, so a metrics scrape
// never waits behind a long query or a write.
func (s *Store) Counters() Stats {
	var dict DictionaryStats
	if d := s.dictStats.Load(); d != nil {
		dict = *d
	}
	return Stats{
		DiskBytes:          s.diskBytes.Load(),
		SamplesWritten:     s.samplesWritten.Load(),
		IntervalsWritten:   s.intervalsWritten.Load(),
		WriteErrors:        s.writeErrors.Load(),
		DiskFullRejections: s.diskFullRejections.Load(),
		Dictionary:         dict,
		Paths:              s.paths.stats(),
	}
}

// publishDictStats copies the dictionary's figures for Counters. The
// caller holds s.mu for writing, the only time they change.
func (s *Store) publishDictStats() {
	st := s.dict.stats()
	s.dictStats.Store(&st)
}
