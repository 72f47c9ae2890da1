// Package telemetry sets up OpenTelemetry tracing, metrics and structured
// logging the same way in every service: W3C trace context, an OTLP exporter
// when the standard OTEL_* variables name an endpoint, metrics as Prometheus
// text on the service's own /metrics (a registry of its own), log/slog JSON
// lines that carry the trace and span ids of their context, and, for
// mailroom dev, one tracer and meter provider per service in one process
// (SetupSuite), so each service keeps its own service.name.
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// Propagator is the propagator every hop uses: W3C trace context and baggage.
var Propagator = propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})

// Options configure Setup.
type Options struct {
	// ServiceName is the OpenTelemetry service.name, unless OTEL_SERVICE_NAME is set.
	ServiceName string
	// Exporter, when set, receives every span instead of the OTLP exporter
	// (tests use an in-memory exporter).
	Exporter sdktrace.SpanExporter
}

// Setup installs the global tracer provider and propagator. Spans are
// exported over OTLP when OTEL_EXPORTER_OTLP_ENDPOINT or
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set (protocol from
// OTEL_EXPORTER_OTLP_PROTOCOL: grpc, the default, or http/protobuf); without
// an endpoint spans still get ids, for logs and propagation, and go nowhere.
// The returned function flushes and stops the provider.
func Setup(ctx context.Context, opts Options) (func(context.Context) error, error) {
	otel.SetTextMapPropagator(Propagator)
	name := opts.ServiceName
	if env := os.Getenv("OTEL_SERVICE_NAME"); env != "" {
		name = env
	}
	tp, err := NewTracerProvider(ctx, name, opts.Exporter)
	if err != nil {
		return nil, err
	}
	otel.SetTracerProvider(tp)
	return tp.Shutdown, nil
}

// NewTracerProvider returns a tracer provider whose spans carry service.name
// serviceName, exported to exp (synchronously: tests read spans right after
// the work that made them) or, when exp is nil, over OTLP as Setup says.
// Setup installs one; mailroom dev (SetupSuite) makes one per service.
func NewTracerProvider(ctx context.Context, serviceName string, exp sdktrace.SpanExporter) (*sdktrace.TracerProvider, error) {
	res, err := serviceResource(serviceName)
	if err != nil {
		return nil, err
	}
	tpOpts := []sdktrace.TracerProviderOption{
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.AlwaysSample())),
	}
	if exp != nil {
		tpOpts = append(tpOpts, sdktrace.WithSyncer(exp))
	} else if os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != "" {
		switch p := firstEnv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"); p {
		case "", "grpc":
			exp, err = otlptracegrpc.New(ctx)
		case "http/protobuf":
			exp, err = otlptracehttp.New(ctx)
		default:
			return nil, fmt.Errorf("telemetry: OTEL_EXPORTER_OTLP_PROTOCOL %q is not supported (grpc or http/protobuf)", p)
		}
		if err != nil {
			return nil, fmt.Errorf("telemetry: otlp exporter: %w", err)
		}
		tpOpts = append(tpOpts, sdktrace.WithBatcher(exp))
	}
	return sdktrace.NewTracerProvider(tpOpts...), nil
}

// NewLogger returns a JSON logger writing to w at level, whose records carry
// the service name (unless empty) and, when their context holds a span,
// trace_id and span_id.
func NewLogger(w io.Writer, level slog.Level, service string) *slog.Logger {
	l := slog.New(NewHandler(w, level))
	if service != "" {
		l = l.With("service", service)
	}
	return l
}

// NewHandler returns the JSON handler of NewLogger, for combining with others.
func NewHandler(w io.Writer, level slog.Level) slog.Handler {
	return traceHandler{slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level})}
}

// ParseLevel parses a log level name (debug, info, warn, error); empty is info.
func ParseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if s == "" {
		return slog.LevelInfo, nil
	}
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, errors.New("log level must be debug, info, warn or error")
	}
	return l, nil
}

type traceHandler struct{ slog.Handler }

func (h traceHandler) Handle(ctx context.Context, r slog.Record) error {
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		r.AddAttrs(slog.String("trace_id", sc.TraceID().String()), slog.String("span_id", sc.SpanID().String()))
	}
	return h.Handler.Handle(ctx, r)
}

func (h traceHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return traceHandler{h.Handler.WithAttrs(as)}
}

func (h traceHandler) WithGroup(name string) slog.Handler {
	return traceHandler{h.Handler.WithGroup(name)}
}
