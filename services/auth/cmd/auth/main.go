// Command auth runs the mailroom auth service, configured from the
// environment (see auth.Config).
package main

import (
	"mailroom.dev/platform/program"
	"mailroom.dev/platform/service"
	"mailroom.dev/services/auth"
)

func main() {
	program.Main("auth", program.Serve(auth.New, func(c auth.Config) string { return c.ListenAddr(service.Auth) }))
}
