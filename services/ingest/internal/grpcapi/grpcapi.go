// Package grpcapi serves ingestv1.IngestService: it parses resource names,
// authorizes the caller for the user they name, calls the mailbox domain
// and converts between protobuf and domain types. Errors are the domain's
// *apierror.Error values, which the platform's gRPC server maps to statuses.
package grpcapi

import (
	"context"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	ingestv1 "mailroom.dev/gen/go/mailroom/ingest/v1"
	mailv1 "mailroom.dev/gen/go/mailroom/mail/v1"
	"mailroom.dev/platform/apierror"
	"mailroom.dev/platform/authn"
	"mailroom.dev/platform/protoenum"
	"mailroom.dev/platform/resname"
	"mailroom.dev/services/ingest/internal/mailbox"
)

// Server implements ingestv1.IngestServiceServer.
type Server struct {
	ingestv1.UnimplementedIngestServiceServer
	svc *mailbox.Service
}

// New returns a Server over svc.
func New(svc *mailbox.Service) *Server { return &Server{svc: svc} }

// Resource name patterns.
const (
	userPattern    = "users/*"
	mailboxPattern = "users/*/mailboxes/*"
	syncJobPattern = "users/*/syncJobs/*"
)

// authorize parses name against pattern, authorizes the caller for its user
// segment, and returns the user id ("me" resolved) and the other ids.
func authorize(ctx context.Context, field, pattern, name string) (string, []string, error) {
	ids, err := resname.Parse(field, pattern, name)
	if err != nil {
		return "", nil, err
	}
	user, err := authn.Authorize(ctx, field, ids[0])
	if err != nil {
		return "", nil, err
	}
	return user, ids[1:], nil
}

// CreateMailbox implements ingestv1.IngestServiceServer.
func (s *Server) CreateMailbox(ctx context.Context, req *ingestv1.CreateMailboxRequest) (*ingestv1.CreateMailboxResponse, error) {
	user, _, err := authorize(ctx, "parent", userPattern, req.GetParent())
	if err != nil {
		return nil, err
	}
	in := req.GetMailbox()
	if in == nil {
		return nil, apierror.Invalid("mailbox", "is required, with its provider")
	}
	kind, err := kindFromProto(in.GetProvider())
	if err != nil {
		return nil, err
	}
	m := mailbox.Mailbox{Kind: kind, Address: in.GetAddress(), DisplayName: in.GetDisplayName()}
	password := ""
	if is := in.GetImap(); is != nil && kind == mailbox.KindIMAP {
		sec, err := securityFromProto(is.GetSecurity())
		if err != nil {
			return nil, err
		}
		m.IMAP = &mailbox.IMAPSettings{Host: is.GetHost(), Port: int(is.GetPort()), Username: is.GetUsername(), Security: sec, Folders: is.GetFolders()}
		password = is.GetPassword()
	}
	m, err = s.svc.CreateMailbox(ctx, user, m, req.GetMailboxId(), password)
	if err != nil {
		return nil, err
	}
	return &ingestv1.CreateMailboxResponse{Mailbox: mailboxToProto(m)}, nil
}

// GetMailbox implements ingestv1.IngestServiceServer.
func (s *Server) GetMailbox(ctx context.Context, req *ingestv1.GetMailboxRequest) (*ingestv1.GetMailboxResponse, error) {
	user, ids, err := authorize(ctx, "name", mailboxPattern, req.GetName())
	if err != nil {
		return nil, err
	}
	m, err := s.svc.GetMailbox(ctx, user, ids[0])
	if err != nil {
		return nil, err
	}
	return &ingestv1.GetMailboxResponse{Mailbox: mailboxToProto(m)}, nil
}

// ListMailboxes implements ingestv1.IngestServiceServer.
func (s *Server) ListMailboxes(ctx context.Context, req *ingestv1.ListMailboxesRequest) (*ingestv1.ListMailboxesResponse, error) {
	user, _, err := authorize(ctx, "parent", userPattern, req.GetParent())
	if err != nil {
		return nil, err
	}
	ms, next, err := s.svc.ListMailboxes(ctx, user, int(req.GetPageSize()), req.GetPageToken())
	if err != nil {
		return nil, err
	}
	resp := &ingestv1.ListMailboxesResponse{NextPageToken: next}
	for _, m := range ms {
		resp.Mailboxes = append(resp.Mailboxes, mailboxToProto(m))
	}
	return resp, nil
}

