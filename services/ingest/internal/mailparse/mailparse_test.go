package mailparse_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"mailroom.dev/services/ingest/internal/mailparse"
)

var now = time.Date(2025, 7, 1, 12, 0, 0, 0, time.UTC)

func parseFile(t *testing.T, name string) *mailparse.Message {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	m, err := mailparse.Parse(raw, mailparse.Options{Now: now})
	if err != nil {
		t.Fatalf("Parse(%s): %v", name, err)
	}
	if got, want := m.Size, int64(len(raw)); got != want {
		t.Errorf("Size = %d, want %d", got, want)
	}
	return m
}

func header(m *mailparse.Message, name string) string {
	for _, h := range m.Headers {
		if h.Name == name {
			return h.Value
		}
	}
	return ""
}

// want lists what a test mail must normalize to; empty fields are not checked.
type want struct {
	subject, from, fromAddress, messageID string
	to, cc                                []string
	date                                  time.Time
	dateFromHeader                        bool
	bodyHas, bodyHasNot                   []string
	bodyIs                                string
	attachments                           []mailparse.Attachment
	calendar                              bool
	headers                               map[string]string
}

func TestParse(t *testing.T) {
	tests := []struct {
		file string
		want want
	}{
		{"alternative.eml", want{
			subject:        "Re: Compiler review on Thursday",
			from:           "Grace Hopper <Grace.Hopper@navy.example.mil>",
			fromAddress:    "grace.hopper@navy.example.mil",
			messageID:      "CAF7x9q1b2c3d4e5f6@mail.navy.example.mil",
			to:             []string{"Ada Lovelace <ada@example.com>", `"Babbage, Charles" <charles@example.com>`},
			cc:             []string{"team@example.com"},
			date:           time.Date(2025, 6, 3, 16, 14, 2, 0, time.UTC),
			dateFromHeader: true,
			// text/plain is preferred: its line breaks and quote marks survive.
			bodyHas:    []string{"Hi Ada,\n\nThursday at 2pm works for me. Could you send the latest draft of the\nreport", "> Are you free on Thursday"},
			bodyHasNot: []string{"<div>", "overflow-wrap"},
			headers: map[string]string{
				"X-Mailer":     "Apple Mail (2.3774.600.62)",
				"Return-Path":  "<grace.hopper@navy.example.mil>",
				"In-Reply-To":  "<20250602171501.ABC123@example.com>",
				"Content-Type": `multipart/alternative; boundary="Apple-Mail=_5D2E1A8B-7C3F-4B8E-9A61-0F2D3C4B5A69"`,
			},
		}},
		{"html_only.eml", want{
			subject:     "Your order #40213 has shipped",
			from:        "Example Shop <orders@shop.example.net>",
			fromAddress: "orders@shop.example.net",
			bodyIs: "Example Shop\n\nGood news, Ada!\n\n" +
				"Your order #40213 is on its way \u2014 it should arrive by Friday, June 6.\n\n" +
				"Items: 1\u00d7 Mechanical keyboard, 2\u00d7 USB\u2011C cable\n\n" +
				"Track your package\n\n" +
				"- Carrier: Parcel Express\n- Tracking number: PX99812734\n\n" +
				"Questions? Visit our help center & we'll sort it out.",
			bodyHasNot: []string{"trackOpen", "font-family", "Your order has shipped", "https://"},
			headers:    map[string]string{"Reply-To": "Example Shop Support <support@shop.example.net>"},
		}},
		{"quoted_printable.eml", want{
			subject: "Notes from the guidance software meeting",
			// Soft line breaks join; encoded UTF-8 decodes.
			bodyHas: []string{"Here are today\u2019s notes. The priority scheduler held up well in the simulation, even with",
				"Caf\u00e9 order for Monday: 3 \u00d7 espresso."},
			bodyHasNot: []string{"=E2", "=\n"},
		}},
		{"base64.eml", want{
			subject: "Your May statement is ready",
			date:    time.Date(2025, 6, 1, 5, 0, 0, 0, time.UTC),
			bodyIs: "Hello Ada,\n\nYour monthly statement for account ending 4821 is ready.\n" +
				"Balance on 31 May 2025: \u20ac1,204.50\n\nLog in to your online banking to view it.\n\n\u2014 Example Bank",
		}},
		{"latin1.eml", want{
			subject:     "R\u00e9sum\u00e9 de la r\u00e9union",
			from:        "H\u00e9l\u00e8ne Dupr\u00e9 <helene@example.fr>",
			fromAddress: "helene@example.fr",
			bodyHas:     []string{"Voici le r\u00e9sum\u00e9 de la r\u00e9union de lundi : le caf\u00e9 sera \u00e0 9 h", "\u00c0 bient\u00f4t,\nH\u00e9l\u00e8ne"},
		}},
		{"windows1252.eml", want{
			subject: "Invoice for Q2 consulting",
			bodyHas: []string{"The invoice for \u201cQ2 consulting\u201d is attached \u2013 total \u20ac3,150.", "anything\u2019s unclear"},
			headers: map[string]string{"X-Mailer": "Microsoft Outlook 16.0"},
		}},
		{"shift_jis.eml", want{
			subject:     "\u6253\u3061\u5408\u308f\u305b\u306e\u65e5\u7a0b\u306b\u3064\u3044\u3066", // 打ち合わせの日程について (ISO-2022-JP encoded word)
			from:        "\u4f50\u85e4\u82b1\u5b50 <sato@example.co.jp>",
			fromAddress: "sato@example.co.jp",
			date:        time.Date(2025, 6, 12, 6, 30, 0, 0, time.UTC),
			bodyHas:     []string{"\u5c71\u7530\u69d8", "\u706b\u66dc\u65e5\u306e\u5348\u5f8c\u4e09\u6642"}, // 山田様, 火曜日の午後三時
		}},
		{"unknown_charset.eml", want{
			subject: "Report from the old system",
			// The unknown charset's byte 0xA9 is not UTF-8: it is replaced, the rest kept.
			bodyIs: "Status: all jobs finished \uFFFD ok\nDetails follow.",
		}},
		{"attachments.eml", want{
			subject: "Q2 report",
			bodyIs:  "Hi Ada,\n\nThe Q2 report is attached. Here is the chart:\n\nRevenue chart\n\nCheers,\nAlan",
			attachments: []mailparse.Attachment{
				{Filename: "chart.png", ContentType: "image/png", Size: 70},
				{Filename: "Q2 report.pdf", ContentType: "application/pdf", Size: 433},
			},
		}},
		{"missing_date.eml", want{
			subject:        "Build #5521 passed",
			fromAddress:    "noreply@builds.example.dev",
			date:           now,
			dateFromHeader: false,
			headers: map[string]string{
				"Auto-Submitted":           "auto-generated",
				"X-Auto-Response-Suppress": "All",
				"Precedence":               "bulk",
			},
		}},
		{"encoded_subject.eml", want{
			subject:     "\u00c9l\u00e9ments de la r\u00e9union \U0001F4C5 \u2014 pr\u00f3ximo lunes",
			from:        "Jos\u00e9 Mar\u00eda Garc\u00eda <JoseMaria@Example.ES>",
			fromAddress: "josemaria@example.es",
			to:          []string{"\u5c71\u7530\u592a\u90ce <yamada@example.jp>"},
			bodyHas:     []string{"Os env\u00edo los elementos"},
		}},
		{"newsletter.eml", want{
			subject:     "The Weekly Gopher #212: logging, iterators, faster tests",
			fromAddress: "hello@news.example.io",
			bodyHas:     []string{"THE WEEKLY GOPHER \u2014 Issue 212\n\nThis week: structured logging"},
			bodyHasNot:  []string{"preheader", "color:red"},
			headers: map[string]string{
				"List-Unsubscribe":      "<https://news.example.io/u/8f2e1c>, <mailto:unsubscribe-8f2e1c@news.example.io>",
				"List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
				"List-Id":               "The Weekly Gopher <weekly.news.example.io>",
				"Precedence":            "bulk",
				"Feedback-Id":           "212:weekly:newsletter:examplemail",
			},
		}},
		{"calendar.eml", want{
			subject:     "Invitation: Compiler review @ Thu Jun 26, 2025 2pm - 3pm (UTC) (ada@example.com)",
			fromAddress: "grace.hopper@navy.example.mil",
			calendar:    true,
			bodyHas:     []string{"You have been invited to the following event.\n\nCompiler review"},
			bodyHasNot:  []string{"BEGIN:VCALENDAR"},
			attachments: []mailparse.Attachment{{Filename: "invite.ics", ContentType: "application/ics", Size: 588}},
			headers:     map[string]string{"Sender": "Google Calendar <calendar-notification@google.com>"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			m := parseFile(t, tt.file)
			w := tt.want
			check := func(field, got, want string) {
				t.Helper()
				if want != "" && got != want {
					t.Errorf("%s = %q, want %q", field, got, want)
				}
			}
			check("Subject", m.Subject, w.subject)
			check("From", m.From, w.from)
			check("FromAddress", m.FromAddress, w.fromAddress)
			check("MessageID", m.MessageID, w.messageID)
			check("TextBody", m.TextBody, w.bodyIs)
			if w.to != nil && !slices.Equal(m.To, w.to) {
				t.Errorf("To = %q, want %q", m.To, w.to)
			}
			if w.cc != nil && !slices.Equal(m.Cc, w.cc) {
				t.Errorf("Cc = %q, want %q", m.Cc, w.cc)
			}
			if !w.date.IsZero() {
				if !m.Date.Equal(w.date) || m.DateFromHeader != w.dateFromHeader && w.date == now {
					t.Errorf("Date = %v (from header %v), want %v", m.Date, m.DateFromHeader, w.date)
				}
			}
			for _, s := range w.bodyHas {
				if !strings.Contains(m.TextBody, s) {
					t.Errorf("TextBody lacks %q; got:\n%s", s, m.TextBody)
				}
			}
			for _, s := range w.bodyHasNot {
				if strings.Contains(m.TextBody, s) {
					t.Errorf("TextBody holds %q; got:\n%s", s, m.TextBody)
				}
			}
			if !slices.Equal(m.Attachments, w.attachments) {
				t.Errorf("Attachments = %+v, want %+v", m.Attachments, w.attachments)
			}
			if m.HasCalendar != w.calendar {
				t.Errorf("HasCalendar = %v, want %v", m.HasCalendar, w.calendar)
			}
			for name, v := range w.headers {
				if got := header(m, name); got != v {
					t.Errorf("header %s = %q, want %q", name, got, v)
				}
			}
			if m.TextBody == "" || m.Snippet == "" {
				t.Errorf("empty text body or snippet")
			}
			if !strings.HasPrefix(strings.Join(strings.Fields(m.TextBody), " "), m.Snippet) {
				t.Errorf("Snippet %q is not the start of the text", m.Snippet)
			}
			if len(m.ContentHash) != 64 {
				t.Errorf("ContentHash = %q, want 64 hex digits", m.ContentHash)
			}
		})
	}
}

func TestParseDropsHeadersNotKept(t *testing.T) {
	m := parseFile(t, "alternative.eml")
	for _, h := range m.Headers {
		if !slices.Contains(mailparse.KeptHeaders, h.Name) {
			t.Errorf("header %s kept, not in KeptHeaders", h.Name)
		}
	}
	if header(m, "Received") != "" {
		t.Errorf("Received kept")
	}
}

func TestParseErrors(t *testing.T) {
	garbage, err := os.ReadFile("testdata/garbage.txt")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		raw       []byte
		limits    mailparse.Limits
		wantLimit bool
	}{
		{name: "empty", raw: nil},
		{name: "white space", raw: []byte(" \r\n\r\n\t")},
		{name: "garbage", raw: garbage},
		{name: "binary", raw: []byte{0x89, 'P', 'N', 'G', 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 0x0d}},
		{name: "no mail header", raw: []byte("Note: buy milk\n\nand eggs\n")},
		{name: "body only", raw: []byte("\r\nHello there, this has no header at all.\r\n")},
		{name: "header too large", raw: []byte("Subject: hi\nX-Filler: " + strings.Repeat("a", 2048) + "\n\nbody"),
			limits: mailparse.Limits{MaxHeaderBytes: 1024}, wantLimit: true},
		{name: "part header too large", raw: multipart(1, "X-Filler: "+strings.Repeat("a", 4096)+"\r\n"),
			limits: mailparse.Limits{MaxHeaderBytes: 1024}, wantLimit: true},
		{name: "too many parts", raw: multipart(mailparse.DefaultLimits.MaxParts, ""), wantLimit: true},
		{name: "too deep", raw: nested(mailparse.DefaultLimits.MaxDepth + 1), wantLimit: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := mailparse.Parse(tt.raw, mailparse.Options{Now: now, Limits: tt.limits})
			if err == nil {
				t.Fatalf("Parse = %+v, want an error", m)
			}
			var perr *mailparse.Error
			switch {
			case errors.Is(err, mailparse.ErrEmpty):
				if len(bytes.TrimSpace(tt.raw)) != 0 {
					t.Errorf("ErrEmpty for a message that is not empty")
				}
			case errors.As(err, &perr):
				if perr.Limit != tt.wantLimit {
					t.Errorf("Limit = %v, want %v (%v)", perr.Limit, tt.wantLimit, err)
				}
			default:
				t.Errorf("error %T %v is neither ErrEmpty nor *Error", err, err)
			}
			if strings.Contains(err.Error(), "buy milk") || strings.Contains(err.Error(), "Hello there") || strings.Contains(err.Error(), "not a mail") {
				t.Errorf("error %q quotes the message", err)
			}
		})
	}
}

