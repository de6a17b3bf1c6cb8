package delivery

// Commits reports how many commit loops run and how many Enqueue calls wait
// for one to take them, for tests that line calls up into one batch.
func (q *Queue) Commits() (running, waiting int) {
	q.commits.mu.Lock()
	defer q.commits.mu.Unlock()
	return q.commits.running, len(q.commits.waiting)
}
