// Package sqlrepo keeps the auth service's state (users, API keys, service
// keys, signing keys, sealed credentials) in SQL through database/sql. Its queries are portable, $N
// placeholders and all, so one Repo serves Postgres (pgx's stdlib driver)
// and SQLite (modernc.org/sqlite); each backend has its own embedded goose
// migrations.
package sqlrepo

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"time"

	"mailroom.dev/platform/sqldb"
	"mailroom.dev/services/auth/internal/identity"
	"mailroom.dev/services/auth/internal/vault"
)

//go:embed migrations/postgres/*.sql migrations/sqlite/*.sql
var migrations embed.FS

// Migrations returns the auth service's migrations for sqldb.Open.
func Migrations() sqldb.Migrations { return sqldb.Embedded("auth_schema_version", migrations) }

// Open opens the database that url names and brings its schema up to date.
func Open(ctx context.Context, url string) (*sqldb.DB, error) {
	return sqldb.Open(ctx, url, Migrations())
}

// Repo is an identity.Repository over database/sql.
type Repo struct {
	db *sql.DB
}

var _ identity.Repository = (*Repo)(nil)

// New returns a Repo over db, a database migrated with Migrations.
func New(db *sql.DB) *Repo { return &Repo{db: db} }

// micros returns t as stored: unix microseconds.
func micros(t time.Time) int64 { return t.UnixMicro() }

// nullMicros stores a zero time as NULL.
func nullMicros(t time.Time) sql.NullInt64 {
	if t.IsZero() {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: t.UnixMicro(), Valid: true}
}

func fromMicros(v int64) time.Time { return time.UnixMicro(v).UTC() }

func fromNullMicros(v sql.NullInt64) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return fromMicros(v.Int64)
}

// insertErr turns a unique violation into identity.ErrExists.
func insertErr(op string, err error) error {
	if sqldb.IsUniqueViolation(err) {
		return fmt.Errorf("%s: %w", op, identity.ErrExists)
	}
	return fmt.Errorf("%s: %w", op, err)
}

