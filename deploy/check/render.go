package check

import (
	"encoding/json"
	"fmt"

	"k8s.io/apimachinery/pkg/runtime/schema"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// Render builds the kustomization in dir, as `kustomize build dir` does
// (the same kustomize API version as tools/go.mod's kustomize).
func Render(dir string) ([]*Object, error) {
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	m, err := k.Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		return nil, fmt.Errorf("kustomize build %s: %w", dir, err)
	}
	var objs []*Object
	for _, r := range m.Resources() {
		b, err := r.MarshalJSON()
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %w", dir, r.CurId(), err)
		}
		o, err := NewObject(b)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", dir, err)
		}
		objs = append(objs, o)
	}
	return objs, nil
}

// NewObject reads one object's JSON.
func NewObject(b []byte) (*Object, error) {
	var head struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Metadata   struct {
			Name      string `json:"name"`
			Namespace string `json:"namespace"`
		} `json:"metadata"`
	}
	if err := json.Unmarshal(b, &head); err != nil {
		return nil, err
	}
	// apimachinery's json keeps integers int64, as the API server does
	// (CEL rules compare them as int).
	var m map[string]any
	if err := utiljson.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	gv, err := schema.ParseGroupVersion(head.APIVersion)
	if err != nil {
		return nil, fmt.Errorf("%s/%s: %w", head.Kind, head.Metadata.Name, err)
	}
	return &Object{
		GVK:  gv.WithKind(head.Kind),
		Name: head.Metadata.Name, Namespace: head.Metadata.Namespace,
		JSON: b, Map: m,
	}, nil
}
