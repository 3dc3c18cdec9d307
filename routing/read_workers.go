package routing

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// ReadWorkers reads worker metadata in the all_queues.yml format of
// Rails/Sidekiq deployments: a YAML list of mappings with the keys name
// (required), worker_name, feature_category, has_external_dependencies,
// urgency, resource_boundary, weight, idempotent, tags and queue_namespace,
// plus Ferry's optional rollout flags depends_on_queue_name and
// limited_capacity (see Worker).
//
// Entries with Ruby-Symbol keys (":name: foo", as GitLab generates the file)
// are read as GitLab reads them, with Ruby's YAML typing: ":low" is a
// Symbol, "low" a String (recorded in Worker.Strings, so that urgency=low
// does not match it, as for the mailers entry), and an empty value is nil
// (recorded in Worker.Nil, which matters for has_external_dependencies).
// Plain keys ("urgency: low") are Ferry's hand-written form: there, strings
// are Symbols with or without a leading ":". Several YAML documents in r are
// read in turn; to merge several files (GitLab's app/ and ee/ files), read
// each and pass the results to MergeWorkers.
//
// Unknown keys are ignored. A wrong type, a missing or invalid name, a
// malformed worker_name or queue_namespace, or a key given twice is an
// *EntryError naming the entry and the key. Two entries with the same ID are an
// ErrDuplicateWorker error. Nothing is returned on error.
func ReadWorkers(r io.Reader) ([]Worker, error) {
	dec := yaml.NewDecoder(r)
	var workers []Worker
	seen := make(map[string]int)
	index := 0
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%w: all_queues: %w", ErrInvalidWorker, err)
		}
		root := documentRoot(&doc)
		if root == nil {
			continue
		}
		if root.Kind != yaml.SequenceNode {
			return nil, fmt.Errorf("%w: all_queues: line %d: want a list of worker entries, got %s",
				ErrInvalidWorker, root.Line, describeNode(root))
		}
		for _, item := range root.Content {
			w, err := decodeWorker(index, item)
			if err != nil {
				return nil, err
			}
			if prev, dup := seen[w.ID()]; dup {
				return nil, fmt.Errorf("%w %q: all_queues entries %d and %d", ErrDuplicateWorker, w.ID(), prev, index)
			}
			seen[w.ID()] = index
			workers = append(workers, w)
			index++
		}
	}
	return workers, nil
}

// MergeWorkers concatenates worker lists, for example the results of reading
// a deployment's main and enterprise all_queues.yml files. A worker ID present
// in more than one list is an ErrDuplicateWorker error naming both lists:
// silently letting one file win could route a worker by stale metadata.
func MergeWorkers(lists ...[]Worker) ([]Worker, error) {
	type origin struct{ list, index int }
	seen := make(map[string]origin)
	var out []Worker
	for li, list := range lists {
		for i, w := range list {
			if prev, dup := seen[w.ID()]; dup {
				return nil, fmt.Errorf("%w %q: list %d index %d and list %d index %d",
					ErrDuplicateWorker, w.ID(), prev.list, prev.index, li, i)
			}
			seen[w.ID()] = origin{li, i}
			out = append(out, w)
		}
	}
	return out, nil
}

// documentRoot returns the top node of a decoded document, or nil when the
// document is empty or null.
func documentRoot(doc *yaml.Node) *yaml.Node {
	n := doc
	if n.Kind == yaml.DocumentNode {
		if len(n.Content) == 0 {
			return nil
		}
		n = n.Content[0]
	}
	n = resolveAlias(n)
	if n.Kind == 0 || (n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null") {
		return nil
	}
	return n
}

// resolveAlias follows one alias (*anchor) to the node it names. yaml.v3
// rejects aliases to undefined anchors, and anchors cannot refer to
// themselves, so one step suffices.
func resolveAlias(n *yaml.Node) *yaml.Node {
	if n != nil && n.Kind == yaml.AliasNode && n.Alias != nil {
		return n.Alias
	}
	return n
}

