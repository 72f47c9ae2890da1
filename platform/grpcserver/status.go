package grpcserver

import (
	"context"
	"errors"
	"log/slog"

	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	grpccodes "google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/protoadapt"

	"mailroom.dev/platform/apierror"
)

const (
	internalCode    = grpccodes.Internal
	internalMessage = "internal error"
)

// codes maps each domain error kind to its gRPC code: the one place where
// that mapping lives.
var kindCodes = map[apierror.Kind]grpccodes.Code{
	apierror.Internal:           grpccodes.Internal,
	apierror.InvalidArgument:    grpccodes.InvalidArgument,
	apierror.NotFound:           grpccodes.NotFound,
	apierror.AlreadyExists:      grpccodes.AlreadyExists,
	apierror.PermissionDenied:   grpccodes.PermissionDenied,
	apierror.Unauthenticated:    grpccodes.Unauthenticated,
	apierror.FailedPrecondition: grpccodes.FailedPrecondition,
	apierror.ResourceExhausted:  grpccodes.ResourceExhausted,
	apierror.Unavailable:        grpccodes.Unavailable,
	apierror.Unimplemented:      grpccodes.Unimplemented,
	apierror.Aborted:            grpccodes.Aborted,
}

// ToStatus turns an error returned by a handler into the error the caller
// sees. A gRPC status passes through; an *apierror.Error becomes a status
// with an ErrorInfo (and a BadRequest for a field); context errors keep their
// meaning; anything else is logged and recorded on the span, and the caller
// gets a generic Internal status that reveals nothing.
func ToStatus(ctx context.Context, l *slog.Logger, err error) error {
	if _, ok := status.FromError(err); ok {
		return err
	}
	if e, ok := apierror.As(err); ok {
		code := kindCodes[e.Kind]
		if code == grpccodes.Internal {
			return internal(ctx, l, err)
		}
		if e.Err != nil {
			l.WarnContext(ctx, "request failed", "code", code.String(), "error", e.Err.Error())
		}
		msg := e.Message
		if e.Field != "" {
			msg = e.Field + ": " + msg
		}
		st := status.New(code, msg)
		details := []protoadapt.MessageV1{&errdetails.ErrorInfo{Reason: e.Reason, Domain: apierror.Domain, Metadata: e.Metadata}}
		if e.Field != "" {
			details = append(details, &errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: e.Field, Description: e.Message}}})
		}
		if withDetails, derr := st.WithDetails(details...); derr == nil {
			st = withDetails
		}
		return st.Err()
	}
	switch {
	case errors.Is(err, context.Canceled):
		return status.Error(grpccodes.Canceled, "request canceled")
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(grpccodes.DeadlineExceeded, "deadline exceeded")
	}
	return internal(ctx, l, err)
}

func internal(ctx context.Context, l *slog.Logger, err error) error {
	span := trace.SpanFromContext(ctx)
	span.RecordError(err)
	span.SetStatus(codes.Error, "internal error")
	method, _ := grpc.Method(ctx)
	l.ErrorContext(ctx, "internal error", "method", method, "error", err.Error())
	return status.Error(internalCode, internalMessage)
}