// ImportMessages implements ingestv1.IngestServiceServer.
func (s *Server) ImportMessages(ctx context.Context, req *ingestv1.ImportMessagesRequest) (*ingestv1.ImportMessagesResponse, error) {
	user, ids, err := authorize(ctx, "parent", mailboxPattern, req.GetParent())
	if err != nil {
		return nil, err
	}
	lane, err := laneFromProto(req.GetLane())
	if err != nil {
		return nil, err
	}
	raws := make([][]byte, len(req.GetMessages()))
	for i, m := range req.GetMessages() {
		raws[i] = m.GetRaw()
	}
	imported, err := s.svc.ImportMessages(ctx, user, ids[0], raws, lane)
	if err != nil {
		return nil, err
	}
	resp := &ingestv1.ImportMessagesResponse{Messages: make([]*ingestv1.ImportedMessage, len(imported))}
	for i, m := range imported {
		resp.Messages[i] = &ingestv1.ImportedMessage{
			Message:           resname.Message(user, m.MessageID),
			ProviderMessageId: m.ProviderMessageID,
			Subject:           m.Subject,
		}
	}
	return resp, nil
}

// SyncMailbox implements ingestv1.IngestServiceServer.
func (s *Server) SyncMailbox(ctx context.Context, req *ingestv1.SyncMailboxRequest) (*ingestv1.SyncMailboxResponse, error) {
	user, ids, err := authorize(ctx, "name", mailboxPattern, req.GetName())
	if err != nil {
		return nil, err
	}
	var mode mailbox.SyncMode
	switch req.GetMode() {
	case ingestv1.SyncMode_SYNC_MODE_UNSPECIFIED:
	case ingestv1.SyncMode_SYNC_MODE_FULL:
		mode = mailbox.SyncFull
	case ingestv1.SyncMode_SYNC_MODE_INCREMENTAL:
		mode = mailbox.SyncIncremental
	default:
		return nil, apierror.Invalid("mode", "%d is not a sync mode", req.GetMode())
	}
	job, err := s.svc.SyncMailbox(ctx, user, ids[0], mode, int(req.GetMaxMessages()))
	if err != nil {
		return nil, err
	}
	return &ingestv1.SyncMailboxResponse{SyncJob: syncJobToProto(job)}, nil
}

// GetSyncJob implements ingestv1.IngestServiceServer.
func (s *Server) GetSyncJob(ctx context.Context, req *ingestv1.GetSyncJobRequest) (*ingestv1.GetSyncJobResponse, error) {
	user, ids, err := authorize(ctx, "name", syncJobPattern, req.GetName())
	if err != nil {
		return nil, err
	}
	job, err := s.svc.GetSyncJob(ctx, user, ids[0])
	if err != nil {
		return nil, err
	}
	return &ingestv1.GetSyncJobResponse{SyncJob: syncJobToProto(job)}, nil
}

// ListSyncJobs implements ingestv1.IngestServiceServer. The parent users/-
// lists every user's jobs, for an admin only; each job's name says whose.
func (s *Server) ListSyncJobs(ctx context.Context, req *ingestv1.ListSyncJobsRequest) (*ingestv1.ListSyncJobsResponse, error) {
	user := mailbox.AllUsers
	if req.GetParent() == resname.User(mailbox.AllUsers) {
		if err := authn.RequireAdmin(ctx); err != nil {
			return nil, err
		}
	} else {
		var err error
		if user, _, err = authorize(ctx, "parent", userPattern, req.GetParent()); err != nil {
			return nil, err
		}
	}
	jobs, next, err := s.svc.ListSyncJobs(ctx, user, int(req.GetPageSize()), req.GetPageToken())
	if err != nil {
		return nil, err
	}
	resp := &ingestv1.ListSyncJobsResponse{NextPageToken: next}
	for _, j := range jobs {
		resp.SyncJobs = append(resp.SyncJobs, syncJobToProto(j))
	}
	return resp, nil
}

// WatchSyncJob implements ingestv1.IngestServiceServer.
func (s *Server) WatchSyncJob(req *ingestv1.WatchSyncJobRequest, stream ingestv1.IngestService_WatchSyncJobServer) error {
	ctx := stream.Context()
	user, ids, err := authorize(ctx, "name", syncJobPattern, req.GetName())
	if err != nil {
		return err
	}
	return s.svc.WatchSyncJob(ctx, user, ids[0], func(j mailbox.SyncJob) error {
		return stream.Send(&ingestv1.WatchSyncJobResponse{SyncJob: syncJobToProto(j)})
	})
}

