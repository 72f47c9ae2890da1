// Command classifier runs the mailroom classifier service, configured from
// the environment (see classifier.Config).
package main

import (
	"mailroom.dev/platform/program"
	"mailroom.dev/platform/service"
	"mailroom.dev/services/classifier"
)

func main() {
	program.Main("classifier", program.Serve(classifier.New, func(c classifier.Config) string { return c.ListenAddr(service.Classifier) }))
}