func decodeWorker(index int, item *yaml.Node) (Worker, error) {
	n := resolveAlias(item)
	fail := func(line int, key, name, format string, args ...any) error {
		return &EntryError{Index: index, Line: line, Key: key, Name: name, Msg: fmt.Sprintf(format, args...)}
	}
	if n.Kind != yaml.MappingNode {
		return Worker{}, fail(n.Line, "", "", "want a mapping of worker attributes, got %s", describeNode(n))
	}
	// Find the name first so every later error can mention it.
	var name string
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], resolveAlias(n.Content[i+1])
		if k.Kind == yaml.ScalarNode && strings.TrimPrefix(k.Value, ":") == "name" {
			if rv := rubyNode(v); rv.kind == rubyString {
				name = rv.text
			}
		}
	}

	var w Worker
	seen := make(map[string]bool)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], resolveAlias(n.Content[i+1])
		if k.Kind != yaml.ScalarNode {
			return Worker{}, fail(k.Line, "", name, "want string keys, got %s", describeNode(k))
		}
		// ":key:" (a Ruby Symbol key) is GitLab's generated form, read with
		// Ruby's typing; "key:" is Ferry's hand-written form.
		gitlab := k.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) == 0 && strings.HasPrefix(k.Value, ":")
		key := strings.TrimPrefix(k.Value, ":")
		if key == "<<" {
			return Worker{}, fail(k.Line, key, name, "YAML merge keys are not supported; write the attributes out")
		}
		if seen[key] {
			return Worker{}, fail(k.Line, key, name, "given twice")
		}
		seen[key] = true
		rv := rubyNode(v)
		var err error
		switch key {
		case "name":
			w.QueueName, err = stringValue(rv, "a queue name")
			if err == nil && !validQueueName(w.QueueName) {
				err = fmt.Errorf("invalid queue name %q: use letters, digits and _:.-/", w.QueueName)
			}
		case "worker_name":
			if rv.kind == rubyNil {
				w.Nil |= AttrWorkerName
				break
			}
			w.WorkerName, err = stringValue(rv, "a class name")
			if err == nil && !validClassName(w.WorkerName) {
				err = fmt.Errorf("invalid class name %q: want a constant path like Foo::BarWorker", w.WorkerName)
			}
		case "feature_category":
			w.FeatureCategory, err = symbolValue(&w, AttrFeatureCategory, rv, gitlab)
		case "urgency":
			w.Urgency, err = symbolValue(&w, AttrUrgency, rv, gitlab)
		case "resource_boundary":
			w.ResourceBoundary, err = symbolValue(&w, AttrResourceBoundary, rv, gitlab)
		case "queue_namespace":
			w.QueueNamespace, err = symbolValue(&w, AttrQueueNamespace, rv, gitlab)
			if err == nil && w.QueueNamespace != "" && !validNamespace(w.QueueNamespace) {
				err = fmt.Errorf("invalid queue namespace %q: use letters, digits and _.-/", w.QueueNamespace)
			}
		case "has_external_dependencies":
			var isNil bool
			w.HasExternalDependencies, isNil, err = boolValue(rv)
			if isNil {
				w.Nil |= AttrHasExternalDependencies
			}
		case "idempotent":
			w.Idempotent, _, err = boolValue(rv)
		case "depends_on_queue_name":
			w.DependsOnQueueName, _, err = boolValue(rv)
		case "limited_capacity":
			w.LimitedCapacity, _, err = boolValue(rv)
		case "weight":
			w.Weight, err = weightValue(rv)
		case "tags":
			w.Tags, err = tagsValue(&w, v, gitlab)
		default:
			// Unknown keys are ignored: the format grows over time.
		}
		if err != nil {
			return Worker{}, fail(v.Line, key, name, "%v", err)
		}
	}
	if !seen["name"] {
		return Worker{}, fail(n.Line, "name", "", "missing; every entry needs its queue name")
	}
	return w, nil
}

// stringValue reads a String attribute.
func stringValue(v rubyValue, what string) (string, error) {
	if v.kind != rubyString {
		return "", fmt.Errorf("want a string (%s), got %s", what, v.what())
	}
	return v.text, nil
}

