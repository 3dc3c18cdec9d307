// Command benchreport reads `go test -bench` output (files named on the
// command line, or standard input) and prints the `ferry-bench:` results as
// one Markdown table.
package main

import (
	"fmt"
	"io"
	"os"

	"github.com/ferryhq/ferry/internal/benchreport"
)

func main() {
	var inputs []io.Reader
	for _, name := range os.Args[1:] {
		f, err := os.Open(name)
		if err != nil {
			fmt.Fprintln(os.Stderr, "benchreport:", err)
			os.Exit(1)
		}
		defer f.Close()
		inputs = append(inputs, f)
	}
	if len(inputs) == 0 {
		inputs = append(inputs, os.Stdin)
	}
	results, err := benchreport.Parse(io.MultiReader(inputs...))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if err := benchreport.WriteTable(os.Stdout, results); err != nil {
		fmt.Fprintln(os.Stderr, "benchreport:", err)
		os.Exit(1)
	}
}
