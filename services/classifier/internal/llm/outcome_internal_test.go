package llm

import (
	"errors"
	"testing"

	"mailroom.dev/services/classifier/internal/limiter"
)

func TestOutcomeOf(t *testing.T) {
	failed := errors.New("x")
	for _, tc := range []struct {
		name    string
		r       result
		problem string
		want    string
	}{
		{"answer", result{outcome: limiter.Outcome{Status: 200}, content: "{}"}, "", OutcomeOK},
		{"refusal", result{outcome: limiter.Outcome{Status: 200}, refusal: "no"}, "", OutcomeRefused},
		{"broken answer", result{outcome: limiter.Outcome{Status: 200}}, "the answer is not the JSON the schema asks for", OutcomeInvalidAnswer},
		{"no choices", result{outcome: limiter.Outcome{Status: 200}, err: failed}, "", OutcomeInvalidAnswer},
		{"429", result{outcome: limiter.Outcome{Status: 429}, rateLimited: true}, "", OutcomeRateLimited},
		{"500", result{outcome: limiter.Outcome{Status: 500}, err: failed}, "", OutcomeServerError},
		{"no answer", result{err: failed}, "", OutcomeTimeout},
		{"400", result{outcome: limiter.Outcome{Status: 400}, err: failed, permanent: true}, "", OutcomeRejected},
		{"insufficient quota", result{outcome: limiter.Outcome{Status: 429}, err: failed, permanent: true}, "", OutcomeRejected},
	} {
		if got := outcomeOf(tc.r, tc.problem); got != tc.want {
			t.Errorf("%s: outcome %q, want %q", tc.name, got, tc.want)
		}
	}
}
