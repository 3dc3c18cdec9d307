package enqueuer

import (
	"cmp"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Order is the order in which List returns repositories and the Enqueuer
// starts waiting ones (Config.Order). It is one of the named orders below,
// or a list of sort keys made by OrderBy: fields of Repository by their
// column names, each ascending or, with a leading "-", descending, such as
// "-priority,created_at". Every order ends with ID (appended when absent),
// so it is total and stable, and pages continue with ListOptions.After.
//
// An Order is both an SQL ORDER BY for PostgresStore (its columns come from
// a fixed list and are quoted, so an Order never carries SQL of its own)
// and a Go comparison for stores in memory (Comparator): both sort the same
// way, which enqueuertest.TestStore checks.
type Order string

// The named orders.
const (
	// OrderOldest: oldest in the state first (StateChangedAt, ID). The
	// default, and the enqueuer's default selection order: for
	// StateDefault, StateChangedAt is CreatedAt.
	OrderOldest Order = "oldest"
	// OrderNewest: most recent in the state first (StateChangedAt and ID
	// descending), e.g. the latest finished imports.
	OrderNewest Order = "newest"
	// OrderSmallest: fewest tags first (TagCount, StateChangedAt, ID).
	// Small repositories import quickly, so starting them first keeps the
	// capacity busy and the count of migrated repositories climbing.
	OrderSmallest Order = "smallest"
	// OrderPath: by path, byte by byte (as in the C locale), for listings
	// by path prefix.
	OrderPath Order = "path"
	// OrderPriority: highest Priority first, then oldest in the state
	// (-priority, state_changed_at, id). With the host's plan tiers as
	// priorities it starts the paying tiers first and, within a tier, the
	// repositories that waited longest. PostgresStore serves it from an
	// index, like OrderOldest and OrderSmallest.
	OrderPriority Order = "-priority,state_changed_at"
)

// The fields an Order may sort by: columns of the repository record that
// are never NULL.
const (
	FieldPriority       = "priority"         // Repository.Priority
	FieldTagCount       = "tag_count"        // Repository.TagCount
	FieldRetryCount     = "retry_count"      // Repository.RetryCount
	FieldCreatedAt      = "created_at"       // Repository.CreatedAt
	FieldStateChangedAt = "state_changed_at" // Repository.StateChangedAt
	FieldPath           = "path"             // Repository.Path, byte by byte
	FieldID             = "id"               // Repository.ID
)

// OrderKey is one sort key of an Order.
type OrderKey struct {
	// Field is one of the Field constants.
	Field string
	// Desc sorts from the largest value down.
	Desc bool
}

// OrderBy returns the Order of keys, each a Field name, with a leading
// "-" for descending: OrderBy("-priority", "created_at") starts the highest
// priority first and, within one, the oldest repository. It does not
// check the keys; Order.Valid and Config (through New) do.
func OrderBy(keys ...string) Order {
	return Order(strings.Join(keys, ","))
}

// Valid reports whether o is a named order, a valid list of keys, or empty
// (OrderOldest).
func (o Order) Valid() bool {
	_, err := o.Keys()
	return err == nil
}

// Keys returns o's sort keys, ID last, or an error wrapping
// ErrInvalidOrder that names what is wrong: an unknown field, a field
// given twice, an empty key. Stores that build
// their own queries sort by these.
func (o Order) Keys() ([]OrderKey, error) {
	switch o {
	case "", OrderOldest:
		return []OrderKey{{Field: FieldStateChangedAt}, {Field: FieldID}}, nil
	case OrderNewest:
		return []OrderKey{{Field: FieldStateChangedAt, Desc: true}, {Field: FieldID, Desc: true}}, nil
	case OrderSmallest:
		return []OrderKey{{Field: FieldTagCount}, {Field: FieldStateChangedAt}, {Field: FieldID}}, nil
	case OrderPath:
		return []OrderKey{{Field: FieldPath}, {Field: FieldID}}, nil
	}
	if len(o) > 200 {
		return nil, fmt.Errorf("%w: %d bytes is too long", ErrInvalidOrder, len(o))
	}
	var keys []OrderKey
	seen := map[string]bool{}
	for k := range strings.SplitSeq(string(o), ",") {
		key := OrderKey{Field: strings.TrimSpace(k)}
		if rest, ok := strings.CutPrefix(key.Field, "-"); ok {
			key.Field, key.Desc = rest, true
		}
		switch {
		case key.Field == "":
			return nil, fmt.Errorf("%w %q: an empty key", ErrInvalidOrder, string(o))
		case fieldCompare(key.Field) == nil:
			return nil, fmt.Errorf("%w %q: unknown field %q (want one of %s)", ErrInvalidOrder, string(o), key.Field,
				strings.Join([]string{FieldPriority, FieldTagCount, FieldRetryCount, FieldCreatedAt, FieldStateChangedAt, FieldPath, FieldID}, ", "))
		case seen[key.Field]:
			return nil, fmt.Errorf("%w %q: sorts by %s twice", ErrInvalidOrder, string(o), key.Field)
		}
		seen[key.Field] = true
		keys = append(keys, key)
	}
	if !seen[FieldID] {
		keys = append(keys, OrderKey{Field: FieldID})
	}
	return keys, nil
}

// Comparator returns the comparison of o: negative when a comes before b,
// positive after, zero for the same repository. It fails as Keys does.
func (o Order) Comparator() (func(a, b Repository) int, error) {
	keys, err := o.Keys()
	if err != nil {
		return nil, err
	}
	return compareByKeys(keys), nil
}

// comparator is Comparator, OrderOldest for an invalid order.
func (o Order) comparator() func(a, b Repository) int {
	c, err := o.Comparator()
	if err != nil {
		c, _ = OrderOldest.Comparator()
	}
	return c
}

func compareByKeys(keys []OrderKey) func(a, b Repository) int {
	cmps := make([]func(a, b Repository) int, len(keys))
	for i, k := range keys {
		cmps[i] = fieldCompare(k.Field)
	}
	return func(a, b Repository) int {
		for i, c := range cmps {
			if n := c(a, b); n != 0 {
				if keys[i].Desc {
					return -n
				}
				return n
			}
		}
		return 0
	}
}

// fieldCompare returns the ascending comparison of field, nil for an
// unknown one.
func fieldCompare(field string) func(a, b Repository) int {
	switch field {
	case FieldPriority:
		return func(a, b Repository) int { return cmp.Compare(a.Priority, b.Priority) }
	case FieldTagCount:
		return func(a, b Repository) int { return cmp.Compare(a.TagCount, b.TagCount) }
	case FieldRetryCount:
		return func(a, b Repository) int { return cmp.Compare(a.RetryCount, b.RetryCount) }
	case FieldCreatedAt:
		return func(a, b Repository) int { return a.CreatedAt.Compare(b.CreatedAt) }
	case FieldStateChangedAt:
		return func(a, b Repository) int { return a.StateChangedAt.Compare(b.StateChangedAt) }
	case FieldPath:
		return func(a, b Repository) int { return strings.Compare(a.Path, b.Path) }
	case FieldID:
		return func(a, b Repository) int { return cmp.Compare(a.ID, b.ID) }
	}
	return nil
}

// fieldValue returns r's value of field, as PostgresStore binds it.
func fieldValue(r Repository, field string) any {
	switch field {
	case FieldPriority:
		return r.Priority
	case FieldTagCount:
		return r.TagCount
	case FieldRetryCount:
		return r.RetryCount
	case FieldCreatedAt:
		return r.CreatedAt
	case FieldStateChangedAt:
		return r.StateChangedAt
	case FieldPath:
		return r.Path
	}
	return r.ID
}

// sqlOrder is an Order as PostgresStore writes it: the ORDER BY list, and
// the condition that keeps only the rows after a (ListOptions.After),
// whose values arg binds. Columns are quoted identifiers from the fixed
// list of fields; paths compare in byte order (COLLATE "C"), which the
// path indexes are built with.
func sqlOrder(keys []OrderKey, after *Repository, arg func(any) string) (orderBy, afterCond string) {
	cols := make([]string, len(keys))
	terms := make([]string, len(keys))
	sameDirection := true
	for i, k := range keys {
		cols[i] = pgx.Identifier{k.Field}.Sanitize()
		if k.Field == FieldPath {
			cols[i] += ` COLLATE "C"`
		}
		terms[i] = cols[i]
		if k.Desc {
			terms[i] += " DESC"
		}
		sameDirection = sameDirection && k.Desc == keys[0].Desc
	}
	orderBy = strings.Join(terms, ", ")
	if after == nil {
		return orderBy, ""
	}
	vals := make([]string, len(keys))
	for i, k := range keys {
		vals[i] = arg(fieldValue(*after, k.Field))
	}
	op := func(desc bool) string {
		if desc {
			return " < "
		}
		return " > "
	}
	if sameDirection {
		// One row comparison, which an index in this order serves.
		return orderBy, "(" + strings.Join(cols, ", ") + ")" + op(keys[0].Desc) + "(" + strings.Join(vals, ", ") + ")"
	}
	// Mixed directions: after on the first key, or equal on it and after
	// on the next, and so on.
	var ors []string
	for i, k := range keys {
		var ands []string
		for j := range i {
			ands = append(ands, cols[j]+" = "+vals[j])
		}
		ands = append(ands, cols[i]+op(k.Desc)+vals[i])
		ors = append(ors, "("+strings.Join(ands, " AND ")+")")
	}
	return orderBy, "(" + strings.Join(ors, " OR ") + ")"
}
