// Command gateway serves mailroom's REST API in front of its gRPC services.
package main

import (
	"mailroom.dev/gateway"
	"mailroom.dev/platform/program"
)

func main() {
	program.Main("gateway", program.Serve(gateway.New, func(c gateway.Config) string { return c.HTTPAddr }))
}
