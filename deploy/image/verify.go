package image

import (
	"archive/tar"
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"path"
	"slices"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Report is what Verify found in an image.
type Report struct {
	Digest     v1.Hash
	Layers     int
	Size       int64 // compressed: what a node pulls
	Unpacked   int64 // the files' bytes
	Files      int
	Entrypoint []string
	User       string
	Labels     map[string]string
}

// Verify reads an image back and checks what a platform team asks of it:
// it runs as User, its entrypoint is name's binary, which is statically
// linked, it carries the source, revision and version labels, it has the
// base layer and the binary's layer and nothing else (in particular no
// shell), its CA bundle and time zones load, and it is no larger than
// maxSize compressed bytes (0: no cap).
func Verify(img v1.Image, name string, maxSize int64) (Report, error) {
	var r Report
	var errs []error
	fail := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }

	d, err := img.Digest()
	if err != nil {
		return r, err
	}
	r.Digest = d
	cf, err := img.ConfigFile()
	if err != nil {
		return r, err
	}
	r.User, r.Entrypoint, r.Labels = cf.Config.User, cf.Config.Entrypoint, cf.Config.Labels
	if cf.OS != "linux" {
		fail("os is %q, want linux", cf.OS)
	}
	if r.User != User {
		fail("user is %q, want %q (non-root)", r.User, User)
	}
	bin := BinDir + "/" + name
	if !slices.Equal(r.Entrypoint, []string{bin}) {
		fail("entrypoint is %q, want [%q]", r.Entrypoint, bin)
	}
	if len(cf.Config.Cmd) > 0 {
		fail("cmd is %q, want none", cf.Config.Cmd)
	}
	for _, k := range []string{LabelSource, LabelRevision, LabelVersion} {
		if r.Labels[k] == "" {
			fail("label %s is missing", k)
		}
	}

	layers, err := img.Layers()
	if err != nil {
		return r, err
	}
	r.Layers = len(layers)
	if r.Layers != 2 {
		fail("%d layers, want 2 (base, binary)", r.Layers)
	}
	files := map[string]bool{}
	for i, l := range layers {
		size, err := l.Size()
		if err != nil {
			return r, err
		}
		r.Size += size
		rc, err := l.Uncompressed()
		if err != nil {
			return r, err
		}
		tr := tar.NewReader(rc)
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				rc.Close()
				return r, fmt.Errorf("layer %d: %w", i, err)
			}
			p := "/" + strings.TrimSuffix(path.Clean(h.Name), "/")
			switch h.Typeflag {
			case tar.TypeReg:
				r.Files++
				r.Unpacked += h.Size
				files[p] = true
				if h.Mode&0o6000 != 0 {
					fail("%s is setuid or setgid", p)
				}
				if p != bin && p != CABundle && p != ZoneInfo+"/Europe/Paris" {
					continue
				}
				data, err := io.ReadAll(tr)
				if err != nil {
					rc.Close()
					return r, err
				}
				switch p {
				case bin:
					if err := Static(bytes.NewReader(data)); err != nil {
						fail("%s: %v", p, err)
					}
				case CABundle:
					pool := x509.NewCertPool()
					if !pool.AppendCertsFromPEM(data) || bytes.Count(data, []byte("BEGIN CERTIFICATE")) < 50 {
						fail("%s: not a CA bundle of the usual size", p)
					}
				default:
					if _, err := time.LoadLocationFromTZData("Europe/Paris", data); err != nil {
						fail("%s: %v", p, err)
					}
				}
			case tar.TypeDir:
			default:
				fail("%s: a link or device (type %q); the image holds only files and directories", p, h.Typeflag)
			}
		}
		rc.Close()
	}
	if !files[bin] {
		fail("no %s in the image", bin)
	}
	for _, want := range []string{CABundle, ZoneInfo + "/UTC", ZoneInfo + "/Europe/Paris", "/etc/passwd"} {
		if !files[want] {
			fail("no %s in the image", want)
		}
	}
	for f := range files {
		if f == bin || !strings.HasPrefix(f, BinDir+"/") && !strings.HasPrefix(f, "/bin/") && !strings.HasPrefix(f, "/sbin/") && !strings.HasPrefix(f, "/usr/bin/") {
			continue
		}
		fail("%s: the image has no executables but its binary (no shell)", f)
	}
	if maxSize > 0 && r.Size > maxSize {
		fail("%d bytes compressed, over the cap of %d", r.Size, maxSize)
	}
	return r, errors.Join(errs...)
}
