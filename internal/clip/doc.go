// Package clip shortens strings to a byte budget without splitting a UTF-8
// character (Postgres rejects text with a split one): stored reasons and
// messages, and untrusted input quoted in errors.
package clip
