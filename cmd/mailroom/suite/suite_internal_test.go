package suite

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A kept secret is written 0600 and read back; one that others can read is
// refused with the chmod that fixes it, as ssh refuses an open key file.
func TestKeptSecretPermissions(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "admin-key")
	made, err := keptSecret(path, func() string { return "s3cret-value" })
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("kept secret mode = %v (%v), want 0600", fi.Mode().Perm(), err)
	}
	if again, err := keptSecret(path, func() string { return "other" }); err != nil || again != made {
		t.Fatalf("read back %q, %v; want %q", again, err, made)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = keptSecret(path, func() string { return "other" })
	if err == nil || !strings.Contains(err.Error(), "0644") || !strings.Contains(err.Error(), "chmod 600 "+path) {
		t.Errorf("a 0644 key file: err = %v, want a refusal naming 0644 and chmod 600", err)
	}
	if err != nil && strings.Contains(err.Error(), "s3cret-value") {
		t.Error("the error holds the secret")
	}
}

// The suite's directory must be its owner's only.
func TestStartRefusesAnOpenDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "mr")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	_, err := Start(context.Background(), Config{Dir: dir})
	if err == nil || !strings.Contains(err.Error(), "chmod 700 "+dir) {
		t.Errorf("Start in a 0755 directory: err = %v, want a refusal naming chmod 700", err)
	}
}
