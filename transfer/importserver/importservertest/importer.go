package importservertest

import (
	"context"
	"fmt"
	"sync"

	"github.com/ferryhq/ferry/transfer"
	"github.com/ferryhq/ferry/transfer/importserver"
)

// ImporterOptions tunes NewImporter. The zero value is ready to use.
type ImporterOptions struct {
	// Next, when set, is called for every import that is not failed or
	// held back: the Importer then only counts and gates a real one.
	// Default: none (every import succeeds at once with an empty report).
	Next importserver.Importer
}

// Importer is an importserver.Importer for tests: it counts calls and
// concurrent imports, can hold a repository's imports until released, and
// can fail them. It is safe for concurrent use.
type Importer struct {
	next importserver.Importer

	mu      sync.Mutex
	calls   map[transfer.Pass]map[string]int
	running map[string]int
	now     int
	peak    int
	held    map[string]chan struct{}
	fail    map[string]error
}

var _ importserver.Importer = (*Importer)(nil)

// NewImporter returns an Importer.
func NewImporter(opts ImporterOptions) *Importer {
	return &Importer{next: opts.Next, calls: map[transfer.Pass]map[string]int{},
		running: map[string]int{}, held: map[string]chan struct{}{}, fail: map[string]error{}}
}

// Hold makes imports of path block, once started, until Release(path) or
// until their context ends.
func (im *Importer) Hold(path string) {
	im.mu.Lock()
	defer im.mu.Unlock()
	if im.held[path] == nil {
		im.held[path] = make(chan struct{})
	}
}

// Release lets the held imports of path go on, and later ones run at once.
func (im *Importer) Release(path string) {
	im.mu.Lock()
	defer im.mu.Unlock()
	if ch := im.held[path]; ch != nil {
		close(ch)
		delete(im.held, path)
	}
}

// Fail makes the imports of path fail with err (nil: succeed again).
func (im *Importer) Fail(path string, err error) {
	im.mu.Lock()
	defer im.mu.Unlock()
	if err == nil {
		delete(im.fail, path)
		return
	}
	im.fail[path] = err
}

// Calls returns how many imports of path's pass were started.
func (im *Importer) Calls(pass transfer.Pass, path string) int {
	im.mu.Lock()
	defer im.mu.Unlock()
	return im.calls[pass][path]
}

// Running reports how many imports of path run now.
func (im *Importer) Running(path string) int {
	im.mu.Lock()
	defer im.mu.Unlock()
	return im.running[path]
}

// Peak returns the most imports that ran at once.
func (im *Importer) Peak() int {
	im.mu.Lock()
	defer im.mu.Unlock()
	return im.peak
}

// PreImport implements importserver.Importer.
func (im *Importer) PreImport(ctx context.Context, repos ...string) (*transfer.Report, error) {
	return im.run(ctx, transfer.PreImport, repos)
}

// Import implements importserver.Importer.
func (im *Importer) Import(ctx context.Context, repos ...string) (*transfer.Report, error) {
	return im.run(ctx, transfer.FinalImport, repos)
}

func (im *Importer) run(ctx context.Context, pass transfer.Pass, repos []string) (*transfer.Report, error) {
	if len(repos) != 1 {
		return nil, fmt.Errorf("importservertest: want one repository, got %d", len(repos))
	}
	path := repos[0]
	im.mu.Lock()
	if im.calls[pass] == nil {
		im.calls[pass] = map[string]int{}
	}
	im.calls[pass][path]++
	im.running[path]++
	im.now++
	im.peak = max(im.peak, im.now)
	held, fail := im.held[path], im.fail[path]
	im.mu.Unlock()
	defer func() {
		im.mu.Lock()
		im.running[path]--
		im.now--
		im.mu.Unlock()
	}()
	if held != nil {
		select {
		case <-held:
		case <-ctx.Done():
			return nil, fmt.Errorf("importservertest: %s of %s: %w", pass, path, context.Cause(ctx))
		}
	}
	switch {
	case fail != nil:
		return &transfer.Report{Pass: pass}, fail
	case ctx.Err() != nil:
		return nil, context.Cause(ctx)
	case im.next == nil:
		return &transfer.Report{Pass: pass, Repositories: []transfer.RepositoryReport{{Name: path}}, RepositoryCount: 1}, nil
	case pass == transfer.PreImport:
		return im.next.PreImport(ctx, path)
	}
	return im.next.Import(ctx, path)
}