func TestParseWithinLimits(t *testing.T) {
	// Just under each bound parses.
	for name, raw := range map[string][]byte{
		"parts": multipart(mailparse.DefaultLimits.MaxParts-1, ""),
		"depth": nested(mailparse.DefaultLimits.MaxDepth),
	} {
		m, err := mailparse.Parse(raw, mailparse.Options{Now: now})
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if !strings.Contains(m.TextBody, "leaf") {
			t.Errorf("%s: TextBody = %q, want the leaf text", name, m.TextBody)
		}
	}
}

// multipart returns a multipart/mixed mail of n text parts, each header
// carrying extra.
func multipart(n int, extra string) []byte {
	var b bytes.Buffer
	b.WriteString("From: a@example.com\r\nSubject: parts\r\nContent-Type: multipart/mixed; boundary=BB\r\n\r\n")
	for i := range n {
		fmt.Fprintf(&b, "--BB\r\nContent-Type: text/plain\r\n%s\r\nleaf %d\r\n", extra, i)
	}
	b.WriteString("--BB--\r\n")
	return b.Bytes()
}

// nested returns a mail whose multiparts nest depth levels deep.
func nested(depth int) []byte {
	var b bytes.Buffer
	b.WriteString("From: a@example.com\r\nSubject: nested\r\n")
	for i := range depth {
		fmt.Fprintf(&b, "Content-Type: multipart/mixed; boundary=B%d\r\n\r\n--B%d\r\n", i, i)
	}
	b.WriteString("Content-Type: text/plain\r\n\r\nleaf\r\n")
	for i := depth - 1; i >= 0; i-- {
		fmt.Fprintf(&b, "--B%d--\r\n", i)
	}
	return b.Bytes()
}

