package authn

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Revocations travel in a NATS key-value bucket that auth writes and every
// verifier (the gateway, each service's guard) watches:
//
//	user.<user>        the user was deleted at the time the value holds
//	key.<user>.<key>   the API key was revoked (deleted) at that time
//
// A watcher receives a put within milliseconds, drops the API key
// exchanges it cached for that key or user, and refuses identity tokens of
// that user (or minted from that key) issued at or before the revocation.
// The bucket keeps each record for RevocationRetention, so a verifier that
// starts (or reconnects) later learns every revocation from the bucket
// itself, not only those it saw happen; a user's record is also the
// deletion marker that ingest and the classifier check before they write
// or publish anything of that user (DeletedAt).
const (
	// RevocationBucket is the bucket's name before the topology's prefix.
	RevocationBucket = "REVOCATIONS"
	// RevocationRetention is how long a revocation is remembered: as long
	// as the store remembers a deleted user (its tombstones), far longer
	// than any identity token lives or any event waits in a stream.
	RevocationRetention = 90 * 24 * time.Hour
	// DefaultFallbackTTL is how long an API key exchange is cached while
	// the revocations cannot be watched (NATS unreachable): a revoked key
	// then still stops working within this time, as auth refuses it at the
	// next exchange.
	DefaultFallbackTTL = time.Second
)

// OpenRevocations creates (or opens) the revocation bucket called bucket
// (Topology.BucketName(RevocationBucket)) with replicas replicas.
func OpenRevocations(ctx context.Context, js jetstream.JetStream, bucket string, replicas int) (*RevocationStore, error) {
	if replicas <= 0 {
		replicas = 1
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      bucket,
		Description: "mailroom revocations: deleted users and revoked API keys",
		History:     1,
		TTL:         RevocationRetention,
		Replicas:    replicas,
		Storage:     jetstream.FileStorage,
	})
	if err != nil {
		return nil, fmt.Errorf("authn: revocation bucket %s: %w", bucket, err)
	}
	return &RevocationStore{kv: kv, nc: js.Conn()}, nil
}

// BindRevocations opens the existing revocation bucket called bucket (auth
// creates it), for a verifier that may read it but not create it.
func BindRevocations(ctx context.Context, js jetstream.JetStream, bucket string) (*RevocationStore, error) {
	kv, err := js.KeyValue(ctx, bucket)
	if err != nil {
		return nil, fmt.Errorf("authn: revocation bucket %s: %w", bucket, err)
	}
	return &RevocationStore{kv: kv, nc: js.Conn()}, nil
}

// RevocationStore reads and writes the revocation bucket.
type RevocationStore struct {
	kv jetstream.KeyValue
	nc *nats.Conn
}

func userRevocationKey(user string) string { return "user." + user }
func keyRevocationKey(user, key string) string {
	return "key." + user + "." + key
}

// RevokeUser records that user was deleted at at: its tokens issued until
// then are refused everywhere, and nothing of its is written any more.
func (s *RevocationStore) RevokeUser(ctx context.Context, user string, at time.Time) error {
	return s.put(ctx, userRevocationKey(user), at)
}

// RevokeKey records that user's API key called key was revoked at at.
func (s *RevocationStore) RevokeKey(ctx context.Context, user, key string, at time.Time) error {
	return s.put(ctx, keyRevocationKey(user, key), at)
}

func (s *RevocationStore) put(ctx context.Context, key string, at time.Time) error {
	if _, err := s.kv.Put(ctx, key, []byte(at.UTC().Format(time.RFC3339Nano))); err != nil {
		return fmt.Errorf("authn: record revocation: %w", err)
	}
	return nil
}

// DeletedAt reports whether user was deleted, and when, asking the bucket
// itself (not a watched copy), so that a writer on any replica sees a
// deletion as soon as DeleteUser has recorded it. An error means the
// answer is unknown: the caller must not write.
func (s *RevocationStore) DeletedAt(ctx context.Context, user string) (time.Time, bool, error) {
	e, err := s.kv.Get(ctx, userRevocationKey(user))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return time.Time{}, false, nil
	}
	if err != nil {
		return time.Time{}, false, fmt.Errorf("authn: read deletion marker: %w", err)
	}
	t, err := time.Parse(time.RFC3339Nano, string(e.Value()))
	if err != nil {
		// Unreadable: take it for a deletion now rather than write.
		return e.Created(), true, nil
	}
	return t, true, nil
}

// Deleted reports whether something of user dated at (a mailbox's
// creation, a mail's ingestion) belongs to a deletion of user: user was
// deleted at or after at. Such data must not be written.
func (s *RevocationStore) Deleted(ctx context.Context, user string, at time.Time) (bool, error) {
	t, ok, err := s.DeletedAt(ctx, user)
	if err != nil || !ok {
		return false, err
	}
	return !t.Before(at), nil
}

// Revocations is a verifier's watched copy of the revocation bucket
// (Watch keeps it current). The zero value is not usable: NewRevocations.
type Revocations struct {
	// FallbackTTL bounds how long a KeyCache keeps an exchange while the
	// copy is not current (default DefaultFallbackTTL).
	FallbackTTL time.Duration
	// Logger gets the watch's failures (default slog.Default()).
	Logger *slog.Logger

	mu    sync.Mutex
	live  bool
	users map[string]time.Time
	keys  map[string]time.Time // "user.key"
	subs  []func(Revocation)
}

