package grpcapi

import (
	"time"

	storev1 "mailroom.dev/gen/go/mailroom/store/v1"
	"mailroom.dev/services/store/internal/mailstore"
)

// watch is what WatchMessages reads from.
type watch struct {
	log       mailstore.ChangeLog
	hub       *mailstore.Hub
	heartbeat time.Duration
}

// WithWatch makes s answer WatchMessages from log, woken by hub, with a
// heartbeat after heartbeat of quiet. Without it WatchMessages is
// Unimplemented.
func (s *Server) WithWatch(log mailstore.ChangeLog, hub *mailstore.Hub, heartbeat time.Duration) *Server {
	s.watch = &watch{log: log, hub: hub, heartbeat: heartbeat}
	return s
}

// WatchMessages implements storev1.StoreServiceServer: the caller's user's
// changes from the cursor on (see mailstore.Watch).
func (s *Server) WatchMessages(req *storev1.WatchMessagesRequest, stream storev1.StoreService_WatchMessagesServer) error {
	ctx := stream.Context()
	ids, err := user(ctx, "parent", "users/*", req.GetParent())
	if err != nil {
		return err
	}
	if s.watch == nil {
		return s.UnimplementedStoreServiceServer.WatchMessages(req, stream)
	}
	return mailstore.Watch(ctx, s.watch.log, s.watch.hub, ids[0], mailstore.WatchRequest{
		Cursor:    req.GetCursor(),
		Filter:    req.GetFilter(),
		Heartbeat: s.watch.heartbeat,
	}, func(ev mailstore.WatchEvent) error {
		out := &storev1.WatchMessagesResponse{Cursor: ev.Cursor, Heartbeat: ev.Heartbeat}
		if ev.Message != nil {
			out.Message = message(*ev.Message)
		}
		return stream.Send(out)
	})
}
