package trafficchart_test

import (
	"bytes"
	"image/png"
	"os"
	"path/filepath"
	"testing"

	"mailroom.dev/bench/trafficchart"
	"mailroom.dev/fakes/fakeopenai"
)

// TestChartDrawsAPNG draws a run with 429s and checks that the file is a
// PNG of the chart's size.
func TestChartDrawsAPNG(t *testing.T) {
	run := trafficchart.Run{File: "chart-x.png", Title: "x", Seconds: 12, RPM: 6000, TPM: 600000, RateLimited: 3}
	for i := range 10 {
		run.Series = append(run.Series, fakeopenai.Second{Admitted: int64(90 + i), AdmittedTokens: int64(9000 + 100*i), RateLimited: int64(i % 2)})
	}
	path := filepath.Join(t.TempDir(), run.File)
	if err := trafficchart.Chart(path, run); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := png.DecodeConfig(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("not a PNG: %v", err)
	}
	if cfg.Width < 500 || cfg.Height < 400 {
		t.Errorf("chart is %d×%d, want the 10×8 inch page", cfg.Width, cfg.Height)
	}
}

// A run with an other client and limits that change draws too.
func TestChartWithOtherAndLimits(t *testing.T) {
	run := trafficchart.Run{File: "chart-y.png", Title: "y", Seconds: 12, RPM: 1200, TPM: 600000,
		Limits: []trafficchart.Limits{{At: 0, RPM: 1200, TPM: 600000}, {At: 4, RPM: 600, TPM: 300000}, {At: 8, RPM: 1200, TPM: 600000}}}
	for i := range 10 {
		run.Series = append(run.Series, fakeopenai.Second{Admitted: 10, AdmittedTokens: 5000})
		run.Other = append(run.Other, fakeopenai.Second{Admitted: 10, AdmittedTokens: 5000, RateLimited: int64(i % 2)})
	}
	path := filepath.Join(t.TempDir(), run.File)
	if err := trafficchart.Chart(path, run); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(path); err != nil || len(b) == 0 {
		t.Fatalf("no chart: %v", err)
	}
}
