package e2e_test

import (
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// TestOneTraceAcrossTheChain imports one mail with a W3C traceparent and
// finds spans of the gateway, ingest, the classifier and the store in that
// one trace, each under its own service.name (mailroom-gateway, …), as
// Jaeger shows them: trace context crossed HTTP, gRPC and two NATS hops.
func TestOneTraceAcrossTheChain(t *testing.T) {
	e := start(t, options{})
	ada := e.user("ada")
	mb := e.mailbox("ada", ada, "inbox")

	// A key the gateway has not seen yet: its exchange at auth is part of
	// the import's trace, which then crosses all five services.
	k := e.must(200, "POST", "/v1/users/ada/apiKeys", e.admin, map[string]any{"displayName": "trace"})
	fresh, _ := k["key"].(string)

	traceID := trace.TraceID{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36}
	traceparent := "00-" + traceID.String() + "-00f067aa0ba902b7-01"
	e.header("traceparent", traceparent)
	e.must(200, "POST", "/v1/"+mb+"/messages:import", fresh, map[string]any{"messages": []map[string]any{{"raw": raw(t, "newsletter.eml")}}})
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
			return strings.HasPrefix(s.InstrumentationScope.Name, "mailroom.dev/services/classifier/") && s.SpanKind != trace.SpanKindServer
		},
		"store": func(s tracetest.SpanStub) bool {
			return strings.HasPrefix(s.InstrumentationScope.Name, "mailroom.dev/services/store/") && s.SpanKind != trace.SpanKindServer
		},
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		found := map[string]bool{}
		var names []string
		services := map[string]bool{}
		for _, s := range spans.GetSpans() {
			if s.SpanContext.TraceID() != traceID {
				continue
			}
			service := serviceName(s)
			services[service] = true
			names = append(names, service+" "+s.InstrumentationScope.Name+": "+s.Name)
			for hop, match := range want {
				if match(s) {
					if got := service; got != "mailroom-"+hop {
						t.Fatalf("a span of the %s (%s: %s) has service.name %q, want %q", hop, s.InstrumentationScope.Name, s.Name, got, "mailroom-"+hop)
					}
					found[hop] = true
				}
			}
		}
		if len(found) == len(want) {
			for _, svc := range []string{"mailroom-gateway", "mailroom-auth", "mailroom-ingest", "mailroom-classifier", "mailroom-store"} {
				if !services[svc] {
					t.Errorf("trace %s has no span of service.name %s; services: %v", traceID, svc, services)
				}
			}
			checkNATSHops(t, traceID)
			// No span attribute holds the path with its ids: the gateway's
			// url.path is the route template.
			for _, s := range spans.GetSpans() {
				for _, kv := range s.Attributes {
					if v := kv.Value.Emit(); strings.Contains(v, "users/ada") || strings.Contains(v, "mailboxes/inbox") {
						t.Errorf("%s span %q: attribute %s = %q holds ids", serviceName(s), s.Name, kv.Key, v)
					}
				}
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("trace %s has spans of %v, want all of gateway, ingest, classifier, store; spans:\n%s", traceID, found, strings.Join(names, "\n"))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// serviceName is the service.name of the resource a span was recorded under.
func serviceName(s tracetest.SpanStub) string {
	if s.Resource == nil {
		return ""
	}
	v, _ := s.Resource.Set().Value(semconv.ServiceNameKey)
	return v.AsString()
}

// checkNATSHops checks the two NATS hops of a trace: ingest's and the
// classifier's publishes are producer spans named after the subject's
// template (no user id), under the publishing service's name, and each
// consumer span (the classifier's, the store's) is their child and links
// to them.
func checkNATSHops(t *testing.T, traceID trace.TraceID) {
	t.Helper()
	producers := map[trace.SpanID]tracetest.SpanStub{}
	var consumers []tracetest.SpanStub
	for _, s := range spans.GetSpans() {
		if s.SpanContext.TraceID() != traceID {
			continue
		}
		switch s.SpanKind {
		case trace.SpanKindProducer:
			producers[s.SpanContext.SpanID()] = s
		case trace.SpanKindConsumer:
			consumers = append(consumers, s)
		}
	}
	want := map[string]string{
		"send mail.received.backfill.{user}": "mailroom-ingest",
		"send mail.classified.{user}":        "mailroom-classifier",
	}
	seen := map[string]bool{}
	for _, p := range producers {
		if svc, ok := want[p.Name]; ok {
			seen[p.Name] = true
			if got := serviceName(p); got != svc {
				t.Errorf("producer span %q has service.name %q, want %q", p.Name, got, svc)
			}
		}
		if strings.Contains(p.Name, "ada") {
			t.Errorf("producer span %q names a user", p.Name)
		}
	}
	for name := range want {
		if !seen[name] {
			var got []string
			for _, p := range producers {
				got = append(got, p.Name)
			}
			t.Errorf("no producer span %q in the trace; producers: %v", name, got)
		}
	}
	linked := 0
	for _, c := range consumers {
		if _, ok := producers[c.Parent.SpanID()]; !ok {
			continue
		}
		for _, l := range c.Links {
			if l.SpanContext.SpanID() == c.Parent.SpanID() {
				linked++
			}
		}
	}
	if linked < 2 {
		t.Errorf("%d consumer spans are children of a producer span and link to it, want 2 (classifier, store)", linked)
	}
}
