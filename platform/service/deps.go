package service

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"mailroom.dev/platform/authn"
	"mailroom.dev/platform/eventbus"
	"mailroom.dev/platform/sqldb"
)

// OpenDB opens the database that the config names and applies m's
// migrations (under a lock on Postgres), or waits for them (MAILROOM_MIGRATE=wait);
// Close closes it.
func (b *Base) OpenDB(ctx context.Context, m sqldb.Migrations) (*sqldb.DB, error) {
	db, err := sqldb.Open(ctx, b.cfg.DatabaseURL, m, b.DBOptions()...)
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	b.OnClose(db.Close)
	b.CheckDB(db)
	return db, nil
}

// DBOptions are the options of sqldb.Open that the config asks for, for a
// service that opens its database through its own repository package.
func (b *Base) DBOptions() []sqldb.Option {
	return []sqldb.Option{sqldb.WithMigrate(b.cfg.Migrate, b.Logger)}
}

// ConnectNATS connects to the NATS server of n as "mailroom-<name>" and
// ensures the streams of n's topology, then watches the revocations
// (WatchRevocations); Close closes the connection.
func (b *Base) ConnectNATS(ctx context.Context, n NATS) (jetstream.JetStream, eventbus.Topology, error) {
	nc, js, err := b.DialNATS(n.URL)
	if err != nil {
		return nil, eventbus.Topology{}, err
	}
	b.Check("nats", checkNATS(nc, js))
	topo := n.Topology()
	if err := eventbus.EnsureStreams(ctx, js, topo); err != nil {
		return nil, topo, fmt.Errorf("ensure streams: %w", err)
	}
	if _, err := b.WatchRevocations(ctx, js, topo); err != nil {
		return nil, topo, err
	}
	return js, topo, nil
}

// DialNATS connects to the NATS servers of url as "mailroom-<name>";
// Close closes the connection. When url asks for TLS (tls://) and TLS is
// configured for gRPC (MAILROOM_TLS_*), the connection uses the same CA
// and presents the same certificate, so that one PKI serves both.
func (b *Base) DialNATS(url string) (*nats.Conn, jetstream.JetStream, error) {
	opts, err := eventbus.TLSOptions(url, b.cfg.Transport)
	if err != nil {
		return nil, nil, err
	}
	nc, js, err := eventbus.Connect(url, "mailroom-"+b.Name, opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("connect to NATS: %w", err)
	}
	b.OnClose(func() error { nc.Close(); return nil })
	return nc, js, nil
}

// ReportLag reports the lag of the service's durable consumers as gauges
// of its meter provider (eventbus.RegisterLag); Close stops it.
func (b *Base) ReportLag(js jetstream.JetStream, durables ...eventbus.Durable) error {
	reg, err := eventbus.RegisterLag(b.cfg.Telemetry.Meter, js, durables...)
	if err != nil {
		return fmt.Errorf("consumer lag metrics: %w", err)
	}
	b.OnClose(reg.Unregister)
	return nil
}

// WatchRevocations opens the revocation bucket of topo and, beside Run,
// keeps the service's copy of it current: the guard (DialAuth's, or
// UseGuard's) refuses revoked tokens and drops revoked keys' exchanges
// within a second of DeleteApiKey or DeleteUser. It returns the bucket,
// whose DeletedAt is the deletion marker. Calling it again returns the
// same bucket.
func (b *Base) WatchRevocations(ctx context.Context, js jetstream.JetStream, topo eventbus.Topology) (*authn.RevocationStore, error) {
	if b.revStore != nil {
		return b.revStore, nil
	}
	store, err := authn.OpenRevocations(ctx, js, topo.BucketName(authn.RevocationBucket), topo.Replicas)
	if err != nil {
		return nil, err
	}
	b.revStore = store
	b.revocations = authn.NewRevocations()
	b.revocations.Logger = b.Logger
	b.Go("revocation watch", func(ctx context.Context) error { return b.revocations.Watch(ctx, store) })
	if b.guard != nil {
		b.guard.WatchRevocations(b.revocations)
	}
	return store, nil
}

// Revocations returns the bucket WatchRevocations opened (nil before).
func (b *Base) Revocations() *authn.RevocationStore { return b.revStore }