func TestParseBoundsText(t *testing.T) {
	line := strings.Repeat("\u00e9t\u00e9 ", 20) + "\n" // two-byte characters, so that a cut can fall inside one
	body := strings.Repeat(line, 400<<10/len(line))
	raw := []byte("From: a@example.com\nSubject: long\nContent-Type: text/plain; charset=utf-8\n\n" + body)
	for _, ct := range []string{"text/plain", "text/html"} {
		r := bytes.Replace(raw, []byte("text/plain"), []byte(ct), 1)
		m, err := mailparse.Parse(r, mailparse.Options{Now: now, Limits: mailparse.Limits{MaxTextBytes: 100<<10 + 1}})
		if err != nil {
			t.Fatal(err)
		}
		if len(m.TextBody) > 100<<10+1 || len(m.TextBody) < 99<<10 {
			t.Errorf("%s: len(TextBody) = %d, want about %d", ct, len(m.TextBody), 100<<10)
		}
		if !utf8.ValidString(m.TextBody) {
			t.Errorf("%s: TextBody is not valid UTF-8 after the cut", ct)
		}
		if !m.TextTruncated {
			t.Errorf("%s: TextTruncated = false", ct)
		}
	}
}

func TestParseHTML(t *testing.T) {
	tests := []struct{ html, want string }{
		{`<p>Hello <b>wor</b>ld</p><p>Second&nbsp;&nbsp;para</p>`, "Hello world\n\nSecond para"},
		{`<div>one<br>two<br/>three</div>`, "one\ntwo\nthree"},
		{`<a href="https://x.example/very/long?tracking=1">Click   here</a> now`, "Click here now"},
		{`<table><tr><td>Name</td><td>Ada</td></tr><tr><td>Role</td><td>Admin</td></tr></table>`, "Name Ada\nRole Admin"},
		{`<head><title>T</title><style>p{}</style></head><body><script>alert(1)</script><noscript>no js</noscript> text</body>`, "no js text"},
		{`<p>Fish &amp; chips &lt;3 &#x1F41F;</p>`, "Fish & chips <3 \U0001F41F"},
		{`<!-- hidden comment --><p>shown</p><!--[if mso]><p>outlook</p><![endif]-->`, "shown"},
	}
	for _, tt := range tests {
		raw := "From: a@example.com\nSubject: html\nContent-Type: text/html; charset=utf-8\n\n" + tt.html
		m, err := mailparse.Parse([]byte(raw), mailparse.Options{Now: now})
		if err != nil {
			t.Fatal(err)
		}
		if m.TextBody != tt.want {
			t.Errorf("html %q\n got %q\nwant %q", tt.html, m.TextBody, tt.want)
		}
	}
}

