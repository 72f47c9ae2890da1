// Package rules is the classifier's first tier: header rules that recognize
// mail whose kind its headers give away (mailing lists, automated senders,
// calendar invitations, security notices) without reading the body or
// asking a language model. It is pure: no I/O, no clock, no state.
//
// Rules are tried in precedence order and the first that matches decides:
//
//  1. security-notice: an automated sender (no-reply address or
//     Auto-Submitted) with a security subject ("security alert", "new
//     sign-in", "password reset", "verification code", …) → security.
//     First, because such notices also look automated and are the one
//     kind of automated mail a person must not miss.
//  2. auto-submitted: Auto-Submitted other than "no" (RFC 3834),
//     Precedence: auto_reply, X-Autoreply, X-Autorespond → notifications.
//     Before the list rules, because issue trackers and CI systems send
//     their notifications with List-Id and List-Unsubscribe too, and
//     Auto-Submitted is the more specific statement; newsletters do not
//     set it.
//  3. list-unsubscribe, list-id: List-Unsubscribe or List-Id → newsletters.
//  4. precedence-list: Precedence: list → newsletters (mailing-list traffic
//     whose list headers were stripped).
//  5. calendar: a text/calendar part → work, not confident. In a product for
//     a team's mailboxes an invitation is most often a meeting, but the part
//     alone cannot tell a meeting from a dentist's appointment or a flight's
//     itinerary, so the language model, when there is one, decides.
//  6. no-reply-sender: a no-reply or mailer-daemon sender → notifications,
//     not confident: receipts, shipping updates and booking confirmations
//     also come from no-reply addresses, and the language model can tell
//     them apart as shopping, finance or travel.
//  7. precedence-bulk: Precedence: bulk or junk → promotions, not
//     confident. Legitimate newsletters announce themselves with list
//     headers (required of bulk senders by the large mailbox providers
//     since 2024) and matched rule 3; bulk mail without them is most often
//     a marketing blast from an older mailer. Autoresponders and tools also
//     use bulk, hence not confident.
//  8. fallback: anything else → other, confidence 0.2, not confident.
//
// Header names are compared without regard to case; values are trimmed and
// compared in lower case.
package rules

import (
	"context"
	"regexp"
	"strings"
	"unicode"

	"mailroom.dev/services/classifier/internal/classify"
)

// Rule names, as they appear in a classification's rule field. They are
// stable: the store keeps them.
const (
	SecurityNotice  = "security-notice"
	AutoSubmitted   = "auto-submitted"
	ListUnsubscribe = "list-unsubscribe"
	ListID          = "list-id"
	PrecedenceList  = "precedence-list"
	Calendar        = "calendar"
	NoReplySender   = "no-reply-sender"
	PrecedenceBulk  = "precedence-bulk"
	Fallback        = "fallback"
)

// HeaderNames lists the headers the rules read; a normalizer that keeps only
// the headers that matter must keep these.
var HeaderNames = []string{"List-Unsubscribe", "List-Id", "Precedence", "Auto-Submitted", "X-Autoreply", "X-Autorespond", "Content-Type"}

type rule struct {
	name  string
	match func(m *classify.Message) bool
	v     classify.Verdict
}

// rules in precedence order; see the package comment for why this order.
var rules = []rule{
	{SecurityNotice, func(m *classify.Message) bool { return automated(m) && securitySubject(m.Subject) },
		classify.Verdict{Category: classify.Security, Confidence: 0.9, Confident: true, Priority: classify.PriorityHigh,
			Reason: "an automated sender with a security notice subject"}},
	{AutoSubmitted, autoSubmitted,
		classify.Verdict{Category: classify.Notifications, Confidence: 0.85, Confident: true, Priority: classify.PriorityLow,
			Reason: "marked as automatically submitted"}},
	{ListUnsubscribe, func(m *classify.Message) bool { return nonEmpty(m, "List-Unsubscribe") },
		classify.Verdict{Category: classify.Newsletters, Confidence: 0.9, Confident: true, Priority: classify.PriorityLow,
			Reason: "has a List-Unsubscribe header"}},
	{ListID, func(m *classify.Message) bool { return nonEmpty(m, "List-Id") },
		classify.Verdict{Category: classify.Newsletters, Confidence: 0.9, Confident: true, Priority: classify.PriorityLow,
			Reason: "has a List-Id header"}},
	{PrecedenceList, func(m *classify.Message) bool { return precedence(m) == "list" },
		classify.Verdict{Category: classify.Newsletters, Confidence: 0.8, Confident: true, Priority: classify.PriorityLow,
			Reason: "sent with Precedence: list"}},
	{Calendar, hasCalendar,
		classify.Verdict{Category: classify.Work, Confidence: 0.6, Priority: classify.PriorityNormal,
			Reason: "carries a calendar invitation"}},
	{NoReplySender, func(m *classify.Message) bool { return noReply(m.Sender()) },
		classify.Verdict{Category: classify.Notifications, Confidence: 0.7, Priority: classify.PriorityLow,
			Reason: "sent from a no-reply address"}},
	{PrecedenceBulk, func(m *classify.Message) bool { p := precedence(m); return p == "bulk" || p == "junk" },
		classify.Verdict{Category: classify.Promotions, Confidence: 0.6, Priority: classify.PriorityLow,
			Reason: "sent with Precedence: bulk or junk"}},
}

