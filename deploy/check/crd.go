package check

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/cel"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/pruning"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/validation"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	celconfig "k8s.io/apiserver/pkg/apis/cel"
	"sigs.k8s.io/yaml"
)

// CRDSource is where a project publishes its CRDs: files of its own Go
// module, at a pinned version whose module checksum (go.sum's h1: form) is
// checked, so the schemas are the ones the project released and no other.
type CRDSource struct {
	Module, Version, Sum string
	Files                []string
}

// Sources are the CRDs mailroom's manifests use. Bump a version together
// with its Sum (`go mod download -json module@version` prints it), and the
// operator version the README names.
var Sources = []CRDSource{
	{
		Module: "github.com/kedacore/keda/v2", Version: "v2.21.0",
		Sum:   "h1:R6z2HZvstK4RLUMxroNACzBj74xGxt3kG59b5Xc+Xps=",
		Files: []string{"config/crd/bases/keda.sh_scaledobjects.yaml", "config/crd/bases/keda.sh_triggerauthentications.yaml"},
	},
	{
		Module: "github.com/cloudnative-pg/cloudnative-pg", Version: "v1.28.0",
		Sum:   "h1:vkv0a0ewDSfJOPJrsyUr4uczsxheReAWf/k171V0Dm0=",
		Files: []string{"config/crd/bases/postgresql.cnpg.io_clusters.yaml", "config/crd/bases/postgresql.cnpg.io_scheduledbackups.yaml"},
	},
	{
		Module: "github.com/prometheus-operator/prometheus-operator", Version: "v0.85.0",
		Sum: "h1:M5xLCLEoaW2IJfnuCwFzzpL+jSVQu3KGT84Pye+fW8s=",
		Files: []string{
			"example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml",
			"example/prometheus-operator-crd/monitoring.coreos.com_podmonitors.yaml",
			"example/prometheus-operator-crd/monitoring.coreos.com_prometheusrules.yaml",
		},
	},
}

// CRDs validates custom resources against the schemas of a set of CRDs.
type CRDs struct {
	byGVK   map[schema.GroupVersionKind]*crdVersion
	Origins map[string]string // kind → module@version it came from
}

type crdVersion struct {
	origin     string
	structural *structuralschema.Structural
	validator  validation.SchemaValidator
	cel        *cel.Validator
}

// Download fetches each source's module through the Go module proxy (`go
// mod download`, into the module cache), checks its checksum and loads its
// CRD files.
func Download(ctx context.Context, sources []CRDSource) (*CRDs, error) {
	c := &CRDs{byGVK: map[schema.GroupVersionKind]*crdVersion{}, Origins: map[string]string{}}
	for _, src := range sources {
		dir, err := download(ctx, src)
		if err != nil {
			return nil, err
		}
		for _, f := range src.Files {
			b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(f)))
			if err != nil {
				return nil, fmt.Errorf("%s@%s: %w", src.Module, src.Version, err)
			}
			if err := c.Add(b, src.Module+"@"+src.Version); err != nil {
				return nil, fmt.Errorf("%s@%s %s: %w", src.Module, src.Version, f, err)
			}
		}
	}
	return c, nil
}

func download(ctx context.Context, src CRDSource) (string, error) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		gobin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	cmd := exec.CommandContext(ctx, gobin, "mod", "download", "-json", src.Module+"@"+src.Version)
	// Outside any module or workspace: the CRD modules are data here, not
	// dependencies of anything that is built.
	cmd.Dir = os.TempDir()
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var info struct{ Dir, Sum, Error string }
	if jerr := json.Unmarshal(out, &info); jerr != nil && err == nil {
		err = jerr
	}
	if err != nil || info.Error != "" {
		return "", fmt.Errorf("go mod download %s@%s: %v %s %s", src.Module, src.Version, err, info.Error, strings.TrimSpace(stderr.String()))
	}
	if info.Sum != src.Sum {
		return "", fmt.Errorf("%s@%s has checksum %s, want %s", src.Module, src.Version, info.Sum, src.Sum)
	}
	return info.Dir, nil
}

// Add loads one CRD file (YAML), every served version of it.
func (c *CRDs) Add(crdYAML []byte, origin string) error {
	var crd apiextensionsv1.CustomResourceDefinition
	if err := yaml.Unmarshal(crdYAML, &crd); err != nil {
		return err
	}
	if crd.Kind != "CustomResourceDefinition" {
		return fmt.Errorf("not a CustomResourceDefinition: %q", crd.Kind)
	}
	for _, v := range crd.Spec.Versions {
		if !v.Served || v.Schema == nil || v.Schema.OpenAPIV3Schema == nil {
			continue
		}
		var internal apiextensions.JSONSchemaProps
		if err := apiextensionsv1.Convert_v1_JSONSchemaProps_To_apiextensions_JSONSchemaProps(v.Schema.OpenAPIV3Schema, &internal, nil); err != nil {
			return fmt.Errorf("%s %s: %w", crd.Name, v.Name, err)
		}
		structural, err := structuralschema.NewStructural(&internal)
		if err != nil {
			return fmt.Errorf("%s %s: not a structural schema: %w", crd.Name, v.Name, err)
		}
		validator, _, err := validation.NewSchemaValidator(&internal)
		if err != nil {
			return fmt.Errorf("%s %s: %w", crd.Name, v.Name, err)
		}
		gvk := schema.GroupVersionKind{Group: crd.Spec.Group, Version: v.Name, Kind: crd.Spec.Names.Kind}
		c.byGVK[gvk] = &crdVersion{
			origin: origin, structural: structural, validator: validator,
			cel: cel.NewValidator(structural, true, celconfig.PerCallLimit),
		}
		c.Origins[crd.Spec.Names.Kind] = origin
	}
	return nil
}

// Validate checks o against its CRD's schema as the API server would on
// create: no field the schema does not know (what the server would prune
// silently is an error here), every type, enum, pattern and bound, and the
// CRD's CEL rules (x-kubernetes-validations).
func (c *CRDs) Validate(ctx context.Context, o *Object) error {
	v, ok := c.byGVK[o.GVK]
	if !ok {
		return fmt.Errorf("%s is neither a built-in kind nor a custom resource whose CRD deploy/check knows (check.Sources)", o.GVK)
	}
	var errs []error
	// Pruning works on a copy: it removes what it reports.
	var pruned map[string]any
	if err := utiljson.Unmarshal(o.JSON, &pruned); err != nil {
		return err
	}
	opts := structuralschema.UnknownFieldPathOptions{TrackUnknownFieldPaths: true}
	if unknown := pruning.PruneWithOptions(pruned, v.structural, true, opts); len(unknown) > 0 {
		errs = append(errs, fmt.Errorf("unknown fields (the API server would drop them) %v, per the CRD from %s", unknown, v.origin))
	}
	obj := o.Map
	for _, e := range validation.ValidateCustomResource(nil, obj, v.validator) {
		errs = append(errs, fmt.Errorf("%s (CRD from %s)", e.Error(), v.origin))
	}
	if v.cel != nil {
		celErrs, _ := v.cel.Validate(ctx, nil, v.structural, obj, nil, celconfig.RuntimeCELCostBudget)
		for _, e := range celErrs {
			errs = append(errs, fmt.Errorf("CEL rule: %s (CRD from %s)", e.Error(), v.origin))
		}
	}
	return errors.Join(errs...)
}
