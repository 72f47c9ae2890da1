package benchmark

import "mailroom.dev/services/classifier"

// escalate sets the classifier's escalation to a second model from s.
func escalate(cfg *classifier.Config, s Setup) {
	cfg.OpenAIEscalateModel = s.EscalateModel
	if len(s.EscalateCategories) > 0 {
		cfg.OpenAIEscalateCategories = s.EscalateCategories
	}
}
