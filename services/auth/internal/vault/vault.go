// Package vault is the envelope encryption of the auth service's secrets:
// mailbox credentials and the private keys that sign identity tokens.
//
// Each secret is encrypted with AES-256-GCM under a data key of its own,
// drawn fresh for every Seal; the data key is then encrypted (wrapped), also
// with AES-256-GCM, under a key-encryption key (KEK) that the operator
// provides (MAILROOM_VAULT_KEYS) and that never touches the database. What
// is stored is the KEK's id, the wrapped data key and the ciphertext. Both
// encryptions take associated data that names the record the secret
// belongs to (user, mailbox, kind), so that a ciphertext copied into another
// record does not decrypt; a tampered, swapped or truncated value is an
// error (ErrDecrypt), never plaintext garbage.
//
// Rotating the KEK re-wraps data keys only (Rewrap): the ciphertexts stay,
// and no secret is decrypted on the way.
package vault

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// Errors of Open and Rewrap.
var (
	// ErrDecrypt means that a sealed value does not decrypt: it was
	// tampered with, truncated, or belongs to another record.
	ErrDecrypt = errors.New("vault: the sealed value does not decrypt (tampered, truncated, or bound to another record)")
	// ErrUnknownKey means that a value is sealed under a KEK that the
	// keyring does not hold.
	ErrUnknownKey = errors.New("vault: the key-encryption key of the sealed value is not configured")
)

// KeySize is the size of KEKs and data keys: AES-256.
const KeySize = 32

// format is the first byte of every wrapped key and ciphertext, so that a
// later format can be told apart.
const format byte = 1

const (
	nonceSize = 12
	tagSize   = 16
	overhead  = 1 + nonceSize + tagSize
)

// Sealed is a secret as stored: the id of the KEK that wraps its data key,
// the wrapped data key and the ciphertext.
type Sealed struct {
	KeyID      string
	WrappedKey []byte
	Ciphertext []byte
}

// Keyring holds the KEKs. The first is active: Seal and Rewrap use it; the
// others only open what was sealed under them before a rotation.
type Keyring struct {
	keys   map[string]cipher.AEAD
	ids    []string
	active string
}

// keyIDPattern is what a KEK id may be: short, printable, no separators of
// the MAILROOM_VAULT_KEYS syntax.
var keyIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// ParseKeyring reads MAILROOM_VAULT_KEYS: a comma-separated list of
// id:base64 entries, each the base64 (standard or URL alphabet, padded or
// not) of 32 random bytes, the active one first. An empty string is no
// keyring (nil, nil). Errors name entries by position and id, never by
// their key material.
func ParseKeyring(s string) (*Keyring, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	r := &Keyring{keys: map[string]cipher.AEAD{}}
	for i, entry := range strings.Split(s, ",") {
		id, b64, ok := strings.Cut(strings.TrimSpace(entry), ":")
		if !ok {
			return nil, fmt.Errorf("vault: MAILROOM_VAULT_KEYS entry %d is not id:base64", i+1)
		}
		if !keyIDPattern.MatchString(id) {
			return nil, fmt.Errorf("vault: MAILROOM_VAULT_KEYS entry %d: the id is not 1 to 64 letters, digits, '.', '_' or '-'", i+1)
		}
		if _, dup := r.keys[id]; dup {
			return nil, fmt.Errorf("vault: MAILROOM_VAULT_KEYS names key %q twice", id)
		}
		key, err := decodeKey(b64)
		if err != nil {
			return nil, fmt.Errorf("vault: MAILROOM_VAULT_KEYS key %q: %w", id, err)
		}
		aead, err := newAEAD(key)
		if err != nil {
			return nil, err
		}
		r.keys[id] = aead
		r.ids = append(r.ids, id)
	}
	r.active = r.ids[0]
	return r, nil
}

func decodeKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			if len(b) != KeySize {
				return nil, fmt.Errorf("is %d bytes, want %d (generate one with: head -c 32 /dev/urandom | base64)", len(b), KeySize)
			}
			return b, nil
		}
	}
	return nil, errors.New("is not base64")
}

func newAEAD(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("vault: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("vault: %w", err)
	}
	return aead, nil
}

// Active returns the id of the active KEK.
func (r *Keyring) Active() string { return r.active }

// IDs returns the ids of the KEKs, the active one first.
func (r *Keyring) IDs() []string { return append([]string(nil), r.ids...) }

