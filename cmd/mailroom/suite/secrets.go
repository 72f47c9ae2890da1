package suite

import "log/slog"

// KeptSecret reads the secret kept in path, or makes one with newSecret and
// keeps it there (mode 0600); a file that others may read is refused with
// the chmod that fixes it. `mailroom cluster` keeps its keys as `mailroom
// dev` does.
func KeptSecret(path string, newSecret func() string) (string, error) {
	return keptSecret(path, newSecret)
}

// PrepareDir makes dir accessible by its owner only (created 0700, or
// narrowed to 0700 and logged).
func PrepareDir(dir string, logger *slog.Logger) error { return prepareDir(dir, logger) }

// RandomKey returns a new random API key ("mr_…").
func RandomKey() string { return randomKey() }
