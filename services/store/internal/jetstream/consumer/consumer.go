// Package consumer feeds the store from JetStream: durable pull consumers on
// the mail.received, mail.classified and mail.dead (dead-letter) streams
// fetch events in batches,
// record each batch in one transaction, and acknowledge (DoubleAck) every
// event only after the commit. A failed batch is retried message by message,
// so one bad event cannot hold up the others, and whatever still fails is
// Nak'd with a delay and comes back; an event that cannot be decoded is
// terminated.
package consumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"mailroom.dev/platform/breaker"
	"mailroom.dev/platform/eventbus"
	"mailroom.dev/services/store/internal/mailstore"
)

// Durable consumer names.
const (
	ReceivedDurable   = "store-received"
	ClassifiedDurable = "store-classified"
	DeadDurable       = "store-dead-letters"
)

// Recorder stores decoded events, one transaction per call.
type Recorder interface {
	RecordReceived(ctx context.Context, msgs []mailstore.Message) error
	RecordClassified(ctx context.Context, verdicts []mailstore.Classified) error
	RecordFailed(ctx context.Context, failures []mailstore.Failed) error
}

// Options tune the consumers; zero values take the defaults.
type Options struct {
	// BatchSize is the most events recorded in one transaction (default 500).
	BatchSize int
	// Writers is how many batches of one stream are recorded at a time
	// (default 2): while one transaction waits for its commit to reach the
	// disk, the next is written. Writes are idempotent and their outcome
	// does not depend on their order, so batches may commit in any order.
	Writers int
	// MaxWait is how long one fetch waits for a first event (default 5 s).
	MaxWait time.Duration
	// AckWait is how long the server waits for an ack before redelivering
	// (default 30 s).
	AckWait time.Duration
	// MaxAckPending bounds the events delivered and not yet acked (default
	// 2000, four batches).
	MaxAckPending int
	// NakDelay is the first redelivery delay after a failure; it doubles
	// with every delivery, up to a minute (default 1 s).
	NakDelay time.Duration
	// Breaker, shared by the streams, stops the fetching while every
	// batch fails (the database is down), one batch at a time probing
	// it; nil: a breaker of its own with the default configuration.
	Breaker *breaker.Breaker
	// MeterProvider makes the write metrics (mailroom_store_*); nil means
	// the global one.
	MeterProvider metric.MeterProvider
}

func (o *Options) defaults() {
	if o.BatchSize <= 0 {
		o.BatchSize = 500
	}
	if o.Writers <= 0 {
		o.Writers = 2
	}
	if o.MaxWait <= 0 {
		o.MaxWait = 5 * time.Second
	}
	if o.AckWait <= 0 {
		o.AckWait = 30 * time.Second
	}
	if o.MaxAckPending <= 0 {
		o.MaxAckPending = 2000
	}
	if o.NakDelay <= 0 {
		o.NakDelay = time.Second
	}
	if o.Breaker == nil {
		// A batch whose events all fail one by one too is a strong sign:
		// two in a row open the breaker. Probes are one batch's write,
		// cheap enough to try every 5 s at most, so that the store
		// resumes soon after the database.
		o.Breaker = breaker.New(breaker.Config{Threshold: 2, MaxCooldown: 5 * time.Second})
	}
}

// Consumers are the store's JetStream consumers.
type Consumers struct {
	keep       []Kept
	received   *pipe[mailstore.Message]
	classified *pipe[mailstore.Classified]
	dead       *pipe[mailstore.Failed]
}

