// Package telemetry sets up OpenTelemetry tracing and structured logging the
// same way in every service: W3C trace context, an OTLP exporter when the
// standard OTEL_* variables name an endpoint, and log/slog JSON lines that
// carry the trace and span ids of their context.
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
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
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
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(semconv.ServiceName(opts.ServiceName)))
	if err != nil {
		return nil, fmt.Errorf("telemetry: resource: %w", err)
	}
	if name := os.Getenv("OTEL_SERVICE_NAME"); name != "" {
		res, _ = resource.Merge(res, resource.NewSchemaless(semconv.ServiceName(name)))
	}
	tpOpts := []sdktrace.TracerProviderOption{
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.AlwaysSample())),
	}
	exp := opts.Exporter
	if exp == nil && (os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != "") {
		switch p := os.Getenv("OTEL_EXPORTER_OTLP_PROTOCOL"); p {
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
	}
	if exp != nil {
		if opts.Exporter != nil {
			// Tests read spans right after the work that made them.
			tpOpts = append(tpOpts, sdktrace.WithSyncer(exp))
		} else {
			tpOpts = append(tpOpts, sdktrace.WithBatcher(exp))
		}
	}
	tp := sdktrace.NewTracerProvider(tpOpts...)
	otel.SetTracerProvider(tp)
	return tp.Shutdown, nil
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
