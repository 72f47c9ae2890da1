// Package sqlrepo keeps the classifier's state in SQL through database/sql:
// users' taxonomies, the verdict cache and the daily spend. Its queries are
// portable ($N placeholders), so one Repo serves Postgres (pgx's stdlib
// driver) and SQLite; each backend has its own embedded goose migrations.
package sqlrepo

import (
	"context"
	"database/sql"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"mailroom.dev/platform/sqldb"
	"mailroom.dev/services/classifier/internal/classify"
)

//go:embed migrations/postgres/*.sql migrations/sqlite/*.sql
var migrations embed.FS

// Migrations returns the classifier's migrations for sqldb.Open.
func Migrations() sqldb.Migrations { return sqldb.Embedded("classifier_schema_version", migrations) }

// Open opens the database that url names and brings its schema up to date
// (or, as opts may say, waits for a migration Job to).
//
// A SQLite database gets one connection: SQLite has one writer at a time,
// and with a connection per waiting goroutine (hundreds, with the language
// model at full rate) every write but one sits in SQLite's busy handler,
// which polls with sleeps of up to 100 ms. Writes then take seconds, the
// spend ledger's time out and are lost. One connection queues them in Go
// instead, where each takes well under a millisecond.
func Open(ctx context.Context, url string, opts ...sqldb.Option) (*sqldb.DB, error) {
	db, err := sqldb.Open(ctx, url, Migrations(), opts...)
	if err != nil {
		return nil, err
	}
	if db.Backend == sqldb.SQLite {
		db.SQL.SetMaxOpenConns(1)
	}
	return db, nil
}

// Repo is the classifier's repository.
type Repo struct {
	db *sql.DB
}

// New returns a Repo over db, a database migrated with Migrations.
func New(db *sql.DB) *Repo { return &Repo{db: db} }

type category struct {
	Name        string `json:"name"`
	Description string `json:"description"`
}

// Taxonomy returns a user's taxonomy and when it was set; nil when the user
// has the default one.
func (r *Repo) Taxonomy(ctx context.Context, user string) (classify.Taxonomy, time.Time, error) {
	var raw string
	var updated int64
	err := r.db.QueryRowContext(ctx, `SELECT categories, update_time FROM classifier_taxonomies WHERE user_id = $1`, user).Scan(&raw, &updated)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, time.Time{}, nil
	}
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("sqlrepo: taxonomy: %w", err)
	}
	var cs []category
	if err := json.Unmarshal([]byte(raw), &cs); err != nil {
		return nil, time.Time{}, fmt.Errorf("sqlrepo: taxonomy of %s: %w", user, err)
	}
	t := make(classify.Taxonomy, len(cs))
	for i, c := range cs {
		t[i] = classify.Category(c)
	}
	return t, time.UnixMicro(updated).UTC(), nil
}

// SetTaxonomy stores a user's taxonomy.
func (r *Repo) SetTaxonomy(ctx context.Context, user string, t classify.Taxonomy, at time.Time) error {
	cs := make([]category, len(t))
	for i, c := range t {
		cs[i] = category(c)
	}
	raw, err := json.Marshal(cs)
	if err != nil {
		return err
	}
	_, err = r.db.ExecContext(ctx, `
		INSERT INTO classifier_taxonomies (user_id, categories, update_time) VALUES ($1, $2, $3)
		ON CONFLICT (user_id) DO UPDATE SET categories = excluded.categories, update_time = excluded.update_time`,
		user, string(raw), at.UnixMicro())
	if err != nil {
		return fmt.Errorf("sqlrepo: set taxonomy: %w", err)
	}
	return nil
}

