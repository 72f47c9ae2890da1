// Package eventbus is mailroom's use of NATS JetStream: the streams and
// subjects that carry mail events, publishing a protobuf event with a
// de-duplication id and the trace context in its headers, and reading the
// trace context back on the consuming side.
//
// The work streams (mail.received, mail.classified) never expire what no
// consumer has processed: they are bounded by bytes (Topology.MaxBytes)
// with discard-new, so that a full stream refuses a publish (ErrStreamFull)
// instead of dropping old mail, and Trim removes what every consumer that
// needs a message has acknowledged.
//
// The minimum NATS server version is 2.9.0 (the consumer create API with a
// filter subject in the request subject, purge up to a sequence, the
// max-deliveries advisory). Tests run against the embedded 2.15 library and
// the Debian 2.9 server.
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
	"mailroom.dev/platform/transport"
)

// Topology names the streams and subjects. Prefix, when set, is put in front
// of every subject ("t42." gives "t42.mail.received.…") and every stream name,
// so that tests sharing one server never see each other's events.
type Topology struct {
	Prefix string
	// Replicas is the stream replica count (3 in production, 1 in development).
	Replicas int
	// MaxBytes bounds each work stream (mail.received, mail.classified);
	// when one is full, a publish to it fails with ErrStreamFull. 0 or less
	// leaves them unbounded.
	MaxBytes int64
}

// DeadLetterMaxAge is how long a dead letter is kept (the store has
// recorded it as FAILED long before).
const DeadLetterMaxAge = 30 * 24 * time.Hour

// Stream names, before the prefix.
const (
	ReceivedStream   = "MAIL_RECEIVED"
	ClassifiedStream = "MAIL_CLASSIFIED"
	DeadLetterStream = "MAIL_DEAD"
	BatchStream      = "MAIL_BATCH"
)

// BatchMaxAge is how long a mail.batch event is kept: it only updates a
// sync job's progress (how much of its mail waits in an OpenAI batch),
// and a batch ends within its 24-hour completion window.
const BatchMaxAge = 7 * 24 * time.Hour

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

// BatchStreamName is the stream of mail.batch events.
func (t Topology) BatchStreamName() string { return t.stream(BatchStream) }

// BatchSubject is "mail.batch.<user>": a user's mail entering or leaving
// an OpenAI batch (eventsv1.MailBatched).
func (t Topology) BatchSubject(user string) string { return t.Prefix + "mail.batch." + user }

// BatchAll matches every mail.batch subject.
func (t Topology) BatchAll() string { return t.Prefix + "mail.batch.>" }

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

