// Package deadletters lists and replays the messages the classifier gave up
// on. They sit in the dead-letter stream on "mail.dead.<user>", one stream
// message each; a dead letter's id is its stream sequence.
package deadletters

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	eventsv1 "mailroom.dev/gen/go/mailroom/events/v1"
	"mailroom.dev/platform/apierror"
	"mailroom.dev/platform/eventbus"
	"mailroom.dev/services/classifier/internal/protoconv"
)

// DeadLetter is one message the classifier gave up on.
type DeadLetter struct {
	// ID is the stream sequence.
	ID uint64
	// User is whose mail it is.
	User     string
	Event    *eventsv1.MailDeadLettered
	DeadTime time.Time
}

// Store reads and replays dead letters.
type Store struct {
	js   jetstream.JetStream
	topo eventbus.Topology
}

// New returns a Store over js.
func New(js jetstream.JetStream, topo eventbus.Topology) *Store {
	return &Store{js: js, topo: topo}
}

// AllUsers, as List's user, lists every user's dead letters (an admin's
// view: users/-).
const AllUsers = "-"

// List returns up to pageSize of user's dead letters (every user's for
// AllUsers), oldest first, from the page token on, and the token of the
// next page ("" on the last).
func (s *Store) List(ctx context.Context, user string, pageSize int, pageToken string) ([]DeadLetter, string, error) {
	filter := s.topo.DeadLetterSubject(user)
	if user == AllUsers {
		filter = s.topo.DeadLetterAll()
	}
	start := uint64(1)
	if pageToken != "" {
		b, err := base64.RawURLEncoding.DecodeString(pageToken)
		if err != nil {
			return nil, "", apierror.Invalid("page_token", "is not a token of this list")
		}
		n, err := strconv.ParseUint(string(b), 10, 64)
		if err != nil || n == 0 {
			return nil, "", apierror.Invalid("page_token", "is not a token of this list")
		}
		start = n
	}
	// An ephemeral consumer with the user's subject as filter and no acks:
	// it reads the user's dead letters alone, from the start sequence, and
	// goes away by itself.
	cons, err := s.js.CreateConsumer(ctx, s.topo.DeadLetterStreamName(), jetstream.ConsumerConfig{
		FilterSubject:     filter,
		DeliverPolicy:     jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:       start,
		AckPolicy:         jetstream.AckNonePolicy,
		InactiveThreshold: 30 * time.Second,
		MemoryStorage:     true,
	})
	if err != nil {
		return nil, "", fmt.Errorf("deadletters: consumer: %w", err)
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = s.js.DeleteConsumer(dctx, s.topo.DeadLetterStreamName(), cons.CachedInfo().Name)
	}()
	if cons.CachedInfo().NumPending == 0 {
		return nil, "", nil
	}
	batch, err := cons.Fetch(pageSize+1, jetstream.FetchMaxWait(2*time.Second))
	if err != nil {
		return nil, "", fmt.Errorf("deadletters: fetch: %w", err)
	}
	var out []DeadLetter
	next := ""
	for m := range batch.Messages() {
		md, err := m.Metadata()
		if err != nil {
			continue
		}
		if len(out) == pageSize {
			next = base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatUint(md.Sequence.Stream, 10)))
			break
		}
		var ev eventsv1.MailDeadLettered
		if err := proto.Unmarshal(m.Data(), &ev); err != nil {
			continue
		}
		out = append(out, DeadLetter{ID: md.Sequence.Stream, User: strings.TrimPrefix(m.Subject(), s.topo.DeadLetterSubject("")), Event: &ev, DeadTime: md.Timestamp})
	}
	if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) && !eventbus.IsTimeout(err) {
		return nil, "", fmt.Errorf("deadletters: fetch: %w", err)
	}
	return out, next, nil
}

// Get returns user's dead letter id.
func (s *Store) Get(ctx context.Context, user string, id uint64) (DeadLetter, error) {
	stream, err := s.js.Stream(ctx, s.topo.DeadLetterStreamName())
	if err != nil {
		return DeadLetter{}, fmt.Errorf("deadletters: stream: %w", err)
	}
	raw, err := stream.GetMsg(ctx, id)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return DeadLetter{}, apierror.NotFoundf("dead letter %d not found", id)
	}
	if err != nil {
		return DeadLetter{}, fmt.Errorf("deadletters: get: %w", err)
	}
	// Existence is private: another user's dead letter is simply not found.
	if raw.Subject != s.topo.DeadLetterSubject(user) {
		return DeadLetter{}, apierror.NotFoundf("dead letter %d not found", id)
	}
	var ev eventsv1.MailDeadLettered
	if err := proto.Unmarshal(raw.Data, &ev); err != nil {
		return DeadLetter{}, fmt.Errorf("deadletters: decode %d: %w", id, err)
	}
	return DeadLetter{ID: id, User: user, Event: &ev, DeadTime: raw.Time}, nil
}

// Replay publishes the dead letter's original event again, to be
// classified afresh, and removes the dead letter.
func (s *Store) Replay(ctx context.Context, user string, id uint64) (string, error) {
	d, err := s.Get(ctx, user, id)
	if err != nil {
		return "", err
	}
	ev := d.Event.GetReceived()
	if ev == nil || ev.GetUser() != user {
		return "", apierror.Preconditionf("dead letter %d holds no message to replay", id)
	}
	lane := string(protoconv.Lane(ev.GetLane()))
	if _, err := eventbus.Publish(ctx, s.js, s.topo.ReceivedSubject(lane, user), fmt.Sprintf("replay/%d/%s", id, ev.GetMessage()), ev); err != nil {
		return "", apierror.Unavailablef(err, "the event stream is not available; try again")
	}
	stream, err := s.js.Stream(ctx, s.topo.DeadLetterStreamName())
	if err == nil {
		err = stream.DeleteMsg(ctx, id)
	}
	if err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
		return "", fmt.Errorf("deadletters: remove %d after replay: %w", id, err)
	}
	return ev.GetMessage(), nil
}

// Purge deletes every dead letter of user and says how many went.
func (s *Store) Purge(ctx context.Context, user string) (int64, error) {
	return eventbus.PurgeSubject(ctx, s.js, s.topo.DeadLetterStreamName(), s.topo.DeadLetterSubject(user))
}
