// Command images assembles mailroom's container images from static
// binaries built beforehand (`make images` builds them with CGO_ENABLED=0
// and -trimpath), writes them to an OCI image layout, reads each back and
// verifies it (user, entrypoint, labels, layers, no shell, size).
//
// No container engine and no registry are involved; push the result with
// any OCI tool, for example
//
//	skopeo copy oci:.images:store docker://registry.example.com/mailroom/store:v1.2.3
//	crane push .images/store.tar registry.example.com/mailroom/store:v1.2.3   (with -tarballs)
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"mailroom.dev/deploy/image"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "images:", err)
		os.Exit(1)
	}
}

func run(_ context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("images", flag.ContinueOnError)
	bin := fs.String("bin", ".bin/images", "directory of the static binaries, one per image")
	names := fs.String("names", "auth,ingest,classifier,store,gateway,mailroom", "the images to build (binary names)")
	out := fs.String("out", ".images", "OCI image layout to write (replaced)")
	repo := fs.String("repository", "mailroom", "image name prefix, as the manifests name images (mailroom/store)")
	source := fs.String("source", "", "org.opencontainers.image.source")
	revision := fs.String("revision", "", "org.opencontainers.image.revision (the commit)")
	version := fs.String("version", "", "org.opencontainers.image.version")
	created := fs.Int64("created", 0, "Unix time of the commit: file times and the config's created (reproducible digests)")
	zoneinfo := fs.String("zoneinfo", filepath.Join(runtime.GOROOT(), "lib", "time", "zoneinfo.zip"), "the time-zone database (Go's zoneinfo.zip)")
	maxSize := fs.String("max-size", "64MiB", "largest compressed image accepted")
	tarballs := fs.Bool("tarballs", false, "also write <name>.tar (docker load, podman load, kind load image-archive)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	for flagName, v := range map[string]string{"source": *source, "revision": *revision, "version": *version} {
		if v == "" {
			return fmt.Errorf("-%s is required (the image's OCI label)", flagName)
		}
	}
	limit, err := parseSize(*maxSize)
	if err != nil {
		return err
	}
	when := time.Unix(*created, 0).UTC()

	base, err := image.Base(*zoneinfo, when)
	if err != nil {
		return err
	}
	if err := os.RemoveAll(*out); err != nil {
		return err
	}
	lp, err := layout.Write(*out, empty.Index)
	if err != nil {
		return err
	}
	type built struct {
		name string
		img  v1.Image
	}
	var all []built
	for _, name := range strings.Split(*names, ",") {
		img, err := image.Build(image.Spec{
			Name: name, Binary: filepath.Join(*bin, name),
			Source: *source, Revision: *revision, Version: *version, Created: when,
		}, base)
		if err != nil {
			return err
		}
		if err := lp.AppendImage(img, layout.WithAnnotations(map[string]string{
			"org.opencontainers.image.ref.name": name,
		})); err != nil {
			return fmt.Errorf("write %s: %w", name, err)
		}
		all = append(all, built{name, img})
		if *tarballs {
			if err := tarball.WriteToFile(filepath.Join(*out, name+".tar"), nil, img); err != nil {
				return err
			}
		}
	}

	// Read every image back from the layout, as a registry or a node would
	// see it, and check it.
	idx, err := lp.ImageIndex()
	if err != nil {
		return err
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return err
	}
	if len(im.Manifests) != len(all) {
		return fmt.Errorf("the layout holds %d images, want %d", len(im.Manifests), len(all))
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "image\tcompressed\tunpacked\tlayers\tfiles\tuser\tdigest\t")
	var errs []error
	var pins strings.Builder
	for i, b := range all {
		desc := im.Manifests[i]
		if desc.Annotations["org.opencontainers.image.ref.name"] != b.name {
			return fmt.Errorf("layout entry %d is %q, want %q", i, desc.Annotations["org.opencontainers.image.ref.name"], b.name)
		}
		img, err := lp.Image(desc.Digest)
		if err != nil {
			return err
		}
		rep, err := image.Verify(img, b.name, limit)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", b.name, err))
		}
		fmt.Fprintf(tw, "%s/%s\t%s\t%s\t%d\t%d\t%s\t%s\t\n", *repo, b.name, human(rep.Size), human(rep.Unpacked), rep.Layers, rep.Files, rep.User, rep.Digest)
		fmt.Fprintf(&pins, "%s/%s=%s/%s@%s\n", *repo, b.name, *repo, b.name, rep.Digest)
	}
	tw.Flush()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	// The pins, in the form `kustomize edit set image` takes, for a
	// release to write into the prod overlay.
	if err := os.WriteFile(filepath.Join(*out, "digests.txt"), []byte(pins.String()), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%d images verified (user %s, entrypoint %s/<name>, static, labels, 2 layers, no shell, ≤ %s) in %s\n",
		len(all), image.User, image.BinDir, *maxSize, *out)
	return nil
}

func parseSize(s string) (int64, error) {
	units := []struct {
		suffix string
		mult   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"B", 1}, {"", 1}}
	for _, u := range units {
		if num, ok := strings.CutSuffix(s, u.suffix); ok {
			n, err := strconv.ParseInt(num, 10, 64)
			if err != nil {
				return 0, fmt.Errorf("size %q: %w", s, err)
			}
			return n * u.mult, nil
		}
	}
	return 0, fmt.Errorf("size %q", s)
}

func human(n int64) string {
	return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
}
