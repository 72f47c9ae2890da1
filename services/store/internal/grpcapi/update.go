package grpcapi

import (
	"context"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	classifierv1 "mailroom.dev/gen/go/mailroom/classifier/v1"
	storev1 "mailroom.dev/gen/go/mailroom/store/v1"
	"mailroom.dev/platform/apierror"
	"mailroom.dev/platform/resname"
)

// Learner is the classifier's side of a correction (its gRPC client).
type Learner interface {
	CreateCorrection(ctx context.Context, in *classifierv1.CreateCorrectionRequest, opts ...grpc.CallOption) (*classifierv1.CreateCorrectionResponse, error)
}

// correctable is the one field a user may change: UpdateMessage is a
// correction of the category, nothing else of a message is the user's to
// edit (its metadata is the mail's).
const correctable = "classification.category"

// UpdateMessage implements storev1.StoreServiceServer: a user's correction
// of a message's category. The classifier checks the category against the
// user's taxonomy and learns it first; then the store records it as the
// message's latest verdict (source USER). Repeating it is harmless.
func (s *Server) UpdateMessage(ctx context.Context, req *storev1.UpdateMessageRequest) (*storev1.UpdateMessageResponse, error) {
	m := req.GetMessage()
	if m == nil {
		return nil, apierror.Invalid("message", "is required, with its name and classification.category")
	}
	ids, err := user(ctx, "message.name", "users/*/messages/*", m.GetName())
	if err != nil {
		return nil, err
	}
	paths := req.GetUpdateMask().GetPaths()
	if len(paths) == 0 || slices.Equal(paths, []string{"*"}) {
		paths = []string{correctable}
	}
	for _, p := range paths {
		if p != correctable {
			return nil, apierror.Invalid("update_mask", "only %s may be changed (a correction); %q may not", correctable, p)
		}
	}
	category := strings.TrimSpace(m.GetClassification().GetCategory())
	if category == "" {
		return nil, apierror.Invalid("message.classification.category", "is required: the category the message belongs in")
	}
	current, err := s.q.Get(ctx, ids[0], ids[1])
	if err != nil {
		return nil, err
	}
	if s.learn == nil {
		return nil, apierror.Preconditionf("corrections need the classifier, which this store does not reach")
	}
	_, err = s.learn.CreateCorrection(forwardCredential(ctx), &classifierv1.CreateCorrectionRequest{
		Parent: resname.User(ids[0]),
		Correction: &classifierv1.Correction{
			Message:       resname.Message(ids[0], ids[1]),
			SenderAddress: current.FromAddress,
			From:          current.From,
			Subject:       current.Subject,
			Category:      category,
		},
	})
	if err != nil {
		st, _ := status.FromError(err)
		switch st.Code() {
		case codes.InvalidArgument:
			return nil, apierror.Invalid("message.classification.category", "%s", strings.TrimPrefix(st.Message(), "correction.category: "))
		case codes.PermissionDenied, codes.Unauthenticated, codes.NotFound:
			return nil, err
		}
		return nil, apierror.Unavailablef(err, "the classifier could not record the correction; try again")
	}
	updated, err := s.q.Correct(ctx, ids[0], ids[1], category, time.Now())
	if err != nil {
		return nil, err
	}
	return &storev1.UpdateMessageResponse{Message: message(updated)}, nil
}

// forwardCredential passes the caller's credential on to the classifier,
// which authorizes the correction as the caller's own.
func forwardCredential(ctx context.Context) context.Context {
	in, _ := metadata.FromIncomingContext(ctx)
	out := metadata.MD{}
	if v := in.Get("authorization"); len(v) > 0 {
		out.Set("authorization", v...)
	}
	return metadata.NewOutgoingContext(ctx, out)
}
