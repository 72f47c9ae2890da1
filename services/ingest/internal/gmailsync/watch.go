package gmailsync

import (
	"context"
	"fmt"
	"time"

	"golang.org/x/oauth2"
	"google.golang.org/api/gmail/v1"
	"google.golang.org/api/option"
)

// Gmail push: when Config.Topic is set, every sync first makes sure that
// Gmail watches the mailbox (users.watch with that Pub/Sub topic), so that
// a mailbox is watched from its first sync, right after the consent, and
// the watch (which Gmail ends after 7 days) is renewed once a day by the
// syncs that follow. Deleting the mailbox stops the watch (users.stop)
// before the grant is revoked.

// WatchRenewal is how long a watch is left before it is renewed.
const WatchRenewal = 24 * time.Hour

// watchCost is users.watch's and users.stop's quota cost.
const watchCost = 100

// ensureWatch calls users.watch unless this process renewed the mailbox's
// watch within WatchRenewal. A failure is logged, not returned: the sync
// goes on, and scheduled syncs stay the safety net.
func (s *session) ensureWatch(ctx context.Context) {
	if s.g.cfg.Topic == "" {
		return
	}
	name := s.run.Mailbox.Name()
	if last, ok := s.g.watched.Load(name); ok && time.Since(last.(time.Time)) < WatchRenewal {
		return
	}
	var resp *gmail.WatchResponse
	err := s.call(ctx, watchCost, "users.watch", func() (err error) {
		resp, err = s.api().Users.Watch("me", &gmail.WatchRequest{TopicName: s.g.cfg.Topic}).Context(ctx).Do()
		return err
	})
	if err != nil {
		s.run.Logger.WarnContext(ctx, "gmail watch not renewed; scheduled syncs continue", "error", short(err))
		return
	}
	s.g.watched.Store(name, time.Now())
	s.run.Logger.InfoContext(ctx, "gmail watch renewed", "expires", time.UnixMilli(resp.Expiration).UTC().Format(time.RFC3339))
}

// stopWatch ends Gmail's watch of the mailbox whose refresh token this is
// (best effort: a watch ends by itself within 7 days, and revoking the
// grant stops its pushes anyway).
func (g *Gmail) stopWatch(ctx context.Context, refreshToken string) error {
	if g.cfg.Topic == "" {
		return nil
	}
	hctx := g.httpContext(ctx)
	ts := g.oauth.TokenSource(hctx, &oauth2.Token{RefreshToken: refreshToken})
	svc, err := gmail.NewService(hctx, option.WithHTTPClient(oauth2.NewClient(hctx, ts)), option.WithEndpoint(g.cfg.Endpoint))
	if err != nil {
		return fmt.Errorf("gmail: client: %w", err)
	}
	if err := svc.Users.Stop("me").Context(ctx).Do(); err != nil {
		return fmt.Errorf("gmail: users.stop: %s", short(err))
	}
	return nil
}
