package gateway_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	authv1 "mailroom.dev/gen/go/mailroom/auth/v1"
	classifierv1 "mailroom.dev/gen/go/mailroom/classifier/v1"
	ingestv1 "mailroom.dev/gen/go/mailroom/ingest/v1"
	mailv1 "mailroom.dev/gen/go/mailroom/mail/v1"
	storev1 "mailroom.dev/gen/go/mailroom/store/v1"
	"mailroom.dev/platform/apierror"
	"mailroom.dev/platform/authn"
	"mailroom.dev/platform/authn/authntest"
	"mailroom.dev/platform/grpcconn"
	"mailroom.dev/platform/grpcserver"
	"mailroom.dev/platform/resname"
)

// The fakes below are the gateway's neighbours: minimal servers of the four
// services on the real platform grpcserver, with the real authn.Guard
// verifying the identity tokens that the auth fake signs.

// call is what a fake saw of one call.
type call struct {
	method  string
	md      metadata.MD
	caller  authn.Caller
	traceID trace.TraceID
	req     proto.Message
}

// recorder keeps the calls a fake received.
type recorder struct {
	mu    sync.Mutex
	calls []call
}

func (r *recorder) add(c call) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, c)
}

// last returns the last call of method (a suffix such as "/ListMessages").
func (r *recorder) last(t *testing.T, method string) call {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := len(r.calls) - 1; i >= 0; i-- {
		if strings.HasSuffix(r.calls[i].method, method) {
			return r.calls[i]
		}
	}
	t.Fatalf("no call of %s reached the fake", method)
	return call{}
}

func (r *recorder) count(method string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, c := range r.calls {
		if strings.HasSuffix(c.method, method) {
			n++
		}
	}
	return n
}

// unary records each call, after authentication (it runs innermost).
func (r *recorder) unary() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		md, _ := metadata.FromIncomingContext(ctx)
		caller, _ := authn.FromContext(ctx)
		m, _ := req.(proto.Message)
		r.add(call{
			method:  info.FullMethod,
			md:      md.Copy(),
			caller:  caller,
			traceID: trace.SpanContextFromContext(ctx).TraceID(),
			req:     proto.Clone(m),
		})
		return h(ctx, req)
	}
}

// storeFake answers ListMessages and GetMessage for the caller.
type storeFake struct {
	storev1.UnimplementedStoreServiceServer
}

func (storeFake) ListMessages(ctx context.Context, req *storev1.ListMessagesRequest) (*storev1.ListMessagesResponse, error) {
	ids, err := resname.Parse("parent", "users/*", req.GetParent())
	if err != nil {
		return nil, err
	}
	user, err := authn.Authorize(ctx, "parent", ids[0])
	if err != nil {
		return nil, err
	}
	if req.GetFilter() == "bad" {
		return nil, apierror.Invalid("filter", "cannot parse the filter")
	}
	return &storev1.ListMessagesResponse{Messages: []*storev1.Message{{
		Name:           resname.Message(user, "m1"),
		Subject:        "hello",
		From:           "sender@example.com",
		ReceivedTime:   timestamppb.New(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)),
		State:          storev1.MessageState_MESSAGE_STATE_CLASSIFIED,
		Classification: &mailv1.Classification{Category: "newsletters", Confidence: 0.9},
	}}}, nil
}

// ingestFake creates mailboxes and refuses imports of large messages.
type ingestFake struct {
	ingestv1.UnimplementedIngestServiceServer
}

func (ingestFake) CreateMailbox(ctx context.Context, req *ingestv1.CreateMailboxRequest) (*ingestv1.CreateMailboxResponse, error) {
	ids, err := resname.Parse("parent", "users/*", req.GetParent())
	if err != nil {
		return nil, err
	}
	user, err := authn.Authorize(ctx, "parent", ids[0])
	if err != nil {
		return nil, err
	}
	mb := proto.Clone(req.GetMailbox()).(*ingestv1.Mailbox)
	mb.Name = resname.Mailbox(user, "mb1")
	mb.State = ingestv1.MailboxState_MAILBOX_STATE_ACTIVE
	if mb.GetImap() != nil {
		mb.Imap.Password = ""
	}
	return &ingestv1.CreateMailboxResponse{Mailbox: mb}, nil
}

