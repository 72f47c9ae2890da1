package check

import (
	"fmt"
	"regexp"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// workload is a pod template and what owns it.
type workload struct {
	ID   string // "Deployment/store"
	Kind string
	Name string
	Meta metav1.ObjectMeta
	Spec corev1.PodSpec
}

// serving is true for workloads that run for ever and take traffic: they
// need probes, a PDB, spread and a graceful stop; a Job's pod runs to
// completion.
func (w workload) serving() bool { return w.Kind == "Deployment" || w.Kind == "StatefulSet" }

func workloads(objs []*Object) []workload {
	var ws []workload
	for _, o := range objs {
		var t *corev1.PodTemplateSpec
		switch v := o.Typed.(type) {
		case *appsv1.Deployment:
			t = &v.Spec.Template
		case *appsv1.StatefulSet:
			t = &v.Spec.Template
		case *appsv1.DaemonSet:
			t = &v.Spec.Template
		case *batchv1.Job:
			t = &v.Spec.Template
		case *batchv1.CronJob:
			t = &v.Spec.JobTemplate.Spec.Template
		default:
			continue
		}
		ws = append(ws, workload{ID: o.ID(), Kind: o.GVK.Kind, Name: o.Name, Meta: t.ObjectMeta, Spec: t.Spec})
	}
	return ws
}

// sensitive names an environment variable or ConfigMap key whose value is a
// secret: it may come from a Secret, never be written in a manifest.
var sensitive = regexp.MustCompile(`(?i)(PASSWORD|SECRET|TOKEN|_KEYS?$|^KEY$|DATABASE_URL|NATS_URL|CREDENTIAL)`)

var digestRef = regexp.MustCompile(`@sha256:[0-9a-f]{64}$`)

// preStop and drain deadline the services are given; the grace period must
// cover both and the telemetry flush.
const telemetryFlush = 5 * time.Second

// Policies checks mailroom's rules, counting in checked how many objects
// each rule looked at:
//
//   - resources: every container has CPU and memory requests and limits
//   - probes: every serving container has readiness and liveness probes
//   - read-only-root: every container's root filesystem is read-only
//   - image-digest: with PinnedImages, every image is pinned by digest
//   - pdb: every Deployment and StatefulSet has a PodDisruptionBudget
//   - network-policy: every Service's pods are selected by a NetworkPolicy of their own
//   - no-secret-values: no Secret, and no secret-looking value in a ConfigMap or env
//   - service-account: every pod runs as a ServiceAccount of its own, without its token
//   - secret-per-service: a Secret mailroom-<service> reaches that service only
//   - graceful-stop: serving pods wait in preStop, and their grace period covers preStop, drain and flush
//   - priority-class: every pod has a priority class that is defined
//   - topology-spread: every serving pod spreads over zones
func Policies(objs []*Object, opts Options, checked map[string]int) []error {
	var errs []error
	fail := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	ws := workloads(objs)

	var pdbs []*policyv1.PodDisruptionBudget
	var netpols []*networkingv1.NetworkPolicy
	var services []*corev1.Service
	sas := map[string]*corev1.ServiceAccount{}
	priorities := map[string]bool{}
	config := map[string]string{}
	for _, o := range objs {
		switch v := o.Typed.(type) {
		case *policyv1.PodDisruptionBudget:
			pdbs = append(pdbs, v)
		case *networkingv1.NetworkPolicy:
			netpols = append(netpols, v)
		case *corev1.Service:
			services = append(services, v)
		case *corev1.ServiceAccount:
			sas[v.Name] = v
		case *schedulingv1.PriorityClass:
			priorities[v.Name] = true
		case *corev1.Secret:
			checked["no-secret-values"]++
			if len(v.Data) > 0 || len(v.StringData) > 0 {
				fail("%s: a Secret with values is committed; make it outside git (README, deploying)", o.ID())
			}
		case *corev1.ConfigMap:
			checked["no-secret-values"]++
			for k, val := range v.Data {
				if sensitive.MatchString(k) && val != "" {
					fail("%s: %s looks secret; it belongs in a Secret made outside git", o.ID(), k)
				}
			}
			if v.Name == "mailroom-config" {
				config = v.Data
			}
		}
	}

	drain := 10 * time.Second
	if d, err := time.ParseDuration(config["MAILROOM_SHUTDOWN_TIMEOUT"]); err == nil {
		drain = d
	}

	for _, w := range ws {
		podLabels := labels.Set(w.Meta.Labels)
		containers := append(append([]corev1.Container{}, w.Spec.InitContainers...), w.Spec.Containers...)
		for _, c := range containers {
			id := w.ID + " container " + c.Name
			checked["resources"]++
			for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
				if _, ok := c.Resources.Requests[r]; !ok {
					fail("%s: no %s request", id, r)
				}
				if _, ok := c.Resources.Limits[r]; !ok {
					fail("%s: no %s limit", id, r)
				}
			}
			if w.serving() {
				checked["probes"]++
				if c.ReadinessProbe == nil {
					fail("%s: no readiness probe", id)
				}
				if c.LivenessProbe == nil {
					fail("%s: no liveness probe", id)
				}
			}
			checked["read-only-root"]++
			if c.SecurityContext == nil || c.SecurityContext.ReadOnlyRootFilesystem == nil || !*c.SecurityContext.ReadOnlyRootFilesystem {
				fail("%s: root filesystem is not read-only", id)
			}
			if opts.PinnedImages {
				checked["image-digest"]++
				if !digestRef.MatchString(c.Image) {
					fail("%s: image %q is not pinned by digest", id, c.Image)
				}
			}
			checked["no-secret-values"]++
			for _, e := range c.Env {
				if sensitive.MatchString(e.Name) && e.Value != "" {
					fail("%s: env %s has a literal value; take it from a Secret", id, e.Name)
				}
			}
			checked["secret-per-service"]++
			for _, s := range secretRefs(c) {
				if owner, ok := strings.CutPrefix(s, "mailroom-"); ok && owner != "db-app" && owner != w.Name {
					fail("%s: uses Secret %s, which is %s's alone", id, s, owner)
				}
			}
		}

		checked["service-account"]++
		switch sa := w.Spec.ServiceAccountName; {
		case sa == "" || sa == "default":
			fail("%s: runs as the namespace's default ServiceAccount; give it its own", w.ID)
		case sas[sa] == nil:
			fail("%s: ServiceAccount %s is not in the manifests", w.ID, sa)
		}
		if a := w.Spec.AutomountServiceAccountToken; a == nil || *a {
			fail("%s: mounts a ServiceAccount token (automountServiceAccountToken: false)", w.ID)
		}

		checked["priority-class"]++
		if p := w.Spec.PriorityClassName; p == "" {
			fail("%s: no priorityClassName", w.ID)
		} else if !priorities[p] {
			fail("%s: PriorityClass %s is not in the manifests", w.ID, p)
		}

		if !w.serving() {
			continue
		}
		checked["pdb"]++
		if !selectedByPDB(pdbs, podLabels) {
			fail("%s: no PodDisruptionBudget selects its pods", w.ID)
		}
		checked["topology-spread"]++
		if !spreadsOverZones(w.Spec) {
			fail("%s: no topology spread (or required anti-affinity) over topology.kubernetes.io/zone", w.ID)
		}
		checked["graceful-stop"]++
		for _, c := range w.Spec.Containers {
			var wait time.Duration
			switch ps := c.Lifecycle; {
			case ps == nil || ps.PreStop == nil:
				fail("%s container %s: no preStop hook: endpoints still send traffic while it stops", w.ID, c.Name)
				continue
			case ps.PreStop.Sleep != nil:
				wait = time.Duration(ps.PreStop.Sleep.Seconds) * time.Second
			}
			need := wait + drain + telemetryFlush
			if g := w.Spec.TerminationGracePeriodSeconds; g == nil || time.Duration(*g)*time.Second <= need {
				fail("%s: terminationGracePeriodSeconds must exceed preStop %s + drain %s + flush %s", w.ID, wait, drain, telemetryFlush)
			}
		}
	}

	for _, s := range services {
		checked["network-policy"]++
		if len(s.Spec.Selector) == 0 {
			continue // endpoints managed by hand: no pods of ours
		}
		sel := labels.SelectorFromSet(s.Spec.Selector)
		var matched int
		for _, w := range ws {
			if !sel.Matches(labels.Set(w.Meta.Labels)) {
				continue
			}
			matched++
			if !selectedByNetworkPolicy(netpols, labels.Set(w.Meta.Labels)) {
				fail("Service/%s: its pods (%s) have no NetworkPolicy of their own (only the namespace's default)", s.Name, w.ID)
			}
		}
		if matched == 0 {
			fail("Service/%s: selects no pod template in the manifests", s.Name)
		}
	}
	return errs
}

