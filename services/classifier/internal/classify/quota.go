package classify

import (
	"context"
	"fmt"
	"time"
)

// QuotaLimits are a user's daily quotas: model tokens (prompt and
// completion) and mails classified per UTC day. In a user's own setting 0
// takes the default and NoLimit lifts the quota.
type QuotaLimits struct {
	ModelTokensPerDay int64
	MailsPerDay       int64
}

// NoLimit is a quota without a limit.
const NoLimit = -1

// QuotaUse is what a user used of its quotas in one day.
type QuotaUse struct {
	ModelTokens int64
	Mails       int64
}

// QuotaStatus is a user's quotas as set, as in force, and today's use.
type QuotaStatus struct {
	Set       QuotaLimits
	Effective QuotaLimits
	Used      QuotaUse
	// Reset is when today's use goes back to zero.
	Reset time.Time
}

// QuotaStore keeps the users' quotas and their use per day ("2006-01-02").
type QuotaStore interface {
	// Quota returns user's own limits (zero values when none are set).
	Quota(ctx context.Context, user string) (QuotaLimits, error)
	SetQuota(ctx context.Context, user string, q QuotaLimits, now time.Time) error
	QuotaUse(ctx context.Context, user, day string) (QuotaUse, error)
	// AddQuotaUse adds u to user's use of day.
	AddQuotaUse(ctx context.Context, user, day string, u QuotaUse) error
	// TakeMail counts one more mail in user's use of day unless it has
	// limit already (a negative limit is none), atomically across
	// replicas, and reports whether it did.
	TakeMail(ctx context.Context, user, day string, limit int64) (bool, error)
}

// Quotas enforces the users' daily quotas. A user past one has its
// Classify refused and its mail held (QuotaError) until the quota resets
// at midnight UTC. The quotas are checked before a mail is classified, so
// mail in flight at that moment may go past them by a little.
type Quotas struct {
	Store    QuotaStore
	Defaults QuotaLimits
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// QuotaError says that a user used up a daily quota.
type QuotaError struct {
	User string
	// Quota names the quota: "model tokens" or "mails".
	Quota string
	Limit int64
	Reset time.Time
	// RetryAfter is how long until Reset.
	RetryAfter time.Duration
}

func (e *QuotaError) Error() string {
	return fmt.Sprintf("users/%s has used its daily quota of %d %s; it resets at %s", e.User, e.Limit, e.Quota, e.Reset.UTC().Format(time.RFC3339))
}

func (q *Quotas) now() time.Time {
	if q.Now != nil {
		return q.Now().UTC()
	}
	return time.Now().UTC()
}

func day(t time.Time) string { return t.UTC().Format(time.DateOnly) }

func nextMidnight(t time.Time) time.Time {
	y, m, d := t.UTC().Date()
	return time.Date(y, m, d+1, 0, 0, 0, 0, time.UTC)
}

func effective(own, def int64) int64 {
	switch {
	case own == 0:
		return def
	case own < 0:
		return NoLimit
	}
	return own
}

// Status returns user's quotas and today's use.
func (q *Quotas) Status(ctx context.Context, user string) (QuotaStatus, error) {
	now := q.now()
	set, err := q.Store.Quota(ctx, user)
	if err != nil {
		return QuotaStatus{}, fmt.Errorf("quota of %s: %w", user, err)
	}
	used, err := q.Store.QuotaUse(ctx, user, day(now))
	if err != nil {
		return QuotaStatus{}, fmt.Errorf("quota use of %s: %w", user, err)
	}
	return QuotaStatus{
		Set: set,
		Effective: QuotaLimits{
			ModelTokensPerDay: effective(set.ModelTokensPerDay, q.Defaults.ModelTokensPerDay),
			MailsPerDay:       effective(set.MailsPerDay, q.Defaults.MailsPerDay),
		},
		Used:  used,
		Reset: nextMidnight(now),
	}, nil
}

// Set stores user's own limits and returns the new status.
func (q *Quotas) Set(ctx context.Context, user string, l QuotaLimits) (QuotaStatus, error) {
	if err := q.Store.SetQuota(ctx, user, l, q.now()); err != nil {
		return QuotaStatus{}, fmt.Errorf("set quota of %s: %w", user, err)
	}
	return q.Status(ctx, user)
}

// Take admits one mail of user under its quotas, counting it, or returns
// a *QuotaError: the mail count is taken atomically (replicas and workers
// never let more mails through than the quota), the model tokens are
// checked against what earlier mails used (a mail in flight may go past
// the token quota by its own tokens). Done must follow.
func (q *Quotas) Take(ctx context.Context, user string) (string, error) {
	s, err := q.Status(ctx, user)
	if err != nil {
		return "", err
	}
	if l := s.Effective.ModelTokensPerDay; l >= 0 && s.Used.ModelTokens >= l {
		return "", &QuotaError{User: user, Quota: "model tokens", Limit: l, Reset: s.Reset, RetryAfter: s.Reset.Sub(q.now())}
	}
	d := day(s.Reset.Add(-time.Hour))
	ok, err := q.Store.TakeMail(ctx, user, d, s.Effective.MailsPerDay)
	if err != nil {
		return "", fmt.Errorf("quota use of %s: %w", user, err)
	}
	if !ok {
		return "", &QuotaError{User: user, Quota: "mails", Limit: s.Effective.MailsPerDay, Reset: s.Reset, RetryAfter: s.Reset.Sub(q.now())}
	}
	return d, nil
}

// Done settles a mail that Take admitted on day: a verdict adds the model
// tokens it used; a failure (the mail is tried again later) gives the
// mail back.
func (q *Quotas) Done(ctx context.Context, user, day string, v Verdict, failed bool) error {
	u := QuotaUse{ModelTokens: v.Usage.PromptTokens + v.Usage.CompletionTokens}
	if failed {
		u = QuotaUse{Mails: -1}
	}
	if u == (QuotaUse{}) {
		return nil
	}
	if err := q.Store.AddQuotaUse(ctx, user, day, u); err != nil {
		return fmt.Errorf("quota use of %s: %w", user, err)
	}
	return nil
}
