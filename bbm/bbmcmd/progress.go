package bbmcmd

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/ferryhq/ferry/bbm"
)

// barWidth is the width of the progress bar in characters.
const barWidth = 30

// watch shows the progress of the named migrations until done is closed:
// a bar redrawn in place on a terminal, else a line every LineInterval.
func (c *cli) watch(ctx context.Context, names []string, done <-chan struct{}) {
	tick := time.NewTicker(c.o.PollInterval)
	defer tick.Stop()
	var lastLine time.Time
	drawn := false
	for {
		select {
		case <-done:
			if drawn {
				fmt.Fprintln(c.o.Stdout)
			}
			return
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		ps, err := c.progresses(ctx, names)
		if err != nil || len(ps) == 0 {
			continue
		}
		line := summary(ps)
		switch {
		case *c.o.Terminal:
			fmt.Fprintf(c.o.Stdout, "\r\033[K%s", line)
			drawn = true
			c.shown = line
		case time.Since(lastLine) >= c.o.LineInterval:
			fmt.Fprintln(c.o.Stdout, line)
			lastLine = time.Now()
			c.shown = line
		}
	}
}

// final prints the migrations' status once they are done (and the
// progress line, unless it is what watch showed last).
func (c *cli) final(ctx context.Context, names []string) {
	ps, err := c.progresses(ctx, names)
	if err != nil || len(ps) == 0 {
		return
	}
	if line := summary(ps); line != c.shown {
		fmt.Fprintln(c.o.Stdout, line)
	}
	writeTable(c.o.Stdout, ps)
}

// summary is one line for the migrations together: a bar, the share of
// rows done, the rate and the ETA.
func summary(ps []*bbm.Progress) string {
	var done, total int64
	var rate float64
	var etaMax time.Duration
	exact, finished := true, 0
	for _, p := range ps {
		done += p.Jobs.RowsDone
		total += p.RowsTotal
		rate += p.Rate
		exact = exact && p.Exact
		if p.Migration.Status == bbm.StatusFinished {
			finished++
		}
		if p.ETA < 0 && p.Migration.Status != bbm.StatusFinished {
			etaMax = -1
		} else if etaMax >= 0 {
			etaMax = max(etaMax, p.ETA)
		}
	}
	pct := 100.0
	if finished < len(ps) {
		pct = 0
		if total > 0 {
			pct = min(100*float64(done)/float64(total), 99.9)
		}
	}
	filled := int(pct / 100 * barWidth)
	bar := strings.Repeat("#", filled) + strings.Repeat("-", barWidth-filled)
	approx := "~"
	if exact {
		approx = ""
	}
	what := ps[0].Migration.Name
	if len(ps) > 1 {
		what = fmt.Sprintf("%d migrations (%d finished)", len(ps), finished)
	}
	return fmt.Sprintf("%s [%s] %5.1f%% %d/%s%d rows %.0f rows/s ETA %s", what, bar, pct, done, approx, total, rate, eta(etaMax))
}
