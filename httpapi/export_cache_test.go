package httpapi

// JobReadsForTest is how many times the cache of jobs' current
// certificates read a job from the store.
func (s *Server) JobReadsForTest() int64 { return s.hot.jobReads.Load() }
