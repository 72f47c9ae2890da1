// Package eventbus is mailroom's use of NATS JetStream: the streams and
// subjects that carry mail events, publishing a protobuf event with a
// de-duplication id and the trace context in its headers, and reading the
// trace context back on the consuming side.
//
// The minimum NATS server version is 2.9.0 (the consumer create API with a
// filter subject in the request subject). Tests run against the embedded
// 2.15 library and the Debian 2.9 server.
package eventbus

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"

	"mailroom.dev/platform/redact"
	"mailroom.dev/platform/telemetry"
)

// Topology names the streams and subjects. Prefix, when set, is put in front
// of every subject ("t42." gives "t42.mail.received.…") and every stream name,
// so that tests sharing one server never see each other's events.
type Topology struct {
	Prefix string
	// Replicas is the stream replica count (3 in production, 1 in development).
	Replicas int
	// MaxAge bounds how long an event is kept (default 7 days).
	MaxAge time.Duration
}

// Stream names, before the prefix.
const (
	ReceivedStream   = "MAIL_RECEIVED"
	ClassifiedStream = "MAIL_CLASSIFIED"
	DeadLetterStream = "MAIL_DEAD"
)

func (t Topology) stream(name string) string {
	if t.Prefix == "" {
		return name
	}
	p := strings.ToUpper(strings.NewReplacer(".", "_", "-", "_", "*", "_", ">", "_").Replace(t.Prefix))
	return strings.Trim(p, "_") + "_" + name
}

// BucketName is the name of a key-value bucket of this topology: base with
// the prefix, as stream names get it.
func (t Topology) BucketName(base string) string { return t.stream(base) }

// ReceivedStreamName is the stream of mail.received events.
func (t Topology) ReceivedStreamName() string { return t.stream(ReceivedStream) }

// ClassifiedStreamName is the stream of mail.classified events.
func (t Topology) ClassifiedStreamName() string { return t.stream(ClassifiedStream) }

// DeadLetterStreamName is the stream of messages that could not be classified.
func (t Topology) DeadLetterStreamName() string { return t.stream(DeadLetterStream) }

// ReceivedSubject is "mail.received.<lane>.<user>".
func (t Topology) ReceivedSubject(lane, user string) string {
	return t.Prefix + "mail.received." + lane + "." + user
}

// ReceivedLane matches the mail.received subjects of one lane.
func (t Topology) ReceivedLane(lane string) string { return t.Prefix + "mail.received." + lane + ".>" }

// ReceivedAll matches every mail.received subject.
func (t Topology) ReceivedAll() string { return t.Prefix + "mail.received.>" }

// ClassifiedSubject is "mail.classified.<user>".
func (t Topology) ClassifiedSubject(user string) string { return t.Prefix + "mail.classified." + user }

// ClassifiedAll matches every mail.classified subject.
func (t Topology) ClassifiedAll() string { return t.Prefix + "mail.classified.>" }

// DeadLetterSubject is "mail.dead.<user>".
func (t Topology) DeadLetterSubject(user string) string { return t.Prefix + "mail.dead." + user }

// DeadLetterAll matches every mail.dead subject.
func (t Topology) DeadLetterAll() string { return t.Prefix + "mail.dead.>" }

