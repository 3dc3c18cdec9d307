package sidekiqmove

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// job is what the mover needs from a Sidekiq job payload: the worker class
// and where the value of its top-level "queue" key sits in the raw JSON, so
// that the payload can be rewritten without re-encoding anything else.
// Re-encoding would change key order, number formatting (large integers in
// args) or escapes, which the job's code may depend on.
type job struct {
	worker string // "wrapped" when present (ActiveJob), else "class"
	queue  string
	// queueStart and queueEnd delimit the queue value, quotes included.
	queueStart, queueEnd int
}

// parseJob reads a payload: a JSON object with a non-empty string "class",
// an optional string "wrapped" and a string "queue", each at most once.
func parseJob(raw string) (job, error) {
	var j job
	dec := json.NewDecoder(strings.NewReader(raw))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return j, fmt.Errorf("not JSON: %w", err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return j, errors.New("not a JSON object")
	}
	var class, wrapped string
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return j, fmt.Errorf("not JSON: %w", err)
		}
		key, _ := tok.(string)
		if seen[key] && (key == "class" || key == "wrapped" || key == "queue") {
			return j, fmt.Errorf("key %q given twice", key)
		}
		seen[key] = true
		afterKey := int(dec.InputOffset())
		switch key {
		case "class", "wrapped", "queue":
			tok, err := dec.Token()
			if err != nil {
				return j, fmt.Errorf("not JSON: %w", err)
			}
			s, ok := tok.(string)
			if !ok {
				return j, fmt.Errorf("%q is not a string", key)
			}
			switch key {
			case "class":
				class = s
			case "wrapped":
				wrapped = s
			case "queue":
				j.queue = s
				j.queueEnd = int(dec.InputOffset())
				j.queueStart = afterKey + strings.IndexByte(raw[afterKey:j.queueEnd], '"')
			}
		default:
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return j, fmt.Errorf("not JSON: %w", err)
			}
		}
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return j, fmt.Errorf("not JSON: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return j, errors.New("not JSON: data after the object")
	}
	switch {
	case class == "":
		return j, errors.New(`no "class"`)
	case !seen["queue"]:
		return j, errors.New(`no "queue"`)
	}
	j.worker = class
	if wrapped != "" {
		j.worker = wrapped
	}
	return j, nil
}

// withQueue returns raw with the value of its "queue" key replaced by queue,
// every other byte unchanged.
func (j job) withQueue(raw, queue string) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false) // as Ruby's JSON writes it
	_ = enc.Encode(queue)    // a string always encodes
	return raw[:j.queueStart] + strings.TrimSuffix(b.String(), "\n") + raw[j.queueEnd:]
}
