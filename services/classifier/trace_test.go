package classifier_test

import (
	"context"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"mailroom.dev/platform/telemetry"
	"mailroom.dev/platform/testenv"
)

// TestTraceContinues checks that the classifier's span is a child of the
// publisher's (the trace context travels in the received event's headers)
// and that the classified event carries the classifier's span on.
func TestTraceContinues(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	shutdown, err := telemetry.Setup(context.Background(), telemetry.Options{ServiceName: "classifier-test", Exporter: exp})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = shutdown(context.Background())
		otel.SetTracerProvider(noop.NewTracerProvider())
	})
	e := start(t, testenv.NATS(t), "")

	ctx, parent := otel.Tracer("test").Start(context.Background(), "ingest import")
	ev := received("ada", "m7", "Hello", "Ada <ada@example.com>", "Some body text")
	publishCtx(t, ctx, e, ev, "inbox/p-m7")
	parent.End()
	classifiedInStream(t, e, 1)

	// The span ends right after the ack, which may follow the publish we read.
	var span tracetest.SpanStub
	deadline := time.Now().Add(10 * time.Second)
	for span.Name == "" && time.Now().Before(deadline) {
		for _, s := range exp.GetSpans() {
			if s.Name == "classify mail.received" {
				span = s
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	if span.Name == "" {
		t.Fatal("no classify span was recorded")
	}
	// The publish is a producer span under the publisher's; the classify
	// span is its child and links to it.
	byID := map[trace.SpanID]tracetest.SpanStub{}
	for _, s := range exp.GetSpans() {
		byID[s.SpanContext.SpanID()] = s
	}
	send, ok := byID[span.Parent.SpanID()]
	if !ok || send.SpanKind != trace.SpanKindProducer || send.Parent.SpanID() != parent.SpanContext().SpanID() {
		t.Errorf("classify span's parent = %s (%q), want the producer span of the publish under the publisher's span %s", span.Parent.SpanID(), send.Name, parent.SpanContext().SpanID())
	}
	if len(span.Links) != 1 || span.Links[0].SpanContext.SpanID() != span.Parent.SpanID() {
		t.Errorf("classify span's links = %v, want the producer span", span.Links)
	}
	if got, want := span.SpanContext.TraceID(), parent.SpanContext().TraceID(); got != want {
		t.Errorf("classify span's trace = %s, want %s", got, want)
	}
	if span.SpanKind != trace.SpanKindConsumer {
		t.Errorf("span kind = %v, want consumer", span.SpanKind)
	}

	// The classified event's headers carry the classify span on to the store.
	stream, err := e.js.Stream(t.Context(), e.topo.ClassifiedStreamName())
	if err != nil {
		t.Fatal(err)
	}
	raw, err := stream.GetMsg(t.Context(), 1)
	if err != nil {
		t.Fatal(err)
	}
	// (through the producer span of its publish, a child of the classify span).
	got := trace.SpanContextFromContext(telemetry.Propagator.Extract(context.Background(), propagation.HeaderCarrier(raw.Header)))
	if got.TraceID() != parent.SpanContext().TraceID() {
		t.Errorf("classified event carries trace %s, want %s", got.TraceID(), parent.SpanContext().TraceID())
	}
	for _, s := range exp.GetSpans() {
		byID[s.SpanContext.SpanID()] = s
	}
	if pub, ok := byID[got.SpanID()]; !ok || pub.SpanKind != trace.SpanKindProducer || pub.Parent.SpanID() != span.SpanContext.SpanID() {
		t.Errorf("classified event carries span %s (%q), want the producer span of its publish under the classify span %s", got.SpanID(), pub.Name, span.SpanContext.SpanID())
	}
	for _, kv := range span.Attributes {
		if v := kv.Value.Emit(); v == "Hello" || v == "Ada <ada@example.com>" {
			t.Errorf("span attribute %s holds mail content", kv.Key)
		}
	}
}
