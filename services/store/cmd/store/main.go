// Command store runs mailroom's store service: the system of record for
// messages and their classifications. It is configured from the environment
// (see store.Config).
package main

import (
	"mailroom.dev/platform/program"
	"mailroom.dev/platform/service"
	"mailroom.dev/services/store"
)

func main() {
	program.Main("store", program.Serve(store.New, func(c store.Config) string { return c.ListenAddr(service.Store) }))
}
