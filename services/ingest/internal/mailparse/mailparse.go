// Package mailparse turns a raw RFC 822 message into the normalized message
// that the classifier and the store work with: decoded headers, the sender's
// bare address, the headers that matter for classification, a bounded plain
// text body (HTML turned into text), attachment descriptions without their
// content, and a content hash.
//
// MIME is parsed with github.com/emersion/go-message, which streams: parts
// are read one after the other and never held whole, so what a message costs
// is bounded by Limits and not by what the sender put in it. Charsets other
// than UTF-8 are decoded through golang.org/x/text (go-message/charset); a
// charset nobody knows keeps its bytes, with invalid UTF-8 replaced.
//
// Errors never quote the message: they may be shown to callers and logged.
package mailparse

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/mail"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/emersion/go-message"
	_ "github.com/emersion/go-message/charset" // decodes non-UTF-8 charsets in bodies and encoded words
	gomail "github.com/emersion/go-message/mail"
	"github.com/emersion/go-message/textproto"
)

// Limits bound what Parse reads and keeps. The caller bounds the size of
// the raw message itself. A zero field takes its default.
type Limits struct {
	// MaxHeaderBytes bounds one header block, of the message or of a part (default 1 MiB).
	MaxHeaderBytes int
	// MaxParts bounds the number of MIME entities, the message included (default 1000).
	MaxParts int
	// MaxDepth bounds how deep multiparts nest (default 20).
	MaxDepth int
	// MaxTextBytes bounds the text body kept, in bytes of UTF-8 (default 256 KiB).
	MaxTextBytes int
	// MaxAttachments bounds the attachments described; more are counted in
	// no list (default 200), so that a normalized message stays well under
	// the 1 MB a NATS message may carry.
	MaxAttachments int
	// MaxRecipients bounds the To and Cc lists each (default 100).
	MaxRecipients int
}

// DefaultLimits are the limits a zero Limits stands for.
var DefaultLimits = Limits{
	MaxHeaderBytes: 1 << 20,
	MaxParts:       1000,
	MaxDepth:       20,
	MaxTextBytes:   256 << 10,
	MaxAttachments: 200,
	MaxRecipients:  100,
}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits
	if l.MaxHeaderBytes > 0 {
		d.MaxHeaderBytes = l.MaxHeaderBytes
	}
	if l.MaxParts > 0 {
		d.MaxParts = l.MaxParts
	}
	if l.MaxDepth > 0 {
		d.MaxDepth = l.MaxDepth
	}
	if l.MaxTextBytes > 0 {
		d.MaxTextBytes = l.MaxTextBytes
	}
	if l.MaxAttachments > 0 {
		d.MaxAttachments = l.MaxAttachments
	}
	if l.MaxRecipients > 0 {
		d.MaxRecipients = l.MaxRecipients
	}
	return d
}

// SnippetRunes is the length of Message.Snippet, in characters.
const SnippetRunes = 200

// Per-header bounds: a kept header value is cut at maxHeaderValue bytes and
// at most maxHeaderRepeats fields of one name are kept.
const (
	maxHeaderValue   = 2048
	maxHeaderRepeats = 5
	maxFilename      = 255
)

// KeptHeaders are the header names that matter for classification, in the
// order they appear in Message.Headers.
var KeptHeaders = []string{
	"List-Unsubscribe",
	"List-Unsubscribe-Post",
	"List-Id",
	"List-Post",
	"Precedence",
	"Auto-Submitted",
	"X-Auto-Response-Suppress",
	"X-Autoreply",
	"X-Autorespond",
	"Reply-To",
	"Return-Path",
	"Sender",
	"X-Mailer",
	"User-Agent",
	"Content-Type",
	"Importance",
	"X-Priority",
	"Priority",
	"Feedback-Id",
	"In-Reply-To",
	"References",
}

