package rules_test

import (
	"context"
	"testing"

	"mailroom.dev/services/classifier/internal/classify"
	"mailroom.dev/services/classifier/internal/rules"
)

func h(kv ...string) []classify.Header {
	var hs []classify.Header
	for i := 0; i+1 < len(kv); i += 2 {
		hs = append(hs, classify.Header{Name: kv[i], Value: kv[i+1]})
	}
	return hs
}

type want struct {
	category  string
	rule      string
	confident bool
}

func check(t *testing.T, m classify.Message, w want) {
	t.Helper()
	got := rules.Classify(&m)
	if got.Category != w.category || got.Rule != w.rule || got.Confident != w.confident {
		t.Errorf("got (%s, %s, confident=%v), want (%s, %s, confident=%v)",
			got.Category, got.Rule, got.Confident, w.category, w.rule, w.confident)
	}
	if got.Source != classify.SourceRules {
		t.Errorf("source = %v, want rules", got.Source)
	}
	if got.Confidence <= 0 || got.Confidence > 1 {
		t.Errorf("confidence = %v, want in (0, 1]", got.Confidence)
	}
	if got.Confident && got.Confidence < 0.75 {
		t.Errorf("confident verdict with confidence %v", got.Confidence)
	}
	if !got.Confident && got.Confidence >= 0.75 {
		t.Errorf("unconfident verdict with confidence %v", got.Confidence)
	}
	if got.Reason == "" {
		t.Error("reason is empty")
	}
}

const person = "Ada Lovelace <ada@example.com>"

