package routing

import "strconv"

// Problem classifies what is wrong with a selector, a routing rule or a rules
// document, so that callers can act on errors and lint findings without
// matching message text. SyntaxError.Kind, RuleError.Kind and Finding.Kind
// hold one.
//
// Problems fall into four classes:
//   - GitLab rejects them too (GitLabRejects): errors in every mode;
//   - GitLab accepts them but Ferry cannot reproduce what GitLab would then
//     do (FerryLimit): errors in every mode, and the message says why;
//   - GitLab accepts them silently but they are almost certainly mistakes:
//     errors only in strict mode (ParseStrict, ParseRulesStrict) and
//     findings of Lint and LintRules;
//   - notices (Notice): reported by the linter, never errors.
type Problem uint8

// Problems GitLab rejects.
const (
	// InvalidTerm: a term does not match GitLab's term pattern
	// attribute(=|!=)value…; this includes empty leading or middle terms,
	// leading spaces, quotes at the start of a value and "*" inside a larger
	// selector (GitLab's WorkerMatcher::InvalidTerm).
	InvalidTerm Problem = iota + 1
	// UnknownAttribute: a well-formed term names an attribute other than the
	// eight selector attributes (GitLab's WorkerMatcher::UnknownPredicate).
	UnknownAttribute
	// InvalidEncoding: the selector is not valid UTF-8 (Ruby raises
	// ArgumentError before looking at it).
	InvalidEncoding
	// SelectorNotString: a rule's selector is not a string, for example
	// null, a number or a list (Ruby raises NoMethodError).
	SelectorNotString
	// RulesNotList: the rules document is not a list; null and an empty
	// document included (GitLab's InvalidRoutingRuleError).
	RulesNotList
	// RuleNotPair: a rule is not a list of exactly two items [selector,
	// queue] (GitLab's InvalidRoutingRuleError).
	RuleNotPair
	// InvalidDocument: the rules document is not valid YAML or JSON.
	InvalidDocument
)

// A problem GitLab accepts but Ferry does not model.
const (
	// UnsupportedValue: a rule's queue (or a worker attribute) is a YAML
	// value whose Ruby text form Ferry does not reproduce: a list, a
	// mapping, a timestamp or a tagged value. GitLab would use Ruby's text
	// form of it as the queue name.
	UnsupportedValue Problem = iota + 32
)

// Problems GitLab accepts silently; strict mode rejects them.
const (
	// EmptySelector: the selector is the empty string. GitLab matches no
	// worker with it.
	EmptySelector Problem = iota + 64
	// EmptyAlternative: an empty alternative around "|". GitLab ignores a
	// trailing one but reads a leading or middle one (or one made only of
	// "&") as an alternative without terms, which matches every worker.
	EmptyAlternative
	// EmptyTerm: a trailing "&" with nothing after it. GitLab ignores it.
	EmptyTerm
	// TrailingText: characters after a term's value list, such as a
	// trailing space, a quote or "-on_provisioning". GitLab ignores them
	// and reads only the values before them.
	TrailingText
	// EmptyValue: an empty item in a value list. GitLab ignores trailing
	// ones; an empty leading or middle item matches nothing (reads as false
	// for has_external_dependencies); a list with no value at all makes =
	// match nothing and != match everything.
	EmptyValue
	// ColonValue: a value of a Symbol attribute written with a leading ":"
	// as in all_queues.yml (urgency=:high). GitLab compares it with the
	// Symbol :":high", which no worker has.
	ColonValue
	// BooleanText: a has_external_dependencies value other than true or
	// false. GitLab reads every value except exactly "true" as false.
	BooleanText
	// MultiLineTerm: a term spanning lines. GitLab's pattern matches at any
	// line start, so it reads the term from a later line.
	MultiLineTerm
	// UnknownValue: a value no worker has for that attribute (a typo such
	// as feature_category=global_serach). Needs the worker list.
	UnknownValue
	// MatchesNothing: the selector matches no worker, or a rule routes no
	// worker (its selector matches only the entries GitLab never routes).
	// Needs the worker list.
	MatchesNothing
	// Unreachable: a rule comes after a rule that matches every worker
	// (such as "*"), or, with the worker list, every worker it matches is
	// already routed by earlier rules.
	Unreachable
	// QueueNotString: a rule's queue is neither a string nor null; GitLab
	// uses Ruby's text form (true → "true", 5 → "5", :x → "x") and false
	// means the generated name.
	QueueNotString
	// BlankQueue: a rule's queue is a whitespace-only string. GitLab treats
	// it as null: the generated queue name.
	BlankQueue
	// UnlistenableQueue: a queue name with a comma, whitespace or control
	// character, which a sidekiq-cluster command line cannot name.
	UnlistenableQueue
)

// Notices.
const (
	// NoCatchAll: the last rule is not "*". GitLab logs a warning and routes
	// unmatched workers to their generated queue names.
	NoCatchAll Problem = iota + 128
)

var problemNames = map[Problem]string{
	InvalidTerm:       "invalid-term",
	UnknownAttribute:  "unknown-attribute",
	InvalidEncoding:   "invalid-encoding",
	SelectorNotString: "selector-not-string",
	RulesNotList:      "rules-not-list",
	RuleNotPair:       "rule-not-pair",
	InvalidDocument:   "invalid-document",
	UnsupportedValue:  "unsupported-value",
	EmptySelector:     "empty-selector",
	EmptyAlternative:  "empty-alternative",
	EmptyTerm:         "empty-term",
	TrailingText:      "trailing-text",
	EmptyValue:        "empty-value",
	ColonValue:        "colon-value",
	BooleanText:       "boolean-text",
	MultiLineTerm:     "multi-line-term",
	UnknownValue:      "unknown-value",
	MatchesNothing:    "matches-nothing",
	Unreachable:       "unreachable",
	QueueNotString:    "queue-not-string",
	BlankQueue:        "blank-queue",
	UnlistenableQueue: "unlistenable-queue",
	NoCatchAll:        "no-catch-all",
}

// String returns a short kebab-case name, such as "trailing-text".
func (p Problem) String() string {
	if n, ok := problemNames[p]; ok {
		return n
	}
	return "Problem(" + strconv.Itoa(int(p)) + ")"
}

// GitLabRejects reports whether GitLab itself fails on this problem.
func (p Problem) GitLabRejects() bool { return p >= InvalidTerm && p <= InvalidDocument }

// FerryLimit reports whether GitLab accepts this problem but Ferry refuses
// it in every mode because it does not reproduce what GitLab would do.
func (p Problem) FerryLimit() bool { return p == UnsupportedValue }

// Strict reports whether GitLab accepts this problem silently and only
// strict mode rejects it.
func (p Problem) Strict() bool { return p >= EmptySelector && p <= UnlistenableQueue }

// Notice reports whether the problem is only worth a note: the linter
// reports it, strict mode accepts it.
func (p Problem) Notice() bool { return p == NoCatchAll }