// Message is a normalized mail.
type Message struct {
	// MessageID is the Message-ID header without angle brackets.
	MessageID string
	// Subject is the decoded subject.
	Subject string
	// From is the formatted sender, "Ada Lovelace <ada@example.com>".
	From string
	// FromAddress is the sender's bare address, lowercased.
	FromAddress string
	// To and Cc are the formatted recipients.
	To, Cc []string
	// Date is the Date header, or Options.Now when it is missing or unparseable.
	Date time.Time
	// DateFromHeader tells whether Date came from the Date header.
	DateFromHeader bool
	// Headers are the KeptHeaders present, decoded.
	Headers []Header
	// TextBody is the plain text, bounded by Limits.MaxTextBytes.
	TextBody string
	// TextTruncated tells that the text was longer than the bound.
	TextTruncated bool
	// Snippet is the first SnippetRunes characters of the text, on one line.
	Snippet string
	// Attachments describe the attached files, without their content.
	Attachments []Attachment
	// Size is the size of the raw message in bytes.
	Size int64
	// HasCalendar tells that the mail carries a calendar (text/calendar or .ics).
	HasCalendar bool
	// ContentHash is the hex SHA-256 of the normalized subject, sender address and text.
	ContentHash string
}

// Header is one kept header field.
type Header struct {
	Name  string
	Value string
}

// Attachment describes one attached file.
type Attachment struct {
	Filename    string
	ContentType string
	// Size is the decoded size in bytes.
	Size int64
}

// Options configure Parse.
type Options struct {
	// Now stands in for a missing or unparseable Date header.
	Now time.Time
	// Limits bound the parse; zero fields take DefaultLimits.
	Limits Limits
}

// ErrEmpty is returned for an empty message.
var ErrEmpty = errors.New("the message is empty")

// Error is a message that cannot be parsed. Reason is safe to show: it
// never quotes the message.
type Error struct {
	Reason string
	// Limit tells that a bound of Limits was exceeded.
	Limit bool
	err   error
}

// Error returns the reason.
func (e *Error) Error() string { return e.Reason }

// Unwrap returns the underlying error, whose text may quote the message.
func (e *Error) Unwrap() error { return e.err }

func malformed(reason string, err error) *Error { return &Error{Reason: reason, err: err} }

func overLimit(format string, args ...any) *Error {
	return &Error{Reason: fmt.Sprintf(format, args...), Limit: true}
}

// Parse normalizes raw. It fails on an empty message, on one without a
// header of mail (none of From, Sender, To, Cc, Subject, Date, Message-ID), on a header
// that cannot be read, and when a bound of Limits is exceeded; everything
// else (unknown charsets, broken encodings, truncated parts) degrades to a
// best-effort result.
func Parse(raw []byte, opts Options) (*Message, error) {
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil, ErrEmpty
	}
	lim := opts.Limits.withDefaults()
	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	// The header is read under the same byte budget as part headers (what
	// the reader buffers ahead included), then measured exactly.
	hr := &budgetReader{r: bytes.NewReader(skipMboxLine(raw)), budget: int64(lim.MaxHeaderBytes) + headerSlack}
	e, err := message.ReadWithOptions(hr, &message.ReadOptions{MaxHeaderBytes: -1})
	hr.budget = -1
	if hr.exceeded || (e != nil && headerSize(e.Header.Header) > lim.MaxHeaderBytes) {
		return nil, overLimit("the header is larger than %d bytes", lim.MaxHeaderBytes)
	}
	if err != nil && !message.IsUnknownCharset(err) && !message.IsUnknownEncoding(err) {
		return nil, malformed("the header is not an RFC 5322 header (a line is neither a field nor a continuation)", err)
	}
	if !hasMailHeader(e.Header) {
		return nil, malformed("the header has none of From, Sender, To, Cc, Subject, Date or Message-ID", nil)
	}

	m := &Message{Size: int64(len(raw))}
	readHeader(m, e.Header, now, lim)

	w := &walker{lim: lim, msg: m}
	if err := w.walk(e, 0); err != nil {
		return nil, err
	}
	m.TextBody, m.TextTruncated = w.body()
	m.Snippet = snippet(m.TextBody)
	m.ContentHash = contentHash(m)
	return m, nil
}

