package suite

import (
	"log/slog"
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

// The suite's directory is made its owner's only.
func TestPrepareDirNarrowsAnOpenDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "mr")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := prepareDir(dir, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("after prepareDir: %v (%v), want 0700", fi.Mode().Perm(), err)
	}
	fresh := filepath.Join(dir, "new")
	if err := prepareDir(fresh, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(fresh); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("a new directory: %v (%v), want 0700", fi.Mode().Perm(), err)
	}
}
