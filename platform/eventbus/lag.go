package eventbus

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// lagScope is the instrumentation scope of the lag gauges.
const lagScope = "mailroom.dev/platform/eventbus"

// Durable names one durable consumer of a stream, whose lag RegisterLag
// reports. Both names become label values: they name no user.
type Durable struct {
	Stream, Consumer string
}

// RegisterLag reports, at each collection, the JetStream lag of the durable
// consumers named, read from their consumer info (one request to the server
// per consumer, bounded by 2 s in all), as observable gauges of mp:
//
//	mailroom_consumer_pending{stream,consumer}      messages not yet delivered
//	mailroom_consumer_ack_pending{stream,consumer}  delivered and not yet acknowledged
//	mailroom_consumer_redelivered{stream,consumer}  delivered more than once, not yet acknowledged
//
// A consumer that cannot be read is left out of that collection (an absent
// series, not a zero). The names and descriptions are the classifier's own
// (its consumer package reports its lanes the same way), so that in mailroom
// dev, where every service's series share one registry, they form one
// family. mp should be the service's meter provider: the scope of these
// gauges names no service, so in mailroom dev the global provider would
// file them under the default service. nil means the global provider.
func RegisterLag(mp metric.MeterProvider, js jetstream.JetStream, durables ...Durable) (metric.Registration, error) {
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	m := mp.Meter(lagScope)
	pending, err1 := m.Int64ObservableGauge("mailroom_consumer_pending",
		metric.WithDescription("Messages of the stream the durable consumer has not delivered yet."))
	ackPending, err2 := m.Int64ObservableGauge("mailroom_consumer_ack_pending",
		metric.WithDescription("Messages delivered and not yet acknowledged (delivery stops at MaxAckPending)."))
	redelivered, err3 := m.Int64ObservableGauge("mailroom_consumer_redelivered",
		metric.WithDescription("Messages delivered more than once and not yet acknowledged."))
	if err := errors.Join(err1, err2, err3); err != nil {
		return nil, err
	}
	return m.RegisterCallback(func(ctx context.Context, o metric.Observer) error {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		for _, d := range durables {
			c, err := js.Consumer(ctx, d.Stream, d.Consumer)
			if err != nil {
				continue
			}
			info, err := c.Info(ctx)
			if err != nil {
				continue
			}
			attrs := metric.WithAttributes(attribute.String("stream", d.Stream), attribute.String("consumer", d.Consumer))
			o.ObserveInt64(pending, int64(info.NumPending), attrs)
			o.ObserveInt64(ackPending, int64(info.NumAckPending), attrs)
			o.ObserveInt64(redelivered, int64(info.NumRedelivered), attrs)
		}
		return nil
	}, pending, ackPending, redelivered)
}
