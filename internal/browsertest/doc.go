// Package browsertest gives tests a real headless Chromium driven through
// chromedp: Debian's chromium package, started with a fresh profile and
// every flag that keeps it off the network (this machine has none), and
// stopped when the test ends.
//
// When Chromium is missing, New fails the test under CI=true and skips it,
// with the reason, elsewhere; scripts/test-deps.sh installs it.
//
//	ctx := browsertest.New(t, browsertest.Options{})
//	err := chromedp.Do(ctx, chromedp.Navigate(url))
//
// It is a test helper: only test files import it, so chromedp stays out of
// what hosts link.
package browsertest
