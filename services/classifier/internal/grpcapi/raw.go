package grpcapi

import (
	"bytes"
	"encoding/base64"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"sort"
	"strings"
	"unicode/utf8"

	"mailroom.dev/platform/apierror"
	"mailroom.dev/services/classifier/internal/classify"
)

// This is a deliberately small RFC 822 reader for the ad-hoc Classify RPC:
// the headers, the sender, the subject, calendar parts, attachment names
// and the first text/plain part. Ingest owns the full MIME normalizer
// (HTML to text, every charset); what the rules tier reads is all here.

const (
	maxBody  = 64 << 10 // bytes of text body kept
	maxDepth = 8        // multipart nesting followed
	maxParts = 200      // parts looked at
)

var wordDecoder = mime.WordDecoder{CharsetReader: charsetReader}

// charsetReader reads the charsets that need no tables (UTF-8, ASCII and
// Latin-1 are handled by the decoder itself); any other charset's bytes are
// passed through and later made valid UTF-8.
func charsetReader(_ string, input io.Reader) (io.Reader, error) { return input, nil }

func decodeHeader(s string) string {
	d, err := wordDecoder.DecodeHeader(s)
	if err != nil {
		d = s
	}
	return strings.ToValidUTF8(d, "\uFFFD")
}

// parseRaw parses an RFC 822 message. Its errors never quote the message.
func parseRaw(raw []byte) (classify.Message, error) {
	m, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return classify.Message{}, apierror.Invalid("raw", "is not an RFC 822 message (its header could not be read)")
	}
	out := classify.Message{
		Subject: decodeHeader(m.Header.Get("Subject")),
		From:    decodeHeader(m.Header.Get("From")),
	}
	if addrs, err := m.Header.AddressList("From"); err == nil && len(addrs) > 0 {
		out.FromAddress = strings.ToLower(addrs[0].Address)
	}
	names := make([]string, 0, len(m.Header))
	for name := range m.Header {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		for _, v := range m.Header[name] {
			out.Headers = append(out.Headers, classify.Header{Name: name, Value: decodeHeader(v)})
		}
	}
	w := walker{out: &out}
	w.part(m.Header.Get("Content-Type"), m.Header.Get("Content-Transfer-Encoding"), m.Header.Get("Content-Disposition"), m.Body, 0)
	return out, nil
}

type walker struct {
	out   *classify.Message
	parts int
}

// part records what one MIME part contributes. A malformed part is skipped,
// not an error: classifying what could be read beats refusing the mail.
func (w *walker) part(contentType, encoding, disposition string, body io.Reader, depth int) {
	w.parts++
	if w.parts > maxParts {
		return
	}
	mediaType, params, err := mime.ParseMediaType(contentType)
	if err != nil || contentType == "" {
		mediaType, params = "text/plain", map[string]string{}
	}
	if strings.HasPrefix(mediaType, "multipart/") {
		if depth >= maxDepth || params["boundary"] == "" {
			return
		}
		mr := multipart.NewReader(body, params["boundary"])
		for {
			// NextRawPart leaves the transfer encoding to decode().
			p, err := mr.NextRawPart()
			if err != nil {
				return
			}
			w.part(p.Header.Get("Content-Type"), p.Header.Get("Content-Transfer-Encoding"), p.Header.Get("Content-Disposition"), p, depth+1)
		}
	}
	if mediaType == "text/calendar" {
		w.out.HasCalendar = true
	}
	disp, dparams, _ := mime.ParseMediaType(disposition)
	filename := dparams["filename"]
	if filename == "" {
		filename = params["name"]
	}
	if disp == "attachment" || filename != "" {
		n, _ := io.Copy(io.Discard, decode(encoding, body))
		w.out.Attachments = append(w.out.Attachments, classify.Attachment{
			Filename: decodeHeader(filename), ContentType: mediaType, SizeBytes: n,
		})
		return
	}
	if mediaType == "text/plain" && w.out.Body == "" {
		b, _ := io.ReadAll(io.LimitReader(decode(encoding, body), maxBody))
		w.out.Body = text(b, params["charset"])
	}
}

func decode(encoding string, r io.Reader) io.Reader {
	switch strings.ToLower(strings.TrimSpace(encoding)) {
	case "base64":
		return base64.NewDecoder(base64.StdEncoding, r)
	case "quoted-printable":
		return quotedprintable.NewReader(r)
	}
	return r
}

// text turns body bytes into valid UTF-8: Latin-1 is converted, anything else
// is taken as UTF-8 with invalid bytes replaced.
func text(b []byte, charset string) string {
	switch strings.ToLower(charset) {
	case "iso-8859-1", "latin1", "latin-1", "iso8859-1":
		rs := make([]rune, len(b))
		for i, c := range b {
			rs[i] = rune(c)
		}
		return string(rs)
	}
	if utf8.Valid(b) {
		return string(b)
	}
	return strings.ToValidUTF8(string(b), "\uFFFD")
}