// symbolValue reads a Symbol attribute. In GitLab's form (gitlab set) it keeps
// Ruby's typing: nil sets w.Nil, and a String or another non-Symbol scalar
// sets w.Strings, as GitLab's selector never equals it. In Ferry's
// hand-written form strings are Symbols, with or without the leading colon.
func symbolValue(w *Worker, a Attribute, v rubyValue, gitlab bool) (string, error) {
	switch v.kind {
	case rubyNil:
		w.Nil |= a
		return "", nil
	case rubySymbol:
		return v.text, nil
	case rubyString:
		if !gitlab {
			return strings.TrimPrefix(v.text, ":"), nil
		}
	}
	s, ok := v.toS()
	if !ok || v.kind == rubyFalse || !gitlab {
		return "", fmt.Errorf("want a symbol (:value), a string or null, got %s", v.what())
	}
	w.Strings |= a
	return s, nil
}

// boolValue reads true, false or null.
func boolValue(v rubyValue) (b, isNil bool, err error) {
	switch v.kind {
	case rubyNil:
		return false, true, nil
	case rubyTrue:
		return true, false, nil
	case rubyFalse:
		return false, false, nil
	}
	return false, false, fmt.Errorf("want true, false or null, got %s", v.what())
}

func weightValue(v rubyValue) (int, error) {
	switch v.kind {
	case rubyNil:
		return 0, nil
	case rubyInteger:
		n, err := strconv.Atoi(v.text)
		if err != nil {
			return 0, fmt.Errorf("want an integer: %w", err)
		}
		if n < 0 {
			return 0, fmt.Errorf("want a non-negative integer, got %d", n)
		}
		return n, nil
	}
	return 0, fmt.Errorf("want an integer, got %s", v.what())
}

// tagsValue reads the tags: a list of Symbols in GitLab's form (a single
// scalar counts as a one-tag list, as Ruby's Array() makes it). A list of
// Strings sets w.Strings; mixing Symbols with other values is refused, since
// Worker cannot tell which tag is which.
func tagsValue(w *Worker, n *yaml.Node, gitlab bool) ([]string, error) {
	items := []*yaml.Node{n}
	switch {
	case n.Kind == yaml.SequenceNode:
		items = n.Content
	case rubyNode(n).kind == rubyNil:
		return nil, nil
	}
	var tags []string
	symbols, others := 0, 0
	for i, item := range items {
		v := rubyNode(item)
		switch {
		case v.kind == rubySymbol:
			symbols++
			tags = append(tags, v.text)
			continue
		case v.kind == rubyString && !gitlab:
			tags = append(tags, strings.TrimPrefix(v.text, ":"))
			continue
		}
		s, ok := v.toS()
		if !ok || v.kind == rubyNil || v.kind == rubyFalse || !gitlab {
			return nil, fmt.Errorf("item %d: want a symbol such as :cronjob_child, got %s", i, v.what())
		}
		others++
		tags = append(tags, s)
	}
	if symbols > 0 && others > 0 {
		return nil, fmt.Errorf("mixes Symbols and other values; GitLab's generator writes Symbols only")
	}
	if others > 0 {
		w.Strings |= AttrTags
	}
	return tags, nil
}

// describeNode names a node's type for error messages, quoting short scalars.
func describeNode(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "a list"
	case yaml.MappingNode:
		return "a mapping"
	case yaml.ScalarNode:
		kind := map[string]string{
			"!!str": "string", "!!int": "integer", "!!float": "float", "!!bool": "boolean",
			"!!null": "null", "!!timestamp": "timestamp", "!!binary": "binary",
		}[n.ShortTag()]
		if kind == "" {
			kind = "scalar " + n.ShortTag()
		}
		if kind == "null" {
			return kind
		}
		v := n.Value
		if len(v) > 40 {
			v = v[:40] + "…"
		}
		return fmt.Sprintf("%s %q", kind, v)
	default:
		return "an unsupported YAML node"
	}
}
