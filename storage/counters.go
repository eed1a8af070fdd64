package storage

// Counters returns the store's counters without its extent (OldestData and
// NewestData stay zero). Unlike Stats it takes no lock, so a metrics scrape
// never waits behind a long query or a write.
func (s *Store) Counters() Stats {
	return Stats{
		DiskBytes:          s.diskBytes.Load(),
		SamplesWritten:     s.samplesWritten.Load(),
		IntervalsWritten:   s.intervalsWritten.Load(),
		WriteErrors:        s.writeErrors.Load(),
		DiskFullRejections: s.diskFullRejections.Load(),
	}
}
