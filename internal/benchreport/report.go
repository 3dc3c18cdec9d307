package benchreport

import (
	"bufio"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
)

// Marker starts every benchmark result line.
const Marker = "ferry-bench:"

// Result is one parsed `ferry-bench:` line.
type Result struct {
	Name     string
	Ferry    string // Ferry's figure, with its unit
	Baseline string // the baseline's figure from the same run
	Ratio    float64
	HasRatio bool
	// TargetOp is "<=" or ">=", empty when the line names no target.
	TargetOp string
	Target   float64
	Notes    string
}

// Met reports whether the ratio meets the target; ok is false when there
// is no ratio or no target to judge by.
func (r Result) Met() (met, ok bool) {
	if !r.HasRatio || r.TargetOp == "" {
		return false, false
	}
	if r.TargetOp == "<=" {
		return r.Ratio <= r.Target, true
	}
	return r.Ratio >= r.Target, true
}

// Parse reads benchmark output and returns the results in name order; a
// name seen twice keeps its last line.
func Parse(in io.Reader) ([]Result, error) {
	byName := map[string]Result{}
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		_, rest, ok := strings.Cut(sc.Text(), Marker)
		if !ok {
			continue
		}
		if r, ok := parseLine(rest); ok {
			byName[r.Name] = r
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("benchreport: reading: %w", err)
	}
	out := make([]Result, 0, len(byName))
	for _, r := range byName {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func parseLine(s string) (Result, bool) {
	fields := strings.Fields(s)
	if len(fields) == 0 {
		return Result{}, false
	}
	r := Result{Name: fields[0]}
	var notes []string
	for _, f := range fields[1:] {
		switch {
		case strings.HasPrefix(f, "ferry="):
			r.Ferry = strings.TrimPrefix(f, "ferry=")
		case strings.HasPrefix(f, "baseline="):
			r.Baseline = strings.TrimPrefix(f, "baseline=")
		case strings.HasPrefix(f, "ratio="):
			v, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimPrefix(f, "ratio="), "x"), 64)
			r.Ratio, r.HasRatio = v, err == nil
		case strings.HasPrefix(f, "target<=") || strings.HasPrefix(f, "target>="):
			v, err := strconv.ParseFloat(strings.TrimSuffix(f[len("target<="):], "x"), 64)
			if err == nil {
				r.TargetOp, r.Target = f[len("target"):len("target<=")], v
			} else {
				notes = append(notes, f)
			}
		default:
			notes = append(notes, f)
		}
	}
	r.Notes = strings.Join(notes, " ")
	return r, true
}

// WriteTable writes results as a Markdown table.
func WriteTable(w io.Writer, results []Result) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintln(bw, "| benchmark | Ferry | baseline | ratio | target | met | notes |")
	fmt.Fprintln(bw, "|---|---|---|---|---|---|---|")
	for _, r := range results {
		ratio, target, verdict := "", "", ""
		if r.HasRatio {
			ratio = strconv.FormatFloat(r.Ratio, 'f', -1, 64) + "×"
		}
		if r.TargetOp != "" {
			target = r.TargetOp + " " + strconv.FormatFloat(r.Target, 'f', -1, 64) + "×"
		}
		if met, ok := r.Met(); ok {
			verdict = map[bool]string{true: "yes", false: "**no**"}[met]
		}
		fmt.Fprintf(bw, "| %s | %s | %s | %s | %s | %s | %s |\n",
			r.Name, cell(r.Ferry), cell(r.Baseline), ratio, target, verdict, cell(r.Notes))
	}
	return bw.Flush()
}

func cell(s string) string { return strings.ReplaceAll(s, "|", "\\|") }