// Cached returns the verdict cached under k, if any.
func (r *Repo) Cached(ctx context.Context, k classify.CacheKey) (classify.Verdict, bool, error) {
	var v classify.Verdict
	var prio int
	err := r.db.QueryRowContext(ctx, `
		SELECT category, confidence, priority, needs_reply, reason, model FROM classifier_cache
		WHERE user_id = $1 AND taxonomy_key = $2 AND content_hash = $3`,
		k.User, k.TaxonomyKey, k.ContentHash).Scan(&v.Category, &v.Confidence, &prio, &v.NeedsReply, &v.Reason, &v.Model)
	if errors.Is(err, sql.ErrNoRows) {
		return classify.Verdict{}, false, nil
	}
	if err != nil {
		return classify.Verdict{}, false, fmt.Errorf("sqlrepo: cache: %w", err)
	}
	v.Priority = classify.Priority(prio)
	return v, true, nil
}

// Cache stores v under k (the first verdict for a content stays).
func (r *Repo) Cache(ctx context.Context, k classify.CacheKey, v classify.Verdict, at time.Time) error {
	_, err := r.db.ExecContext(ctx, `
		INSERT INTO classifier_cache (user_id, taxonomy_key, content_hash, category, confidence, priority, needs_reply, reason, model, create_time)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
		ON CONFLICT (user_id, taxonomy_key, content_hash) DO NOTHING`,
		k.User, k.TaxonomyKey, k.ContentHash, v.Category, v.Confidence, int(v.Priority), v.NeedsReply, v.Reason, v.Model, at.UnixMicro())
	if err != nil {
		return fmt.Errorf("sqlrepo: cache: %w", err)
	}
	return nil
}

// AddSpend adds micros to the spend of day ("2026-11-29").
func (r *Repo) AddSpend(ctx context.Context, day string, micros int64) error {
	_, err := r.db.ExecContext(ctx, `
		INSERT INTO classifier_spend (day, micros) VALUES ($1, $2)
		ON CONFLICT (day) DO UPDATE SET micros = classifier_spend.micros + excluded.micros`, day, micros)
	if err != nil {
		return fmt.Errorf("sqlrepo: spend: %w", err)
	}
	return nil
}

// Spend returns the spend of day and the total of all days.
func (r *Repo) Spend(ctx context.Context, day string) (today, total int64, err error) {
	err = r.db.QueryRowContext(ctx, `
		SELECT COALESCE(SUM(CASE WHEN day = $1 THEN micros ELSE 0 END), 0), COALESCE(SUM(micros), 0) FROM classifier_spend`, day).Scan(&today, &total)
	if err != nil {
		return 0, 0, fmt.Errorf("sqlrepo: spend: %w", err)
	}
	return today, total, nil
}