// DeleteMailbox implements ingestv1.IngestServiceServer.
func (s *Server) DeleteMailbox(ctx context.Context, req *ingestv1.DeleteMailboxRequest) (*ingestv1.DeleteMailboxResponse, error) {
	user, ids, err := authorize(ctx, "name", mailboxPattern, req.GetName())
	if err != nil {
		return nil, err
	}
	if err := s.svc.DeleteMailbox(ctx, user, ids[0]); err != nil {
		return nil, err
	}
	return &ingestv1.DeleteMailboxResponse{}, nil
}

// ReconnectMailbox implements ingestv1.IngestServiceServer.
func (s *Server) ReconnectMailbox(ctx context.Context, req *ingestv1.ReconnectMailboxRequest) (*ingestv1.ReconnectMailboxResponse, error) {
	user, ids, err := authorize(ctx, "name", mailboxPattern, req.GetName())
	if err != nil {
		return nil, err
	}
	m, err := s.svc.ReconnectMailbox(ctx, user, ids[0])
	if err != nil {
		return nil, err
	}
	return &ingestv1.ReconnectMailboxResponse{Mailbox: mailboxToProto(m)}, nil
}

// StartAuthorization implements ingestv1.IngestServiceServer. It is
// public: the state is the credential.
func (s *Server) StartAuthorization(ctx context.Context, req *ingestv1.StartAuthorizationRequest) (*ingestv1.StartAuthorizationResponse, error) {
	u, err := s.svc.StartAuthorization(ctx, req.GetState(), req.GetBinding())
	if err != nil {
		return nil, err
	}
	return &ingestv1.StartAuthorizationResponse{GoogleAuthorizationUrl: u}, nil
}

// CompleteAuthorization implements ingestv1.IngestServiceServer. It is
// public: the single-use state is its credential.
func (s *Server) CompleteAuthorization(ctx context.Context, req *ingestv1.CompleteAuthorizationRequest) (*ingestv1.CompleteAuthorizationResponse, error) {
	m, err := s.svc.CompleteAuthorization(ctx, req.GetState(), req.GetCode(), req.GetError(), req.GetBinding())
	if err != nil {
		return nil, err
	}
	return &ingestv1.CompleteAuthorizationResponse{Mailbox: mailboxToProto(m)}, nil
}

// PurgeUserData implements ingestv1.IngestServiceServer; only auth may call it.
func (s *Server) PurgeUserData(ctx context.Context, req *ingestv1.PurgeUserDataRequest) (*ingestv1.PurgeUserDataResponse, error) {
	if err := authn.RequireService(ctx, authn.ServiceAuth); err != nil {
		return nil, err
	}
	p, err := s.svc.PurgeUserData(ctx, req.GetUser())
	if err != nil {
		return nil, err
	}
	return &ingestv1.PurgeUserDataResponse{Deleted: map[string]int64{"mailboxes": p.Mailboxes, "sync_jobs": p.SyncJobs, "received_events": p.Events}}, nil
}

func securityFromProto(p ingestv1.ImapSecurity) (mailbox.IMAPSecurity, error) {
	switch p {
	case ingestv1.ImapSecurity_IMAP_SECURITY_UNSPECIFIED, ingestv1.ImapSecurity_IMAP_SECURITY_TLS:
		return mailbox.IMAPTLS, nil
	case ingestv1.ImapSecurity_IMAP_SECURITY_STARTTLS:
		return mailbox.IMAPStartTLS, nil
	case ingestv1.ImapSecurity_IMAP_SECURITY_NONE:
		return mailbox.IMAPNone, nil
	}
	return "", apierror.Invalid("mailbox.imap.security", "%d is not TLS, STARTTLS or NONE", p)
}

func securityToProto(s mailbox.IMAPSecurity) ingestv1.ImapSecurity {
	switch s {
	case mailbox.IMAPTLS:
		return ingestv1.ImapSecurity_IMAP_SECURITY_TLS
	case mailbox.IMAPStartTLS:
		return ingestv1.ImapSecurity_IMAP_SECURITY_STARTTLS
	case mailbox.IMAPNone:
		return ingestv1.ImapSecurity_IMAP_SECURITY_NONE
	}
	return ingestv1.ImapSecurity_IMAP_SECURITY_UNSPECIFIED
}

func kindFromProto(p ingestv1.Provider) (mailbox.Kind, error) {
	switch p {
	case ingestv1.Provider_PROVIDER_IMPORT:
		return mailbox.KindImport, nil
	case ingestv1.Provider_PROVIDER_GMAIL:
		return mailbox.KindGmail, nil
	case ingestv1.Provider_PROVIDER_IMAP:
		return mailbox.KindIMAP, nil
	case ingestv1.Provider_PROVIDER_UNSPECIFIED:
		return "", apierror.Invalid("mailbox.provider", "is required: IMPORT, GMAIL or IMAP")
	}
	return "", apierror.Invalid("mailbox.provider", "%d is not a provider: IMPORT, GMAIL or IMAP", p)
}

