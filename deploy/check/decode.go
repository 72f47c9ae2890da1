package check

import (
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer/json"
)

// decoder turns rendered JSON into the Kubernetes API types, strictly: a
// field the type does not have, or a field given twice, is an error (what
// `kubectl apply --validate=strict` refuses), not silently dropped.
type decoder struct {
	codec runtime.Decoder
}

func newDecoder() *decoder {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{
		corev1.AddToScheme, appsv1.AddToScheme, batchv1.AddToScheme,
		policyv1.AddToScheme, autoscalingv2.AddToScheme, networkingv1.AddToScheme,
		schedulingv1.AddToScheme, rbacv1.AddToScheme,
	} {
		if err := add(s); err != nil {
			panic(err) // the API packages' own registrations: cannot fail
		}
	}
	return &decoder{codec: json.NewSerializerWithOptions(json.DefaultMetaFactory, s, s, json.SerializerOptions{Strict: true})}
}

// decode returns the typed object, or an error runtime.IsNotRegisteredError
// recognises for a kind outside the scheme (a custom resource).
func (d *decoder) decode(b []byte) (runtime.Object, error) {
	obj, _, err := d.codec.Decode(b, nil, nil)
	return obj, err
}