func TestEachRule(t *testing.T) {
	tests := []struct {
		name string
		msg  classify.Message
		want want
	}{
		// list headers
		{"list-unsubscribe", classify.Message{From: "News <news@example.com>", Headers: h("List-Unsubscribe", "<mailto:u@example.com>")},
			want{classify.Newsletters, rules.ListUnsubscribe, true}},
		{"list-unsubscribe lower-case name", classify.Message{From: person, Headers: h("list-unsubscribe", "<https://example.com/u>")},
			want{classify.Newsletters, rules.ListUnsubscribe, true}},
		{"list-unsubscribe upper-case name", classify.Message{From: person, Headers: h("LIST-UNSUBSCRIBE", "<https://example.com/u>")},
			want{classify.Newsletters, rules.ListUnsubscribe, true}},
		{"list-unsubscribe empty value is ignored", classify.Message{From: person, Headers: h("List-Unsubscribe", "  ")},
			want{classify.Other, rules.Fallback, false}},
		{"list-id", classify.Message{From: person, Headers: h("List-ID", "Go Nuts <golang-nuts.googlegroups.com>")},
			want{classify.Newsletters, rules.ListID, true}},

		// Precedence
		{"precedence list", classify.Message{From: person, Headers: h("Precedence", "list")},
			want{classify.Newsletters, rules.PrecedenceList, true}},
		{"precedence list mixed case", classify.Message{From: person, Headers: h("precedence", " List ")},
			want{classify.Newsletters, rules.PrecedenceList, true}},
		{"precedence bulk", classify.Message{From: person, Headers: h("Precedence", "bulk")},
			want{classify.Promotions, rules.PrecedenceBulk, false}},
		{"precedence junk", classify.Message{From: person, Headers: h("PRECEDENCE", "JUNK")},
			want{classify.Promotions, rules.PrecedenceBulk, false}},
		{"precedence first-class is nothing", classify.Message{From: person, Headers: h("Precedence", "first-class")},
			want{classify.Other, rules.Fallback, false}},

		// automated mail
		{"auto-submitted auto-generated", classify.Message{From: person, Headers: h("Auto-Submitted", "auto-generated")},
			want{classify.Notifications, rules.AutoSubmitted, true}},
		{"auto-submitted auto-replied with parameter", classify.Message{From: person, Headers: h("auto-submitted", "Auto-Replied; owner-email=x")},
			want{classify.Notifications, rules.AutoSubmitted, true}},
		{"auto-submitted no is a person", classify.Message{From: person, Headers: h("Auto-Submitted", "no")},
			want{classify.Other, rules.Fallback, false}},
		{"auto-submitted No (case)", classify.Message{From: person, Headers: h("Auto-Submitted", "No")},
			want{classify.Other, rules.Fallback, false}},
		{"precedence auto_reply", classify.Message{From: person, Headers: h("Precedence", "auto_reply")},
			want{classify.Notifications, rules.AutoSubmitted, true}},
		{"x-autoreply", classify.Message{From: person, Headers: h("X-Autoreply", "yes")},
			want{classify.Notifications, rules.AutoSubmitted, true}},

		// no-reply senders
		{"noreply", classify.Message{From: "Shop <noreply@shop.example>"}, want{classify.Notifications, rules.NoReplySender, false}},
		{"no-reply", classify.Message{From: "no-reply@example.com"}, want{classify.Notifications, rules.NoReplySender, false}},
		{"no_reply", classify.Message{FromAddress: "no_reply@example.com"}, want{classify.Notifications, rules.NoReplySender, false}},
		{"do-not-reply", classify.Message{From: "Bank <Do-Not-Reply@bank.example>"}, want{classify.Notifications, rules.NoReplySender, false}},
		{"donotreply", classify.Message{From: "donotreply@example.com"}, want{classify.Notifications, rules.NoReplySender, false}},
		{"prefixed noreply", classify.Message{From: "security-noreply@example.com"}, want{classify.Notifications, rules.NoReplySender, false}},
		{"noreply with tag", classify.Message{From: "noreply+abc@example.com"}, want{classify.Notifications, rules.NoReplySender, false}},
		{"mailer-daemon", classify.Message{From: "MAILER-DAEMON@mx.example.com"}, want{classify.Notifications, rules.NoReplySender, false}},
		{"noreply in the domain is a person", classify.Message{From: "ada@noreply.example.com"}, want{classify.Other, rules.Fallback, false}},
		{"a name containing reply is a person", classify.Message{From: "replyguy@example.com"}, want{classify.Other, rules.Fallback, false}},
		{"noreplyish word is a person", classify.Message{From: "noreplyfan@example.com"}, want{classify.Other, rules.Fallback, false}},

		// calendar
		{"has_calendar", classify.Message{From: person, Subject: "Sync", HasCalendar: true}, want{classify.Work, rules.Calendar, false}},
		{"ics attachment", classify.Message{From: person, Attachments: []classify.Attachment{{Filename: "invite.ICS", ContentType: "application/octet-stream"}}},
			want{classify.Work, rules.Calendar, false}},
		{"text/calendar attachment", classify.Message{From: person, Attachments: []classify.Attachment{{Filename: "x", ContentType: "Text/Calendar; method=REQUEST"}}},
			want{classify.Work, rules.Calendar, false}},
		{"text/calendar top level", classify.Message{From: person, Headers: h("content-type", "text/calendar; charset=utf-8")},
			want{classify.Work, rules.Calendar, false}},

		// security
		{"security alert from no-reply", classify.Message{From: "Google <no-reply@accounts.google.com>", Subject: "Security alert"},
			want{classify.Security, rules.SecurityNotice, true}},
		{"new sign-in", classify.Message{From: "noreply@github.com", Subject: "[GitHub] New sign-in to your account"},
			want{classify.Security, rules.SecurityNotice, true}},
		{"password reset", classify.Message{From: "no-reply@example.com", Subject: "Password Reset Request"},
			want{classify.Security, rules.SecurityNotice, true}},
		{"verification code", classify.Message{From: "noreply@example.com", Subject: "Your verification code is 123456"},
			want{classify.Security, rules.SecurityNotice, true}},
		{"2-step verification", classify.Message{From: "noreply@example.com", Subject: "2-Step Verification turned on"},
			want{classify.Security, rules.SecurityNotice, true}},
		{"security subject from auto-submitted sender", classify.Message{From: "it@example.com", Subject: "Suspicious activity on your account", Headers: h("Auto-Submitted", "auto-generated")},
			want{classify.Security, rules.SecurityNotice, true}},
		{"security subject from a person is not a notice", classify.Message{From: person, Subject: "Password reset for the wiki?"},
			want{classify.Other, rules.Fallback, false}},
		{"security words inside other words do not count", classify.Message{From: "noreply@example.com", Subject: "Unresettable passwords resetting"},
			want{classify.Notifications, rules.NoReplySender, false}},

		// fallback
		{"plain personal mail", classify.Message{From: person, Subject: "Lunch tomorrow?", Headers: h("Message-ID", "<1@example.com>")},
			want{classify.Other, rules.Fallback, false}},
		{"empty message", classify.Message{}, want{classify.Other, rules.Fallback, false}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { check(t, tt.msg, tt.want) })
	}
}

