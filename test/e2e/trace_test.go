package e2e_test

import (
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// TestOneTraceAcrossTheChain imports one mail with a W3C traceparent and
// finds spans of the gateway, ingest, the classifier and the store in that
// one trace: trace context crossed HTTP, gRPC and two NATS hops.
func TestOneTraceAcrossTheChain(t *testing.T) {
	e := start(t, options{})
	ada := e.user("ada")
	mb := e.mailbox("ada", ada, "inbox")

	traceID := trace.TraceID{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36}
	traceparent := "00-" + traceID.String() + "-00f067aa0ba902b7-01"
	e.header("traceparent", traceparent)
	e.must(200, "POST", "/v1/"+mb+"/messages:import", ada, map[string]any{"messages": []map[string]any{{"raw": raw(t, "newsletter.eml")}}})
	e.header("traceparent", "")
	e.classified(ada, "ada", 1)

	want := map[string]func(tracetest.SpanStub) bool{
		"gateway": func(s tracetest.SpanStub) bool {
			return s.SpanKind == trace.SpanKindServer && strings.Contains(s.InstrumentationScope.Name, "otelhttp")
		},
		"ingest": func(s tracetest.SpanStub) bool {
			return strings.Contains(s.Name, "IngestService/ImportMessages") && s.SpanKind == trace.SpanKindServer
		},
		"classifier": func(s tracetest.SpanStub) bool {
			return strings.Contains(strings.ToLower(s.InstrumentationScope.Name+" "+s.Name), "classif") && s.SpanKind != trace.SpanKindServer
		},
		"store": func(s tracetest.SpanStub) bool {
			return strings.Contains(strings.ToLower(s.InstrumentationScope.Name+" "+s.Name), "store") && s.SpanKind != trace.SpanKindServer
		},
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		found := map[string]bool{}
		var names []string
		for _, s := range spans.GetSpans() {
			if s.SpanContext.TraceID() != traceID {
				continue
			}
			names = append(names, s.InstrumentationScope.Name+": "+s.Name)
			for hop, match := range want {
				if match(s) {
					found[hop] = true
				}
			}
		}
		if len(found) == len(want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("trace %s has spans of %v, want all of gateway, ingest, classifier, store; spans:\n%s", traceID, found, strings.Join(names, "\n"))
		}
		time.Sleep(100 * time.Millisecond)
	}
}
