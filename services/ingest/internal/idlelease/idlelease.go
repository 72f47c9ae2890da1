// Package idlelease spreads the IMAP IDLE connections of the ingest
// replicas through leases in a NATS key-value bucket, so that each
// mailbox is idled on by exactly one replica at a time.
//
// The bucket (IMAP_IDLE_LEASES before the topology's prefix) holds two
// kinds of keys, and every entry expires TTL after it was last written
// (the bucket's MaxAge: NATS 2.9 has no per-key TTL):
//
//	replica.<id>    a live replica's heartbeat; the value is how many
//	                IDLE connections it may hold (MAILROOM_IMAP_IDLE_MAX)
//	lease.<hash>    a mailbox's lease; the value is the holder's id
//
// A lease is taken with Create (only when the key is absent, deleted or
// expired), renewed with Update at the revision the holder last wrote
// (so a holder that lost it cannot take it back unknowingly), and
// released with a Delete at that revision. A replica that stops releases
// its leases and deletes its heartbeat; one that dies stops renewing, and
// its leases expire TTL after their last renewal at most. The bucket is in
// memory: a NATS server that restarts loses it, and the next heartbeat
// makes it again (holders then find their leases gone and give them up).
package idlelease

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Bucket is the bucket's name before the topology's prefix.
const Bucket = "IMAP_IDLE_LEASES"

const (
	replicaPrefix = "replica."
	leasePrefix   = "lease."
)

// Config configures Leases.
type Config struct {
	// Bucket is the key-value bucket's full name (with the prefix).
	Bucket string
	// ID is this replica's unique id.
	ID string
	// Cap is how many leases this replica may hold.
	Cap int
	// TTL is how long a lease or heartbeat lasts unless written again.
	TTL time.Duration
	// Replicas is the bucket's stream replica count.
	Replicas int
}

// Leases is one replica's view of, and hand on, the bucket.
type Leases struct {
	cfg Config
	js  jetstream.JetStream

	mu   sync.Mutex
	kv   jetstream.KeyValue
	revs map[string]uint64 // mailbox key → revision of this replica's lease
}

// Open creates (or opens) the bucket and puts this replica's heartbeat.
func Open(ctx context.Context, js jetstream.JetStream, cfg Config) (*Leases, error) {
	if cfg.ID == "" || !validKeyPart(cfg.ID) {
		return nil, fmt.Errorf("idlelease: replica id %q: letters, digits, - and _ only", cfg.ID)
	}
	if cfg.TTL <= 0 {
		cfg.TTL = 15 * time.Second
	}
	if cfg.Replicas <= 0 {
		cfg.Replicas = 1
	}
	l := &Leases{cfg: cfg, js: js, revs: map[string]uint64{}}
	if err := l.bucket(ctx); err != nil {
		return nil, err
	}
	if err := l.Beat(ctx); err != nil {
		return nil, err
	}
	return l, nil
}

// ID is this replica's id.
func (l *Leases) ID() string { return l.cfg.ID }

// TTL is how long a lease lasts unless renewed.
func (l *Leases) TTL() time.Duration { return l.cfg.TTL }

func (l *Leases) bucket(ctx context.Context) error {
	kv, err := l.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      l.cfg.Bucket,
		Description: "mailroom ingest: IMAP IDLE leases and the replicas holding them",
		TTL:         l.cfg.TTL,
		History:     1,
		Replicas:    l.cfg.Replicas,
		Storage:     jetstream.MemoryStorage,
	})
	if err != nil {
		return fmt.Errorf("idlelease: bucket %s: %w", l.cfg.Bucket, err)
	}
	l.mu.Lock()
	l.kv = kv
	l.mu.Unlock()
	return nil
}

func (l *Leases) store() jetstream.KeyValue {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.kv
}

func bucketGone(err error) bool {
	return errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, jetstream.ErrStreamNotFound) || errors.Is(err, jetstream.ErrBucketNotFound)
}

