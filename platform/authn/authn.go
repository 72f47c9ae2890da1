// Package authn checks who calls a mailroom service. Callers present either
// an identity token (an EdDSA JWT signed by auth, verified locally with keys
// fetched from auth's JWKS) or an API key (exchanged with auth for a token,
// cached briefly). Handlers then ask Authorize whether the caller may reach a
// user's resources.
package authn

import (
	"context"

	"mailroom.dev/platform/apierror"
)

// Token claims every identity token carries.
const (
	Issuer   = "mailroom-auth"
	Audience = "mailroom"
	// APIKeyPrefix starts every API key that auth creates. (The bootstrap
	// key is whatever MAILROOM_BOOTSTRAP_TOKEN says.)
	APIKeyPrefix = "mr_"
	// Me is the user id that names the caller itself, as in users/me.
	Me = "me"
)

// Caller is the authenticated identity of a request.
type Caller struct {
	// User is the user id ("ada"); empty for a service identity.
	User string
	// Admin callers reach every user's resources.
	Admin bool
	// Service is the calling service's name, for a service identity.
	Service string
}

type callerKey struct{}

// NewContext returns ctx carrying c.
func NewContext(ctx context.Context, c Caller) context.Context {
	return context.WithValue(ctx, callerKey{}, c)
}

// FromContext returns the caller that ctx carries.
func FromContext(ctx context.Context) (Caller, bool) {
	c, ok := ctx.Value(callerKey{}).(Caller)
	return c, ok
}

// Authorize resolves user ("me" or a user id) to the user id the caller may
// reach, or refuses: a user reaches only itself, an admin reaches everyone.
// field names the request field, for the error.
func Authorize(ctx context.Context, field, user string) (string, error) {
	c, ok := FromContext(ctx)
	if !ok {
		return "", apierror.Unauthenticatedf("no credential was presented")
	}
	if user == Me {
		if c.User == "" {
			return "", apierror.Invalid(field, "users/me names no user for a service identity")
		}
		return c.User, nil
	}
	if c.Admin || (c.User != "" && c.User == user) {
		return user, nil
	}
	return "", apierror.Denied("the caller may not access users/%s", user)
}

// RequireAdmin refuses a caller that is not an admin.
func RequireAdmin(ctx context.Context) error {
	c, ok := FromContext(ctx)
	if !ok {
		return apierror.Unauthenticatedf("no credential was presented")
	}
	if !c.Admin {
		return apierror.Denied("only an admin may do this")
	}
	return nil
}
