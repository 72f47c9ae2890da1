package llm

import (
	"context"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

func newTracer(tp trace.TracerProvider) trace.Tracer {
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	return tp.Tracer("mailroom.dev/services/classifier/internal/llm")
}

// startSpan starts the client span of one model call, named and described
// after the OpenTelemetry GenAI conventions. It carries the model, the key's
// ID, tokens and the outcome; never the prompt or the answer (mail text).
func (t *Tier) startSpan(ctx context.Context, model, key string) (context.Context, trace.Span) {
	return t.tracer.Start(ctx, "chat "+model, trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(
		attribute.String("gen_ai.system", "openai"),
		attribute.String("gen_ai.operation.name", "chat"),
		attribute.String("gen_ai.request.model", model),
		attribute.Int("gen_ai.request.max_tokens", t.cfg.MaxCompletionTokens),
		attribute.String("mailroom.llm.key", key),
	))
}

func endSpan(span trace.Span, outcome string, r result) {
	defer span.End()
	span.SetAttributes(attribute.String("mailroom.llm.outcome", outcome))
	if r.outcome.Status != 0 {
		span.SetAttributes(attribute.Int("http.response.status_code", r.outcome.Status))
	}
	if r.model != "" {
		span.SetAttributes(attribute.String("gen_ai.response.model", r.model))
	}
	if r.prompt > 0 || r.completion > 0 {
		span.SetAttributes(
			attribute.Int64("gen_ai.usage.input_tokens", r.prompt),
			attribute.Int64("gen_ai.usage.output_tokens", r.completion),
			attribute.Int64("gen_ai.usage.cached_input_tokens", r.cached),
		)
	}
	switch outcome {
	case OutcomeOK, OutcomeRefused:
	case OutcomeRateLimited:
		// Expected and handled: the key freezes and the request waits.
	default:
		span.SetStatus(codes.Error, outcome)
	}
}