// skipMboxLine drops the "From sender date" line that mbox files and some
// .eml exports put before the header.
func skipMboxLine(raw []byte) []byte {
	if !bytes.HasPrefix(raw, []byte("From ")) {
		return raw
	}
	if i := bytes.IndexByte(raw, '\n'); i >= 0 {
		return raw[i+1:]
	}
	return raw
}

func hasMailHeader(h message.Header) bool {
	for _, k := range []string{"From", "To", "Subject", "Date", "Message-Id", "Sender", "Cc"} {
		if h.Has(k) {
			return true
		}
	}
	return false
}

func readHeader(m *Message, mh message.Header, now time.Time, lim Limits) {
	h := gomail.Header{Header: mh}

	subject, _ := h.Subject() // on an unknown charset the raw value comes back
	m.Subject = cleanLine(subject, 1024)

	if id, err := h.MessageID(); err == nil && id != "" {
		m.MessageID = cleanLine(id, 998)
	} else {
		m.MessageID = cleanLine(strings.Trim(strings.TrimSpace(h.Get("Message-Id")), "<>"), 998)
	}

	from := addresses(h, "From", 1)
	if len(from) == 0 {
		from = addresses(h, "Sender", 1)
	}
	if len(from) > 0 {
		m.From, m.FromAddress = from[0].formatted, from[0].address
	}
	for _, a := range addresses(h, "To", lim.MaxRecipients) {
		m.To = append(m.To, a.formatted)
	}
	for _, a := range addresses(h, "Cc", lim.MaxRecipients) {
		m.Cc = append(m.Cc, a.formatted)
	}

	m.Date = now.UTC()
	if d, err := h.Date(); err == nil && !d.IsZero() {
		m.Date, m.DateFromHeader = d.UTC(), true
	} else if d, ok := lenientDate(h.Get("Date")); ok {
		m.Date, m.DateFromHeader = d.UTC(), true
	}

	for _, name := range KeptHeaders {
		fields := mh.FieldsByKey(name)
		n := 0
		for fields.Next() && n < maxHeaderRepeats {
			v, _ := fields.Text()
			v = cleanLine(v, maxHeaderValue)
			if v == "" {
				continue
			}
			m.Headers = append(m.Headers, Header{Name: name, Value: v})
			n++
		}
	}
}

