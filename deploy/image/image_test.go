package image_test

import (
	"archive/tar"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"mailroom.dev/deploy/image"
)

// staticBinary builds a tiny static Go program named name.
func staticBinary(t *testing.T, name string) string {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join(dir, "main.go")
	if err := os.WriteFile(src, []byte("package main\nfunc main() {}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, name)
	cmd := exec.Command("go", "build", "-trimpath", "-o", out, src)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOWORK=off", "GOFLAGS=")
	cmd.Dir = dir
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, b)
	}
	return out
}

func build(t *testing.T, name string) v1.Image {
	t.Helper()
	when := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	base, err := image.Base(filepath.Join(runtime.GOROOT(), "lib", "time", "zoneinfo.zip"), when)
	if err != nil {
		t.Fatal(err)
	}
	img, err := image.Build(image.Spec{
		Name: name, Binary: staticBinary(t, name),
		Source: "https://example.com/mailroom", Revision: "abc123", Version: "v0.0.1", Created: when,
	}, base)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func TestBuildVerifies(t *testing.T) {
	img := build(t, "store")
	rep, err := image.Verify(img, "store", 16<<20)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if got, want := rep.Layers, 2; got != want {
		t.Errorf("layers = %d, want %d", got, want)
	}
	if got, want := rep.User, "65532:65532"; got != want {
		t.Errorf("user = %q, want %q", got, want)
	}
	if got, want := rep.Labels[image.LabelRevision], "abc123"; got != want {
		t.Errorf("revision label = %q, want %q", got, want)
	}
	// The same inputs give the same digest: the layers carry no build time.
	again := build(t, "store")
	d1, _ := img.Digest()
	d2, _ := again.Digest()
	if d1 != d2 {
		t.Errorf("two builds of the same inputs differ: %s, %s", d1, d2)
	}
}

func TestVerifyRefuses(t *testing.T) {
	img := build(t, "gateway")
	cases := map[string]struct {
		img  func(t *testing.T) v1.Image
		name string
		max  int64
		want string
	}{
		"root user": {img: func(t *testing.T) v1.Image {
			cf, _ := img.ConfigFile()
			cf = cf.DeepCopy()
			cf.Config.User = "0"
			out, err := mutate.ConfigFile(img, cf)
			if err != nil {
				t.Fatal(err)
			}
			return out
		}, name: "gateway", want: "non-root"},
		"missing label": {img: func(t *testing.T) v1.Image {
			cf, _ := img.ConfigFile()
			cf = cf.DeepCopy()
			delete(cf.Config.Labels, image.LabelRevision)
			out, _ := mutate.ConfigFile(img, cf)
			return out
		}, name: "gateway", want: image.LabelRevision},
		"a shell": {img: func(t *testing.T) v1.Image {
			var b bytes.Buffer
			tw := tar.NewWriter(&b)
			tw.WriteHeader(&tar.Header{Name: "bin/sh", Mode: 0o755, Size: 2, Typeflag: tar.TypeReg})
			tw.Write([]byte("#!"))
			tw.Close()
			l, err := tarball.LayerFromReader(bytes.NewReader(b.Bytes()))
			if err != nil {
				t.Fatal(err)
			}
			out, _ := mutate.AppendLayers(img, l)
			return out
		}, name: "gateway", want: "no shell"},
		"wrong entrypoint": {img: func(*testing.T) v1.Image { return img }, name: "store", want: "entrypoint"},
		"too large":        {img: func(*testing.T) v1.Image { return img }, name: "gateway", max: 1024, want: "over the cap"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := image.Verify(c.img(t), c.name, c.max)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("Verify = %v, want an error mentioning %q", err, c.want)
			}
		})
	}
}

func TestStaticRefusesDynamic(t *testing.T) {
	f, err := os.Open("/bin/sh")
	if err != nil {
		t.Skip("no /bin/sh here")
	}
	defer f.Close()
	if err := image.Static(f); err == nil || !strings.Contains(err.Error(), "CGO_ENABLED=0") {
		t.Errorf("Static(/bin/sh) = %v, want a dynamic-linking error", err)
	}
}