// Revocation is one revocation a watcher learned of; Reset (with no user)
// means the watch was lost and everything cached must go.
type Revocation struct {
	User string
	// Key is the API key's id, empty when the whole user is revoked.
	Key   string
	Time  time.Time
	Reset bool
}

// NewRevocations returns an empty copy, not live until Watch has read the
// bucket.
func NewRevocations() *Revocations {
	return &Revocations{users: map[string]time.Time{}, keys: map[string]time.Time{}}
}

// Live reports whether the copy is current: the bucket has been read and
// the connection to NATS is up.
func (r *Revocations) Live() bool {
	if r == nil {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.live
}

func (r *Revocations) fallbackTTL() time.Duration {
	if r.FallbackTTL > 0 {
		return r.FallbackTTL
	}
	return DefaultFallbackTTL
}

// TokenRevoked reports whether a token of user (minted from its API key
// key, when not empty) issued at issued is revoked.
func (r *Revocations) TokenRevoked(user, key string, issued time.Time) bool {
	if r == nil || user == "" {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if t, ok := r.users[user]; ok && !issued.After(t) {
		return true
	}
	if key != "" {
		if _, ok := r.keys[user+"."+key]; ok {
			return true
		}
	}
	return false
}

// Subscribe calls fn with every revocation learned from now on (and with
// a Reset when the watch is lost).
func (r *Revocations) Subscribe(fn func(Revocation)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.subs = append(r.subs, fn)
}

func (r *Revocations) notify(ev Revocation) {
	r.mu.Lock()
	subs := r.subs
	r.mu.Unlock()
	for _, fn := range subs {
		fn(ev)
	}
}

func (r *Revocations) logger() *slog.Logger {
	if r.Logger != nil {
		return r.Logger
	}
	return slog.Default()
}

// parseRevocation reads one record of the bucket.
func parseRevocation(e jetstream.KeyValueEntry) (Revocation, bool) {
	t, err := time.Parse(time.RFC3339Nano, string(e.Value()))
	if err != nil {
		t = e.Created()
	}
	switch kind, rest, _ := strings.Cut(e.Key(), "."); kind {
	case "user":
		return Revocation{User: rest, Time: t}, rest != ""
	case "key":
		user, key, ok := strings.Cut(rest, ".")
		return Revocation{User: user, Key: key, Time: t}, ok && user != "" && key != ""
	}
	return Revocation{}, false
}

func (r *Revocations) apply(ev Revocation) {
	r.mu.Lock()
	if ev.Key == "" {
		if t, ok := r.users[ev.User]; !ok || ev.Time.After(t) {
			r.users[ev.User] = ev.Time
		}
	} else {
		r.keys[ev.User+"."+ev.Key] = ev.Time
	}
	r.mu.Unlock()
	r.notify(ev)
}

func (r *Revocations) setLive(live bool) {
	r.mu.Lock()
	was := r.live
	r.live = live
	r.mu.Unlock()
	if was && !live {
		// Revocations may pass unseen from now on: what was cached on
		// the strength of the watch goes.
		r.notify(Revocation{Reset: true})
	}
}

// Watch keeps the copy current from s's bucket until ctx ends: it reads
// every record, then each new one as it is written. When NATS is
// unreachable the copy is not live (KeyCaches fall back to FallbackTTL and
// drop what they hold), and the bucket is read again from the start once
// NATS is back, so that nothing written meanwhile is missed. It returns
// nil when ctx ends.
func (r *Revocations) Watch(ctx context.Context, s *RevocationStore) error {
	status := s.nc.StatusChanged(nats.CONNECTED, nats.DISCONNECTED, nats.RECONNECTING, nats.CLOSED)
	defer s.nc.RemoveStatusListener(status)
	warned := false
	for {
		wasLive := false
		err := r.watchOnce(ctx, s, status, &wasLive)
		r.setLive(false)
		if ctx.Err() != nil {
			return nil
		}
		if wasLive || !warned {
			// Once per outage, not at every attempt.
			r.logger().WarnContext(ctx, "revocations are not watched; API key exchanges are cached for "+r.fallbackTTL().String()+" until they are", "error", err.Error())
			warned = true
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
}

var errDisconnected = errors.New("disconnected from NATS")

func (r *Revocations) watchOnce(ctx context.Context, s *RevocationStore, status chan nats.Status, wasLive *bool) error {
	// Changes queued before this attempt are history: the connection's
	// state now is what counts.
	for drained := false; !drained; {
		select {
		case <-status:
		default:
			drained = true
		}
	}
	if !s.nc.IsConnected() {
		return errDisconnected
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w, err := s.kv.WatchAll(wctx)
	if err != nil {
		return fmt.Errorf("watch: %w", err)
	}
	defer func() { _ = w.Stop() }()
	// Not live from the moment the watch is lost, not once it is stopped
	// (stopping may wait for a server that is gone).
	defer r.setLive(false)
	initial := true
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case st := <-status:
			if st != nats.CONNECTED {
				return errDisconnected
			}
		case e, ok := <-w.Updates():
			switch {
			case !ok:
				return errors.New("watch ended")
			case e == nil:
				// Every record is read: the copy is current.
				if initial {
					initial = false
					*wasLive = true
					r.setLive(true)
				}
			case e.Operation() != jetstream.KeyValuePut:
				// Records expire or are purged only long after
				// anything they revoke has expired.
			default:
				if ev, ok := parseRevocation(e); ok {
					r.apply(ev)
				}
			}
		}
	}
}
