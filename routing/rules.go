package routing

import (
	"fmt"

	"go.yaml.in/yaml/v3"
)

// Rule routes the workers its Query selects to Queue. An empty Queue means
// each worker's generated queue name (see GeneratedQueueName).
type Rule struct {
	Query string
	Queue string
}

// ParseRules reads routing rules in their usual configuration form: a JSON or
// YAML list of [query, queue] pairs, where queue may be null (the worker's
// generated queue name), for example
//
//	[["feature_category=global_search&urgency=throttled", "elasticsearch"], ["*", null]]
//
// Every query is parsed and every queue name checked, so a returned list is
// accepted by NewRouter. A rule that is not a pair, has a non-string query or a
// queue that is neither a string nor null, or a query or queue that does not
// parse, is a *RuleError naming its index and line. An empty document yields
// no rules.
func ParseRules(data []byte) ([]Rule, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("%w: rules: %w", ErrInvalidRule, err)
	}
	root := documentRoot(&doc)
	if root == nil {
		return nil, nil
	}
	if root.Kind != yaml.SequenceNode {
		return nil, fmt.Errorf("%w: rules: line %d: want a list of [query, queue] pairs, got %s",
			ErrInvalidRule, root.Line, describeNode(root))
	}
	rules := make([]Rule, 0, len(root.Content))
	for i, item := range root.Content {
		item = resolveAlias(item)
		fail := func(err error) error { return &RuleError{Index: i, Line: item.Line, Err: err} }
		if item.Kind != yaml.SequenceNode || len(item.Content) != 2 {
			what := describeNode(item)
			if item.Kind == yaml.SequenceNode {
				what = fmt.Sprintf("a list of %d items", len(item.Content))
			}
			return nil, fail(fmt.Errorf("want a [query, queue] pair, got %s", what))
		}
		q, queue := resolveAlias(item.Content[0]), resolveAlias(item.Content[1])
		if q.Kind != yaml.ScalarNode || q.ShortTag() != "!!str" {
			return nil, fail(fmt.Errorf("query: want a string, got %s", describeNode(q)))
		}
		r := Rule{Query: q.Value}
		switch {
		case queue.Kind == yaml.ScalarNode && queue.ShortTag() == "!!null":
		case queue.Kind == yaml.ScalarNode && queue.ShortTag() == "!!str":
			r.Queue = queue.Value
		default:
			return nil, fail(fmt.Errorf("queue: want a string or null, got %s", describeNode(queue)))
		}
		if _, err := compileRule(r); err != nil {
			return nil, fail(err)
		}
		rules = append(rules, r)
	}
	return rules, nil
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
	if r.Queue != "" && !validQueueName(r.Queue) {
		return compiledRule{}, fmt.Errorf("%w %q: use letters, digits and _:.-/, or null for the generated name",
			ErrInvalidQueue, r.Queue)
	}
	return compiledRule{sel: sel, queue: r.Queue}, nil
}