// Has reports whether the keyring holds the KEK id.
func (r *Keyring) Has(id string) bool {
	_, ok := r.keys[id]
	return ok
}

// Seal encrypts plaintext under a fresh data key wrapped by the active KEK,
// both bound to aad (which names the record the secret belongs to).
func (r *Keyring) Seal(aad, plaintext []byte) (Sealed, error) {
	dek := make([]byte, KeySize)
	_, _ = rand.Read(dek) // crypto/rand.Read never fails (Go 1.24+)
	defer clear(dek)
	data, err := newAEAD(dek)
	if err != nil {
		return Sealed{}, err
	}
	ct := seal(data, plaintext, dataAAD(aad))
	wrapped := seal(r.keys[r.active], dek, wrapAAD(r.active, aad))
	return Sealed{KeyID: r.active, WrappedKey: wrapped, Ciphertext: ct}, nil
}

// Open decrypts s, which must have been sealed with the same aad.
func (r *Keyring) Open(aad []byte, s Sealed) ([]byte, error) {
	dek, err := r.unwrap(aad, s)
	if err != nil {
		return nil, err
	}
	defer clear(dek)
	data, err := newAEAD(dek)
	if err != nil {
		return nil, err
	}
	return open(data, s.Ciphertext, dataAAD(aad))
}

// Rewrap returns s with its data key wrapped by the active KEK instead of
// the one that wraps it now. The ciphertext is unchanged and the secret is
// not decrypted.
func (r *Keyring) Rewrap(aad []byte, s Sealed) (Sealed, error) {
	dek, err := r.unwrap(aad, s)
	if err != nil {
		return Sealed{}, err
	}
	defer clear(dek)
	return Sealed{
		KeyID:      r.active,
		WrappedKey: seal(r.keys[r.active], dek, wrapAAD(r.active, aad)),
		Ciphertext: s.Ciphertext,
	}, nil
}

func (r *Keyring) unwrap(aad []byte, s Sealed) ([]byte, error) {
	kek, ok := r.keys[s.KeyID]
	if !ok {
		return nil, fmt.Errorf("%w (key %q)", ErrUnknownKey, s.KeyID)
	}
	dek, err := open(kek, s.WrappedKey, wrapAAD(s.KeyID, aad))
	if err != nil {
		return nil, err
	}
	if len(dek) != KeySize {
		return nil, ErrDecrypt
	}
	return dek, nil
}

// The associated data of the two layers differ, so that a wrapped key can
// never pass for a ciphertext or the reverse; the wrapping also binds the
// KEK id, so that a row relabelled with another id fails.
func dataAAD(aad []byte) []byte {
	return append([]byte("mailroom-vault/v1/data\x00"), aad...)
}

func wrapAAD(kekID string, aad []byte) []byte {
	return append([]byte("mailroom-vault/v1/dek\x00"+kekID+"\x00"), aad...)
}

// seal returns format || nonce || ciphertext and tag.
func seal(aead cipher.AEAD, plaintext, aad []byte) []byte {
	out := make([]byte, 1+nonceSize, overhead+len(plaintext))
	out[0] = format
	_, _ = rand.Read(out[1:])
	return aead.Seal(out, out[1:1+nonceSize], plaintext, aad)
}

func open(aead cipher.AEAD, sealed, aad []byte) ([]byte, error) {
	if len(sealed) < overhead || sealed[0] != format {
		return nil, ErrDecrypt
	}
	pt, err := aead.Open(nil, sealed[1:1+nonceSize], sealed[1+nonceSize:], aad)
	if err != nil {
		return nil, ErrDecrypt
	}
	return pt, nil
}

// CredentialAAD is the associated data of a credential (for a webhook's
// secret, mailbox is "webhooks/{id}", which no mailbox id is): it binds
// the ciphertext to users/{user}/mailboxes/{mailbox} and to its kind.
func CredentialAAD(user, mailbox, kind string) []byte {
	return []byte("credential\x00users/" + user + "/mailboxes/" + mailbox + "\x00" + kind)
}

// SigningKeyAAD is the associated data of a token-signing private key: it
// binds the ciphertext to the key id.
func SigningKeyAAD(kid string) []byte {
	return []byte("signing-key\x00" + kid)
}

// NewKey returns a new random KEK in the form MAILROOM_VAULT_KEYS takes
// ("id:base64"), for tools and development setups.
func NewKey(id string) string {
	b := make([]byte, KeySize)
	_, _ = rand.Read(b)
	return id + ":" + base64.StdEncoding.EncodeToString(b)
}