// PurgeUser deletes a user's taxonomy, cached verdicts, learned senders
// and corrections, and says how many taxonomies and cached verdicts went.
func (r *Repo) PurgeUser(ctx context.Context, user string) (taxonomies, cached int64, err error) {
	err = sqldb.InTx(ctx, r.db, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM classifier_taxonomies WHERE user_id = $1`, user)
		if err != nil {
			return err
		}
		taxonomies, _ = res.RowsAffected()
		res, err = tx.ExecContext(ctx, `DELETE FROM classifier_cache WHERE user_id = $1`, user)
		if err != nil {
			return err
		}
		cached, _ = res.RowsAffected()
		// What was learned of the user's senders, and their corrections.
		for _, table := range []string{"classifier_senders", "classifier_examples", "classifier_quotas", "classifier_quota_use"} {
			if _, err := tx.ExecContext(ctx, `DELETE FROM `+table+` WHERE user_id = $1`, user); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, 0, fmt.Errorf("sqlrepo: purge: %w", err)
	}
	return taxonomies, cached, nil
}

// ExpireCache deletes cached verdicts older than before.
func (r *Repo) ExpireCache(ctx context.Context, before time.Time) (int64, error) {
	res, err := r.db.ExecContext(ctx, `DELETE FROM classifier_cache WHERE create_time < $1`, before.UnixMicro())
	if err != nil {
		return 0, fmt.Errorf("sqlrepo: expire cache: %w", err)
	}
	return res.RowsAffected()
}

// Quota implements classify.QuotaStore.
func (r *Repo) Quota(ctx context.Context, user string) (classify.QuotaLimits, error) {
	var q classify.QuotaLimits
	err := r.db.QueryRowContext(ctx, `SELECT model_tokens_per_day, mails_per_day FROM classifier_quotas WHERE user_id = $1`, user).
		Scan(&q.ModelTokensPerDay, &q.MailsPerDay)
	if errors.Is(err, sql.ErrNoRows) {
		return classify.QuotaLimits{}, nil
	}
	if err != nil {
		return q, fmt.Errorf("sqlrepo: quota: %w", err)
	}
	return q, nil
}

// SetQuota implements classify.QuotaStore.
func (r *Repo) SetQuota(ctx context.Context, user string, q classify.QuotaLimits, now time.Time) error {
	_, err := r.db.ExecContext(ctx, `INSERT INTO classifier_quotas (user_id, model_tokens_per_day, mails_per_day, update_time)
VALUES ($1, $2, $3, $4)
ON CONFLICT (user_id) DO UPDATE SET model_tokens_per_day = excluded.model_tokens_per_day,
  mails_per_day = excluded.mails_per_day, update_time = excluded.update_time`,
		user, q.ModelTokensPerDay, q.MailsPerDay, now.UnixMicro())
	if err != nil {
		return fmt.Errorf("sqlrepo: set quota: %w", err)
	}
	return nil
}

// QuotaUse implements classify.QuotaStore.
func (r *Repo) QuotaUse(ctx context.Context, user, day string) (classify.QuotaUse, error) {
	var u classify.QuotaUse
	err := r.db.QueryRowContext(ctx, `SELECT model_tokens, mails FROM classifier_quota_use WHERE user_id = $1 AND day = $2`, user, day).
		Scan(&u.ModelTokens, &u.Mails)
	if errors.Is(err, sql.ErrNoRows) {
		return classify.QuotaUse{}, nil
	}
	if err != nil {
		return u, fmt.Errorf("sqlrepo: quota use: %w", err)
	}
	return u, nil
}

// AddQuotaUse implements classify.QuotaStore.
func (r *Repo) AddQuotaUse(ctx context.Context, user, day string, u classify.QuotaUse) error {
	_, err := r.db.ExecContext(ctx, `INSERT INTO classifier_quota_use AS q (user_id, day, model_tokens, mails)
VALUES ($1, $2, $3, $4)
ON CONFLICT (user_id, day) DO UPDATE SET model_tokens = q.model_tokens + excluded.model_tokens,
  mails = q.mails + excluded.mails`, user, day, u.ModelTokens, u.Mails)
	if err != nil {
		return fmt.Errorf("sqlrepo: add quota use: %w", err)
	}
	return nil
}

// TakeMail implements classify.QuotaStore: one conditional UPDATE, so
// that concurrent takes never pass the limit.
func (r *Repo) TakeMail(ctx context.Context, user, day string, limit int64) (bool, error) {
	if _, err := r.db.ExecContext(ctx, `INSERT INTO classifier_quota_use (user_id, day, model_tokens, mails)
VALUES ($1, $2, 0, 0) ON CONFLICT (user_id, day) DO NOTHING`, user, day); err != nil {
		return false, fmt.Errorf("sqlrepo: take mail: %w", err)
	}
	res, err := r.db.ExecContext(ctx, `UPDATE classifier_quota_use SET mails = mails + 1
WHERE user_id = $1 AND day = $2 AND ($3 < 0 OR mails < $3)`, user, day, limit)
	if err != nil {
		return false, fmt.Errorf("sqlrepo: take mail: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("sqlrepo: take mail: %w", err)
	}
	return n == 1, nil
}

// ExpireQuotaUse deletes the use of days before day.
func (r *Repo) ExpireQuotaUse(ctx context.Context, day string) (int64, error) {
	res, err := r.db.ExecContext(ctx, `DELETE FROM classifier_quota_use WHERE day < $1`, day)
	if err != nil {
		return 0, fmt.Errorf("sqlrepo: expire quota use: %w", err)
	}
	return res.RowsAffected()
}
