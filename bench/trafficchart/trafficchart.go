// Package trafficchart draws what a client sent to the fake OpenAI, second by
// second, against the limits: the charts of `make bench-classifier`. It lives
// outside the classifier's module so that the service does not pull in
// gonum/plot and its fonts and PDF libraries.
package trafficchart

import (
	"fmt"
	"image/color"
	"os"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"mailroom.dev/fakes/fakeopenai"
)

var (
	colorAdmitted = color.RGBA{R: 31, G: 119, B: 180, A: 255}
	colorLimit    = color.RGBA{R: 44, G: 160, B: 44, A: 255}
	colorLimited  = color.RGBA{R: 214, G: 39, B: 40, A: 255}
	colorOther    = color.RGBA{R: 148, G: 103, B: 189, A: 255}
)

// Run is one run's traffic at the fake: its limits and its per-second
// admissions, as the benchmark writes them to traffic.json.
type Run struct {
	// File is the PNG's name, Title the chart's title.
	File  string `json:"file"`
	Title string `json:"title"`
	// Seconds extends the time axis (to the run's completion, for instance).
	Seconds     float64             `json:"seconds"`
	RPM         int                 `json:"rpm"`
	TPM         int                 `json:"tpm"`
	RateLimited int64               `json:"rateLimited"`
	Series      []fakeopenai.Second `json:"series"`
	// Other is another client's admissions on the same organization,
	// drawn beside the run's own; optional.
	Other []fakeopenai.Second `json:"other,omitempty"`
	// Limits are the limits over time when they change (the first from 0
	// s); RPM and TPM otherwise.
	Limits []Limits `json:"limits,omitempty"`
}

// Limits are the limits in force from At seconds.
type Limits struct {
	At  float64 `json:"at"`
	RPM int     `json:"rpm"`
	TPM int     `json:"tpm"`
}

