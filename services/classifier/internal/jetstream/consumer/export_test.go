package consumer

import "github.com/nats-io/nats.go/jetstream"

// SetKeepAlive replaces how c tells the server that a delivery is in
// progress: a test stands in for a process that sends nothing (stopped).
func SetKeepAlive(c *Consumer, send func(jetstream.Msg) error) { c.inProgress = send }