func TestParseLenientHeaders(t *testing.T) {
	raw := "From nobody@example.com Sat Jun 21 09:00:00 2025\n" + // mbox separator line
		"From: Broken Sender <Broken@Example.com>>, \n" +
		"To: ada@example.com, not an address\n" +
		"Subject: =?x-unknown?Q?caf=E9?= menu\n" +
		"Date: sometime last week\n" +
		"Message-ID: not-in-brackets@example.com\n" +
		"Content-Type: text/plain; charset=\"utf-8\"; charset=\"latin1\"\n\n" +
		"body \xff text\n"
	m, err := mailparse.Parse([]byte(raw), mailparse.Options{Now: now})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := m.FromAddress, "broken@example.com"; got != want {
		t.Errorf("FromAddress = %q, want %q", got, want)
	}
	if got, want := m.MessageID, "not-in-brackets@example.com"; got != want {
		t.Errorf("MessageID = %q, want %q", got, want)
	}
	if !strings.Contains(m.Subject, "menu") || !utf8.ValidString(m.Subject) {
		t.Errorf("Subject = %q, want the raw value, valid UTF-8", m.Subject)
	}
	if !slices.Contains(m.To, "ada@example.com") {
		t.Errorf("To = %q, want ada@example.com among them", m.To)
	}
	if got, want := m.TextBody, "body \uFFFD text"; got != want {
		t.Errorf("TextBody = %q, want %q", got, want)
	}
	if m.DateFromHeader {
		t.Errorf("Date %v taken from an unparseable header", m.Date)
	}
}