// lenientDate parses the dates seen in the wild that net/mail refuses, such
// as a missing day of week comma or a named zone net/mail does not know.
func lenientDate(v string) (time.Time, bool) {
	v = strings.TrimSpace(v)
	if i := strings.IndexByte(v, '('); i > 0 {
		v = strings.TrimSpace(v[:i])
	}
	for _, layout := range []string{
		"Mon, 2 Jan 2006 15:04:05 -0700",
		"Mon 2 Jan 2006 15:04:05 -0700",
		"2 Jan 2006 15:04:05 -0700",
		"Mon, 2 Jan 2006 15:04:05 MST",
		"Mon, 2 Jan 2006 15:04 -0700",
		"Mon, 2 Jan 06 15:04:05 -0700",
		"Mon Jan 2 15:04:05 2006",
		"Mon Jan 2 15:04:05 MST 2006",
		time.RFC3339,
	} {
		if t, err := time.Parse(layout, v); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

type address struct {
	formatted string
	address   string
}

// addresses returns up to max addresses of the header field key. A list
// that net/mail refuses is split on commas and each piece read leniently,
// so that a sender is never lost to a stray character.
func addresses(h gomail.Header, key string, max int) []address {
	list, err := h.AddressList(key)
	var out []address
	if err == nil {
		for _, a := range list {
			if len(out) == max {
				break
			}
			out = append(out, address{formatted: formatAddress(a.Name, a.Address), address: strings.ToLower(cleanLine(a.Address, 320))})
		}
		return out
	}
	raw, _ := h.Text(key)
	for _, piece := range strings.Split(raw, ",") {
		if len(out) == max {
			break
		}
		piece = cleanLine(piece, 998)
		if piece == "" {
			continue
		}
		if a, err := mail.ParseAddress(piece); err == nil {
			out = append(out, address{formatted: formatAddress(a.Name, a.Address), address: strings.ToLower(a.Address)})
			continue
		}
		out = append(out, address{formatted: piece, address: strings.ToLower(bareAddress(piece))})
	}
	return out
}

// bareAddress finds an address in text that is not a valid address list:
// what is between angle brackets, else the first word holding an "@".
func bareAddress(s string) string {
	if i := strings.LastIndexByte(s, '<'); i >= 0 {
		if j := strings.IndexByte(s[i:], '>'); j > 0 {
			return strings.TrimSpace(s[i+1 : i+j])
		}
	}
	for _, f := range strings.Fields(s) {
		if strings.Contains(f, "@") {
			return strings.Trim(f, "<>\"'(),;")
		}
	}
	return ""
}

// formatAddress formats an address for people: "Name <addr>", the name
// quoted only when it holds characters that would make the text ambiguous.
// net/mail's Address.String encodes non-ASCII names, which is for the wire.
func formatAddress(name, addr string) string {
	name = cleanLine(name, 320)
	addr = cleanLine(addr, 320)
	if name == "" || name == addr {
		return addr
	}
	if strings.ContainsAny(name, `()<>[]:;@\,."`) {
		name = `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(name) + `"`
	}
	if addr == "" {
		return name
	}
	return name + " <" + addr + ">"
}

// cleanLine makes s valid UTF-8 on one line without control characters,
// with runs of white space collapsed, cut at max bytes.
func cleanLine(s string, max int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	var b strings.Builder
	space := false
	for _, r := range s {
		if unicode.IsSpace(r) || unicode.IsControl(r) {
			space = b.Len() > 0
			continue
		}
		if space {
			b.WriteByte(' ')
			space = false
		}
		b.WriteRune(r)
		if b.Len() >= max {
			break
		}
	}
	return truncate(b.String(), max)
}

// truncate cuts s at max bytes, backing up to the start of a character.
func truncate(s string, max int) string {
	if len(s) <= max {
		return s
	}
	for max > 0 && !utf8.RuneStart(s[max]) {
		max--
	}
	return s[:max]
}

// walker visits the MIME tree depth first, keeping the text parts and
// describing the others.
type walker struct {
	lim   Limits
	msg   *Message
	parts int
	plain []string
	html  []string
	// textBytes counts what plain and html hold, to stop reading at the bound.
	plainBytes, htmlBytes int
	truncated             bool
}

func (w *walker) walk(e *message.Entity, depth int) error {
	w.parts++
	if w.parts > w.lim.MaxParts {
		return overLimit("the message has more than %d MIME parts", w.lim.MaxParts)
	}
	mediaType, params := contentType(e.Header)
	if strings.HasPrefix(mediaType, "multipart/") && params["boundary"] != "" {
		if depth >= w.lim.MaxDepth {
			return overLimit("multipart parts nest deeper than %d levels", w.lim.MaxDepth)
		}
		return w.multipart(e.Body, params["boundary"], depth)
	}
	return w.leaf(e, mediaType, params)
}

// multipart reads the parts of a multipart body. go-message's textproto
// reader is driven here rather than through Entity.Walk so that a part's
// header is read under a byte budget (go-message bounds only the top header)
// and each part's raw rest is drained before the next, whatever its
// transfer encoding did.
func (w *walker) multipart(body io.Reader, boundary string, depth int) error {
	br := &budgetReader{r: body, budget: -1}
	mr := textproto.NewMultipartReader(br, boundary)
	budget := int64(w.lim.MaxHeaderBytes) + headerSlack
	for {
		br.budget = budget
		p, err := mr.NextPart()
		br.budget = -1
		if br.exceeded {
			return overLimit("a MIME part header is larger than %d bytes", w.lim.MaxHeaderBytes)
		}
		if err != nil {
			// io.EOF ends the parts; anything else is a truncated or broken
			// multipart, whose parts read so far are kept.
			return nil
		}
		if headerSize(p.Header) > w.lim.MaxHeaderBytes {
			return overLimit("a MIME part header is larger than %d bytes", w.lim.MaxHeaderBytes)
		}
		child, _ := message.New(message.Header{Header: p.Header}, p) // unknown charsets and encodings leave the body as it is
		if err := w.walk(child, depth+1); err != nil {
			return err
		}
		if _, err := io.Copy(io.Discard, p); err != nil {
			return nil
		}
	}
}

// headerSlack is what a header's read budget allows past the header: what
// the readers buffer ahead (4 KiB each) and the boundary line before a part.
const headerSlack = 16 << 10

// headerSize is the size of h's fields as they were sent, give or take
// folding white space.
func headerSize(h textproto.Header) int {
	n := 0
	for f := h.Fields(); f.Next(); {
		n += len(f.Key()) + len(f.Value()) + 4
	}
	return n
}

// budgetReader fails reads past its budget (a negative budget is none).
type budgetReader struct {
	r        io.Reader
	budget   int64
	exceeded bool
}

var errBudget = errors.New("mailparse: part header too large")

func (b *budgetReader) Read(p []byte) (int, error) {
	if b.budget < 0 {
		return b.r.Read(p)
	}
	if b.budget == 0 {
		b.exceeded = true
		return 0, errBudget
	}
	if int64(len(p)) > b.budget {
		p = p[:b.budget]
	}
	n, err := b.r.Read(p)
	b.budget -= int64(n)
	return n, err
}

// contentType returns the lowercased media type and its parameters; an
// absent Content-Type is text/plain (RFC 2045), and one that does not parse
// keeps what can be read of it.
func contentType(h message.Header) (string, map[string]string) {
	t, params, err := h.ContentType()
	if err == nil {
		return strings.ToLower(t), params
	}
	v := h.Get("Content-Type")
	t = strings.ToLower(strings.TrimSpace(strings.SplitN(v, ";", 2)[0]))
	if !strings.Contains(t, "/") {
		t = "text/plain"
	}
	return t, lenientParams(v)
}

// lenientParams reads name=value parameters that mime.ParseMediaType
// refuses (duplicates, unquoted spaces, stray semicolons).
func lenientParams(v string) map[string]string {
	params := map[string]string{}
	pieces := strings.Split(v, ";")
	for _, p := range pieces[1:] {
		k, val, ok := strings.Cut(p, "=")
		if !ok {
			continue
		}
		k = strings.ToLower(strings.TrimSpace(k))
		val = strings.Trim(strings.TrimSpace(val), `"`)
		if _, dup := params[k]; !dup && k != "" {
			params[k] = decodeWords(val)
		}
	}
	return params
}

func decodeWords(s string) string {
	d := mime.WordDecoder{CharsetReader: message.CharsetReader}
	if out, err := d.DecodeHeader(s); err == nil {
		return out
	}
	return s
}

func (w *walker) leaf(e *message.Entity, mediaType string, params map[string]string) error {
	if strings.HasPrefix(mediaType, "multipart/") {
		return nil // a multipart without a boundary has no parts to read
	}
	disposition, dparams, err := e.Header.ContentDisposition()
	if err != nil {
		disposition = strings.ToLower(strings.TrimSpace(strings.SplitN(e.Header.Get("Content-Disposition"), ";", 2)[0]))
		dparams = lenientParams(e.Header.Get("Content-Disposition"))
	}
	disposition = strings.ToLower(disposition)
	filename := dparams["filename"]
	if filename == "" {
		filename = params["name"]
	}
	filename = cleanLine(filename, maxFilename)

	lowerName := strings.ToLower(filename)
	if mediaType == "text/calendar" || mediaType == "application/ics" || strings.HasSuffix(lowerName, ".ics") || strings.HasSuffix(lowerName, ".vcs") {
		w.msg.HasCalendar = true
	}

	isText := mediaType == "text/plain" || mediaType == "text/html"
	if isText && disposition != "attachment" && filename == "" {
		return w.text(e.Body, mediaType == "text/html")
	}
	if disposition == "attachment" || filename != "" || !strings.HasPrefix(mediaType, "text/") {
		n, _ := io.Copy(io.Discard, e.Body) // a broken encoding keeps the size decoded so far
		if len(w.msg.Attachments) < w.lim.MaxAttachments {
			w.msg.Attachments = append(w.msg.Attachments, Attachment{Filename: filename, ContentType: mediaType, Size: n})
		}
	}
	return nil
}

func (w *walker) text(body io.Reader, isHTML bool) error {
	max := w.lim.MaxTextBytes
	if isHTML {
		// HTML is wanted only when there is no plain text; converting it
		// anyway would cost time on nearly every mail.
		if w.plainBytes > 0 || w.htmlBytes >= max {
			return nil
		}
		text, truncated := htmlToText(body, max-w.htmlBytes)
		w.truncated = w.truncated || truncated
		if text != "" {
			w.html = append(w.html, text)
			w.htmlBytes += len(text)
		}
		return nil
	}
	if w.plainBytes >= max {
		w.truncated = true
		return nil
	}
	// Read one byte past the bound, to tell a cut text from one that fits.
	remaining := max - w.plainBytes
	b, _ := io.ReadAll(io.LimitReader(body, int64(remaining)+1))
	if len(b) > remaining {
		b = b[:remaining]
		// Drop a character the cut split.
		start := len(b) - 1
		for start > 0 && !utf8.RuneStart(b[start]) {
			start--
		}
		if start >= 0 && !utf8.FullRune(b[start:]) {
			b = b[:start]
		}
		w.truncated = true
	}
	text := truncate(normalizePlain(string(b)), remaining)
	if strings.TrimSpace(text) != "" {
		w.plain = append(w.plain, text)
		w.plainBytes += len(text)
	}
	return nil
}

func (w *walker) body() (string, bool) {
	parts := w.plain
	if len(parts) == 0 {
		parts = w.html
	}
	return truncate(strings.Join(parts, "\n\n"), w.lim.MaxTextBytes), w.truncated
}

// normalizePlain makes plain text valid UTF-8 with \n line ends, without
// trailing spaces, without control characters, with at most one empty line
// in a row.
func normalizePlain(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.ReplaceAll(s, "\r\n", "\n")
	s = strings.ReplaceAll(s, "\r", "\n")
	lines := strings.Split(s, "\n")
	out := lines[:0]
	blank := 0
	for _, l := range lines {
		l = strings.TrimRightFunc(strings.Map(dropControl, l), unicode.IsSpace)
		if l == "" {
			blank++
			if blank > 1 {
				continue
			}
		} else {
			blank = 0
		}
		out = append(out, l)
	}
	return strings.Trim(strings.Join(out, "\n"), "\n")
}

func dropControl(r rune) rune {
	if r == '\t' {
		return r
	}
	if unicode.IsControl(r) || r == '\uFEFF' {
		return -1
	}
	return r
}

// snippet is the start of text on one line, cut at a word when one ends
// near the bound.
func snippet(text string) string {
	s := strings.Join(strings.Fields(text), " ")
	if utf8.RuneCountInString(s) <= SnippetRunes {
		return s
	}
	runes := []rune(s)[:SnippetRunes]
	cut := string(runes)
	if i := strings.LastIndexByte(cut, ' '); i > len(cut)*3/4 {
		cut = cut[:i]
	}
	return cut
}

// contentHash hashes what makes two mails the same for the classifier: the
// subject, the sender address and the text, with white space collapsed so
// that re-wrapped copies of one mail hash alike.
func contentHash(m *Message) string {
	h := sha256.New()
	h.Write([]byte(strings.Join(strings.Fields(m.Subject), " ")))
	h.Write([]byte{0})
	h.Write([]byte(m.FromAddress))
	h.Write([]byte{0})
	h.Write([]byte(strings.Join(strings.Fields(m.TextBody), " ")))
	return hex.EncodeToString(h.Sum(nil))
}
