package routing

import (
	"errors"
	"fmt"
)

// Sentinel errors. Every error returned by this package wraps one of them, so
// callers can test with errors.Is and still print a message that says what is
// wrong and where.
var (
	// ErrInvalidSelector is wrapped by every *SyntaxError from Parse.
	ErrInvalidSelector = errors.New("routing: invalid selector")
	// ErrInvalidRule is wrapped by every *RuleError from ParseRules and NewRouter.
	ErrInvalidRule = errors.New("routing: invalid rule")
	// ErrInvalidWorker is wrapped by errors about worker metadata: a malformed
	// all_queues.yml file or entry (see *EntryError).
	ErrInvalidWorker = errors.New("routing: invalid worker metadata")
	// ErrDuplicateWorker reports two workers with the same ID.
	ErrDuplicateWorker = errors.New("routing: duplicate worker")
	// ErrInvalidQueue reports a queue name that servers could not listen to.
	ErrInvalidQueue = errors.New("routing: invalid queue name")
	// ErrStrict is wrapped, besides ErrInvalidSelector or ErrInvalidRule, by
	// errors of strict mode about input GitLab accepts (see Problem.Strict).
	ErrStrict = errors.New("routing: rejected by strict mode (GitLab accepts it)")

	// errNilRouter is returned when a nil *Router is passed where one is needed.
	errNilRouter = errors.New("routing: nil Router")
)

// SyntaxError is a selector that Parse or ParseStrict rejected. Offset is the
// 0-based byte offset in Query where the problem was found, and Kind says
// what it is (InvalidTerm, UnknownAttribute, InvalidEncoding, or with
// ParseStrict one of the problems GitLab accepts, such as TrailingText).
// Msg says what is wrong and, in parentheses, how GitLab reacts.
type SyntaxError struct {
	Query  string
	Offset int
	Kind   Problem
	Msg    string
}

// Error says what is wrong with the selector and at which offset.
func (e *SyntaxError) Error() string {
	if e.Kind.Strict() {
		return fmt.Sprintf("routing: selector %q: offset %d: %s (strict mode): %s", e.Query, e.Offset, e.Kind, e.Msg)
	}
	return fmt.Sprintf("routing: selector %q: offset %d: %s", e.Query, e.Offset, e.Msg)
}

// Unwrap returns ErrInvalidSelector, and ErrStrict when GitLab would accept
// the selector.
func (e *SyntaxError) Unwrap() []error {
	if e.Kind.Strict() {
		return []error{ErrInvalidSelector, ErrStrict}
	}
	return []error{ErrInvalidSelector}
}

// RuleError is a routing rule that could not be read or compiled. Index is the
// rule's 0-based position in the rule list (-1 when the document as a whole
// is at fault); Line is its line in the rules file (0 when the rule did not
// come from ParseRules). Kind says what is wrong: the Kind of the selector's
// *SyntaxError, or a rule-level problem such as RuleNotPair, QueueNotString
// or UnsupportedValue.
type RuleError struct {
	Index int
	Line  int
	Kind  Problem
	Err   error
}

// Error names the rule by index (and line, when known) and the cause.
func (e *RuleError) Error() string {
	if e.Index < 0 {
		if e.Line > 0 {
			return fmt.Sprintf("routing: rules (line %d): %v", e.Line, e.Err)
		}
		return fmt.Sprintf("routing: rules: %v", e.Err)
	}
	where := fmt.Sprintf("routing: rule %d", e.Index)
	if e.Line > 0 {
		where += fmt.Sprintf(" (line %d)", e.Line)
	}
	if _, ok := e.Err.(*SyntaxError); !ok && e.Kind.Strict() {
		return fmt.Sprintf("%s: %s (strict mode): %v", where, e.Kind, e.Err)
	}
	return fmt.Sprintf("%s: %v", where, e.Err)
}

// Unwrap returns ErrInvalidRule and the underlying cause (for example a
// *SyntaxError), and ErrStrict when GitLab would accept the rule, so
// errors.Is and errors.As see all of them.
func (e *RuleError) Unwrap() []error {
	errs := []error{ErrInvalidRule, e.Err}
	if e.Kind.Strict() {
		errs = append(errs, ErrStrict)
	}
	return errs
}

// EntryError is an all_queues.yml entry that ReadWorkers rejected. Index is the
// entry's 0-based position in the input (counting across YAML documents), Line
// the 1-based line of the offending node, Key the attribute at fault ("" when
// the entry as a whole is malformed) and Name the entry's queue name when known.
type EntryError struct {
	Index int
	Line  int
	Key   string
	Name  string
	Msg   string
}

// Error names the entry (index, queue name, line) and the key at fault.
func (e *EntryError) Error() string {
	where := fmt.Sprintf("entry %d", e.Index)
	if e.Name != "" {
		where += fmt.Sprintf(" (name %q, line %d)", e.Name, e.Line)
	} else {
		where += fmt.Sprintf(" (line %d)", e.Line)
	}
	if e.Key != "" {
		return fmt.Sprintf("routing: all_queues %s: key %q: %s", where, e.Key, e.Msg)
	}
	return fmt.Sprintf("routing: all_queues %s: %s", where, e.Msg)
}

// Unwrap returns ErrInvalidWorker.
func (e *EntryError) Unwrap() error { return ErrInvalidWorker }