// New creates (or updates) the durable consumers on the streams that topo
// names. It does not start consuming: Run does.
func New(ctx context.Context, js jetstream.JetStream, topo eventbus.Topology, rec Recorder, logger *slog.Logger, opts Options) (*Consumers, error) {
	opts.defaults()
	cfg := func(durable, filter string) jetstream.ConsumerConfig {
		return jetstream.ConsumerConfig{
			Durable:       durable,
			Description:   "mailroom store: records events in its database",
			FilterSubject: filter,
			DeliverPolicy: jetstream.DeliverAllPolicy,
			AckPolicy:     jetstream.AckExplicitPolicy,
			AckWait:       opts.AckWait,
			// The store is the system of record: it never gives up on an
			// event (a Nak counts as a delivery).
			MaxDeliver:    -1,
			MaxAckPending: opts.MaxAckPending,
		}
	}
	keep := []Kept{
		{topo.ReceivedStreamName(), cfg(ReceivedDurable, topo.ReceivedAll())},
		{topo.ClassifiedStreamName(), cfg(ClassifiedDurable, topo.ClassifiedAll())},
		{topo.DeadLetterStreamName(), cfg(DeadDurable, topo.DeadLetterAll())},
	}
	cons := make([]jetstream.Consumer, len(keep))
	for i, k := range keep {
		c, err := js.CreateOrUpdateConsumer(ctx, k.Stream, k.Config)
		if err != nil {
			return nil, fmt.Errorf("consumer %s: %w", k.Config.Durable, err)
		}
		cons[i] = c
	}
	received, classified, dead := cons[0], cons[1], cons[2]
	tracer := otel.Tracer("mailroom.dev/services/store/internal/jetstream/consumer")
	m := newMetrics(opts.MeterProvider)
	return &Consumers{
		keep: keep,
		received: &pipe[mailstore.Message]{
			cons: received, durable: ReceivedDurable, kind: KindMessage, metrics: m, span: "store process mail.received",
			decode: decodeReceived, record: rec.RecordReceived,
			logger: logger, opts: opts, tracer: tracer,
		},
		classified: &pipe[mailstore.Classified]{
			cons: classified, durable: ClassifiedDurable, kind: KindClassification, metrics: m, span: "store process mail.classified",
			decode: decodeClassified, record: rec.RecordClassified,
			logger: logger, opts: opts, tracer: tracer,
		},
		dead: &pipe[mailstore.Failed]{
			cons: dead, durable: DeadDurable, kind: KindDeadLetter, metrics: m, span: "store process mail.dead",
			decode: decodeDead, record: rec.RecordFailed,
			logger: logger, opts: opts, tracer: tracer,
		},
	}, nil
}

// Kept is a durable consumer and its stream.
type Kept struct {
	Stream string
	Config jetstream.ConsumerConfig
}

// Kept are the durable consumers, for the service to keep (re-create when
// they vanish): the pipes go on fetching from the consumer of the same name.
func (c *Consumers) Kept() []Kept { return c.keep }

// Run consumes the streams until ctx is done; the batches in hand are
// still recorded and acked. It returns nil after ctx is done.
func (c *Consumers) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Go(func() { c.received.run(ctx) })
	wg.Go(func() { c.classified.run(ctx) })
	wg.Go(func() { c.dead.run(ctx) })
	wg.Wait()
	return nil
}

// pipe moves the events of one consumer into the recorder.
type pipe[T any] struct {
	cons    jetstream.Consumer
	durable string
	kind    string
	metrics *metrics
	span    string
	decode  func(jetstream.Msg) (T, error)
	record  func(context.Context, []T) error
	logger  *slog.Logger
	opts    Options
	tracer  trace.Tracer
}

// item is one fetched event on its way through a batch.
type item[T any] struct {
	msg   jetstream.Msg
	value T
	ctx   context.Context
	span  trace.Span
}

func (p *pipe[T]) run(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	writers := make(chan struct{}, p.opts.Writers)
	for ctx.Err() == nil {
		// A writer is free before a batch is fetched: fetched events do not
		// wait, their ack deadline running, for a writer.
		select {
		case writers <- struct{}{}:
		case <-ctx.Done():
			return
		}
		msgs, err := p.fetch(ctx)
		if err != nil && ctx.Err() == nil {
			p.logger.WarnContext(ctx, "fetch failed", "consumer", p.durable, "error", err.Error())
			sleep(ctx, time.Second)
		}
		if len(msgs) == 0 {
			<-writers
			continue
		}
		wg.Go(func() {
			defer func() { <-writers }()
			// While the database is down the batch waits here, kept
			// alive, its deliveries unspent, until it may probe or the
			// breaker closes; the fetching stops meanwhile, every writer
			// holding a batch.
			for {
				stopKeepAlive := keepAlive(msgs, p.opts.AckWait/3)
				ticket, err := p.opts.Breaker.Wait(ctx)
				stopKeepAlive()
				if err != nil {
					for _, m := range msgs {
						_ = m.Nak()
					}
					return
				}
				// The batch in hand is finished even when shutdown has
				// begun; a batch that failed while the database is down is
				// held and tried again.
				if !p.process(context.WithoutCancel(ctx), msgs, ticket) {
					return
				}
			}
		})
	}
}

