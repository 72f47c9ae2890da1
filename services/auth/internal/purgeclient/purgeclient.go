// Package purgeclient asks the other services, over gRPC and with auth's
// own service identity, to delete a user's data (their PurgeUserData RPCs):
// the adapters behind identity.Purger.
package purgeclient

import (
	"context"
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/grpc/status"

	classifierv1 "mailroom.dev/gen/go/mailroom/classifier/v1"
	ingestv1 "mailroom.dev/gen/go/mailroom/ingest/v1"
	storev1 "mailroom.dev/gen/go/mailroom/store/v1"
	"mailroom.dev/platform/authn"
	"mailroom.dev/services/auth/internal/identity"
)

// Ingest returns the Purger of the ingest service behind cc.
func Ingest(cc grpc.ClientConnInterface, id *authn.ServiceIdentity) identity.Purger {
	c := ingestv1.NewIngestServiceClient(cc)
	return purger(authn.ServiceIngest, id, func(ctx context.Context, user string) (map[string]int64, error) {
		resp, err := c.PurgeUserData(ctx, &ingestv1.PurgeUserDataRequest{User: user})
		return resp.GetDeleted(), err
	})
}

// Classifier returns the Purger of the classifier service behind cc.
func Classifier(cc grpc.ClientConnInterface, id *authn.ServiceIdentity) identity.Purger {
	c := classifierv1.NewClassifierServiceClient(cc)
	return purger(authn.ServiceClassifier, id, func(ctx context.Context, user string) (map[string]int64, error) {
		resp, err := c.PurgeUserData(ctx, &classifierv1.PurgeUserDataRequest{User: user})
		return resp.GetDeleted(), err
	})
}

// Store returns the Purger of the store service behind cc.
func Store(cc grpc.ClientConnInterface, id *authn.ServiceIdentity) identity.Purger {
	c := storev1.NewStoreServiceClient(cc)
	return purger(authn.ServiceStore, id, func(ctx context.Context, user string) (map[string]int64, error) {
		resp, err := c.PurgeUserData(ctx, &storev1.PurgeUserDataRequest{User: user})
		return resp.GetDeleted(), err
	})
}

// purger wraps call: the call carries auth's service identity (not the
// caller's), and a failure becomes a plain error with the peer's code and
// message, which never passes for a status of auth's own.
func purger(service string, id *authn.ServiceIdentity, call func(ctx context.Context, user string) (map[string]int64, error)) identity.Purger {
	return identity.Purger{
		Service: service,
		Purge: func(ctx context.Context, user string) (map[string]int64, error) {
			ctx, err := id.Outgoing(ctx)
			if err != nil {
				return nil, err
			}
			deleted, err := call(ctx, user)
			if err != nil {
				st := status.Convert(err)
				return nil, fmt.Errorf("%s: %s", st.Code(), st.Message())
			}
			return deleted, nil
		},
	}
}
