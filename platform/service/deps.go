package service

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

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
// ensures the streams of n's topology; Close closes the connection.
func (b *Base) ConnectNATS(ctx context.Context, n NATS) (jetstream.JetStream, eventbus.Topology, error) {
	nc, js, err := eventbus.Connect(n.URL, "mailroom-"+b.Name)
	if err != nil {
		return nil, eventbus.Topology{}, fmt.Errorf("connect to NATS: %w", err)
	}
	b.OnClose(func() error { nc.Close(); return nil })
	b.Check("nats", checkNATS(nc, js))
	topo := n.Topology()
	if err := eventbus.EnsureStreams(ctx, js, topo); err != nil {
		return nil, topo, fmt.Errorf("ensure streams: %w", err)
	}
	return js, topo, nil
}