func (ingestFake) ImportMessages(ctx context.Context, req *ingestv1.ImportMessagesRequest) (*ingestv1.ImportMessagesResponse, error) {
	ids, err := resname.Parse("parent", "users/*/mailboxes/*", req.GetParent())
	if err != nil {
		return nil, err
	}
	if _, err := authn.Authorize(ctx, "parent", ids[0]); err != nil {
		return nil, err
	}
	for _, m := range req.GetMessages() {
		if len(m.GetRaw()) > 1024 {
			return nil, apierror.Invalid("messages.raw", "a message is larger than 1 KiB").WithReason("MESSAGE_TOO_LARGE")
		}
	}
	return &ingestv1.ImportMessagesResponse{}, nil
}

// watchPause is how long the fake's WatchSyncJob waits between its two
// updates.
const watchPause = 700 * time.Millisecond

// WatchSyncJob sends the job RUNNING, then after watchPause SUCCEEDED.
func (ingestFake) WatchSyncJob(req *ingestv1.WatchSyncJobRequest, stream grpc.ServerStreamingServer[ingestv1.WatchSyncJobResponse]) error {
	for i, state := range []ingestv1.SyncJobState{ingestv1.SyncJobState_SYNC_JOB_STATE_RUNNING, ingestv1.SyncJobState_SYNC_JOB_STATE_SUCCEEDED} {
		if i > 0 {
			time.Sleep(watchPause)
		}
		if err := stream.Send(&ingestv1.WatchSyncJobResponse{SyncJob: &ingestv1.SyncJob{Name: req.GetName(), State: state}}); err != nil {
			return err
		}
	}
	return nil
}

// classifierFake classifies everything as a newsletter.
type classifierFake struct {
	classifierv1.UnimplementedClassifierServiceServer
}

func (classifierFake) Classify(context.Context, *classifierv1.ClassifyRequest) (*classifierv1.ClassifyResponse, error) {
	return &classifierv1.ClassifyResponse{Classification: &mailv1.Classification{Category: "newsletters"}}, nil
}

// backends are the four fakes, each serving on its own 127.0.0.1 port.
type backends struct {
	auth      *authntest.Server
	addrs     map[string]string
	recorders map[string]*recorder
	stoppers  map[string]func()
	apiKey    string
}

func startBackends(t *testing.T) *backends {
	t.Helper()
	b := &backends{
		apiKey:    "mr_test_" + strings.Repeat("k", 20),
		addrs:     map[string]string{},
		recorders: map[string]*recorder{},
		stoppers:  map[string]func(){},
	}
	b.auth = authntest.New(t)
	b.auth.AddAPIKey(b.apiKey, "ada", false)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))

	b.serve(t, "auth", quiet, nil, 0, func(s *grpc.Server) { authv1.RegisterAuthServiceServer(s, b.auth) })

	cc, err := grpcconn.Dial(b.addrs["auth"])
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	guard := &authn.Guard{Verifier: authn.NewVerifier(authn.ClientKeys(authv1.NewAuthServiceClient(cc)))}

	b.serve(t, "ingest", quiet, guard, 0, func(s *grpc.Server) { ingestv1.RegisterIngestServiceServer(s, ingestFake{}) })
	b.serve(t, "classifier", quiet, guard, classifierMaxRecv, func(s *grpc.Server) { classifierv1.RegisterClassifierServiceServer(s, classifierFake{}) })
	b.serve(t, "store", quiet, guard, 0, func(s *grpc.Server) { storev1.RegisterStoreServiceServer(s, storeFake{}) })
	return b
}

// classifierMaxRecv is the classifier fake's gRPC message limit, under the
// gateway's body cap, as grpcserver's 4 MiB default is under the real one.
const classifierMaxRecv = 32 << 10

func (b *backends) serve(t *testing.T, name string, logger *slog.Logger, guard *authn.Guard, maxRecv int, register func(*grpc.Server)) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	opts := grpcserver.Options{Logger: logger, ShutdownTimeout: time.Second, MaxRecvMsgSize: maxRecv}
	if guard != nil {
		opts.Unary = append(opts.Unary, guard.Unary())
	}
	opts.Unary = append(opts.Unary, rec.unary())
	s := grpcserver.New(opts)
	register(s.GRPC())

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, lis) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("%s fake: %v", name, err)
			}
		})
	}
	t.Cleanup(stop)
	b.addrs[name] = lis.Addr().String()
	b.recorders[name] = rec
	b.stoppers[name] = stop
}
