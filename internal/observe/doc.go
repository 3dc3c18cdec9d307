// Package observe holds what every Ferry package's observer hooks share:
// the rule for combining several observers into one (Join), and how such
// a combination threads the contexts of an operation's Start and End hooks
// through its members (Start, End).
package observe