func kindToProto(k mailbox.Kind) ingestv1.Provider {
	switch k {
	case mailbox.KindImport:
		return ingestv1.Provider_PROVIDER_IMPORT
	case mailbox.KindGmail:
		return ingestv1.Provider_PROVIDER_GMAIL
	case mailbox.KindIMAP:
		return ingestv1.Provider_PROVIDER_IMAP
	}
	return ingestv1.Provider_PROVIDER_UNSPECIFIED
}

func laneFromProto(l mailv1.Lane) (mailbox.Lane, error) {
	if l == mailv1.Lane_LANE_UNSPECIFIED {
		return mailbox.LaneBackfill, nil
	}
	if name := protoenum.LaneName(l); name != "" {
		return mailbox.Lane(name), nil
	}
	return "", apierror.Invalid("lane", "%d is not a lane", l)
}

func stateToProto(s mailbox.State) ingestv1.MailboxState {
	switch s {
	case mailbox.StateActive:
		return ingestv1.MailboxState_MAILBOX_STATE_ACTIVE
	case mailbox.StatePendingAuthorization:
		return ingestv1.MailboxState_MAILBOX_STATE_PENDING_AUTHORIZATION
	case mailbox.StateDisconnected:
		return ingestv1.MailboxState_MAILBOX_STATE_DISCONNECTED
	}
	return ingestv1.MailboxState_MAILBOX_STATE_UNSPECIFIED
}

func jobStateToProto(s mailbox.JobState) ingestv1.SyncJobState {
	switch s {
	case mailbox.JobPending:
		return ingestv1.SyncJobState_SYNC_JOB_STATE_PENDING
	case mailbox.JobRunning:
		return ingestv1.SyncJobState_SYNC_JOB_STATE_RUNNING
	case mailbox.JobSucceeded:
		return ingestv1.SyncJobState_SYNC_JOB_STATE_SUCCEEDED
	case mailbox.JobFailed:
		return ingestv1.SyncJobState_SYNC_JOB_STATE_FAILED
	}
	return ingestv1.SyncJobState_SYNC_JOB_STATE_UNSPECIFIED
}

func modeToProto(m mailbox.SyncMode) ingestv1.SyncMode {
	switch m {
	case mailbox.SyncFull:
		return ingestv1.SyncMode_SYNC_MODE_FULL
	case mailbox.SyncIncremental:
		return ingestv1.SyncMode_SYNC_MODE_INCREMENTAL
	}
	return ingestv1.SyncMode_SYNC_MODE_UNSPECIFIED
}

// timestamp is nil for a zero time, so that "never" stays absent.
func timestamp(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

func mailboxToProto(m mailbox.Mailbox) *ingestv1.Mailbox {
	out := &ingestv1.Mailbox{
		Name:             m.Name(),
		Provider:         kindToProto(m.Kind),
		Address:          m.Address,
		DisplayName:      m.DisplayName,
		State:            stateToProto(m.State),
		StateReason:      m.StateReason,
		AuthorizationUrl: m.AuthorizationURL,
		CreateTime:       timestamp(m.CreateTime),
		LastSyncTime:     timestamp(m.LastSyncTime),
		MessageCount:     m.MessageCount,
	}
	if m.IMAP != nil {
		// The password is input only: it is in the vault, never returned.
		out.Imap = &ingestv1.ImapSettings{Host: m.IMAP.Host, Port: int32(m.IMAP.Port), Username: m.IMAP.Username, Security: securityToProto(m.IMAP.Security), Folders: m.IMAP.Folders}
	}
	return out
}

func syncJobToProto(j mailbox.SyncJob) *ingestv1.SyncJob {
	return &ingestv1.SyncJob{
		Name:        j.Name(),
		Mailbox:     j.MailboxName(),
		Mode:        modeToProto(j.Mode),
		MaxMessages: int32(j.MaxMessages),
		State:       jobStateToProto(j.State),
		Progress: &ingestv1.SyncProgress{
			Listed:     j.Progress.Listed,
			Fetched:    j.Progress.Fetched,
			Published:  j.Progress.Published,
			Skipped:    j.Progress.Skipped,
			Failed:     j.Progress.Failed,
			Classified: j.Progress.Classified,
			Batched:    j.Progress.Batched,
		},
		Error:      j.Error,
		CreateTime: timestamp(j.CreateTime),
		EndTime:    timestamp(j.EndTime),
	}
}
