package check

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"

	"github.com/nats-io/nats-server/v2/server"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

var configVar = regexp.MustCompile(`\$([A-Z_][A-Z0-9_]*)`)

// NATS parses the rendered nats-server configuration with nats-server's own
// parser (the version go.work pins, which `make images` ships) and checks
// what the design asks of JetStream: file storage fsynced on every write
// (sync_interval: always), a route to every node of the StatefulSet, streams
// kept at as many replicas as there are nodes (MAILROOM_STREAM_REPLICAS), and
// every user limited to the subjects it is allowed.
func NATS(objs []*Object, checked map[string]int) []error {
	var cm *corev1.ConfigMap
	var sts *appsv1.StatefulSet
	config := map[string]string{}
	for _, o := range objs {
		switch v := o.Typed.(type) {
		case *corev1.ConfigMap:
			switch v.Name {
			case "nats-config":
				cm = v
			case "mailroom-config":
				config = v.Data
			}
		case *appsv1.StatefulSet:
			if v.Name == "nats" {
				sts = v
			}
		}
	}
	if cm == nil && sts == nil {
		return nil // NATS is not deployed by this overlay
	}
	checked["nats"]++
	if cm == nil || sts == nil {
		return []error{fmt.Errorf("NATS: need both ConfigMap/nats-config and StatefulSet/nats")}
	}
	dir, err := os.MkdirTemp("", "nats-config")
	if err != nil {
		return []error{err}
	}
	defer os.RemoveAll(dir)
	for name, data := range cm.Data {
		// The server's variables ($POD_NAME, $INGEST_PASSWORD…) come from
		// the pod's environment; stand-ins let the parser resolve them.
		for _, m := range configVar.FindAllStringSubmatch(data, -1) {
			if _, ok := os.LookupEnv(m[1]); !ok {
				os.Setenv(m[1], "stand-in-"+m[1])
			}
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o600); err != nil {
			return []error{err}
		}
	}
	opts, err := server.ProcessConfigFile(filepath.Join(dir, "nats.conf"))
	if err != nil {
		return []error{fmt.Errorf("ConfigMap/nats-config: nats-server refuses it: %w", err)}
	}

	var errs []error
	fail := func(format string, a ...any) { errs = append(errs, fmt.Errorf("NATS: "+format, a...)) }
	if !opts.JetStream {
		fail("JetStream is off")
	}
	if !opts.SyncAlways {
		fail("JetStream must fsync every write (sync_interval: always)")
	}
	nodes := 1
	if sts.Spec.Replicas != nil {
		nodes = int(*sts.Spec.Replicas)
	}
	if nodes > 1 && len(opts.Routes) != nodes {
		fail("%d nodes but %d cluster routes", nodes, len(opts.Routes))
	}
	if nodes == 1 && len(opts.Routes) > 0 {
		fail("one node with cluster routes: JetStream would wait for peers that never come")
	}
	if r, err := strconv.Atoi(config["MAILROOM_STREAM_REPLICAS"]); err != nil || r != nodes {
		fail("MAILROOM_STREAM_REPLICAS is %q for %d nodes; streams should be replicated on every node", config["MAILROOM_STREAM_REPLICAS"], nodes)
	}
	if len(opts.Users) == 0 && len(opts.Nkeys) == 0 {
		fail("no authorization: any pod that reaches port 4222 may publish anything")
	}
	for _, u := range opts.Users {
		if u.Permissions == nil || u.Permissions.Publish == nil || len(u.Permissions.Publish.Allow) == 0 {
			fail("user %s may publish on any subject", u.Username)
		}
	}
	return errs
}
