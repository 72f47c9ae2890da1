// Package resname parses and builds resource names in the style of Google's
// API Improvement Proposals (AIP-122): "users/ada/messages/1f3c…".
package resname

import (
	"regexp"
	"strings"

	"mailroom.dev/platform/apierror"
)

// idPattern is what an id segment of a name may hold: lowercase letters,
// digits and hyphens, 1 to 63 characters, so that ids are safe in NATS
// subjects, URLs and SQL without escaping.
var idPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// ValidID reports whether id may be an id segment of a name.
func ValidID(id string) bool { return idPattern.MatchString(id) }

// Parse matches name against pattern, whose wildcard segments are "*"
// (for example "users/*/messages/*"), and returns the wildcard segments.
// field names the request field, for the error.
func Parse(field, pattern, name string) ([]string, error) {
	ps := strings.Split(pattern, "/")
	ns := strings.Split(name, "/")
	if name == "" {
		return nil, apierror.Invalid(field, "is required (%s)", pattern)
	}
	if len(ps) != len(ns) {
		return nil, apierror.Invalid(field, "%q is not a name of the form %s", name, pattern)
	}
	var ids []string
	for i, p := range ps {
		if p == "*" {
			if !ValidID(ns[i]) {
				return nil, apierror.Invalid(field, "%q is not a name of the form %s: %q is not a valid id", name, pattern, ns[i])
			}
			ids = append(ids, ns[i])
			continue
		}
		if p != ns[i] {
			return nil, apierror.Invalid(field, "%q is not a name of the form %s", name, pattern)
		}
	}
	return ids, nil
}

// User returns "users/{id}".
func User(id string) string { return "users/" + id }

// Mailbox returns "users/{user}/mailboxes/{mailbox}".
func Mailbox(user, mailbox string) string { return "users/" + user + "/mailboxes/" + mailbox }

// Message returns "users/{user}/messages/{message}".
func Message(user, message string) string { return "users/" + user + "/messages/" + message }

// SyncJob returns "users/{user}/syncJobs/{job}".
func SyncJob(user, job string) string { return "users/" + user + "/syncJobs/" + job }

// APIKey returns "users/{user}/apiKeys/{key}".
func APIKey(user, key string) string { return "users/" + user + "/apiKeys/" + key }
