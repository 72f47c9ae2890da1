// Command ingest runs the ingest service, configured by the environment
// (see ingest.Config).
package main

import (
	"mailroom.dev/platform/program"
	"mailroom.dev/platform/service"
	"mailroom.dev/services/ingest"
)

func main() {
	program.Main("ingest", program.Serve(ingest.New, func(c ingest.Config) string { return c.ListenAddr(service.Ingest) }))
}
