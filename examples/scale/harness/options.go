package harness

import (
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/ferryhq/ferry/enqueuer"
	"github.com/ferryhq/ferry/lease"
)

// Defaults of Options.
const (
	// DefaultLatency is added to every object operation, like a remote
	// object store's round trip.
	DefaultLatency = 100 * time.Millisecond
	// DefaultFailureRate is the share of object operations that fail with
	// HTTP 503.
	DefaultFailureRate = 0.01
	// DefaultSinkLatency is the metadata database's round trip.
	DefaultSinkLatency = time.Millisecond
	// DefaultCapacity is how many repositories are imported at once.
	DefaultCapacity = 8
	// DefaultConcurrency is how many storage operations one repository's
	// import keeps in flight. With DefaultCapacity that is about 500
	// operations in flight, 5,000 a second at 100 ms: what two shared
	// cores can serve. More makes the run CPU-bound, slower to predict
	// and not faster.
	DefaultConcurrency = 64
	// DefaultTick is how often the enqueuer runs when no notification
	// triggered it.
	DefaultTick = time.Second
	// DefaultProgressInterval is how often the progress line is refreshed.
	DefaultProgressInterval = 5 * time.Second
	// DefaultBufferSize is the Transferer's copy buffer: the generated
	// blobs are at most 16 KiB, so each is copied in one piece, and the
	// buffers in flight stay small.
	DefaultBufferSize = 32 << 10
)

// Options configures Run. The zero value runs the seed's scenario: 100 ms
// per object operation, 1 % of them failing with 503, 8 repositories at
// once with 64 operations in flight each, in-memory enqueuer store and
// lease.
type Options struct {
	// Latency is added to every operation on the source and destination
	// buckets. Default DefaultLatency; negative: none.
	Latency time.Duration
	// FailureRate is the share of bucket operations that fail with HTTP
	// 503 (chosen by a hash of FaultSeed, operation, key and call, so a
	// run is reproducible). Default DefaultFailureRate; negative: none.
	FailureRate float64
	// SlowReadRate is the share of blob and link reads that stall halfway
	// for ten times Latency (at least 10ms) before delivering the rest
	// (faultblob.SlowRead). Default 0: none.
	SlowReadRate float64
	// FaultSeed seeds the failure choice. Default 1.
	FaultSeed uint64
	// SinkLatency delays every metadata (Sink) call. Default
	// DefaultSinkLatency; negative: none.
	SinkLatency time.Duration

	// Capacity is the enqueuer's capacity and the registry's limit of
	// concurrent imports. Default DefaultCapacity.
	Capacity int
	// Concurrency is transfer.ImportOptions.Concurrency for each
	// repository's import. Default DefaultConcurrency.
	Concurrency int
	// BufferSize is transfer.Options.BufferSize. Default DefaultBufferSize.
	BufferSize int
	// MaxTags skips repositories with more tags than this (the enqueuer's
	// MaxTagsCount); they are listed in Result.Rejected. Default 0: no
	// limit, as in the seed's import.
	MaxTags int
	// MaxRetries is the enqueuer's MaxRetries. Default: the enqueuer's.
	MaxRetries int
	// Tick is how often the enqueuer runs besides after every
	// notification. Default DefaultTick.
	Tick time.Duration

	// Store keeps the enqueuer's repositories. Default: a new in-memory
	// enqueuertest.Store. A shared store must not already hold the
	// workload's repositories.
	Store enqueuer.Store
	// Locker provides the enqueuer's lease. Default: a new in-memory
	// leasetest.Locker.
	Locker lease.Locker
	// LeaseKey is the enqueuer's lease key. Default: a key unique to the
	// run.
	LeaseKey string

	// DestinationDir is the fileblob directory imported into; it must be
	// empty or absent. Default: a new directory under /dev/shm when that
	// exists (a tmpfs: creating and removing a hundred thousand small
	// files on a disk can take minutes), else under os.TempDir(), removed
	// at the end unless KeepDestination.
	DestinationDir  string
	KeepDestination bool

	// BaselineRepositories, if positive, also imports that many
	// repositories one at a time with one operation in flight (the seed's
	// importer), in the background and into a separate destination, to
	// measure the baseline in the same run. Result.Baseline extrapolates
	// it to the whole workload.
	BaselineRepositories int

	// Progress receives a progress line every ProgressInterval (default
	// DefaultProgressInterval). Nil: no progress lines.
	Progress         io.Writer
	ProgressInterval time.Duration
	// Logger receives warnings from the importer, registry and enqueuer.
	// Default: discard.
	Logger *slog.Logger
}

func (o Options) withDefaults() (Options, error) {
	switch {
	case o.Capacity < 0, o.Concurrency < 0, o.BufferSize < 0, o.MaxTags < 0, o.BaselineRepositories < 0:
		return o, fmt.Errorf("scale: negative Capacity, Concurrency, BufferSize, MaxTags or BaselineRepositories in %+v", o)
	case o.FailureRate >= 1:
		return o, fmt.Errorf("scale: FailureRate %v must be below 1", o.FailureRate)
	case o.SlowReadRate < 0 || o.SlowReadRate >= 1:
		return o, fmt.Errorf("scale: SlowReadRate %v must be in [0, 1)", o.SlowReadRate)
	}
	if o.Latency == 0 {
		o.Latency = DefaultLatency
	}
	o.Latency = max(o.Latency, 0)
	if o.FailureRate == 0 {
		o.FailureRate = DefaultFailureRate
	}
	o.FailureRate = max(o.FailureRate, 0)
	if o.FaultSeed == 0 {
		o.FaultSeed = 1
	}
	if o.SinkLatency == 0 {
		o.SinkLatency = DefaultSinkLatency
	}
	o.SinkLatency = max(o.SinkLatency, 0)
	if o.Capacity == 0 {
		o.Capacity = DefaultCapacity
	}
	if o.Concurrency == 0 {
		o.Concurrency = DefaultConcurrency
	}
	if o.BufferSize == 0 {
		o.BufferSize = DefaultBufferSize
	}
	if o.Tick <= 0 {
		o.Tick = DefaultTick
	}
	if o.ProgressInterval <= 0 {
		o.ProgressInterval = DefaultProgressInterval
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o, nil
}
