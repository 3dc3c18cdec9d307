// Package observe holds what every Ferry package's observer hooks share:
// the rule for combining several observers into one.
package observe