func secretRefs(c corev1.Container) []string {
	var names []string
	for _, e := range c.EnvFrom {
		if e.SecretRef != nil {
			names = append(names, e.SecretRef.Name)
		}
	}
	for _, e := range c.Env {
		if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
			names = append(names, e.ValueFrom.SecretKeyRef.Name)
		}
	}
	return names
}

func selectedByPDB(pdbs []*policyv1.PodDisruptionBudget, pod labels.Set) bool {
	for _, p := range pdbs {
		sel, err := metav1.LabelSelectorAsSelector(p.Spec.Selector)
		if err == nil && !sel.Empty() && sel.Matches(pod) {
			return true
		}
	}
	return false
}

// selectedByNetworkPolicy is true when a policy aimed at these pods (not the
// namespace-wide default, whose selector is empty) selects them.
func selectedByNetworkPolicy(nps []*networkingv1.NetworkPolicy, pod labels.Set) bool {
	for _, np := range nps {
		sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
		if err == nil && !sel.Empty() && sel.Matches(pod) && len(np.Spec.Ingress) > 0 {
			return true
		}
	}
	return false
}

func spreadsOverZones(spec corev1.PodSpec) bool {
	for _, t := range spec.TopologySpreadConstraints {
		if t.TopologyKey == "topology.kubernetes.io/zone" {
			return true
		}
	}
	if a := spec.Affinity; a != nil && a.PodAntiAffinity != nil {
		for _, t := range a.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution {
			if t.TopologyKey == "topology.kubernetes.io/zone" {
				return true
			}
		}
	}
	return false
}