// fetch waits up to MaxWait for a first event, then takes whatever else is
// ready, up to BatchSize: a trickle is recorded at once, a flood in full
// batches.
func (p *pipe[T]) fetch(ctx context.Context) ([]jetstream.Msg, error) {
	wctx, cancel := context.WithTimeout(ctx, p.opts.MaxWait)
	defer cancel()
	first, err := p.cons.Fetch(1, jetstream.FetchContext(wctx))
	if err != nil {
		return nil, err
	}
	var msgs []jetstream.Msg
	for m := range first.Messages() {
		msgs = append(msgs, m)
	}
	if err := first.Error(); err != nil && !eventbus.IsTimeout(err) && !errors.Is(err, context.Canceled) {
		return msgs, err
	}
	if len(msgs) == 0 || p.opts.BatchSize == 1 {
		return msgs, nil
	}
	rest, err := p.cons.FetchNoWait(p.opts.BatchSize - 1)
	if err != nil {
		return msgs, err
	}
	for m := range rest.Messages() {
		msgs = append(msgs, m)
	}
	return msgs, nil
}

// process records msgs in one transaction and acks them after the commit.
// When the batch fails, each event is tried alone, so that one event the
// database refuses cannot keep the others out; the failures are Nak'd.
//
// It returns true, having acked and nakked nothing, when the batch failed
// while the database is down (ticket.Failure says so): the caller holds
// the batch and tries it again after the breaker lets it.
func (p *pipe[T]) process(ctx context.Context, msgs []jetstream.Msg, ticket breaker.Ticket) (held bool) {
	items := make([]item[T], 0, len(msgs))
	for _, m := range msgs {
		it := item[T]{msg: m}
		mctx := eventbus.Extract(ctx, m)
		it.ctx, it.span = p.tracer.Start(mctx, p.span,
			trace.WithSpanKind(trace.SpanKindConsumer),
			trace.WithLinks(eventbus.Links(mctx)...),
			trace.WithAttributes(
				attribute.String("messaging.system", "nats"),
				attribute.String("messaging.operation.type", "process"),
				attribute.String("messaging.consumer.group.name", p.durable),
				attribute.Int("messaging.batch.message_count", len(msgs)),
			))
		if md, err := m.Metadata(); err == nil {
			it.span.SetAttributes(
				attribute.String("messaging.destination.name", md.Stream),
				attribute.Int64("messaging.nats.stream_sequence", int64(md.Sequence.Stream)),
				attribute.Int64("messaging.nats.num_delivered", int64(md.NumDelivered)))
		}
		v, err := p.decode(m)
		if err != nil {
			// Redelivery cannot fix it: terminate, and say so without content.
			p.logger.ErrorContext(it.ctx, "undecodable event terminated", "consumer", p.durable, "stream_seq", streamSeq(m), "error", err.Error())
			if err := m.Term(); err != nil {
				p.logger.WarnContext(it.ctx, "term failed", "consumer", p.durable, "error", err.Error())
			}
			it.span.SetStatus(codes.Error, "undecodable event")
			it.span.End()
			continue
		}
		it.value = v
		items = append(items, it)
	}
	if len(items) == 0 {
		ticket.Release()
		return false
	}

	// Leave time to ack before the server redelivers.
	rctx, cancel := context.WithTimeout(ctx, p.opts.AckWait*4/5)
	defer cancel()
	values := make([]T, len(items))
	for i, it := range items {
		values[i] = it.value
	}
	started := time.Now()
	err := p.record(rctx, values)
	if err == nil {
		ticket.Success()
		p.metrics.recorded(ctx, p.kind, len(values), time.Since(started))
		p.ackAll(items)
		return false
	}
	p.metrics.recorded(ctx, p.kind, 0, time.Since(started))
	if len(items) == 1 || p.opts.Breaker.Open() {
		// One event, or a batch failing while the database is known to
		// be down: trying the events one by one would tell nothing.
		held := ticket.Failure()
		p.logger.ErrorContext(ctx, "recording events failed", "consumer", p.durable, "events", len(items), "error", err.Error())
		p.metrics.failed(ctx, p.kind, len(items))
		if held {
			endHeld(items, err)
			return true
		}
		for _, it := range items {
			p.nak(it, err, false)
		}
		return false
	}
	p.logger.ErrorContext(ctx, "recording batch failed; retrying its events one by one",
		"consumer", p.durable, "events", len(items), "error", err.Error())
	var failed []item[T]
	var causes []error
	for _, it := range items {
		if rctx.Err() != nil {
			failed, causes = append(failed, it), append(causes, rctx.Err())
			continue
		}
		started := time.Now()
		if err := p.record(rctx, []T{it.value}); err != nil {
			p.metrics.recorded(ctx, p.kind, 0, time.Since(started))
			failed, causes = append(failed, it), append(causes, err)
			continue
		}
		p.metrics.recorded(ctx, p.kind, 1, time.Since(started))
		p.ack(it)
	}
	p.metrics.failed(ctx, p.kind, len(failed))
	// Every event failing is the database; some recorded, it works.
	if len(failed) == len(items) {
		held = ticket.Failure()
	} else {
		ticket.Success()
	}
	if held {
		// None was recorded: the whole batch is held.
		endHeld(items, causes[0])
		return true
	}
	for i, it := range failed {
		p.nak(it, causes[i], false)
	}
	if len(failed) > 0 {
		p.logger.ErrorContext(ctx, "events not recorded; they will be redelivered", "consumer", p.durable, "failed", len(failed), "events", len(items))
	}
	return false
}

