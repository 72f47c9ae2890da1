// Package image builds mailroom's container images without a container
// engine: an empty base, one layer of run-time files every Go binary wants
// (a CA bundle, time zones, a passwd entry for the non-root user) and one
// layer holding the static binary. Nothing is pulled from a registry and
// nothing runs: the layers are tar streams written here, so the same inputs
// give the same digests on any machine.
package image

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"debug/elf"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"runtime"
	"slices"
	"strings"
	"time"

	"golang.org/x/crypto/x509roots/fallback/bundle"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// User is the uid and gid every image runs as (distroless's "nonroot").
const User = "65532:65532"

// BinDir is where the binary sits; the entrypoint is BinDir/<name>.
const BinDir = "/usr/local/bin"

// CABundle and ZoneInfo are where the base layer puts the CA certificates
// and the time-zone database (where Go, and most other software, looks).
const (
	CABundle = "/etc/ssl/certs/ca-certificates.crt"
	ZoneInfo = "/usr/share/zoneinfo"
)

// Label keys set on every image (OCI image-spec annotations, used as labels).
const (
	LabelSource   = "org.opencontainers.image.source"
	LabelRevision = "org.opencontainers.image.revision"
	LabelVersion  = "org.opencontainers.image.version"
	LabelTitle    = "org.opencontainers.image.title"
	LabelCreated  = "org.opencontainers.image.created"
)

// Spec describes one image.
type Spec struct {
	Name     string    // binary and image name: "store"
	Binary   string    // path of the static binary on this machine
	Source   string    // repository URL
	Revision string    // commit
	Version  string    // release or `git describe`
	Created  time.Time // commit time: file times and the config's created
}

// Build returns the image of spec. base is the run-time layer (Base), shared
// by every image so registries store it once.
func Build(spec Spec, base v1.Layer) (v1.Image, error) {
	if spec.Name == "" || spec.Binary == "" {
		return nil, errors.New("image: a spec needs Name and Binary")
	}
	bin, err := os.ReadFile(spec.Binary)
	if err != nil {
		return nil, fmt.Errorf("image: %w", err)
	}
	if err := Static(bytes.NewReader(bin)); err != nil {
		return nil, fmt.Errorf("image %s: %s: %w", spec.Name, spec.Binary, err)
	}
	var files tarWriter
	files.init(spec.Created)
	files.dir("usr/", 0o755)
	files.dir("usr/local/", 0o755)
	files.dir("usr/local/bin/", 0o755)
	files.file(strings.TrimPrefix(BinDir, "/")+"/"+spec.Name, 0o555, bin)
	binLayer, err := files.layer()
	if err != nil {
		return nil, err
	}

	img, err := mutate.AppendLayers(empty.Image, base, binLayer)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", spec.Name, err)
	}
	img = mutate.MediaType(img, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.Architecture = runtime.GOARCH
	cf.OS = "linux"
	cf.Created = v1.Time{Time: spec.Created.UTC()}
	cf.Config.User = User
	cf.Config.Entrypoint = []string{BinDir + "/" + spec.Name}
	cf.Config.WorkingDir = "/home/nonroot"
	cf.Config.Env = []string{"PATH=" + BinDir, "SSL_CERT_FILE=" + CABundle, "ZONEINFO=" + ZoneInfo}
	cf.Config.Labels = Labels(spec)
	cf.History = []v1.History{
		{Created: cf.Created, CreatedBy: "mailroom.dev/deploy/image: CA bundle, tzdata, passwd", Comment: "base"},
		{Created: cf.Created, CreatedBy: "mailroom.dev/deploy/image: " + spec.Name + " (CGO_ENABLED=0, -trimpath)"},
	}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, err
	}
	return mutate.Annotations(img, Labels(spec)).(v1.Image), nil
}

// Labels are the OCI labels of spec's image.
func Labels(spec Spec) map[string]string {
	return map[string]string{
		LabelSource:   spec.Source,
		LabelRevision: spec.Revision,
		LabelVersion:  spec.Version,
		LabelTitle:    "mailroom " + spec.Name,
		LabelCreated:  spec.Created.UTC().Format(time.RFC3339),
	}
}

