package grpcapi

import (
	"context"
	"errors"
	"strings"

	"google.golang.org/protobuf/proto"

	classifierv1 "mailroom.dev/gen/go/mailroom/classifier/v1"
	"mailroom.dev/platform/apierror"
	"mailroom.dev/platform/authn"
	"mailroom.dev/platform/resname"
	"mailroom.dev/services/classifier/internal/learned"
)

// Corrector records corrections (the learned tier).
type Corrector interface {
	Correct(ctx context.Context, c learned.Correction) error
}

// CreateCorrection implements classifierv1.ClassifierServiceServer.
func (s *Server) CreateCorrection(ctx context.Context, req *classifierv1.CreateCorrectionRequest) (*classifierv1.CreateCorrectionResponse, error) {
	ids, err := resname.Parse("parent", "users/*", req.GetParent())
	if err != nil {
		return nil, err
	}
	user, err := authn.Authorize(ctx, "parent", ids[0])
	if err != nil {
		return nil, err
	}
	c := req.GetCorrection()
	if c == nil {
		return nil, apierror.Invalid("correction", "is required")
	}
	mids, err := resname.Parse("correction.message", "users/*/messages/*", c.GetMessage())
	if err != nil {
		return nil, err
	}
	if mids[0] != ids[0] && mids[0] != authn.Me {
		return nil, apierror.Invalid("correction.message", "must be a message of %s", req.GetParent())
	}
	category := strings.TrimSpace(c.GetCategory())
	if category == "" {
		return nil, apierror.Invalid("correction.category", "is required")
	}
	err = s.Corrector.Correct(ctx, learned.Correction{
		User:     user,
		Message:  resname.Message(user, mids[1]),
		Sender:   c.GetSenderAddress(),
		ListID:   c.GetListId(),
		From:     c.GetFrom(),
		Subject:  c.GetSubject(),
		Category: category,
	})
	if errors.Is(err, learned.ErrInvalid) {
		return nil, apierror.Invalid("correction.category", "%s", strings.TrimPrefix(err.Error(), learned.ErrInvalid.Error()+": "))
	}
	if err != nil {
		return nil, err
	}
	out := proto.CloneOf(c)
	out.Message = resname.Message(user, mids[1])
	out.Category = category
	return &classifierv1.CreateCorrectionResponse{Correction: out}, nil
}
