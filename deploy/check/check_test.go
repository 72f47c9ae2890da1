package check_test

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"

	"mailroom.dev/deploy/check"
)

var (
	once    sync.Once
	checker *check.Checker
	initErr error
)

func newChecker(t *testing.T) *check.Checker {
	t.Helper()
	once.Do(func() {
		crds, err := check.Download(context.Background(), check.Sources)
		if err != nil {
			initErr = err
			return
		}
		checker, initErr = check.New(crds)
	})
	if initErr != nil {
		t.Fatal(initErr)
	}
	return checker
}

const prod = "../k8s/overlays/prod"

func TestOverlaysPass(t *testing.T) {
	c := newChecker(t)
	for _, o := range []struct {
		dir  string
		opts check.Options
	}{
		{"../k8s/overlays/dev", check.Options{}},
		{prod, check.Options{PinnedImages: true}},
	} {
		rep, err := c.Overlay(context.Background(), o.dir, o.opts)
		if err != nil {
			t.Errorf("%s: %v", o.dir, err)
		}
		if rep.PodTemplates == 0 || rep.Objects == 0 {
			t.Errorf("%s: checked %d objects, %d pod templates; want some", o.dir, rep.Objects, rep.PodTemplates)
		}
	}
}

// mutated renders prod and applies change to the object kind/name (as JSON).
func mutated(t *testing.T, kind, name string, change func(m map[string]any)) []*check.Object {
	t.Helper()
	objs, err := check.Render(prod)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for i, o := range objs {
		if o.GVK.Kind != kind || o.Name != name {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal(o.JSON, &m); err != nil {
			t.Fatal(err)
		}
		change(m)
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		if objs[i], err = check.NewObject(b); err != nil {
			t.Fatal(err)
		}
		found = true
	}
	if !found {
		t.Fatalf("no %s/%s in %s", kind, name, prod)
	}
	return objs
}

func get(m map[string]any, path ...any) any {
	var cur any = m
	for _, p := range path {
		switch k := p.(type) {
		case string:
			cur = cur.(map[string]any)[k]
		case int:
			cur = cur.([]any)[k]
		}
	}
	return cur
}

func container(m map[string]any) map[string]any {
	return get(m, "spec", "template", "spec", "containers", 0).(map[string]any)
}

func TestRejects(t *testing.T) {
	c := newChecker(t)
	cases := []struct {
		name, kind, obj string
		change          func(m map[string]any)
		want            string
	}{
		{"unknown field in a built-in kind", "Deployment", "store", func(m map[string]any) {
			container(m)["imagePullPolicyy"] = "Always"
		}, `unknown field "spec.template.spec.containers[0].imagePullPolicyy"`},
		{"privileged container", "Deployment", "ingest", func(m map[string]any) {
			container(m)["securityContext"].(map[string]any)["privileged"] = true
		}, "Pod Security restricted: privileged"},
		{"running as root", "StatefulSet", "nats", func(m map[string]any) {
			get(m, "spec", "template", "spec", "securityContext").(map[string]any)["runAsUser"] = 0
		}, "runAsUser=0"},
		{"unknown field in a custom resource", "ScaledObject", "classifier", func(m map[string]any) {
			m["spec"].(map[string]any)["maxReplicas"] = 3
		}, "unknown fields"},
		{"a CRD's CEL rule", "ScaledObject", "store", func(m map[string]any) {
			m["spec"].(map[string]any)["minReplicaCount"] = 9
		}, "minReplicaCount must be less than or equal to maxReplicaCount"},
		{"a CRD's types", "Cluster", "mailroom-db", func(m map[string]any) {
			m["spec"].(map[string]any)["instances"] = "three"
		}, "spec.instances"},
		{"a committed Secret value", "ConfigMap", "mailroom-config", func(m map[string]any) {
			m["data"].(map[string]any)["OPENAI_API_KEYS"] = "sk-123"
		}, "OPENAI_API_KEYS looks secret"},
		{"an image by tag", "Deployment", "gateway", func(m map[string]any) {
			container(m)["image"] = "ghcr.io/mailroom/gateway:v1"
		}, "not pinned by digest"},
		{"no liveness probe", "Deployment", "auth", func(m map[string]any) {
			delete(container(m), "livenessProbe")
		}, "no liveness probe"},
		{"writable root filesystem", "Job", "migrate", func(m map[string]any) {
			container(m)["securityContext"].(map[string]any)["readOnlyRootFilesystem"] = false
		}, "root filesystem is not read-only"},
		{"no memory limit", "Deployment", "classifier", func(m map[string]any) {
			delete(container(m)["resources"].(map[string]any)["limits"].(map[string]any), "memory")
		}, "no memory limit"},
		{"another service's Secret", "Deployment", "gateway", func(m map[string]any) {
			c := container(m)
			c["envFrom"] = append(c["envFrom"].([]any), map[string]any{"secretRef": map[string]any{"name": "mailroom-classifier"}})
		}, "uses Secret mailroom-classifier, which is classifier's alone"},
		{"a Deployment without a PDB", "PodDisruptionBudget", "store", func(m map[string]any) {
			m["spec"].(map[string]any)["selector"] = map[string]any{"matchLabels": map[string]any{"app.kubernetes.io/name": "nobody"}}
		}, "Deployment/store: no PodDisruptionBudget"},
		{"a Service's pods without a NetworkPolicy", "NetworkPolicy", "store", func(m map[string]any) {
			m["spec"].(map[string]any)["podSelector"] = map[string]any{"matchLabels": map[string]any{"app.kubernetes.io/name": "nobody"}}
		}, "Service/store: its pods (Deployment/store) have no NetworkPolicy"},
		{"a grace period shorter than the drain", "Deployment", "store", func(m map[string]any) {
			get(m, "spec", "template", "spec").(map[string]any)["terminationGracePeriodSeconds"] = 15
		}, "terminationGracePeriodSeconds must exceed"},
		{"NATS without fsync on every write", "ConfigMap", "nats-config", func(m map[string]any) {
			d := m["data"].(map[string]any)
			d["nats.conf"] = strings.Replace(d["nats.conf"].(string), "sync_interval: always", "sync_interval: 2m", 1)
		}, "sync_interval: always"},
		{"NATS config the server refuses", "ConfigMap", "nats-config", func(m map[string]any) {
			m["data"].(map[string]any)["auth.conf"] = "authorization { users: [ {user: ingest, password: } ] "
		}, "nats-server refuses it"},
		{"streams at fewer replicas than nodes", "ConfigMap", "mailroom-config", func(m map[string]any) {
			m["data"].(map[string]any)["MAILROOM_STREAM_REPLICAS"] = "1"
		}, "MAILROOM_STREAM_REPLICAS"},
		{"the ServiceAccount token mounted", "Deployment", "auth", func(m map[string]any) {
			get(m, "spec", "template", "spec").(map[string]any)["automountServiceAccountToken"] = true
		}, "mounts a ServiceAccount token"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			objs := mutated(t, tc.kind, tc.obj, tc.change)
			_, err := c.Objects(context.Background(), check.Report{Kinds: map[string]int{}, CustomResources: map[string]int{}, Policies: map[string]int{}}, objs, check.Options{PinnedImages: true})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v\nwant an error containing %q", err, tc.want)
			}
		})
	}
}

func TestUnknownKind(t *testing.T) {
	c := newChecker(t)
	o, err := check.NewObject([]byte(`{"apiVersion":"example.com/v1","kind":"Widget","metadata":{"name":"w"}}`))
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Objects(context.Background(), check.Report{Kinds: map[string]int{}, CustomResources: map[string]int{}, Policies: map[string]int{}}, []*check.Object{o}, check.Options{})
	if err == nil || !strings.Contains(err.Error(), "neither a built-in kind nor a custom resource") {
		t.Errorf("got %v, want the unknown kind refused", err)
	}
}
