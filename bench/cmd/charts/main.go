// Command charts draws the PNG charts of `make bench-classifier` from the
// traffic.json the benchmark wrote beside its report:
//
//	go run ./bench/cmd/charts bench/out/classifier
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"mailroom.dev/bench/trafficchart"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: charts DIR (the directory holding traffic.json)")
		os.Exit(2)
	}
	if err := run(os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, "charts:", err)
		os.Exit(1)
	}
}

func run(dir string) error {
	b, err := os.ReadFile(filepath.Join(dir, "traffic.json"))
	if err != nil {
		return err
	}
	var runs []trafficchart.Run
	if err := json.Unmarshal(b, &runs); err != nil {
		return fmt.Errorf("traffic.json: %w", err)
	}
	for _, r := range runs {
		if err := trafficchart.Chart(filepath.Join(dir, r.File), r); err != nil {
			return fmt.Errorf("%s: %w", r.File, err)
		}
		fmt.Fprintln(os.Stderr, "wrote", filepath.Join(dir, r.File))
	}
	return nil
}