func TestContentHash(t *testing.T) {
	base := "From: Ada <ada@example.com>\nSubject: Lunch?\nDate: Mon, 2 Jun 2025 10:00:00 +0000\n\nAre you free\nfor lunch today?\n"
	hash := func(raw string) string {
		t.Helper()
		m, err := mailparse.Parse([]byte(raw), mailparse.Options{Now: now})
		if err != nil {
			t.Fatal(err)
		}
		return m.ContentHash
	}
	h := hash(base)
	same := []string{
		strings.ReplaceAll(base, "\n", "\r\n"),
		strings.Replace(base, "free\nfor", "free for", 1),
		strings.Replace(base, "Ada <ada@", "Ada L. <ADA@", 1),
		strings.Replace(base, "10:00:00", "11:00:00", 1),
	}
	for i, raw := range same {
		if got := hash(raw); got != h {
			t.Errorf("variant %d: hash differs; want the same content to hash alike", i)
		}
	}
	differ := []string{
		strings.Replace(base, "Lunch?", "Dinner?", 1),
		strings.Replace(base, "ada@example.com", "bob@example.com", 1),
		strings.Replace(base, "today", "tomorrow", 1),
	}
	for i, raw := range differ {
		if got := hash(raw); got == h {
			t.Errorf("variant %d: hash is the same for different content", i)
		}
	}
}

func TestSnippet(t *testing.T) {
	body := strings.Repeat("word ", 100)
	m, err := mailparse.Parse([]byte("From: a@example.com\nSubject: s\n\n"+body), mailparse.Options{Now: now})
	if err != nil {
		t.Fatal(err)
	}
	if n := utf8.RuneCountInString(m.Snippet); n > mailparse.SnippetRunes || n < mailparse.SnippetRunes*3/4 {
		t.Errorf("snippet has %d characters, want at most %d and not much less", n, mailparse.SnippetRunes)
	}
	if strings.HasSuffix(m.Snippet, " ") || strings.HasSuffix(m.Snippet, "wor") {
		t.Errorf("snippet %q is not cut at a word", m.Snippet)
	}
}

