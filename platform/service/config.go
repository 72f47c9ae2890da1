// Package service is the skeleton every mailroom gRPC service is built on:
// the configuration they share (their addresses, the database, NATS, TLS),
// decoded (platform/config) from env tags that hold every default; the wiring (transport
// credentials, the connection to auth, the guard, the gRPC server); and one
// Run that runs a service's parts together and stops them all when one
// fails or the context ends.
package service

import (
	"log/slog"
	"time"

	"mailroom.dev/platform/authn"
	"mailroom.dev/platform/eventbus"
	"mailroom.dev/platform/grpcconn"
	"mailroom.dev/platform/redact"
	"mailroom.dev/platform/sqldb"
	"mailroom.dev/platform/telemetry"
	"mailroom.dev/platform/transport"
)

// Service names, as grpcconn.Addrs.Of takes them and service identity
// tokens carry them.
const (
	Auth       = authn.ServiceAuth
	Ingest     = authn.ServiceIngest
	Classifier = authn.ServiceClassifier
	Store      = authn.ServiceStore
)

// Config is the configuration every gRPC service has.
type Config struct {
	// GRPCAddr is where the service listens; empty, at its own address in
	// Addrs (so `mailroom dev` and a service binary agree by default).
	GRPCAddr string `env:"MAILROOM_GRPC_ADDR"`
	// Addrs are the services' addresses.
	Addrs grpcconn.Addrs
	// DatabaseURL is postgres://… or sqlite://PATH.
	DatabaseURL string `env:"DATABASE_URL, required"`
	// Migrate is what the service does with its migrations at start:
	// "auto" applies them (under a lock on Postgres), "wait" waits until a
	// migration Job (`mailroom migrate`) has brought the schema to the
	// binary's version, not serving meanwhile.
	Migrate sqldb.MigrateMode `env:"MAILROOM_MIGRATE, default=auto"`
	// ShutdownTimeout bounds the drain of in-flight calls at shutdown
	// (keep terminationGracePeriodSeconds above it plus the preStop delay).
	ShutdownTimeout time.Duration `env:"MAILROOM_SHUTDOWN_TIMEOUT, default=10s"`
	// Transport is optional TLS (and mTLS) for the gRPC server and its
	// connections to the other services (MAILROOM_TLS_*).
	Transport transport.Config
	// ServiceKey is the service's own key (MAILROOM_SERVICE_KEYS in auth
	// names it), exchanged with auth for the service's identity: the
	// service calls others with it, and its guard exchanges the API keys
	// that callers such as grpcurl present as this service (auth exchanges
	// users' keys for services only).
	ServiceKey string `env:"MAILROOM_SERVICE_KEY"`
	// Reflection is "on" to serve gRPC server reflection (grpcurl without
	// .proto files), "off" otherwise: it describes every RPC to anyone who
	// can reach the port. `mailroom dev` turns it on.
	Reflection string `env:"MAILROOM_GRPC_REFLECTION, default=off"`
	// MetricsAddr is the admin HTTP address that serves /metrics and
	// /healthz: empty, the gRPC port + 1000 (telemetry.MetricsAddr);
	// "off", none. It is served only when Telemetry has a Gatherer.
	MetricsAddr string `env:"MAILROOM_METRICS_ADDR"`
	// Telemetry are the service's providers (set by program and mailroom
	// dev, never read from the environment).
	Telemetry telemetry.Providers
}

// UseTelemetry sets the providers the service reports to.
func (c *Config) UseTelemetry(p telemetry.Providers) { c.Telemetry = p }

// ListenAddr is GRPCAddr, or the address of the service called name.
func (c Config) ListenAddr(name string) string {
	if c.GRPCAddr != "" {
		return c.GRPCAddr
	}
	return c.Addrs.Of(name)
}

// LogValue logs the configuration with the credentials in URLs masked.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("grpc_addr", c.GRPCAddr),
		slog.Any("addrs", c.Addrs),
		slog.String("database_url", redact.URL(c.DatabaseURL)),
		slog.String("migrate", string(c.Migrate)),
		slog.String("shutdown_timeout", c.ShutdownTimeout.String()),
		slog.Any("transport", c.Transport),
		slog.String("grpc_reflection", c.Reflection),
		slog.Bool("service_key_set", c.ServiceKey != ""),
		slog.String("metrics_addr", c.MetricsAddr),
	)
}

// NATS is the configuration of a service that uses JetStream.
type NATS struct {
	// URL is the NATS server with JetStream.
	URL string `env:"NATS_URL, default=nats://127.0.0.1:4222"`
	// Prefix is put in front of every subject and stream name.
	Prefix string `env:"MAILROOM_NATS_PREFIX"`
	// StreamReplicas is the replica count of the streams a service ensures.
	StreamReplicas int `env:"MAILROOM_STREAM_REPLICAS, default=1"`
	// StreamMaxBytes bounds each work stream (mail.received,
	// mail.classified; default 1 GiB): when one is full, ingest refuses
	// new mail (RESOURCE_EXHAUSTED) until the consumers catch up. Nothing
	// in them expires by age. The server reserves this much storage per
	// stream (and replica).
	StreamMaxBytes int64 `env:"MAILROOM_STREAM_MAX_BYTES, default=1073741824"`
}

// Topology is the streams' and subjects' naming for this configuration.
func (n NATS) Topology() eventbus.Topology {
	return eventbus.Topology{Prefix: n.Prefix, Replicas: n.StreamReplicas, MaxBytes: n.StreamMaxBytes}
}

// LogValue logs the configuration with the credentials in the URL masked.
func (n NATS) LogValue() slog.Value {
	return slog.GroupValue(slog.String("url", redact.URL(n.URL)), slog.String("prefix", n.Prefix),
		slog.Int("stream_replicas", n.StreamReplicas), slog.Int64("stream_max_bytes", n.StreamMaxBytes))
}
