// Package internal holds helpers shared by Ferry packages that are not part of
// the public API, such as childproc (throwaway server processes), wait, and
// browsertest (a headless Chromium for tests that drive pages).
package internal
