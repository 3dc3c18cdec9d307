package faultblob

import (
	"fmt"
	"hash/fnv"
	"net/http"
	"strings"
)

// Op names a kind of bucket operation.
type Op string

// Operations that can be slowed down or failed.
const (
	OpAttributes Op = "attributes"
	OpList       Op = "list"
	OpRead       Op = "read"  // opening a reader; truncations apply to its data
	OpWrite      Op = "write" // committing a writer (its Close)
	OpDelete     Op = "delete"
)

// Fault is what an injected failure does.
type Fault int

// Faults. The HTTP-style ones fail the operation with an *Error carrying
// that status; the others only make sense for some operations.
const (
	// None lets the operation through.
	None Fault = iota
	// Unavailable fails with HTTP 503.
	Unavailable
	// TooManyRequests fails with HTTP 429.
	TooManyRequests
	// InternalError fails with HTTP 500.
	InternalError
	// Timeout fails with HTTP 408.
	Timeout
	// TruncateRead (OpRead) delivers the first half of the data and then a
	// clean io.EOF, as a proxy that drops a connection might.
	TruncateRead
	// ResetRead (OpRead) delivers the first half of the data and then
	// fails with a 503.
	ResetRead
	// CorruptRead (OpRead) flips one byte of the data: in the middle the
	// first time, elsewhere on later reads (as damage in transit would).
	CorruptRead
	// SlowRead (OpRead) delivers the first half of the data, then stalls
	// for Options.SlowReadDelay before the rest, as a congested or
	// throttled store does. The stall honours the operation's context.
	SlowRead
	// LostAck (OpWrite) commits the upload and then fails with HTTP 503,
	// as when the service finished the work but its answer was lost.
	LostAck
)

// String returns the fault's name.
func (f Fault) String() string {
	switch f {
	case None:
		return "none"
	case Unavailable:
		return "unavailable"
	case TooManyRequests:
		return "too-many-requests"
	case InternalError:
		return "internal-error"
	case Timeout:
		return "timeout"
	case TruncateRead:
		return "truncate-read"
	case ResetRead:
		return "reset-read"
	case CorruptRead:
		return "corrupt-read"
	case SlowRead:
		return "slow-read"
	case LostAck:
		return "lost-ack"
	}
	return fmt.Sprintf("fault(%d)", int(f))
}

func (f Fault) status() int {
	switch f {
	case Unavailable, ResetRead, LostAck:
		return http.StatusServiceUnavailable
	case TooManyRequests:
		return http.StatusTooManyRequests
	case InternalError:
		return http.StatusInternalServerError
	case Timeout:
		return http.StatusRequestTimeout
	}
	return 0
}

// Error is an injected failure.
type Error struct {
	Op     Op
	Key    string
	Status int
}

// Error implements error.
func (e *Error) Error() string {
	return fmt.Sprintf("faultblob: injected HTTP %d %s on %s %q", e.Status, http.StatusText(e.Status), e.Op, e.Key)
}

// HTTPStatusCode returns the injected HTTP status, so code that classifies
// errors by status treats it like a real service error.
func (e *Error) HTTPStatusCode() int { return e.Status }

// Injector decides the fault for the call-th call (1-based) of op on key.
// It must be safe for concurrent use.
type Injector func(op Op, key string, call int) Fault

// FailFirst injects f into the first n calls of each listed operation on
// every key (all operations if none are listed). Callers that retry at
// least n times therefore always succeed.
func FailFirst(n int, f Fault, ops ...Op) Injector {
	return func(op Op, key string, call int) Fault {
		if call <= n && matches(op, ops) {
			return f
		}
		return None
	}
}

// Random injects f into a fraction p of the calls of the listed operations
// (all if none are listed). The choice is a hash of seed, op, key and call,
// so it does not depend on scheduling.
func Random(seed uint64, p float64, f Fault, ops ...Op) Injector {
	return func(op Op, key string, call int) Fault {
		if !matches(op, ops) {
			return None
		}
		h := fnv.New64a()
		fmt.Fprintf(h, "%d\x00%s\x00%s\x00%d", seed, op, key, call)
		if float64(h.Sum64()%1_000_000)/1_000_000 < p {
			return f
		}
		return None
	}
}

// OnKeys restricts inj to keys containing substr.
func OnKeys(substr string, inj Injector) Injector {
	return func(op Op, key string, call int) Fault {
		if !strings.Contains(key, substr) {
			return None
		}
		return inj(op, key, call)
	}
}

// Chain returns the first fault any injector asks for.
func Chain(injs ...Injector) Injector {
	return func(op Op, key string, call int) Fault {
		for _, inj := range injs {
			if f := inj(op, key, call); f != None {
				return f
			}
		}
		return None
	}
}

func matches(op Op, ops []Op) bool {
	if len(ops) == 0 {
		return true
	}
	for _, o := range ops {
		if o == op {
			return true
		}
	}
	return false
}