// one reports identity.ErrNotFound when an update touched no row.
func one(op string, res sql.Result, err error) error {
	if err != nil {
		return insertErr(op, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if n == 0 {
		return fmt.Errorf("%s: %w", op, identity.ErrNotFound)
	}
	return nil
}

// CreateUser implements identity.Repository.
func (r *Repo) CreateUser(ctx context.Context, u identity.User) error {
	_, err := r.db.ExecContext(ctx,
		`INSERT INTO users (id, display_name, email, role, create_time) VALUES ($1, $2, $3, $4, $5)`,
		u.ID, u.DisplayName, u.Email, string(u.Role), micros(u.CreateTime))
	if err != nil {
		return insertErr("insert user", err)
	}
	return nil
}

const userColumns = `id, display_name, email, role, create_time`

type scanner interface{ Scan(dest ...any) error }

func scanUser(s scanner, extra ...any) (identity.User, error) {
	var (
		u          identity.User
		role       string
		createTime int64
	)
	if err := s.Scan(append([]any{&u.ID, &u.DisplayName, &u.Email, &role, &createTime}, extra...)...); err != nil {
		return identity.User{}, err
	}
	u.Role = identity.Role(role)
	u.CreateTime = fromMicros(createTime)
	return u, nil
}

// GetUser implements identity.Repository.
func (r *Repo) GetUser(ctx context.Context, id string) (identity.User, error) {
	u, err := scanUser(r.db.QueryRowContext(ctx, `SELECT `+userColumns+` FROM users WHERE id = $1`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return identity.User{}, identity.ErrNotFound
	}
	if err != nil {
		return identity.User{}, fmt.Errorf("select user: %w", err)
	}
	return u, nil
}

// UpdateUser implements identity.Repository.
func (r *Repo) UpdateUser(ctx context.Context, u identity.User) error {
	res, err := r.db.ExecContext(ctx,
		`UPDATE users SET display_name = $2, email = $3, role = $4 WHERE id = $1`,
		u.ID, u.DisplayName, u.Email, string(u.Role))
	return one("update user", res, err)
}

// ListUsers implements identity.Repository.
func (r *Repo) ListUsers(ctx context.Context, after string, limit int) ([]identity.User, error) {
	rows, err := r.db.QueryContext(ctx,
		`SELECT `+userColumns+` FROM users WHERE id > $1 ORDER BY id LIMIT $2`, after, limit)
	if err != nil {
		return nil, fmt.Errorf("select users: %w", err)
	}
	defer rows.Close()
	var users []identity.User
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, fmt.Errorf("scan user: %w", err)
		}
		users = append(users, u)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("select users: %w", err)
	}
	return users, nil
}

// CreateAPIKey implements identity.Repository.
func (r *Repo) CreateAPIKey(ctx context.Context, k identity.APIKey) error {
	_, err := r.db.ExecContext(ctx,
		`INSERT INTO api_keys (user_id, id, display_name, prefix, hash, create_time, last_use_time, revoke_time)
		 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
		k.UserID, k.ID, k.DisplayName, k.Prefix, k.Hash, micros(k.CreateTime), nullMicros(k.LastUseTime), nullMicros(k.RevokeTime))
	if err != nil {
		return insertErr("insert api key", err)
	}
	return nil
}

const apiKeyColumns = `k.user_id, k.id, k.display_name, k.prefix, k.hash, k.create_time, k.last_use_time, k.revoke_time`

func scanAPIKey(s scanner, extra ...any) (identity.APIKey, error) {
	var (
		k                identity.APIKey
		createTime       int64
		lastUse, revoked sql.NullInt64
	)
	if err := s.Scan(append([]any{&k.UserID, &k.ID, &k.DisplayName, &k.Prefix, &k.Hash, &createTime, &lastUse, &revoked}, extra...)...); err != nil {
		return identity.APIKey{}, err
	}
	k.CreateTime = fromMicros(createTime)
	k.LastUseTime = fromNullMicros(lastUse)
	k.RevokeTime = fromNullMicros(revoked)
	return k, nil
}

// GetAPIKey implements identity.Repository.
func (r *Repo) GetAPIKey(ctx context.Context, userID, id string) (identity.APIKey, error) {
	k, err := scanAPIKey(r.db.QueryRowContext(ctx,
		`SELECT `+apiKeyColumns+` FROM api_keys k WHERE k.user_id = $1 AND k.id = $2`, userID, id))
	if errors.Is(err, sql.ErrNoRows) {
		return identity.APIKey{}, identity.ErrNotFound
	}
	if err != nil {
		return identity.APIKey{}, fmt.Errorf("select api key: %w", err)
	}
	return k, nil
}

// ListAPIKeys implements identity.Repository.
func (r *Repo) ListAPIKeys(ctx context.Context, userID, after string, limit int) ([]identity.APIKey, error) {
	rows, err := r.db.QueryContext(ctx,
		`SELECT `+apiKeyColumns+` FROM api_keys k
		 WHERE k.user_id = $1 AND k.revoke_time IS NULL AND k.id > $2
		 ORDER BY k.id LIMIT $3`, userID, after, limit)
	if err != nil {
		return nil, fmt.Errorf("select api keys: %w", err)
	}
	defer rows.Close()
	var keys []identity.APIKey
	for rows.Next() {
		k, err := scanAPIKey(rows)
		if err != nil {
			return nil, fmt.Errorf("scan api key: %w", err)
		}
		keys = append(keys, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("select api keys: %w", err)
	}
	return keys, nil
}

// APIKeyByHash implements identity.Repository.
func (r *Repo) APIKeyByHash(ctx context.Context, hash []byte) (identity.APIKey, identity.User, error) {
	row := r.db.QueryRowContext(ctx,
		`SELECT u.id, u.display_name, u.email, u.role, u.create_time, `+apiKeyColumns+`
		 FROM api_keys k JOIN users u ON u.id = k.user_id
		 WHERE k.hash = $1 AND k.revoke_time IS NULL`, hash)
	var k identity.APIKey
	var createTime int64
	var lastUse, revoked sql.NullInt64
	u, err := scanUser(row, &k.UserID, &k.ID, &k.DisplayName, &k.Prefix, &k.Hash, &createTime, &lastUse, &revoked)
	if errors.Is(err, sql.ErrNoRows) {
		return identity.APIKey{}, identity.User{}, identity.ErrNotFound
	}
	if err != nil {
		return identity.APIKey{}, identity.User{}, fmt.Errorf("select api key by hash: %w", err)
	}
	k.CreateTime = fromMicros(createTime)
	k.LastUseTime = fromNullMicros(lastUse)
	k.RevokeTime = fromNullMicros(revoked)
	return k, u, nil
}

// RevokeAPIKey implements identity.Repository.
func (r *Repo) RevokeAPIKey(ctx context.Context, userID, id string, t time.Time) error {
	res, err := r.db.ExecContext(ctx,
		`UPDATE api_keys SET revoke_time = $3 WHERE user_id = $1 AND id = $2 AND revoke_time IS NULL`,
		userID, id, micros(t))
	return one("revoke api key", res, err)
}

// ReplaceAPIKeySecret implements identity.Repository.
func (r *Repo) ReplaceAPIKeySecret(ctx context.Context, k identity.APIKey) error {
	res, err := r.db.ExecContext(ctx,
		`UPDATE api_keys
		 SET display_name = $3, prefix = $4, hash = $5, create_time = $6, last_use_time = NULL, revoke_time = NULL
		 WHERE user_id = $1 AND id = $2`,
		k.UserID, k.ID, k.DisplayName, k.Prefix, k.Hash, micros(k.CreateTime))
	return one("replace api key secret", res, err)
}

// TouchAPIKey implements identity.Repository.
func (r *Repo) TouchAPIKey(ctx context.Context, userID, id string, t, notBefore time.Time) error {
	_, err := r.db.ExecContext(ctx,
		`UPDATE api_keys SET last_use_time = $3
		 WHERE user_id = $1 AND id = $2 AND (last_use_time IS NULL OR last_use_time < $4)`,
		userID, id, micros(t), micros(notBefore))
	if err != nil {
		return fmt.Errorf("touch api key: %w", err)
	}
	return nil
}

// nullBytes stores an empty byte slice as NULL.
func nullBytes(b []byte) any {
	if b == nil {
		return nil
	}
	return b
}

// nullString stores an empty string as NULL.
func nullString(v string) sql.NullString { return sql.NullString{String: v, Valid: v != ""} }

// CreateSigningKey implements identity.Repository.
func (r *Repo) CreateSigningKey(ctx context.Context, k identity.StoredSigningKey) error {
	_, err := r.db.ExecContext(ctx,
		`INSERT INTO signing_keys (id, generation, algorithm, private_key, kek_id, wrapped_key, create_time, activate_time)
		 VALUES ($1, $2, 'EdDSA', $3, $4, $5, $6, $7)`,
		k.ID, k.Generation, k.Seed.Ciphertext, nullString(k.Seed.KeyID), nullBytes(k.Seed.WrappedKey), micros(k.CreateTime), micros(k.ActivateTime))
	if err != nil {
		return insertErr("insert signing key", err)
	}
	return nil
}

// SigningKeys implements identity.Repository.
func (r *Repo) SigningKeys(ctx context.Context) ([]identity.StoredSigningKey, error) {
	rows, err := r.db.QueryContext(ctx,
		`SELECT id, generation, private_key, kek_id, wrapped_key, create_time, activate_time FROM signing_keys
		 WHERE retire_time IS NULL ORDER BY generation DESC`)
	if err != nil {
		return nil, fmt.Errorf("select signing keys: %w", err)
	}
	defer rows.Close()
	var keys []identity.StoredSigningKey
	for rows.Next() {
		var (
			k                    identity.StoredSigningKey
			kekID                sql.NullString
			createTime, activate int64
		)
		if err := rows.Scan(&k.ID, &k.Generation, &k.Seed.Ciphertext, &kekID, &k.Seed.WrappedKey, &createTime, &activate); err != nil {
			return nil, fmt.Errorf("scan signing key: %w", err)
		}
		k.Seed.KeyID = kekID.String
		k.CreateTime = fromMicros(createTime)
		k.ActivateTime = fromMicros(activate)
		keys = append(keys, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("select signing keys: %w", err)
	}
	return keys, nil
}

// ResealSigningKey implements identity.Repository.
func (r *Repo) ResealSigningKey(ctx context.Context, id string, old, sealed vault.Sealed) error {
	res, err := r.db.ExecContext(ctx,
		`UPDATE signing_keys SET private_key = $2, kek_id = $3, wrapped_key = $4
		 WHERE id = $1 AND retire_time IS NULL AND private_key = $5 AND wrapped_key IS NOT DISTINCT FROM $6`,
		id, sealed.Ciphertext, nullString(sealed.KeyID), nullBytes(sealed.WrappedKey), old.Ciphertext, nullBytes(old.WrappedKey))
	return one("reseal signing key", res, err)
}

// RetireSigningKey implements identity.Repository. The private key is
// erased: no token can be signed with a retired key again.
func (r *Repo) RetireSigningKey(ctx context.Context, id string, t time.Time) error {
	res, err := r.db.ExecContext(ctx,
		`UPDATE signing_keys SET retire_time = $2, private_key = $3, kek_id = NULL, wrapped_key = NULL
		 WHERE id = $1 AND retire_time IS NULL`,
		id, micros(t), []byte{})
	return one("retire signing key", res, err)
}

// PutServiceKey implements identity.Repository.
func (r *Repo) PutServiceKey(ctx context.Context, k identity.ServiceKey) error {
	_, err := r.db.ExecContext(ctx,
		`INSERT INTO service_keys (service, prefix, hash, create_time) VALUES ($1, $2, $3, $4)
		 ON CONFLICT (service) DO UPDATE SET prefix = excluded.prefix, hash = excluded.hash, create_time = excluded.create_time`,
		k.Service, k.Prefix, k.Hash, micros(k.CreateTime))
	if err != nil {
		return insertErr("put service key", err)
	}
	return nil
}

func scanServiceKey(row *sql.Row) (identity.ServiceKey, error) {
	var (
		k          identity.ServiceKey
		createTime int64
	)
	err := row.Scan(&k.Service, &k.Prefix, &k.Hash, &createTime)
	if errors.Is(err, sql.ErrNoRows) {
		return identity.ServiceKey{}, identity.ErrNotFound
	}
	if err != nil {
		return identity.ServiceKey{}, fmt.Errorf("select service key: %w", err)
	}
	k.CreateTime = fromMicros(createTime)
	return k, nil
}

// GetServiceKey implements identity.Repository.
func (r *Repo) GetServiceKey(ctx context.Context, service string) (identity.ServiceKey, error) {
	return scanServiceKey(r.db.QueryRowContext(ctx,
		`SELECT service, prefix, hash, create_time FROM service_keys WHERE service = $1`, service))
}

// ServiceKeyByHash implements identity.Repository.
func (r *Repo) ServiceKeyByHash(ctx context.Context, hash []byte) (identity.ServiceKey, error) {
	return scanServiceKey(r.db.QueryRowContext(ctx,
		`SELECT service, prefix, hash, create_time FROM service_keys WHERE hash = $1`, hash))
}

const credentialColumns = `user_id, mailbox_id, kind, kek_id, wrapped_key, ciphertext, create_time, update_time`

func scanCredential(s scanner) (identity.StoredCredential, error) {
	var (
		c                  identity.StoredCredential
		kind               string
		createTime, update int64
	)
	if err := s.Scan(&c.UserID, &c.MailboxID, &kind, &c.Sealed.KeyID, &c.Sealed.WrappedKey, &c.Sealed.Ciphertext, &createTime, &update); err != nil {
		return identity.StoredCredential{}, err
	}
	c.Kind = identity.CredentialKind(kind)
	c.CreateTime = fromMicros(createTime)
	c.UpdateTime = fromMicros(update)
	return c, nil
}

// PutCredential implements identity.Repository.
func (r *Repo) PutCredential(ctx context.Context, c identity.StoredCredential) (identity.StoredCredential, error) {
	row := r.db.QueryRowContext(ctx,
		`INSERT INTO credentials (`+credentialColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
		 ON CONFLICT (user_id, mailbox_id) DO UPDATE SET kind = excluded.kind, kek_id = excluded.kek_id,
		   wrapped_key = excluded.wrapped_key, ciphertext = excluded.ciphertext, update_time = excluded.update_time
		 RETURNING `+credentialColumns,
		c.UserID, c.MailboxID, string(c.Kind), c.Sealed.KeyID, c.Sealed.WrappedKey, c.Sealed.Ciphertext, micros(c.CreateTime), micros(c.UpdateTime))
	stored, err := scanCredential(row)
	if err != nil {
		return identity.StoredCredential{}, insertErr("put credential", err)
	}
	return stored, nil
}

// GetCredential implements identity.Repository.
func (r *Repo) GetCredential(ctx context.Context, userID, mailboxID string) (identity.StoredCredential, error) {
	c, err := scanCredential(r.db.QueryRowContext(ctx,
		`SELECT `+credentialColumns+` FROM credentials WHERE user_id = $1 AND mailbox_id = $2`, userID, mailboxID))
	if errors.Is(err, sql.ErrNoRows) {
		return identity.StoredCredential{}, identity.ErrNotFound
	}
	if err != nil {
		return identity.StoredCredential{}, fmt.Errorf("select credential: %w", err)
	}
	return c, nil
}

// DeleteCredential implements identity.Repository.
func (r *Repo) DeleteCredential(ctx context.Context, userID, mailboxID string) error {
	res, err := r.db.ExecContext(ctx, `DELETE FROM credentials WHERE user_id = $1 AND mailbox_id = $2`, userID, mailboxID)
	return one("delete credential", res, err)
}

// CredentialsNotUnder implements identity.Repository.
func (r *Repo) CredentialsNotUnder(ctx context.Context, keyID, afterUser, afterMailbox string, limit int) ([]identity.StoredCredential, error) {
	rows, err := r.db.QueryContext(ctx,
		`SELECT `+credentialColumns+` FROM credentials
		 WHERE kek_id <> $1 AND (user_id > $2 OR (user_id = $2 AND mailbox_id > $3))
		 ORDER BY user_id, mailbox_id LIMIT $4`, keyID, afterUser, afterMailbox, limit)
	if err != nil {
		return nil, fmt.Errorf("select credentials: %w", err)
	}
	defer rows.Close()
	var out []identity.StoredCredential
	for rows.Next() {
		c, err := scanCredential(rows)
		if err != nil {
			return nil, fmt.Errorf("scan credential: %w", err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("select credentials: %w", err)
	}
	return out, nil
}

// ResealCredential implements identity.Repository.
func (r *Repo) ResealCredential(ctx context.Context, userID, mailboxID string, old, sealed vault.Sealed) error {
	res, err := r.db.ExecContext(ctx,
		`UPDATE credentials SET kek_id = $3, wrapped_key = $4, ciphertext = $5
		 WHERE user_id = $1 AND mailbox_id = $2 AND kek_id = $6 AND wrapped_key = $7 AND ciphertext = $8`,
		userID, mailboxID, sealed.KeyID, sealed.WrappedKey, sealed.Ciphertext, old.KeyID, old.WrappedKey, old.Ciphertext)
	return one("reseal credential", res, err)
}

// CountCredentialsByKey implements identity.Repository.
func (r *Repo) CountCredentialsByKey(ctx context.Context) (map[string]int64, error) {
	rows, err := r.db.QueryContext(ctx, `SELECT kek_id, count(*) FROM credentials GROUP BY kek_id`)
	if err != nil {
		return nil, fmt.Errorf("count credentials: %w", err)
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var (
			id string
			n  int64
		)
		if err := rows.Scan(&id, &n); err != nil {
			return nil, fmt.Errorf("count credentials: %w", err)
		}
		out[id] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("count credentials: %w", err)
	}
	return out, nil
}

// DeleteUserData implements identity.Repository.
func (r *Repo) DeleteUserData(ctx context.Context, userID string) (identity.Deleted, error) {
	var d identity.Deleted
	err := sqldb.InTx(ctx, r.db, func(tx *sql.Tx) error {
		for _, step := range []struct {
			query string
			n     *int64
		}{
			{`DELETE FROM credentials WHERE user_id = $1`, &d.Credentials},
			{`DELETE FROM api_keys WHERE user_id = $1`, &d.APIKeys},
			{`DELETE FROM users WHERE id = $1`, &d.Users},
		} {
			res, err := tx.ExecContext(ctx, step.query, userID)
			if err != nil {
				return err
			}
			if *step.n, err = res.RowsAffected(); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return identity.Deleted{}, fmt.Errorf("delete user data: %w", err)
	}
	return d, nil
}