var fallback = classify.Verdict{Category: classify.Other, Confidence: 0.2, Reason: "no rule matched"}

// Classify returns the verdict of the first rule that matches m, or the
// fallback verdict (other, not confident). The verdict's source is rules and
// its rule names the rule; its time is left for the caller to set.
func Classify(m *classify.Message) classify.Verdict {
	v, name := fallback, Fallback
	for _, r := range rules {
		if r.match(m) {
			v, name = r.v, r.name
			break
		}
	}
	v.Source = classify.SourceRules
	v.Rule = name
	return v
}

// Tier is the rules tier of the classify pipeline.
type Tier struct{}

// Classify classifies req's message with the rules; it never fails.
func (Tier) Classify(_ context.Context, req classify.Request) (classify.Verdict, error) {
	return Classify(&req.Message), nil
}

func headerValue(m *classify.Message, name string) string {
	v, _ := m.Header(name)
	return strings.ToLower(strings.TrimSpace(v))
}

func nonEmpty(m *classify.Message, name string) bool { return headerValue(m, name) != "" }

// precedence returns the Precedence keyword, without comments or parameters.
func precedence(m *classify.Message) string {
	v := headerValue(m, "Precedence")
	if i := strings.IndexAny(v, " ;("); i >= 0 {
		v = v[:i]
	}
	return v
}

// autoSubmittedValue returns the Auto-Submitted keyword ("auto-generated"),
// "" when the header is absent or empty.
func autoSubmittedValue(m *classify.Message) string {
	v := headerValue(m, "Auto-Submitted")
	if i := strings.IndexAny(v, " ;("); i >= 0 {
		v = v[:i]
	}
	return v
}

func autoSubmitted(m *classify.Message) bool {
	if v := autoSubmittedValue(m); v != "" && v != "no" {
		return true
	}
	return precedence(m) == "auto_reply" || nonEmpty(m, "X-Autoreply") || nonEmpty(m, "X-Autorespond")
}

func automated(m *classify.Message) bool {
	if v := autoSubmittedValue(m); v != "" && v != "no" {
		return true
	}
	return noReply(m.Sender())
}

func hasCalendar(m *classify.Message) bool {
	if m.HasCalendar || strings.HasPrefix(headerValue(m, "Content-Type"), "text/calendar") {
		return true
	}
	for _, a := range m.Attachments {
		if strings.HasPrefix(strings.ToLower(a.ContentType), "text/calendar") || strings.HasSuffix(strings.ToLower(a.Filename), ".ics") {
			return true
		}
	}
	return false
}

// noReplyLocal matches the local part of a no-reply address: noreply,
// no-reply, no_reply, donotreply, do-not-reply, dont-reply, alone or as one
// dot-, dash-, underscore- or plus-separated word of it (security-noreply,
// noreply+abc), and the bounce senders mailer-daemon and postmaster.
var noReplyLocal = regexp.MustCompile(`(?:^|[._+-])(?:no[._-]?reply|do[._-]?not[._-]?reply|dont[._-]?reply)(?:$|[._+-])|^(?:mailer-daemon|postmaster)$`)

func noReply(addr string) bool {
	at := strings.LastIndexByte(addr, '@')
	if at <= 0 {
		return false
	}
	return noReplyLocal.MatchString(addr[:at])
}

// securityPhrases are matched as whole words against the subject with every
// run of non-alphanumeric characters turned into one space, so "New sign-in
// to your account" and "[Acme] Security-Alert!" match.
var securityPhrases = []string{
	"security alert", "security notice", "security notification", "security code",
	"new sign in", "new signin", "new login", "new log in", "new device",
	"sign in attempt", "signin attempt", "login attempt", "log in attempt",
	"unusual sign in", "unusual login", "suspicious sign in", "suspicious login", "suspicious activity",
	"password reset", "reset your password", "reset password", "password change", "password changed",
	"password was changed", "password has been changed", "password updated",
	"verification code", "verify your identity", "one time code", "one time password", "one time passcode",
	"login code", "sign in code", "2 step verification", "two step verification",
	"two factor", "2fa", "mfa", "authentication code",
}

func securitySubject(subject string) bool {
	s := " " + words(subject) + " "
	for _, p := range securityPhrases {
		if strings.Contains(s, " "+p+" ") {
			return true
		}
	}
	return false
}

// words lowercases s and turns every run of characters other than letters
// and digits into one space.
func words(s string) string {
	var b strings.Builder
	space := true
	for _, r := range strings.ToLower(s) {
		if unicode.IsLetter(r) || unicode.IsDigit(r) {
			b.WriteRune(r)
			space = false
			continue
		}
		if !space {
			b.WriteByte(' ')
			space = true
		}
	}
	return strings.TrimSpace(b.String())
}
