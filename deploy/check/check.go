// Package check renders mailroom's kustomize overlays and checks every
// object as a platform team's admission would, before any cluster sees it:
// built-in kinds decode strictly into the Kubernetes API types (an unknown or
// duplicated field fails), custom resources validate against their CRDs'
// OpenAPI schemas, CEL rules included (the CRD files come from each project's
// own Go module at a pinned version and checksum), every pod template passes
// Pod Security "restricted" as k8s.io/pod-security-admission evaluates it,
// mailroom's own policies hold (Policies), and the NATS configuration parses
// and keeps JetStream durable (NATS).
package check

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sort"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Object is one rendered object.
type Object struct {
	GVK       schema.GroupVersionKind
	Name      string
	Namespace string
	JSON      []byte         // as kustomize rendered it
	Map       map[string]any // the same, decoded generically
	Typed     runtime.Object // the API type, for built-in kinds; nil for custom resources
}

// ID names o in messages: "Deployment/store".
func (o *Object) ID() string { return o.GVK.Kind + "/" + o.Name }

// Options say what an overlay must satisfy beyond the common rules.
type Options struct {
	// PinnedImages requires every container image to be pinned by digest
	// (the production overlay).
	PinnedImages bool
}

// Report is what Overlay checked, for the summary deploy-check prints.
type Report struct {
	Overlay         string
	Objects         int
	Kinds           map[string]int // built-in kinds decoded strictly
	CustomResources map[string]int // validated against their CRD
	PodTemplates    int            // evaluated against Pod Security restricted
	Containers      int
	Policies        map[string]int // policy → objects it was checked on
}

// Checker holds what is loaded once for every overlay: the API scheme, the
// CRD schemas and the Pod Security evaluator.
type Checker struct {
	decoder *decoder
	crds    *CRDs
	psa     *podSecurity
}

// New returns a Checker validating custom resources against crds.
func New(crds *CRDs) (*Checker, error) {
	psa, err := newPodSecurity()
	if err != nil {
		return nil, err
	}
	return &Checker{decoder: newDecoder(), crds: crds, psa: psa}, nil
}

// Overlay renders the kustomization in dir and checks everything in it. The
// error joins every violation found, each naming the object and the rule.
func (c *Checker) Overlay(ctx context.Context, dir string, opts Options) (Report, error) {
	rep := Report{Overlay: filepath.Base(dir), Kinds: map[string]int{}, CustomResources: map[string]int{}, Policies: map[string]int{}}
	objs, err := Render(dir)
	if err != nil {
		return rep, err
	}
	return c.Objects(ctx, rep, objs, opts)
}

// Objects checks objs, already rendered, adding what it checked to rep.
func (c *Checker) Objects(ctx context.Context, rep Report, objs []*Object, opts Options) (Report, error) {
	var errs []error
	rep.Objects = len(objs)
	for _, o := range objs {
		typed, err := c.decoder.decode(o.JSON)
		switch {
		case err == nil:
			o.Typed = typed
			rep.Kinds[o.GVK.Kind]++
		case runtime.IsNotRegisteredError(err):
			if err := c.crds.Validate(ctx, o); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", o.ID(), err))
				continue
			}
			rep.CustomResources[o.GVK.Kind]++
		default:
			errs = append(errs, fmt.Errorf("%s: strict decoding into %s: %w", o.ID(), o.GVK, err))
		}
	}
	for _, w := range workloads(objs) {
		rep.PodTemplates++
		rep.Containers += len(w.Spec.Containers) + len(w.Spec.InitContainers)
		if err := c.psa.check(w); err != nil {
			errs = append(errs, err)
		}
	}
	errs = append(errs, Policies(objs, opts, rep.Policies)...)
	errs = append(errs, NATS(objs, rep.Policies)...)
	return rep, errors.Join(errs...)
}

// sortedKeys returns m's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Summary is rep in a few lines.
func (rep Report) Summary() string {
	s := fmt.Sprintf("%s: %d objects\n  strictly decoded:", rep.Overlay, rep.Objects)
	for _, k := range sortedKeys(rep.Kinds) {
		s += fmt.Sprintf(" %s %d,", k, rep.Kinds[k])
	}
	s = s[:len(s)-1] + "\n  validated against their CRD:"
	if len(rep.CustomResources) == 0 {
		s += " none,"
	}
	for _, k := range sortedKeys(rep.CustomResources) {
		s += fmt.Sprintf(" %s %d,", k, rep.CustomResources[k])
	}
	s = s[:len(s)-1] + fmt.Sprintf("\n  Pod Security restricted: %d pod templates, %d containers\n  policies:", rep.PodTemplates, rep.Containers)
	for _, k := range sortedKeys(rep.Policies) {
		s += fmt.Sprintf(" %s %d,", k, rep.Policies[k])
	}
	return s[:len(s)-1] + "\n"
}