// endHeld ends the spans of a batch that is held while the database is down.
func endHeld[T any](items []item[T], cause error) {
	for _, it := range items {
		it.span.RecordError(cause)
		it.span.SetStatus(codes.Error, "held: the database is down")
		it.span.End()
	}
}

// ackAll acks items concurrently: a DoubleAck waits for the server's reply,
// and a batch's worth of round trips in a row would cost more than the
// transaction.
func (p *pipe[T]) ackAll(items []item[T]) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	for _, it := range items {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			p.ack(it)
		})
	}
	wg.Wait()
}

func (p *pipe[T]) ack(it item[T]) {
	defer it.span.End()
	actx, cancel := context.WithTimeout(it.ctx, 5*time.Second)
	defer cancel()
	if err := it.msg.DoubleAck(actx); err != nil {
		// Recorded but not acked: the event comes back and changes nothing.
		p.logger.WarnContext(it.ctx, "ack failed", "consumer", p.durable, "stream_seq", streamSeq(it.msg), "error", err.Error())
		it.span.RecordError(err)
	}
}

// nak hands it back: after NakDelay doubled with each delivery (up to a
// minute), or after NakDelay alone when held (the database is down, not
// the event at fault: its delivery should be back as soon as a probe can
// take it).
func (p *pipe[T]) nak(it item[T], cause error, held bool) {
	defer it.span.End()
	it.span.RecordError(cause)
	it.span.SetStatus(codes.Error, "not recorded")
	delay := p.opts.NakDelay
	if md, err := it.msg.Metadata(); err == nil && !held {
		for i := uint64(1); i < md.NumDelivered && delay < time.Minute; i++ {
			delay *= 2
		}
	}
	delay = min(delay, time.Minute)
	if err := it.msg.NakWithDelay(delay); err != nil {
		p.logger.WarnContext(it.ctx, "nak failed", "consumer", p.durable, "stream_seq", streamSeq(it.msg), "error", err.Error())
	}
}

func streamSeq(m jetstream.Msg) uint64 {
	md, err := m.Metadata()
	if err != nil {
		return 0
	}
	return md.Sequence.Stream
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// keepAlive tells the server every interval that msgs are in progress,
// until the returned function is called.
func keepAlive(msgs []jetstream.Msg, every time.Duration) func() {
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				for _, m := range msgs {
					_ = m.InProgress()
				}
			case <-done:
				return
			}
		}
	}()
	return func() { close(done); <-stopped }
}