func FuzzNormalize(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.eml")
	more, _ := filepath.Glob("testdata/*.txt")
	for _, name := range append(files, more...) {
		raw, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
	f.Add(multipart(3, ""))
	f.Add(nested(3))
	limits := mailparse.Limits{MaxTextBytes: 4096, MaxParts: 50, MaxDepth: 5, MaxHeaderBytes: 8192}
	f.Fuzz(func(t *testing.T, raw []byte) {
		m, err := mailparse.Parse(raw, mailparse.Options{Now: now, Limits: limits})
		if err != nil {
			// A clear error: empty, or a reason that quotes nothing.
			var perr *mailparse.Error
			if !errors.Is(err, mailparse.ErrEmpty) && (!errors.As(err, &perr) || perr.Reason == "") {
				t.Fatalf("error %T %v is neither ErrEmpty nor a *mailparse.Error", err, err)
			}
			return
		}
		for _, s := range append([]string{m.Subject, m.From, m.FromAddress, m.MessageID, m.TextBody, m.Snippet}, append(m.To, m.Cc...)...) {
			if !utf8.ValidString(s) {
				t.Fatalf("invalid UTF-8: %q", s)
			}
		}
		if len(m.TextBody) > limits.MaxTextBytes {
			t.Fatalf("len(TextBody) = %d over %d", len(m.TextBody), limits.MaxTextBytes)
		}
		if utf8.RuneCountInString(m.Snippet) > mailparse.SnippetRunes {
			t.Fatalf("snippet too long")
		}
		if m.Date.IsZero() {
			t.Fatalf("zero date")
		}
	})
}

// adversarial are the mails that once made MIME parsers run out of time or
// memory: each must be handled (parsed, or refused with a limit error)
// within a bounded allocation.
func adversarial() map[string]struct {
	raw       []byte
	wantLimit bool
} {
	var parts bytes.Buffer
	parts.WriteString("From: a@example.com\r\nSubject: parts\r\nContent-Type: multipart/mixed; boundary=P\r\n\r\n")
	for i := range 10000 {
		fmt.Fprintf(&parts, "--P\r\nContent-Type: text/plain\r\n\r\npart %d\r\n", i)
	}
	parts.WriteString("--P--\r\n")

	var header bytes.Buffer
	header.WriteString("From: a@example.com\r\nSubject: big header\r\n")
	for header.Len() < 2<<20 {
		header.WriteString("X-Filler: " + strings.Repeat("h", 990) + "\r\n")
	}
	header.WriteString("\r\nbody\r\n")

	return map[string]struct {
		raw       []byte
		wantLimit bool
	}{
		"10000 parts":      {parts.Bytes(), true},
		"1000 deep":        {nested(1000), true},
		"2 MB header":      {header.Bytes(), true},
		"unknown charset":  {[]byte("From: a@example.com\r\nSubject: =?x-nobody-knows?Q?caf=E9?=\r\nContent-Type: text/plain; charset=x-nobody-knows\r\n\r\ncaf\xe9 au lait\r\n"), false},
		"2 MB single line": {append([]byte("From: a@example.com\r\nSubject: line\r\n\r\n"), bytes.Repeat([]byte("w"), 2<<20)...), false},
	}
}

// TestParseAdversarialBounds parses each adversarial mail and checks the
// outcome and what it allocated (under 64 MiB each). Time is measured by
// BenchmarkParseAdversarial, not asserted: the machine is shared.
func TestParseAdversarialBounds(t *testing.T) {
	for name, tt := range adversarial() {
		t.Run(name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			m, err := mailparse.Parse(tt.raw, mailparse.Options{Now: now})
			runtime.ReadMemStats(&after)
			var perr *mailparse.Error
			switch {
			case tt.wantLimit && (!errors.As(err, &perr) || !perr.Limit):
				t.Fatalf("Parse = %v, %v; want a limit error", m, err)
			case !tt.wantLimit && err != nil:
				t.Fatalf("Parse: %v", err)
			}
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 64<<20 {
				t.Errorf("allocated %d MiB, want under 64", alloc>>20)
			}
			if m != nil && len(m.TextBody) > mailparse.DefaultLimits.MaxTextBytes {
				t.Errorf("text body of %d bytes", len(m.TextBody))
			}
			if name == "unknown charset" && (!strings.Contains(m.TextBody, "au lait") || !utf8.ValidString(m.Subject)) {
				t.Errorf("unknown charset: subject %q, body %q", m.Subject, m.TextBody)
			}
		})
	}
}

func BenchmarkParseAdversarial(b *testing.B) {
	for name, tt := range adversarial() {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(tt.raw)))
			for b.Loop() {
				_, _ = mailparse.Parse(tt.raw, mailparse.Options{Now: now})
			}
		})
	}
}
