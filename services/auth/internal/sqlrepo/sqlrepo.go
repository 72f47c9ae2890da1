// Package sqlrepo keeps the auth service's state (users, API keys, signing
// keys) in SQL through database/sql. Its queries are portable, $N
// placeholders and all, so one Repo serves Postgres (pgx's stdlib driver)
// and SQLite (modernc.org/sqlite); each backend has its own embedded goose
// migrations.
package sqlrepo

import (
	"context"
	"crypto/ed25519"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"mailroom.dev/platform/sqldb"
	"mailroom.dev/services/auth/internal/identity"
)

//go:embed migrations/postgres/*.sql migrations/sqlite/*.sql
var migrations embed.FS

// Migrations returns the auth service's migrations for sqldb.Open.
func Migrations() sqldb.Migrations {
	pg, err := fs.Sub(migrations, "migrations/postgres")
	if err != nil {
		panic(err) // the directory is embedded above
	}
	lite, err := fs.Sub(migrations, "migrations/sqlite")
	if err != nil {
		panic(err)
	}
	return sqldb.Migrations{Table: "auth_schema_version", Postgres: pg, SQLite: lite}
}

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

// CreateSigningKey implements identity.Repository. Only the 32-byte seed of
// the private key is stored; it is not encrypted yet (a later issue
// encrypts it with the vault's key-encryption key).
func (r *Repo) CreateSigningKey(ctx context.Context, k identity.SigningKey) error {
	_, err := r.db.ExecContext(ctx,
		`INSERT INTO signing_keys (id, generation, algorithm, private_key, create_time) VALUES ($1, $2, 'EdDSA', $3, $4)`,
		k.ID, k.Generation, k.PrivateKey.Seed(), micros(k.CreateTime))
	if err != nil {
		return insertErr("insert signing key", err)
	}
	return nil
}

// SigningKeys implements identity.Repository.
func (r *Repo) SigningKeys(ctx context.Context) ([]identity.SigningKey, error) {
	rows, err := r.db.QueryContext(ctx,
		`SELECT id, generation, private_key, create_time FROM signing_keys
		 WHERE retire_time IS NULL ORDER BY generation DESC`)
	if err != nil {
		return nil, fmt.Errorf("select signing keys: %w", err)
	}
	defer rows.Close()
	var keys []identity.SigningKey
	for rows.Next() {
		var (
			k          identity.SigningKey
			seed       []byte
			createTime int64
		)
		if err := rows.Scan(&k.ID, &k.Generation, &seed, &createTime); err != nil {
			return nil, fmt.Errorf("scan signing key: %w", err)
		}
		if len(seed) != ed25519.SeedSize {
			return nil, fmt.Errorf("signing key %s: stored seed has %d bytes, want %d", k.ID, len(seed), ed25519.SeedSize)
		}
		k.PrivateKey = ed25519.NewKeyFromSeed(seed)
		k.CreateTime = fromMicros(createTime)
		keys = append(keys, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("select signing keys: %w", err)
	}
	return keys, nil
}
