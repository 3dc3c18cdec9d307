package routing

import (
	"math/bits"
	"strings"
)

// Attribute names worker attributes that selectors test. The constants are
// bit flags, so one Attribute value can also hold a set of attributes joined
// with |, as Worker.Nil and Worker.Strings do.
type Attribute uint16

// The eight selector attributes, exactly those GitLab's WorkerMatcher accepts.
const (
	AttrWorkerName              Attribute = 1 << iota // worker_name: the class name (a String)
	AttrName                                          // name: the generated queue name (a String)
	AttrFeatureCategory                               // feature_category (a Symbol)
	AttrUrgency                                       // urgency (a Symbol)
	AttrResourceBoundary                              // resource_boundary (a Symbol)
	AttrHasExternalDependencies                       // has_external_dependencies (a boolean)
	AttrTags                                          // tags (a list of Symbols)
	AttrQueueNamespace                                // queue_namespace (a Symbol)

	attrAll = AttrWorkerName | AttrName | AttrFeatureCategory | AttrUrgency | AttrResourceBoundary |
		AttrHasExternalDependencies | AttrTags | AttrQueueNamespace
)

// symbolAttrs are the attributes whose query values GitLab converts to
// Symbols; a worker value stored as a String never equals them.
const symbolAttrs = AttrFeatureCategory | AttrUrgency | AttrResourceBoundary | AttrTags | AttrQueueNamespace

// attributeNames lists the attributes in bit order.
var attributeNames = [...]string{
	"worker_name", "name", "feature_category", "urgency", "resource_boundary",
	"has_external_dependencies", "tags", "queue_namespace",
}

// attributeList is the help text for unknown-attribute errors, sorted.
const attributeList = "feature_category, has_external_dependencies, name, queue_namespace, resource_boundary, tags, urgency, worker_name"

// lookupAttribute returns the attribute a selector term names. Names are
// case-sensitive, as in GitLab.
func lookupAttribute(name string) (Attribute, bool) {
	for i, n := range attributeNames {
		if n == name {
			return Attribute(1) << i, true
		}
	}
	return 0, false
}

// Has reports whether every attribute in b is in a.
func (a Attribute) Has(b Attribute) bool { return a&b == b }

// String returns the attribute's name in the selector language, or for a set
// the names joined with "|", in bit order; the empty set prints as "".
func (a Attribute) String() string {
	if a == 0 {
		return ""
	}
	var names []string
	for rest := a; rest != 0; rest &= rest - 1 {
		i := bits.TrailingZeros16(uint16(rest))
		if i < len(attributeNames) {
			names = append(names, attributeNames[i])
		} else {
			names = append(names, "attribute(bit "+string(rune('0'+i/10))+string(rune('0'+i%10))+")")
		}
	}
	return strings.Join(names, "|")
}