// Connect connects to the NATS server at url (or to any of a comma list
// of servers of one cluster), naming the connection for the server's
// monitoring. It reconnects forever, every second plus a random jitter of
// up to 2 s (so that replicas do not all come back at once), and pings the
// server every 10 s, so that a server that stopped answering without
// closing the connection is left after three missed pings.
func Connect(url, name string, extra ...nats.Option) (*nats.Conn, jetstream.JetStream, error) {
	opts := append([]nats.Option{nats.Name(name), nats.MaxReconnects(-1), nats.ReconnectWait(time.Second),
		nats.ReconnectJitter(500*time.Millisecond, 2*time.Second), nats.PingInterval(10 * time.Second), nats.MaxPingsOutstanding(3)}, extra...)
	nc, err := nats.Connect(url, opts...)
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

// TLSOptions are the connection options that t (the gRPC transport,
// MAILROOM_TLS_*) gives a NATS connection to url: its TLS (CA, and the
// certificate presented) when a server of url is tls://, nothing
// otherwise, so that one PKI serves gRPC and NATS.
func TLSOptions(url string, t transport.Config) ([]nats.Option, error) {
	secure := false
	for _, u := range strings.Split(url, ",") {
		if strings.HasPrefix(strings.ToLower(strings.TrimSpace(u)), "tls://") {
			secure = true
		}
	}
	if !secure {
		return nil, nil
	}
	tc, err := t.ClientTLS()
	if err != nil {
		return nil, fmt.Errorf("NATS TLS: %w", err)
	}
	if tc == nil {
		return nil, nil // tls:// against the system roots, as nats.go does
	}
	return []nats.Option{nats.Secure(tc)}, nil
}

// EnsureStreams creates or updates the streams. Every service calls it at
// start, so that any of them may start first.
//
// A stream created by an older mailroom (limits retention, a maximum age
// of 7 days, discard-old) is updated in place: its age limit goes, the
// byte limit and discard-new come. Its retention policy stays limits,
// which a stream cannot change and which is what the work streams use.
func EnsureStreams(ctx context.Context, js jetstream.JetStream, t Topology) error {
	for _, sc := range t.StreamConfigs() {
		if _, err := js.CreateOrUpdateStream(ctx, sc); err != nil {
			return fmt.Errorf("eventbus: stream %s: %w", sc.Name, err)
		}
	}
	return nil
}

// StreamConfigs are the configurations EnsureStreams gives the streams.
//
// The work streams keep limits retention rather than interest or
// work-queue retention: one mail.received event is read by four durable
// consumers (three lanes of the classifier, each filtered to its lane,
// and the store), and an interest stream drops a message published while
// no consumer exists yet, or when the only consumer that still needed it
// is deleted; Trim does the same job without those two losses.
func (t Topology) StreamConfigs() []jetstream.StreamConfig {
	replicas := t.Replicas
	if replicas == 0 {
		replicas = 1
	}
	maxBytes := t.MaxBytes
	if maxBytes <= 0 {
		maxBytes = -1
	}
	work := func(name, subject string) jetstream.StreamConfig {
		return jetstream.StreamConfig{Name: name, Subjects: []string{subject},
			MaxBytes: maxBytes, Discard: jetstream.DiscardNew}
	}
	out := []jetstream.StreamConfig{
		work(t.ReceivedStreamName(), t.ReceivedAll()),
		work(t.ClassifiedStreamName(), t.ClassifiedAll()),
		{Name: t.DeadLetterStreamName(), Subjects: []string{t.DeadLetterAll()}, MaxAge: DeadLetterMaxAge},
		{Name: t.AdvisoryStreamName(), Subjects: []string{t.MaxDeliveriesSubject("*")}, MaxAge: DeadLetterMaxAge},
		{Name: t.BatchStreamName(), Subjects: []string{t.BatchAll()}, MaxAge: BatchMaxAge},
	}
	for i := range out {
		out[i].Storage = jetstream.FileStorage
		out[i].Retention = jetstream.LimitsPolicy
		out[i].Replicas = replicas
		out[i].Duplicates = 2 * time.Minute
	}
	return out
}

// ErrStreamFull is the error of a publish that a full work stream refused:
// the queue is full until consumers catch up (or MaxBytes grows).
var ErrStreamFull = errors.New("eventbus: the stream is full")

// isStreamFull reports whether err is the server refusing a message for
// the stream's limits under discard-new ("maximum bytes exceeded",
// "maximum messages exceeded").
func isStreamFull(err error) bool {
	msg := err.Error()
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		msg = apiErr.Description
	}
	return strings.Contains(msg, "maximum bytes exceeded") || strings.Contains(msg, "maximum messages exceeded")
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
		if isStreamFull(err) {
			return nil, fmt.Errorf("eventbus: publish %s: %w (%w)", SubjectTemplate(subject), ErrStreamFull, err)
		}
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

// AdvisoryStream is the stream that keeps JetStream's max-deliveries
// advisories about the mail.received consumers, before the prefix.
const AdvisoryStream = "MAIL_ADVISORIES"

// AdvisoryStreamName is the stream that keeps the max-deliveries
// advisories of the mail.received stream's consumers: an advisory is a
// core NATS message that no one would see while every classifier is down,
// and kept in a stream it waits for one.
func (t Topology) AdvisoryStreamName() string { return t.stream(AdvisoryStream) }

// MaxDeliveriesSubject is the subject of JetStream's advisory that a
// message of the mail.received stream was delivered as often as consumer
// allows without being acknowledged ("*": any consumer).
func (t Topology) MaxDeliveriesSubject(consumer string) string {
	return "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES." + t.ReceivedStreamName() + "." + consumer
}

// MaxDeliveries is JetStream's max-deliveries advisory
// (io.nats.jetstream.advisory.v1.max_deliver).
type MaxDeliveries struct {
	Type       string `json:"type"`
	ID         string `json:"id"`
	Stream     string `json:"stream"`
	Consumer   string `json:"consumer"`
	StreamSeq  uint64 `json:"stream_seq"`
	Deliveries uint64 `json:"deliveries"`
}

// Trim removes from stream the messages that every one of consumers has
// acknowledged (or was never to receive: a filtered consumer with nothing
// pending), and returns the first sequence kept (0 when nothing was
// removed). It removes nothing while one of consumers does not exist —
// the code that needs it re-creates it and must find its messages — nor
// while a consumer of idle still has work: the max-deliveries advisories
// name messages of stream that must still be there when they are handled.
//
// Trim is what interest retention would do, done by hand so that a
// message published before the consumers exist, or one whose consumer was
// deleted, is kept (see StreamConfigs).
func Trim(ctx context.Context, js jetstream.JetStream, stream string, consumers []string, idle ...ConsumerRef) (uint64, error) {
	for _, ref := range idle {
		c, err := js.Consumer(ctx, ref.Stream, ref.Consumer)
		if errors.Is(err, jetstream.ErrConsumerNotFound) || errors.Is(err, jetstream.ErrStreamNotFound) {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("eventbus: trim %s: consumer %s: %w", stream, ref.Consumer, err)
		}
		if ci := c.CachedInfo(); ci.NumPending > 0 || ci.NumAckPending > 0 {
			return 0, nil
		}
	}
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return 0, fmt.Errorf("eventbus: trim %s: %w", stream, err)
	}
	// The stream's state first: a consumer that has nothing pending after
	// it was read has finished every message up to its last sequence.
	st := s.CachedInfo().State
	if st.Msgs == 0 {
		return 0, nil
	}
	floor := st.LastSeq
	for _, name := range consumers {
		c, err := s.Consumer(ctx, name)
		if errors.Is(err, jetstream.ErrConsumerNotFound) {
			return 0, nil
		}
		if err != nil {
			return 0, fmt.Errorf("eventbus: trim %s: consumer %s: %w", stream, name, err)
		}
		ci := c.CachedInfo()
		if ci.NumPending > 0 || ci.NumAckPending > 0 {
			floor = min(floor, ci.AckFloor.Stream)
		}
	}
	if floor < st.FirstSeq {
		return 0, nil
	}
	if err := s.Purge(ctx, jetstream.WithPurgeSequence(floor+1)); err != nil {
		return 0, fmt.Errorf("eventbus: trim %s: %w", stream, err)
	}
	return floor + 1, nil
}

