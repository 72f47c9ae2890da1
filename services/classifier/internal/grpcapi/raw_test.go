package grpcapi

import (
	"strings"
	"testing"
)

func crlf(s string) []byte { return []byte(strings.ReplaceAll(s, "\n", "\r\n")) }

func TestParseRaw(t *testing.T) {
	t.Run("simple", func(t *testing.T) {
		m, err := parseRaw(crlf(`From: =?utf-8?q?Ad=C3=A4?= <Ada@Example.com>
To: bob@example.com
Subject: =?iso-8859-1?q?Caf=E9?= tomorrow
list-unsubscribe: <mailto:u@example.com>
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: quoted-printable

See you at the caf=C3=A9.
`))
		if err != nil {
			t.Fatal(err)
		}
		if got, want := m.Subject, "Café tomorrow"; got != want {
			t.Errorf("subject = %q, want %q", got, want)
		}
		if got, want := m.From, "Adä <Ada@Example.com>"; got != want {
			t.Errorf("from = %q, want %q", got, want)
		}
		if got, want := m.FromAddress, "ada@example.com"; got != want {
			t.Errorf("from address = %q, want %q", got, want)
		}
		if v, ok := m.Header("List-Unsubscribe"); !ok || v != "<mailto:u@example.com>" {
			t.Errorf("List-Unsubscribe = %q, %v", v, ok)
		}
		if got, want := strings.TrimSpace(m.Body), "See you at the café."; got != want {
			t.Errorf("body = %q, want %q", got, want)
		}
		if m.HasCalendar || len(m.Attachments) != 0 {
			t.Errorf("calendar %v, attachments %v; want none", m.HasCalendar, m.Attachments)
		}
	})

	t.Run("multipart with calendar and attachment", func(t *testing.T) {
		m, err := parseRaw(crlf(`From: boss@example.com
Subject: Planning
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="outer"

--outer
Content-Type: multipart/alternative; boundary="inner"

--inner
Content-Type: text/plain; charset=iso-8859-1

Gr=FC=DFe
--inner
Content-Type: text/calendar; method=REQUEST; charset=utf-8
Content-Transfer-Encoding: base64

QkVHSU46VkNBTEVOREFSDQpFTkQ6VkNBTEVOREFSDQo=
--inner--
--outer
Content-Type: application/pdf; name="agenda.pdf"
Content-Disposition: attachment; filename="agenda.pdf"
Content-Transfer-Encoding: base64

aGVsbG8=
--outer--
`))
		if err != nil {
			t.Fatal(err)
		}
		if !m.HasCalendar {
			t.Error("HasCalendar = false, want true")
		}
		if len(m.Attachments) != 1 || m.Attachments[0].Filename != "agenda.pdf" || m.Attachments[0].ContentType != "application/pdf" || m.Attachments[0].SizeBytes != 5 {
			t.Errorf("attachments = %+v, want agenda.pdf application/pdf 5 bytes", m.Attachments)
		}
		if got, want := strings.TrimSpace(m.Body), "Gr=FC=DFe"; got != want {
			// 8bit part: no transfer encoding, so nothing is decoded
			t.Errorf("body = %q, want %q", got, want)
		}
	})

	t.Run("latin-1 body", func(t *testing.T) {
		m, err := parseRaw([]byte("From: a@example.com\r\nContent-Type: text/plain; charset=ISO-8859-1\r\n\r\nGr\xfc\xdfe\r\n"))
		if err != nil {
			t.Fatal(err)
		}
		if got, want := strings.TrimSpace(m.Body), "Grüße"; got != want {
			t.Errorf("body = %q, want %q", got, want)
		}
	})

	t.Run("not a message", func(t *testing.T) {
		_, err := parseRaw([]byte("this line has no colon and no header end secret-content"))
		if err == nil {
			t.Fatal("err = nil, want an error")
		}
		if strings.Contains(err.Error(), "secret") {
			t.Errorf("error %q quotes the message", err)
		}
	})
}
