package transport

import "time"

// SetRecheck sets how often files are looked at again, for tests of
// reloading, and returns a function that restores it.
func SetRecheck(d time.Duration) func() {
	old := recheck
	recheck = d
	return func() { recheck = old }
}