// Connect connects to the NATS server at url, naming the connection for the
// server's monitoring, and reconnecting forever.
func Connect(url, name string) (*nats.Conn, jetstream.JetStream, error) {
	nc, err := nats.Connect(url, nats.Name(name), nats.MaxReconnects(-1), nats.ReconnectWait(time.Second))
	if err != nil {
		return nil, nil, fmt.Errorf("eventbus: connect %s: %w", redact.URL(url), err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("eventbus: jetstream: %w", err)
	}
	return nc, js, nil
}

// EnsureStreams creates or updates the streams. Every service calls it at
// start, so that any of them may start first.
func EnsureStreams(ctx context.Context, js jetstream.JetStream, t Topology) error {
	replicas := t.Replicas
	if replicas == 0 {
		replicas = 1
	}
	maxAge := t.MaxAge
	if maxAge == 0 {
		maxAge = 7 * 24 * time.Hour
	}
	for _, sc := range []jetstream.StreamConfig{
		{Name: t.ReceivedStreamName(), Subjects: []string{t.ReceivedAll()}},
		{Name: t.ClassifiedStreamName(), Subjects: []string{t.ClassifiedAll()}},
		{Name: t.DeadLetterStreamName(), Subjects: []string{t.DeadLetterAll()}, MaxAge: 30 * 24 * time.Hour},
	} {
		sc.Storage = jetstream.FileStorage
		sc.Retention = jetstream.LimitsPolicy
		sc.Replicas = replicas
		sc.Duplicates = 2 * time.Minute
		if sc.MaxAge == 0 {
			sc.MaxAge = maxAge
		}
		if _, err := js.CreateOrUpdateStream(ctx, sc); err != nil {
			return fmt.Errorf("eventbus: stream %s: %w", sc.Name, err)
		}
	}
	return nil
}

// Publish publishes m on subject with Nats-Msg-Id msgID and the trace context
// of ctx in its headers, and waits for the stream's acknowledgement. A
// duplicate (same msgID within the de-duplication window) is not an error:
// the returned ack says Duplicate.
//
// The publish is a producer span (messaging semantic conventions), made by
// the tracer provider of ctx's span, so that it is the calling service's,
// and the headers carry it: a consumer's span is its child, and links to
// it (Links). The span names the subject's template, never the subject,
// whose last token is a user id.
func Publish(ctx context.Context, js jetstream.JetStream, subject, msgID string, m proto.Message) (*jetstream.PubAck, error) {
	data, err := proto.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("eventbus: marshal: %w", err)
	}
	tp := otel.GetTracerProvider()
	if parent := trace.SpanFromContext(ctx); parent.IsRecording() {
		tp = parent.TracerProvider()
	}
	template := SubjectTemplate(subject)
	ctx, span := tp.Tracer(scope).Start(ctx, "send "+template,
		trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(
			attribute.String("messaging.system", "nats"),
			attribute.String("messaging.operation.type", "send"),
			attribute.String("messaging.operation.name", "publish"),
			attribute.String("messaging.destination.template", template),
			attribute.Int("messaging.message.body.size", len(data)),
		))
	defer span.End()
	msg := nats.NewMsg(subject)
	msg.Data = data
	telemetry.Propagator.Inject(ctx, propagation.HeaderCarrier(msg.Header))
	msg.Header.Set("Content-Type", "application/protobuf")
	ack, err := js.PublishMsg(ctx, msg, jetstream.WithMsgID(msgID))
	if err != nil {
		span.SetStatus(codes.Error, "publish failed")
		return nil, fmt.Errorf("eventbus: publish %s: %w", subject, err)
	}
	span.SetAttributes(
		attribute.String("messaging.destination.name", ack.Stream),
		attribute.Int64("messaging.nats.stream_sequence", int64(ack.Sequence)),
		attribute.Bool("messaging.nats.duplicate", ack.Duplicate))
	return ack, nil
}

// scope is the instrumentation scope of the producer spans.
const scope = "mailroom.dev/platform/eventbus"

// SubjectTemplate is subject with its last token, the user, as {user}
// ("mail.received.live.{user}"): what spans may name.
func SubjectTemplate(subject string) string {
	if i := strings.LastIndexByte(subject, '.'); i >= 0 {
		return subject[:i+1] + "{user}"
	}
	return "{user}"
}

// Links is a link to the producer span whose context a message's headers
// carry (ctx is Extract's result), none when they carry none: consumers
// add it to their process span.
func Links(ctx context.Context) []trace.Link {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return nil
	}
	return []trace.Link{trace.LinkFromContext(ctx, attribute.String("messaging.operation.type", "send"))}
}

// Extract returns ctx carrying the trace context of msg's headers.
func Extract(ctx context.Context, msg jetstream.Msg) context.Context {
	h := msg.Headers()
	if h == nil {
		return ctx
	}
	return telemetry.Propagator.Extract(ctx, propagation.HeaderCarrier(h))
}

// IsTimeout reports whether err is a fetch that ended without messages.
func IsTimeout(err error) bool {
	return errors.Is(err, nats.ErrTimeout) || errors.Is(err, context.DeadlineExceeded)
}

// PurgeSubject deletes the messages of stream whose subject matches subject
// (wildcards allowed) and returns how many there were: what a user's
// deletion does to the events that still carry that user's mail.
func PurgeSubject(ctx context.Context, js jetstream.JetStream, stream, subject string) (int64, error) {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return 0, fmt.Errorf("eventbus: stream %s: %w", stream, err)
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(subject))
	if err != nil {
		return 0, fmt.Errorf("eventbus: stream %s: %w", stream, err)
	}
	var n int64
	for _, c := range info.State.Subjects {
		n += int64(c)
	}
	if n == 0 {
		return 0, nil
	}
	if err := s.Purge(ctx, jetstream.WithPurgeSubject(subject)); err != nil {
		return 0, fmt.Errorf("eventbus: purge %s of %s: %w", subject, stream, err)
	}
	return n, nil
}

// ReceivedOfUser matches every mail.received subject of user, in every lane.
func (t Topology) ReceivedOfUser(user string) string { return t.Prefix + "mail.received.*." + user }
