// Package replicas counts the live classifier replicas, so that each takes
// its share of the API keys' limits. Every replica heartbeats its own key in
// a NATS key-value bucket whose entries expire after a TTL; the number of
// keys is the number of live replicas. A replica that stops deletes its key
// (the others see it at their next count); one that dies is gone after the
// TTL. Until then the others run below the limit, never above it. The
// bucket is kept in memory: a NATS server that restarts loses it, and the
// next heartbeat makes it again.
package replicas

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Config configures a Membership.
type Config struct {
	// Bucket is the key-value bucket's name.
	Bucket string
	// ID is this replica's unique id.
	ID string
	// TTL is how long a heartbeat lasts (default 15 s); replicas beat
	// every TTL/3.
	TTL time.Duration
	// Replicas is the bucket's stream replica count.
	Replicas int
	// OnChange is called with the live count whenever it changes (and once at start).
	OnChange func(n int)
	Logger   *slog.Logger
}

// Membership is this replica's heartbeat.
type Membership struct {
	cfg Config
	js  jetstream.JetStream
	mu  sync.Mutex
	kv  jetstream.KeyValue
}

// Join creates (or opens) the bucket and puts this replica's first heartbeat.
func Join(ctx context.Context, js jetstream.JetStream, cfg Config) (*Membership, error) {
	if cfg.TTL <= 0 {
		cfg.TTL = 15 * time.Second
	}
	if cfg.Replicas <= 0 {
		cfg.Replicas = 1
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	m := &Membership{cfg: cfg, js: js}
	if err := m.bucket(ctx); err != nil {
		return nil, err
	}
	if err := m.beat(ctx); err != nil {
		return nil, err
	}
	return m, nil
}

// bucket creates (or opens) the bucket.
func (m *Membership) bucket(ctx context.Context) error {
	kv, err := m.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      m.cfg.Bucket,
		Description: "mailroom classifier replicas (heartbeats)",
		TTL:         m.cfg.TTL,
		History:     1,
		Replicas:    m.cfg.Replicas,
		Storage:     jetstream.MemoryStorage,
	})
	if err != nil {
		return fmt.Errorf("replicas: bucket %s: %w", m.cfg.Bucket, err)
	}
	m.mu.Lock()
	m.kv = kv
	m.mu.Unlock()
	return nil
}

func (m *Membership) store() jetstream.KeyValue {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.kv
}

// beat puts this replica's heartbeat, making the bucket again when it is
// gone (a NATS server restarted without it).
func (m *Membership) beat(ctx context.Context) error {
	value := []byte(time.Now().UTC().Format(time.RFC3339Nano))
	_, err := m.store().Put(ctx, m.cfg.ID, value)
	if err != nil && (errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, jetstream.ErrStreamNotFound) || errors.Is(err, jetstream.ErrBucketNotFound)) {
		if berr := m.bucket(ctx); berr != nil {
			return berr
		}
		_, err = m.store().Put(ctx, m.cfg.ID, value)
	}
	if err != nil {
		return fmt.Errorf("replicas: heartbeat: %w", err)
	}
	return nil
}

// Count returns the number of live replicas (at least 1: this one).
func (m *Membership) Count(ctx context.Context) (int, error) {
	lister, err := m.store().ListKeys(ctx)
	if err != nil {
		if errors.Is(err, jetstream.ErrNoKeysFound) {
			return 1, nil
		}
		return 0, fmt.Errorf("replicas: list: %w", err)
	}
	n := 0
	for range lister.Keys() {
		n++
	}
	return max(n, 1), nil
}

// Run heartbeats and counts until ctx is done, then deletes this replica's
// key so that the others take its share at once.
func (m *Membership) Run(ctx context.Context) {
	every := m.cfg.TTL / 3
	last := -1
	report := func() {
		n, err := m.Count(ctx)
		if err != nil {
			if ctx.Err() == nil {
				m.cfg.Logger.Warn("counting replicas failed; keeping the last share", "error", err.Error())
			}
			return
		}
		if n != last {
			m.cfg.Logger.Info("classifier replicas", "live", n)
			last = n
			if m.cfg.OnChange != nil {
				m.cfg.OnChange(n)
			}
		}
	}
	report()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			dctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_ = m.store().Delete(dctx, m.cfg.ID)
			cancel()
			return
		case <-t.C:
			if err := m.beat(ctx); err != nil && ctx.Err() == nil {
				m.cfg.Logger.Warn("heartbeat failed", "error", err.Error())
			}
			report()
		}
	}
}
