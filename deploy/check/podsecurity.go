package check

import (
	"errors"
	"fmt"

	"k8s.io/pod-security-admission/api"
	"k8s.io/pod-security-admission/policy"
)

// podSecurity evaluates pod templates against the Pod Security Standards'
// "restricted" level at the latest version, with the checks the API
// server's own admission plugin runs (k8s.io/pod-security-admission).
type podSecurity struct {
	eval  policy.Evaluator
	level api.LevelVersion
}

func newPodSecurity() (*podSecurity, error) {
	eval, err := policy.NewEvaluator(policy.DefaultChecks(), nil)
	if err != nil {
		return nil, fmt.Errorf("pod security: %w", err)
	}
	return &podSecurity{eval: eval, level: api.LevelVersion{Level: api.LevelRestricted, Version: api.LatestVersion()}}, nil
}

func (p *podSecurity) check(w workload) error {
	var errs []error
	for _, r := range p.eval.EvaluatePod(p.level, &w.Meta, &w.Spec) {
		if !r.Allowed {
			errs = append(errs, fmt.Errorf("%s: Pod Security restricted: %s (%s)", w.ID, r.ForbiddenReason, r.ForbiddenDetail))
		}
	}
	return errors.Join(errs...)
}
