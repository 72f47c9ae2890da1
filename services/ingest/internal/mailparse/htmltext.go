package mailparse

import (
	"io"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/net/html"
)

// htmlToText turns HTML into readable text of at most max bytes: scripts,
// styles and the head's title dropped, link and image alt text kept, block
// elements on their own lines, white space collapsed. It reports whether the
// text was cut.
//
// It runs golang.org/x/net/html's tokenizer rather than a parser or an
// html-to-text library: the tokenizer is the Go team's, streams (nothing but
// the current token is held, and SetMaxBuf bounds that), decodes entities,
// and knows that script and style hold raw text; mail HTML is too often
// broken for a tree to help, and classification needs words, not layout.
func htmlToText(r io.Reader, max int) (string, bool) {
	z := html.NewTokenizer(r)
	z.SetMaxBuf(1 << 20)
	w := textWriter{max: max}
	skip := 0 // depth inside elements whose text is not shown
	for !w.full {
		tt := z.Next()
		switch tt {
		case html.ErrorToken:
			// io.EOF, a read error or a token over the buffer bound: keep what was read.
			return w.String(), w.full
		case html.TextToken:
			if skip == 0 {
				w.text(string(z.Text()))
			}
		case html.StartTagToken, html.SelfClosingTagToken:
			name, hasAttr := z.TagName()
			tag := string(name)
			if tag == "body" {
				skip = 0 // a head left open must not hide the body
			}
			if hiddenTags[tag] {
				if tt == html.StartTagToken {
					skip++
				}
				continue
			}
			if skip > 0 {
				continue
			}
			switch {
			case tag == "br":
				w.newline(1)
			case tag == "li":
				w.newline(1)
				w.word("-")
				w.space()
			case tag == "img" && hasAttr:
				if alt := attr(z, "alt"); strings.TrimSpace(alt) != "" {
					w.space()
					w.text(alt)
					w.space()
				}
			case tag == "td" || tag == "th":
				w.space()
			case paragraphTags[tag]:
				w.newline(2)
			case blockTags[tag]:
				w.newline(1)
			}
		case html.EndTagToken:
			name, _ := z.TagName()
			tag := string(name)
			if hiddenTags[tag] {
				if skip > 0 {
					skip--
				}
				continue
			}
			if skip > 0 {
				continue
			}
			switch {
			case tag == "td" || tag == "th":
				w.space()
			case paragraphTags[tag]:
				w.newline(2)
			case blockTags[tag] || tag == "li":
				w.newline(1)
			}
		}
	}
	return w.String(), true
}

func attr(z *html.Tokenizer, key string) string {
	for {
		k, v, more := z.TagAttr()
		if string(k) == key {
			return string(v)
		}
		if !more {
			return ""
		}
	}
}

// hiddenTags hold text a reader of the mail never sees.
var hiddenTags = map[string]bool{
	"script": true, "style": true, "title": true, "template": true,
	"head": true, "object": true, "svg": true, "xml": true,
}

// paragraphTags are separated by an empty line.
var paragraphTags = map[string]bool{
	"p": true, "h1": true, "h2": true, "h3": true, "h4": true, "h5": true, "h6": true,
	"blockquote": true, "pre": true, "table": true, "ul": true, "ol": true, "hr": true,
}

// blockTags start a new line.
var blockTags = map[string]bool{
	"div": true, "tr": true, "section": true, "article": true, "header": true,
	"footer": true, "nav": true, "aside": true, "main": true, "dl": true, "dt": true,
	"dd": true, "center": true, "form": true, "address": true, "figure": true,
	"figcaption": true, "caption": true, "tbody": true, "thead": true, "tfoot": true,
	"body": true, "html": true,
}

// textWriter accumulates words, putting one space or up to two newlines
// between them, never leading or trailing white space.
type textWriter struct {
	b            strings.Builder
	max          int
	full         bool
	pendingSpace bool
	newlines     int
}

func (w *textWriter) String() string { return w.b.String() }

func (w *textWriter) space() { w.pendingSpace = true }

func (w *textWriter) newline(n int) {
	if n > w.newlines {
		w.newlines = n
	}
}

// text writes s, whose white space (non-breaking spaces included) separates words.
func (w *textWriter) text(s string) {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if s == "" {
		return
	}
	first, _ := utf8.DecodeRuneInString(s)
	if isSpace(first) {
		w.space()
	}
	words := strings.FieldsFunc(s, isSpace)
	for _, word := range words {
		w.word(word)
		w.space()
	}
	last, _ := utf8.DecodeLastRuneInString(s)
	if len(words) > 0 && !isSpace(last) {
		w.pendingSpace = false
	}
}

func isSpace(r rune) bool {
	return unicode.IsSpace(r) || r == '\u00a0' || r == '\u200b' || r == '\u200c' || r == '\u034f' || r == '\uFEFF'
}

func (w *textWriter) word(s string) {
	if w.full {
		return
	}
	s = strings.Map(dropControl, s)
	if s == "" {
		return
	}
	sep := ""
	if w.b.Len() > 0 {
		switch {
		case w.newlines > 0:
			sep = strings.Repeat("\n", w.newlines)
		case w.pendingSpace:
			sep = " "
		}
	}
	w.newlines, w.pendingSpace = 0, false
	if w.b.Len()+len(sep)+len(s) > w.max {
		w.b.WriteString(truncate(sep+s, w.max-w.b.Len()))
		w.full = true
		return
	}
	w.b.WriteString(sep)
	w.b.WriteString(s)
}