func TestPrecedenceBetweenRules(t *testing.T) {
	tests := []struct {
		name string
		msg  classify.Message
		want want
	}{
		{"security beats list headers", classify.Message{From: "noreply@example.com", Subject: "New sign-in", Headers: h("List-Unsubscribe", "<mailto:u@x>")},
			want{classify.Security, rules.SecurityNotice, true}},
		{"security beats auto-submitted notifications", classify.Message{From: "noreply@example.com", Subject: "Security alert", Headers: h("Auto-Submitted", "auto-generated")},
			want{classify.Security, rules.SecurityNotice, true}},
		{"auto-submitted beats list headers", classify.Message{From: "gitlab@example.com", Headers: h("List-Id", "<proj.gitlab.example.com>", "List-Unsubscribe", "<https://x>", "Auto-Submitted", "auto-generated")},
			want{classify.Notifications, rules.AutoSubmitted, true}},
		{"list-unsubscribe beats precedence bulk", classify.Message{From: person, Headers: h("Precedence", "bulk", "List-Unsubscribe", "<mailto:u@x>")},
			want{classify.Newsletters, rules.ListUnsubscribe, true}},
		{"list-unsubscribe beats no-reply", classify.Message{From: "noreply@news.example", Headers: h("List-Unsubscribe", "<mailto:u@x>")},
			want{classify.Newsletters, rules.ListUnsubscribe, true}},
		{"list-unsubscribe beats calendar", classify.Message{From: person, HasCalendar: true, Headers: h("List-Unsubscribe", "<mailto:u@x>")},
			want{classify.Newsletters, rules.ListUnsubscribe, true}},
		{"list-unsubscribe and list-id name list-unsubscribe", classify.Message{From: person, Headers: h("List-Id", "<l.example>", "List-Unsubscribe", "<mailto:u@x>")},
			want{classify.Newsletters, rules.ListUnsubscribe, true}},
		{"precedence list beats calendar", classify.Message{From: person, HasCalendar: true, Headers: h("Precedence", "list")},
			want{classify.Newsletters, rules.PrecedenceList, true}},
		{"auto-submitted beats calendar", classify.Message{From: person, HasCalendar: true, Headers: h("Auto-Submitted", "auto-generated")},
			want{classify.Notifications, rules.AutoSubmitted, true}},
		{"calendar beats no-reply", classify.Message{From: "noreply@calendar.example", HasCalendar: true},
			want{classify.Work, rules.Calendar, false}},
		{"no-reply beats precedence bulk", classify.Message{From: "noreply@shop.example", Headers: h("Precedence", "bulk")},
			want{classify.Notifications, rules.NoReplySender, false}},
		{"auto-submitted beats precedence bulk", classify.Message{From: person, Headers: h("Precedence", "bulk", "Auto-Submitted", "auto-generated")},
			want{classify.Notifications, rules.AutoSubmitted, true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { check(t, tt.msg, tt.want) })
	}
}

func TestTierAsPipeline(t *testing.T) {
	p := classify.NewPipeline(rules.Tier{})
	v, err := p.Classify(context.Background(), classify.Request{User: "ada", Message: classify.Message{Headers: h("List-Id", "<l.example>")}})
	if err != nil {
		t.Fatal(err)
	}
	if v.Category != classify.Newsletters || v.Source != classify.SourceRules || v.Time.IsZero() {
		t.Errorf("got %+v, want newsletters from rules with a time", v)
	}
}