// ConsumerRef names a consumer of a stream.
type ConsumerRef struct{ Stream, Consumer string }

// WorkConsumers are, for each work stream, the durable consumers that
// must process each of its messages before Trim removes it: the
// classifier's three lanes and the store on mail.received, the store and
// ingest's progress counter on mail.classified. The services name their
// consumers so (their tests check it).
func (t Topology) WorkConsumers() map[string][]string {
	return map[string][]string{
		t.ReceivedStreamName():   {"classifier-interactive", "classifier-live", "classifier-backfill", "store-received"},
		t.ClassifiedStreamName(): {"store-classified", "ingest-progress"},
	}
}

// DeadLetterDurable is the classifier's durable consumer of the advisory
// stream: it turns each max-deliveries advisory into a dead letter.
const DeadLetterDurable = "classifier-max-deliveries"

// KeepConsumer makes sure that the durable consumer of cfg exists on
// stream: when it is gone (deleted, or lost with a NATS server) it is
// created again, with topo's streams first when they are gone too, and
// recreated says so.
func KeepConsumer(ctx context.Context, js jetstream.JetStream, topo Topology, stream string, cfg jetstream.ConsumerConfig) (recreated bool, err error) {
	_, err = js.Consumer(ctx, stream, cfg.Durable)
	switch {
	case err == nil:
		return false, nil
	case errors.Is(err, jetstream.ErrStreamNotFound):
		if err := EnsureStreams(ctx, js, topo); err != nil {
			return false, err
		}
	case !errors.Is(err, jetstream.ErrConsumerNotFound):
		return false, fmt.Errorf("eventbus: consumer %s: %w", cfg.Durable, err)
	}
	if _, err := js.CreateOrUpdateConsumer(ctx, stream, cfg); err != nil {
		return false, fmt.Errorf("eventbus: re-create consumer %s: %w", cfg.Durable, err)
	}
	return true, nil
}
