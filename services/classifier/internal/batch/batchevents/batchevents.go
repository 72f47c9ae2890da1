// Package batchevents publishes the batch tier's moves (mail entering an
// OpenAI batch, or leaving one for the realtime path) as
// eventsv1.MailBatched on "mail.batch.<user>", for ingest to count in the
// sync jobs' progress.
//
// A move is published in the background, tried again until the stream
// has it or the publisher closes, with a Nats-Msg-Id derived from its
// content so that a retry after an unanswered publish is de-duplicated.
// Ingest applies an event only when it is newer than the last one it
// applied to a message, so a duplicate beyond the de-duplication window
// changes nothing either.
package batchevents

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "mailroom.dev/gen/go/mailroom/events/v1"
	"mailroom.dev/platform/eventbus"
	"mailroom.dev/services/classifier/internal/batch"
)

// maxMessages bounds one event's message names (about 40 bytes each), far
// below NATS's 1 MB payload.
const maxMessages = 1000

// Publisher is a batch.Progress over JetStream.
type Publisher struct {
	js     jetstream.JetStream
	topo   eventbus.Topology
	logger *slog.Logger
	ctx    context.Context
	stop   context.CancelFunc
	wg     sync.WaitGroup
	// retry is the first wait after a failed publish; it doubles up to 30 s.
	retry time.Duration
}

var _ batch.Progress = (*Publisher)(nil)

// New returns a Publisher on js, naming subjects with topo.
func New(js jetstream.JetStream, topo eventbus.Topology, logger *slog.Logger) *Publisher {
	ctx, stop := context.WithCancel(context.Background())
	return &Publisher{js: js, topo: topo, logger: logger, ctx: ctx, stop: stop, retry: 500 * time.Millisecond}
}

// Close stops the retries and waits up to 5 s for the publishes under way.
func (p *Publisher) Close() error {
	done := make(chan struct{})
	go func() { p.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
	}
	p.stop()
	return nil
}

// Moved implements batch.Progress: it publishes m in the background.
func (p *Publisher) Moved(m batch.Move) {
	for len(m.Messages) > 0 {
		n := min(len(m.Messages), maxMessages)
		part := m
		part.Messages = m.Messages[:n]
		m.Messages = m.Messages[n:]
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.publish(part)
		}()
	}
}

// Event is the MailBatched event of m.
func Event(m batch.Move) *eventsv1.MailBatched {
	state := eventsv1.MailBatched_STATE_LEFT
	if m.Entered {
		state = eventsv1.MailBatched_STATE_ENTERED
	}
	return &eventsv1.MailBatched{User: m.User, Messages: m.Messages, State: state, Batch: m.Batch, EventTime: timestamppb.New(m.At)}
}

// MsgID is the de-duplication id of m's event: the same move has the same id.
func MsgID(m batch.Move) string {
	h := sha256.New()
	h.Write([]byte(strings.Join(m.Messages, "\n")))
	state := "left"
	if m.Entered {
		state = "entered"
	}
	return "batch/" + m.User + "/" + state + "/" + m.At.UTC().Format(time.RFC3339Nano) + "/" + hex.EncodeToString(h.Sum(nil))[:16]
}

func (p *Publisher) publish(m batch.Move) {
	ev, id, subject := Event(m), MsgID(m), p.topo.BatchSubject(m.User)
	wait := p.retry
	for {
		ctx, cancel := context.WithTimeout(p.ctx, 10*time.Second)
		_, err := eventbus.Publish(ctx, p.js, subject, id, ev)
		cancel()
		if err == nil {
			return
		}
		if p.ctx.Err() != nil {
			p.logger.Warn("batch progress event not published: stopping", "messages", len(m.Messages), "error", err.Error())
			return
		}
		p.logger.Warn("publishing a batch progress event failed; trying again", "messages", len(m.Messages), "error", err.Error())
		select {
		case <-p.ctx.Done():
		case <-time.After(wait):
		}
		wait = min(2*wait, 30*time.Second)
	}
}
