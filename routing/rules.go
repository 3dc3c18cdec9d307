package routing

import (
	"fmt"
	"strings"
	"unicode"

	"go.yaml.in/yaml/v3"
)

// Rule routes the workers its Query selects to Queue. A blank Queue (empty
// or whitespace only) means each worker's generated queue name (see
// GeneratedQueueName), as a null, false or blank queue does in GitLab.
type Rule struct {
	Query string
	Queue string
}

// ParseRules reads routing rules in GitLab's configuration form, a JSON or
// YAML list of [selector, queue] pairs, and reads them as GitLab's
// WorkerRouter.new does, for example
//
//	[["feature_category=global_search&urgency=throttled", "elasticsearch"], ["*", null]]
//
// YAML scalars are typed as Ruby's YAML library types them, and the queue
// becomes what Sidekiq would use: null, false, "" and whitespace-only
// strings mean the generated queue name; true, numbers, dates and Symbols
// (:name) become their Ruby text ("true", "5", "name"). Queue names are not
// checked, as GitLab does not check them.
//
// Errors, as in GitLab (every one a *RuleError with a Kind, wrapping
// ErrInvalidRule): a document that is not a list, including null and an
// empty document (RulesNotList); a rule that is not a list of exactly two
// items (RuleNotPair); a selector that is not a string (SelectorNotString);
// a selector that does not parse (the *SyntaxError's kind). Every selector is
// compiled, including those after a catch-all, and the first bad rule
// decides. A queue given as a list, a mapping, a timestamp or a tagged value
// is refused with UnsupportedValue: GitLab would use Ruby's text of it.
//
// ParseRulesStrict also refuses what GitLab accepts silently, and LintRules
// reports every problem at once.
func ParseRules(data []byte) ([]Rule, error) {
	doc, err := readRulesDocument(data)
	if err != nil {
		return nil, err
	}
	rules := make([]Rule, 0, len(doc))
	for _, rr := range doc {
		if err := rr.gitlabError(); err != nil {
			return nil, err
		}
		rules = append(rules, rr.rule)
	}
	return rules, nil
}

// rawRule is one item of a rules document as GitLab sees it.
type rawRule struct {
	index, line int
	items       int       // number of items when the rule is a list, else -1
	what        string    // description when it is not a list
	query       rubyValue // the selector
	queue       rubyValue // the queue
	scan        selectorScan
	rule        Rule
}

// readRulesDocument parses data into rules without judging them, except for
// a document that is not a list.
func readRulesDocument(data []byte) ([]rawRule, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, &RuleError{Index: -1, Kind: InvalidDocument, Err: fmt.Errorf("not valid YAML or JSON: %w", err)}
	}
	root := documentRoot(&doc)
	if root == nil {
		return nil, &RuleError{Index: -1, Kind: RulesNotList,
			Err: fmt.Errorf("the document is empty or null; want a list of [selector, queue] pairs (GitLab raises InvalidRoutingRuleError)")}
	}
	if root.Kind != yaml.SequenceNode {
		return nil, &RuleError{Index: -1, Line: root.Line, Kind: RulesNotList,
			Err: fmt.Errorf("want a list of [selector, queue] pairs, got %s (GitLab raises InvalidRoutingRuleError)", rubyNode(root).what())}
	}
	rules := make([]rawRule, len(root.Content))
	for i, item := range root.Content {
		item = resolveAlias(item)
		rr := rawRule{index: i, line: item.Line, items: -1}
		if item.Kind != yaml.SequenceNode {
			rr.what = rubyNode(item).what()
			rules[i] = rr
			continue
		}
		rr.items = len(item.Content)
		if rr.items == 2 {
			rr.query = rubyNode(item.Content[0])
			rr.queue = rubyNode(item.Content[1])
			if rr.query.kind == rubyString {
				rr.scan = scanSelector(rr.query.text, true)
				rr.rule.Query = rr.query.text
			}
			rr.rule.Queue, _ = rr.queue.toS()
		}
		rules[i] = rr
	}
	return rules, nil
}

// gitlabError returns the error GitLab (or Ferry's limit) raises for the
// rule, or nil.
func (rr *rawRule) gitlabError() error {
	fail := func(kind Problem, err error) error {
		return &RuleError{Index: rr.index, Line: rr.line, Kind: kind, Err: err}
	}
	switch {
	case rr.items < 0:
		return fail(RuleNotPair, fmt.Errorf("want a [selector, queue] pair, got %s (GitLab raises InvalidRoutingRuleError)", rr.what))
	case rr.items == 3:
		return fail(RuleNotPair, fmt.Errorf("want a [selector, queue] pair, got 3 items; [selector, queue, store] rules belong to GitLab's Sidekiq sharding, which this router does not model (GitLab before it raises InvalidRoutingRuleError)"))
	case rr.items != 2:
		return fail(RuleNotPair, fmt.Errorf("want a [selector, queue] pair, got a list of %d items (GitLab raises InvalidRoutingRuleError)", rr.items))
	case rr.query.kind != rubyString:
		return fail(SelectorNotString, fmt.Errorf("selector: want a string, got %s (GitLab fails: Ruby raises NoMethodError)", rr.query.what()))
	case rr.scan.err != nil:
		return fail(rr.scan.err.Kind, rr.scan.err)
	}
	if msg := rr.unsupportedQueue(); msg != "" {
		return fail(UnsupportedValue, fmt.Errorf("queue: %s", msg))
	}
	return nil
}

// unsupportedQueue explains why Ferry cannot use the queue value as GitLab
// would, or returns "".
func (rr *rawRule) unsupportedQueue() string {
	if _, ok := rr.queue.toS(); !ok {
		return fmt.Sprintf("%s is not a queue name; GitLab would use Ruby's text of it, which Ferry does not reproduce", rr.queue.what())
	}
	if rr.queue.kind == rubySymbol && rr.queue.text != "" && strings.TrimFunc(rr.queue.text, unicode.IsSpace) == "" {
		return fmt.Sprintf("%s names a whitespace-only queue, which GitLab uses as it is but Ferry reads as blank", rr.queue.what())
	}
	return ""
}

// compiledRule is a Rule with its query parsed.
type compiledRule struct {
	sel   Selector
	queue string // "" means the generated queue name
}

func compileRule(r Rule) (compiledRule, error) {
	sel, err := Parse(r.Query)
	if err != nil {
		return compiledRule{}, err
	}
	c := compiledRule{sel: sel, queue: r.Queue}
	if blankString(r.Queue) {
		c.queue = ""
	}
	return c, nil
}

// blankString is Rails' String#blank?: empty or Unicode whitespace only.
func blankString(s string) bool {
	return strings.TrimFunc(s, unicode.IsSpace) == ""
}
