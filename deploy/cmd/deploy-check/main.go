// Command deploy-check renders each kustomize overlay given and checks
// every object in it (see mailroom.dev/deploy/check): strict decoding into
// the Kubernetes API types, custom resources against their projects' CRDs,
// Pod Security restricted, and mailroom's policies. It prints what it
// checked and exits 1 on any violation.
//
//	go run ./deploy/cmd/deploy-check -pinned prod deploy/k8s/overlays/dev deploy/k8s/overlays/prod
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"

	"mailroom.dev/deploy/check"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "deploy-check:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("deploy-check", flag.ContinueOnError)
	pinned := fs.String("pinned", "prod", "comma-separated overlays (by directory name) whose images must be pinned by digest")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return fmt.Errorf("usage: deploy-check [-pinned prod] OVERLAY_DIR…")
	}
	crds, err := check.Download(ctx, check.Sources)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, "CRD schemas:")
	for _, s := range check.Sources {
		fmt.Fprintf(stdout, "  %s@%s (%s): %d files\n", s.Module, s.Version, s.Sum, len(s.Files))
	}
	c, err := check.New(crds)
	if err != nil {
		return err
	}
	failed := 0
	for _, dir := range fs.Args() {
		opts := check.Options{PinnedImages: slices.Contains(strings.Split(*pinned, ","), filepath.Base(dir))}
		rep, err := c.Overlay(ctx, dir, opts)
		fmt.Fprint(stdout, rep.Summary())
		if err != nil {
			failed++
			fmt.Fprintf(stdout, "FAIL %s:\n  %s\n", dir, strings.ReplaceAll(err.Error(), "\n", "\n  "))
			continue
		}
		fmt.Fprintf(stdout, "ok   %s\n", dir)
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d overlays failed", failed, fs.NArg())
	}
	return nil
}
