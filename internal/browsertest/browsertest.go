package browsertest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"testing"

	"github.com/chromedp/chromedp"
)

// ErrUnavailable is returned when no Chromium can be found; its message
// says what is missing.
var ErrUnavailable = errors.New("browsertest: no Chromium")

// Flags are the command-line flags Chromium runs with, besides a fresh
// --user-data-dir: headless, no sandbox (tests run as root), no GPU, no
// first-run UI, and nothing that reaches the network on its own.
var Flags = []string{"headless", "no-sandbox", "disable-gpu", "disable-quic", "no-first-run",
	"disable-background-networking", "disable-component-update", "disable-sync"}

// Options tunes New. The zero value is ready to use.
type Options struct {
	// Width and Height are the window's size in pixels. Defaults 1280
	// and 900.
	Width, Height int
}

// Find returns the Chromium to run: $FERRY_CHROMIUM when set, else the
// first of chromium, chromium-browser, google-chrome on PATH.
func Find() (string, error) {
	if p := os.Getenv("FERRY_CHROMIUM"); p != "" {
		return p, nil
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("%w: none of chromium, chromium-browser, google-chrome is on PATH and FERRY_CHROMIUM is not set (apt-get install chromium, or run scripts/test-deps.sh)", ErrUnavailable)
}

// New starts Chromium for t and returns the chromedp context of its first
// tab; the browser is stopped when t ends. Under CI=true a missing
// Chromium fails t; elsewhere t is skipped with the reason.
func New(t testing.TB, opts Options) context.Context {
	t.Helper()
	path, err := Find()
	if err != nil {
		if os.Getenv("CI") != "true" {
			t.Skipf("skipping: %v", err)
		}
		t.Fatalf("Chromium is required under CI=true: %v", err)
	}
	if opts.Width == 0 {
		opts.Width = 1280
	}
	if opts.Height == 0 {
		opts.Height = 900
	}
	allocOpts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(opts.Width, opts.Height),
		// /dev/shm is small in containers; Chromium crashes when it fills.
		chromedp.Flag("disable-dev-shm-usage", true),
	}
	for _, f := range Flags {
		allocOpts = append(allocOpts, chromedp.Flag(f, true))
	}
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), allocOpts...)
	ctx, cancel := chromedp.NewContext(alloc)
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	// The first action starts the browser; fail clearly when it cannot.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting Chromium (%s): %v", path, err)
	}
	return ctx
}
