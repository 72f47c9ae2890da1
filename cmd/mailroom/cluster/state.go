package cluster

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Kinds of process in a cluster, as State names them.
const (
	KindAuth       = "auth"
	KindIngest     = "ingest"
	KindClassifier = "classifier"
	KindStore      = "store"
	KindGateway    = "gateway"
	KindNATS       = "nats"
)

// serviceKinds are the gRPC services in start order: auth first, since the
// others verify callers with its keys.
var serviceKinds = []string{KindAuth, KindIngest, KindClassifier, KindStore}

// State is D/cluster.json: where every process of a running cluster
// listens and its current pid (pids change when the supervisor restarts a
// process; addresses do not).
type State struct {
	// Gateway are the gateways' base URLs, http://127.0.0.1:P.
	Gateway []string `json:"gateway"`
	// Processes are the services and the gateways.
	Processes []Process `json:"processes"`
	// NATS are the three JetStream nodes.
	NATS []NATSNode `json:"nats"`
}

// Process is a service replica or a gateway.
type Process struct {
	Name string `json:"name"` // "classifier-1"
	Kind string `json:"kind"` // auth, ingest, classifier, store, gateway
	PID  int    `json:"pid"`  // 0 while it is not running (between restarts)
	Addr string `json:"addr"` // gRPC address, or the gateway's HTTP address
}

// NATSNode is one node of the JetStream cluster.
type NATSNode struct {
	Name string `json:"name"` // "nats-1", also its server_name
	PID  int    `json:"pid"`
	URL  string `json:"url"` // nats://127.0.0.1:P
}

// StateFile is the path of cluster.json in dir.
func StateFile(dir string) string { return filepath.Join(dir, "cluster.json") }

// ReadState reads dir/cluster.json.
func ReadState(dir string) (State, error) {
	var s State
	b, err := os.ReadFile(StateFile(dir))
	if errors.Is(err, os.ErrNotExist) {
		return s, fmt.Errorf("no cluster in %s (%s is missing): run mailroom cluster up --dir %s", dir, StateFile(dir), dir)
	}
	if err != nil {
		return s, err
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return s, fmt.Errorf("%s: %w", StateFile(dir), err)
	}
	return s, nil
}

// writeFileAtomic writes b to path through a temporary file and a rename,
// so that a reader never sees half a file.
func writeFileAtomic(path string, b []byte, perm os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, perm); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// Exit is how one process ended at `mailroom cluster down`: D/down.json.
type Exit struct {
	Name   string `json:"name"`
	PID    int    `json:"pid"`
	Status string `json:"status"` // "exit status 0", "signal: killed", …
	Clean  bool   `json:"clean"`
}

func downFile(dir string) string { return filepath.Join(dir, "down.json") }