// Base returns the run-time layer: the NSS root certificates (pinned with
// golang.org/x/crypto/x509roots/fallback in go.mod, so every machine puts
// the same bundle in), the time zones of zoneinfoZip (Go's
// $GOROOT/lib/time/zoneinfo.zip) unpacked under /usr/share/zoneinfo, a
// passwd and group naming the non-root user, its home, and /tmp.
func Base(zoneinfoZip string, created time.Time) (v1.Layer, error) {
	var t tarWriter
	t.init(created)
	t.dir("etc/", 0o755)
	t.file("etc/passwd", 0o644, []byte("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n"))
	t.file("etc/group", 0o644, []byte("root:x:0:\nnonroot:x:65532:\n"))
	t.dir("etc/ssl/", 0o755)
	t.dir("etc/ssl/certs/", 0o755)
	t.file(strings.TrimPrefix(CABundle, "/"), 0o644, caBundle())
	t.dir("home/", 0o755)
	t.owned("home/nonroot/", 0o700, 65532)
	t.dir("tmp/", 0o1777)
	t.dir("usr/", 0o755)
	t.dir("usr/share/", 0o755)
	t.dir("usr/share/zoneinfo/", 0o755)
	zr, err := zip.OpenReader(zoneinfoZip)
	if err != nil {
		return nil, fmt.Errorf("image: time zones: %w", err)
	}
	defer zr.Close()
	names := make([]*zip.File, len(zr.File))
	copy(names, zr.File)
	slices.SortFunc(names, func(a, b *zip.File) int { return strings.Compare(a.Name, b.Name) })
	for _, f := range names {
		if f.FileInfo().IsDir() {
			continue
		}
		full := strings.TrimPrefix(ZoneInfo, "/") + "/" + f.Name
		// Parents first (the zip lists "America/New_York" before any
		// "America/" entry, if it has one at all).
		var parents []string
		for d := path.Dir(f.Name); d != "."; d = path.Dir(d) {
			parents = append([]string{d}, parents...)
		}
		for _, d := range parents {
			t.dir(strings.TrimPrefix(ZoneInfo, "/")+"/"+d+"/", 0o755)
		}
		rc, err := f.Open()
		if err != nil {
			return nil, err
		}
		data, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			return nil, err
		}
		t.file(full, 0o644, data)
	}
	return t.layer()
}

// caBundle PEM-encodes the unconstrained NSS roots. Roots with a
// distrust-after date cannot say so in a PEM file, so they are left out, as
// a careful distribution does once the date has passed.
func caBundle() []byte {
	var b bytes.Buffer
	for r := range bundle.Roots() {
		if r.Constraint != nil {
			continue
		}
		pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: r.Certificate})
	}
	return b.Bytes()
}

// Static returns an error unless r is a statically linked ELF executable: no
// interpreter and no shared libraries, so it runs on an empty base.
func Static(r io.ReaderAt) error {
	f, err := elf.NewFile(r)
	if err != nil {
		return fmt.Errorf("not an ELF executable: %w", err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return errors.New("dynamically linked (has an ELF interpreter): build with CGO_ENABLED=0")
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		return fmt.Errorf("needs shared libraries %v: build with CGO_ENABLED=0", libs)
	}
	return nil
}

// tarWriter writes a layer's tar stream with fixed times and owners, so a
// layer's digest depends on its contents alone.
type tarWriter struct {
	buf     bytes.Buffer
	tw      *tar.Writer
	created time.Time
	seen    map[string]bool
	err     error
}

func (t *tarWriter) init(created time.Time) {
	t.tw = tar.NewWriter(&t.buf)
	t.created = created.UTC().Truncate(time.Second)
	t.seen = map[string]bool{}
}

func (t *tarWriter) write(h *tar.Header, data []byte) {
	if t.err != nil || t.seen[h.Name] {
		return
	}
	t.seen[h.Name] = true
	h.ModTime, h.Format = t.created, tar.FormatPAX
	if h.Uname == "" && h.Uid == 0 {
		h.Uname, h.Gname = "root", "root"
	}
	if t.err = t.tw.WriteHeader(h); t.err == nil && len(data) > 0 {
		_, t.err = t.tw.Write(data)
	}
}

func (t *tarWriter) dir(name string, mode int64) {
	t.write(&tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: mode}, nil)
}

func (t *tarWriter) owned(name string, mode int64, id int) {
	t.write(&tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: mode, Uid: id, Gid: id, Uname: "nonroot", Gname: "nonroot"}, nil)
}

func (t *tarWriter) file(name string, mode int64, data []byte) {
	t.write(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(data))}, data)
}

func (t *tarWriter) layer() (v1.Layer, error) {
	if t.err == nil {
		t.err = t.tw.Close()
	}
	if t.err != nil {
		return nil, fmt.Errorf("image: layer: %w", t.err)
	}
	data := t.buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(data)), nil
	}, tarball.WithMediaType(types.OCILayer), tarball.WithCompressedCaching)
}
