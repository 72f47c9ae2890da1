// Package platform is the runtime shared by every mailroom service: starting
// and stopping gRPC servers, telemetry, JetStream, SQL databases, identity
// checks and the mapping of domain errors to gRPC statuses. It holds no
// business logic and imports no service.
package platform