// Chart writes a PNG of a run's admissions at the fake, second by second:
// requests per second against RPM/60 (and the 429s per second), and
// admission tokens per second against TPM/60.
func Chart(path string, t Run) error {
	title, seconds := t.Title, t.Seconds
	n := max(len(t.Series), int(seconds+0.999), 1)
	req, tok, limited := make(plotter.XYs, 0, n+1), make(plotter.XYs, 0, n+1), make(plotter.XYs, 0, n+1)
	var peakReq, peakTok float64
	for i := range n {
		var s fakeopenai.Second
		if i < len(t.Series) {
			s = t.Series[i]
		}
		// Second i is drawn as a step over [i, i+1].
		if i == 0 {
			req = append(req, plotter.XY{X: 0, Y: float64(s.Admitted)})
			tok = append(tok, plotter.XY{X: 0, Y: float64(s.AdmittedTokens)})
			limited = append(limited, plotter.XY{X: 0, Y: float64(s.RateLimited)})
		}
		x := float64(i + 1)
		req = append(req, plotter.XY{X: x, Y: float64(s.Admitted)})
		tok = append(tok, plotter.XY{X: x, Y: float64(s.AdmittedTokens)})
		limited = append(limited, plotter.XY{X: x, Y: float64(s.RateLimited)})
		peakReq = max(peakReq, float64(s.Admitted), float64(s.RateLimited))
		peakTok = max(peakTok, float64(s.AdmittedTokens))
	}
	xmax := float64(n)
	other := func(pick func(fakeopenai.Second) int64) plotter.XYs {
		xys := plotter.XYs{{X: 0, Y: 0}}
		for i, s := range t.Other {
			if i == 0 {
				xys[0].Y = float64(pick(s))
			}
			xys = append(xys, plotter.XY{X: float64(i + 1), Y: float64(pick(s))})
		}
		return xys
	}
	// limit draws the limit (per second) as a step line when it changes.
	limit := func(p *plot.Plot, constant int, pick func(Limits) int, name string) error {
		if len(t.Limits) == 0 {
			return addLimit(p, float64(constant)/60, xmax, fmt.Sprintf("limit: %s %s ÷ 60", name, thousands(int64(constant))))
		}
		var xys plotter.XYs
		for i, l := range t.Limits {
			y := float64(pick(l)) / 60
			if i > 0 {
				xys = append(xys, plotter.XY{X: l.At, Y: xys[len(xys)-1].Y})
			}
			xys = append(xys, plotter.XY{X: l.At, Y: y})
		}
		xys = append(xys, plotter.XY{X: xmax, Y: xys[len(xys)-1].Y})
		ln, err := plotter.NewLine(xys)
		if err != nil {
			return err
		}
		ln.Color = colorLimit
		ln.Dashes = []vg.Length{vg.Points(6), vg.Points(3)}
		ln.Width = vg.Points(1.5)
		p.Add(ln)
		p.Legend.Add(fmt.Sprintf("limit: %s ÷ 60, over time", name), ln)
		return nil
	}

	top := plot.New()
	top.Title.Text = title + ": requests admitted per second"
	top.X.Label.Text = "seconds since the first publish"
	top.Y.Label.Text = "requests / s"
	if err := addSeries(top, req, "admitted", colorAdmitted); err != nil {
		return err
	}
	if err := limit(top, t.RPM, func(l Limits) int { return l.RPM }, "RPM"); err != nil {
		return err
	}
	if len(t.Other) > 0 {
		if err := addSeries(top, other(func(s fakeopenai.Second) int64 { return s.Admitted }), "the other client's admitted", colorOther); err != nil {
			return err
		}
	}
	if t.RateLimited > 0 {
		if err := addSeries(top, limited, "answered 429", colorLimited); err != nil {
			return err
		}
	}
	top.Y.Min = 0
	top.Y.Max = 1.3 * max(peakReq, float64(t.RPM)/60)

	bottom := plot.New()
	bottom.Title.Text = title + ": admission tokens per second"
	bottom.X.Label.Text = "seconds since the first publish"
	bottom.Y.Label.Text = "tokens / s"
	if err := addSeries(bottom, tok, "admitted (prompt + max completion)", colorAdmitted); err != nil {
		return err
	}
	if err := limit(bottom, t.TPM, func(l Limits) int { return l.TPM }, "TPM"); err != nil {
		return err
	}
	if len(t.Other) > 0 {
		if err := addSeries(bottom, other(func(s fakeopenai.Second) int64 { return s.AdmittedTokens }), "the other client's admitted", colorOther); err != nil {
			return err
		}
	}
	bottom.Y.Min = 0
	bottom.Y.Max = 1.3 * max(peakTok, float64(t.TPM)/60)
	for _, p := range []*plot.Plot{top, bottom} {
		p.X.Min, p.X.Max = 0, xmax
		p.Legend.Top = true
		p.Y.Tick.Marker = plot.TickerFunc(func(min, max float64) []plot.Tick {
			ts := plot.DefaultTicks{}.Ticks(min, max)
			for i := range ts {
				if ts[i].Label != "" {
					ts[i].Label = thousands(int64(ts[i].Value))
				}
			}
			return ts
		})
		p.Add(plotter.NewGrid())
	}

	img := vgimg.New(10*vg.Inch, 8*vg.Inch)
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: 2, Cols: 1, PadTop: vg.Points(6), PadBottom: vg.Points(6), PadLeft: vg.Points(6), PadRight: vg.Points(12), PadY: vg.Points(18)}
	plots := [][]*plot.Plot{{top}, {bottom}}
	canvases := plot.Align(plots, tiles, dc)
	top.Draw(canvases[0][0])
	bottom.Draw(canvases[1][0])
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func addSeries(p *plot.Plot, xys plotter.XYs, name string, c color.Color) error {
	l, err := plotter.NewLine(xys)
	if err != nil {
		return err
	}
	l.Color = c
	l.Width = vg.Points(1.5)
	l.StepStyle = plotter.PreStep
	p.Add(l)
	p.Legend.Add(name, l)
	return nil
}

func addLimit(p *plot.Plot, y, xmax float64, name string) error {
	l, err := plotter.NewLine(plotter.XYs{{X: 0, Y: y}, {X: xmax, Y: y}})
	if err != nil {
		return err
	}
	l.Color = colorLimit
	l.Width = vg.Points(1.5)
	l.Dashes = []vg.Length{vg.Points(6), vg.Points(4)}
	p.Add(l)
	p.Legend.Add(name, l)
	return nil
}

// thousands formats n with thousands separators: 1,234,567.
func thousands(n int64) string {
	s := fmt.Sprint(n)
	if n < 0 {
		return "-" + thousands(-n)
	}
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
