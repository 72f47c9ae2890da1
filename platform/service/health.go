package service

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"mailroom.dev/platform/eventbus"
	"mailroom.dev/platform/sqldb"
)

// HealthInterval is how often the readiness checks run.
const HealthInterval = 2 * time.Second

// checkTimeout bounds one readiness check.
const checkTimeout = 5 * time.Second

// failuresToFail is how many rounds in a row a check must fail before the
// service stops serving: one slow round on a loaded machine is not an
// outage.
const failuresToFail = 2

// check is a readiness check: nil when the part it checks works.
type check struct {
	name string
	fn   func(context.Context) error
}

// health is what the readiness checks and the service's parts last said:
// a problem per part, none when every part works.
type health struct {
	mu       sync.Mutex
	problems map[string]string
	changed  func(reason string)
}

func (h *health) set(part string, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.problems == nil {
		h.problems = map[string]string{}
	}
	before := h.reasonLocked()
	if err == nil {
		delete(h.problems, part)
	} else {
		h.problems[part] = err.Error()
	}
	if after := h.reasonLocked(); after != before && h.changed != nil {
		h.changed(after)
	}
}

// reasonLocked names the parts that do not work, "" when all do.
func (h *health) reasonLocked() string {
	parts := make([]string, 0, len(h.problems))
	for p, why := range h.problems {
		parts = append(parts, p+": "+why)
	}
	slices.Sort(parts)
	return strings.Join(parts, "; ")
}

func (h *health) reason() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.reasonLocked()
}

// Check adds a readiness check that Run makes every HealthInterval: once
// fn has failed twice in a row, and until it passes, gRPC health says
// NOT_SERVING and /readyz answers 503 naming the check. A check may repair what it checks (re-create a consumer).
func (b *Base) Check(name string, fn func(context.Context) error) {
	b.checks = append(b.checks, check{name: name, fn: fn})
}

// SetHealth records what a part of the service says of itself (nil: it
// works): for parts that learn of their trouble before a check would.
func (b *Base) SetHealth(part string, err error) { b.health.set(part, err) }

// Ready returns nil when every check passed and every part works, else
// an error naming those that do not.
func (b *Base) Ready() error {
	if r := b.health.reason(); r != "" {
		return errors.New(r)
	}
	return nil
}

// runChecks makes every check now, then every HealthInterval until ctx is
// done.
func (b *Base) runChecks(ctx context.Context) error {
	t := time.NewTicker(HealthInterval)
	defer t.Stop()
	failed := make([]int, len(b.checks))
	for {
		var wg sync.WaitGroup
		for i, c := range b.checks {
			wg.Go(func() {
				cctx, cancel := context.WithTimeout(ctx, checkTimeout)
				defer cancel()
				err := c.fn(cctx)
				if ctx.Err() != nil {
					return
				}
				if err == nil {
					failed[i] = 0
				} else if failed[i]++; failed[i] < failuresToFail {
					return
				}
				b.health.set(c.name, err)
			})
		}
		wg.Wait()
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// readyz answers 200 when the service is ready, 503 naming what is not.
func (b *Base) readyz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if err := b.Ready(); err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = fmt.Fprintf(w, "not ready: %v\n", err)
		return
	}
	_, _ = w.Write([]byte("ok\n"))
}

// CheckDB adds the readiness check "database": db answers a ping.
func (b *Base) CheckDB(db *sqldb.DB) {
	b.Check("database", db.Ping)
}

// checkNATS is the readiness check "nats": the connection is up and
// JetStream answers.
func checkNATS(nc *nats.Conn, js jetstream.JetStream) func(context.Context) error {
	return func(ctx context.Context) error {
		if st := nc.Status(); st != nats.CONNECTED {
			return fmt.Errorf("connection %s", strings.ToLower(st.String()))
		}
		if _, err := js.AccountInfo(ctx); err != nil {
			return fmt.Errorf("jetstream: %w", err)
		}
		return nil
	}
}

// KeepConsumer adds a readiness check that finds the durable consumer of
// cfg on stream and re-creates it when it is gone (deleted, or lost with
// a NATS server), and the streams of topo with it when they are gone too.
// The consumer's code keeps consuming from the consumer of the same name.
func (b *Base) KeepConsumer(js jetstream.JetStream, topo eventbus.Topology, stream string, cfg jetstream.ConsumerConfig) {
	b.Check("consumer "+cfg.Durable, func(ctx context.Context) error {
		recreated, err := eventbus.KeepConsumer(ctx, js, topo, stream, cfg)
		if recreated {
			b.Logger.WarnContext(ctx, "consumer was missing; re-created", "stream", stream, "consumer", cfg.Durable)
		}
		return err
	})
}