// Beat puts this replica's heartbeat, making the bucket again when it is
// gone (a NATS server restarted without it).
func (l *Leases) Beat(ctx context.Context) error {
	value := []byte(strconv.Itoa(l.cfg.Cap))
	_, err := l.store().Put(ctx, replicaPrefix+l.cfg.ID, value)
	if err != nil && bucketGone(err) {
		if berr := l.bucket(ctx); berr != nil {
			return berr
		}
		_, err = l.store().Put(ctx, replicaPrefix+l.cfg.ID, value)
	}
	if err != nil {
		return fmt.Errorf("idlelease: heartbeat: %w", err)
	}
	return nil
}

// Leave deletes this replica's heartbeat, so that the others count
// without it at once.
func (l *Leases) Leave(ctx context.Context) {
	_ = l.store().Delete(ctx, replicaPrefix+l.cfg.ID)
}

// View reads what the bucket holds now: each live replica's cap by id,
// and each leased mailbox key's holder.
func (l *Leases) View(ctx context.Context) (caps map[string]int, holders map[string]string, err error) {
	caps, holders = map[string]int{}, map[string]string{}
	w, err := l.store().WatchAll(ctx, jetstream.IgnoreDeletes())
	if err != nil {
		return nil, nil, fmt.Errorf("idlelease: read: %w", err)
	}
	defer func() { _ = w.Stop() }()
	for {
		select {
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		case e, ok := <-w.Updates():
			if !ok {
				return nil, nil, errors.New("idlelease: read: watcher closed")
			}
			if e == nil { // the current values are all there
				return caps, holders, nil
			}
			switch k := e.Key(); {
			case strings.HasPrefix(k, replicaPrefix):
				n, _ := strconv.Atoi(string(e.Value()))
				caps[strings.TrimPrefix(k, replicaPrefix)] = n
			case strings.HasPrefix(k, leasePrefix):
				holders[strings.TrimPrefix(k, leasePrefix)] = string(e.Value())
			}
		}
	}
}

// Key is the lease key of a user's mailbox (as Key does).
func (l *Leases) Key(user, mailbox string) string { return Key(user, mailbox) }

// Key is the lease key of a user's mailbox: a hash, so that no name of
// a user or mailbox is in the bucket and any name makes a valid key.
func Key(user, mailbox string) string {
	sum := sha256.Sum256([]byte(user + "\x00" + mailbox))
	return hex.EncodeToString(sum[:12])
}

// Acquire takes the lease of key for this replica; false when another
// replica holds it.
func (l *Leases) Acquire(ctx context.Context, key string) (bool, error) {
	rev, err := l.store().Create(ctx, leasePrefix+key, []byte(l.cfg.ID))
	if errors.Is(err, jetstream.ErrKeyExists) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("idlelease: acquire: %w", err)
	}
	l.mu.Lock()
	l.revs[key] = rev
	l.mu.Unlock()
	return true, nil
}

// Renew writes the lease of key again, at the revision this replica last
// wrote: lost when it is not there any more (expired, taken or deleted);
// an error when NATS did not answer (the lease may still be this
// replica's).
func (l *Leases) Renew(ctx context.Context, key string) (lost bool, err error) {
	l.mu.Lock()
	rev, ok := l.revs[key]
	l.mu.Unlock()
	if !ok {
		return true, nil
	}
	next, err := l.store().Update(ctx, leasePrefix+key, []byte(l.cfg.ID), rev)
	if err != nil {
		var api *jetstream.APIError
		if errors.Is(err, jetstream.ErrKeyExists) || errors.As(err, &api) || bucketGone(err) {
			l.forget(key)
			return true, nil
		}
		return false, fmt.Errorf("idlelease: renew: %w", err)
	}
	l.mu.Lock()
	l.revs[key] = next
	l.mu.Unlock()
	return false, nil
}

// Release gives the lease of key up, if it is still this replica's.
func (l *Leases) Release(ctx context.Context, key string) {
	l.mu.Lock()
	rev, ok := l.revs[key]
	delete(l.revs, key)
	l.mu.Unlock()
	if ok {
		_ = l.store().Delete(ctx, leasePrefix+key, jetstream.LastRevision(rev))
	}
}

func (l *Leases) forget(key string) {
	l.mu.Lock()
	delete(l.revs, key)
	l.mu.Unlock()
}

func validKeyPart(s string) bool {
	for _, r := range s {
		if !(r == '-' || r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return false
		}
	}
	return true
}
