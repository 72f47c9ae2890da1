package gateway

import (
	"context"
	"net/http"
	"strconv"
	"strings"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"mailroom.dev/platform/apierror"
)

// reasonMessageTooLarge is the ErrorInfo reason of a request or message
// over a size limit; such errors answer 413.
const reasonMessageTooLarge = apierror.ReasonMessageTooLarge

// handleError is grpc-gateway's DefaultHTTPErrorHandler with one change:
// a request over the body cap, or an error whose ErrorInfo reason is
// MESSAGE_TOO_LARGE, answers 413 instead of its code's usual status.
func (g *Gateway) handleError(ctx context.Context, mux *runtime.ServeMux, m runtime.Marshaler, w http.ResponseWriter, r *http.Request, err error) {
	g.tokenRefused(r, err)
	lim, _ := r.Context().Value(bodyLimitKey{}).(*bodyLimit)
	if lim != nil && lim.exceeded.Load() {
		err = tooLarge(lim.limit)
	} else if lim != nil && lim.overloaded.Load() {
		w.Header().Set("Retry-After", "1")
		err = overloaded()
	} else if isTooLarge(err) {
		err = &runtime.HTTPStatusError{HTTPStatus: http.StatusRequestEntityTooLarge, Err: err}
	}
	runtime.DefaultHTTPErrorHandler(ctx, mux, m, w, r, err)
}

// tooLarge is the error of a request body over limit bytes.
func tooLarge(limit int64) error {
	st := status.New(codes.InvalidArgument, "request body exceeds the limit of "+strconv.FormatInt(limit, 10)+" bytes")
	if d, err := st.WithDetails(&errdetails.ErrorInfo{
		Reason:   reasonMessageTooLarge,
		Domain:   apierror.Domain,
		Metadata: map[string]string{"limit_bytes": strconv.FormatInt(limit, 10)},
	}); err == nil {
		st = d
	}
	return &runtime.HTTPStatusError{HTTPStatus: http.StatusRequestEntityTooLarge, Err: st.Err()}
}

// isTooLarge reports whether err is a status saying that a message was too
// large: its ErrorInfo reason is MESSAGE_TOO_LARGE, or it is gRPC's own
// ResourceExhausted for a message over a server's or client's size limit
// (which would otherwise read as 429, an invitation to retry).
func isTooLarge(err error) bool {
	st, ok := status.FromError(err)
	if !ok {
		return false
	}
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.GetReason() == reasonMessageTooLarge {
			return true
		}
	}
	// grpc-go words its size limit errors "... larger than max (N vs. M)".
	return st.Code() == codes.ResourceExhausted && strings.Contains(st.Message(), "larger than max")
}
