package prommetrics

// Histogram buckets, in seconds unless said otherwise. Each spans what the
// measured thing does in practice, with its defaults, from the fast end to
// its timeout, about 2.5x apart so that quantiles stay within one bucket's
// error where it matters.
var (
	// bbmJobBuckets: a job is one short transaction. Adaptive sizing aims
	// at 0.2-0.5s, fixed sizes land anywhere from milliseconds up, and
	// DefaultJobTimeout (2m) cancels the job, so the top bucket is 120s.
	bbmJobBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120}

	// bbmBatchBuckets (keys per job): batch sizes run from tens (NULL
	// backfills of wide rows) to a million (adaptive growth from 100k with
	// the default 10x ceiling).
	bbmBatchBuckets = []float64{10, 50, 100, 500, 1000, 5000, 10_000, 50_000, 100_000, 500_000, 1_000_000}

	// enqueuerRunBuckets: Once takes one registry round trip (tens to
	// hundreds of ms); Loop may run until its deadline
	// (DefaultLoopDeadline, 250s).
	enqueuerRunBuckets = []float64{.01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 250, 500}

	// registryCallBuckets: one HTTP call to the registry's import API,
	// milliseconds when healthy, up to the client's timeout and retries
	// (tens of seconds) when not.
	registryCallBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}

	// notificationBuckets: a notification is a read and a compare-and-set
	// on the primary: around a millisecond, seconds only when the database
	// struggles.
	notificationBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5}

	// leaseRenewBuckets: a renewal is one round trip to Postgres or Redis
	// (sub-millisecond on a LAN); Guard gives up on a renewal that takes
	// longer than its RenewTimeout (seconds), so the top bucket is 5s.
	leaseRenewBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}

	// replicaCheckBuckets: a replica check is two small queries.
	replicaCheckBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1}

	// blobBuckets: blobs range from a few hundred bytes (configs, links)
	// to gigabytes (layers): milliseconds to many minutes per blob; GCS
	// server-side copies of big blobs take rewrite rounds of seconds.
	blobBuckets = []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800}

	// repositoryBuckets: a repository imports in well under a second when
	// small and already copied (the final pass), and in up to an hour when
	// it holds thousands of tags or big layers (the seed's largest).
	repositoryBuckets = []float64{.05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600}

	// passBuckets: an import pass over a whole registry takes seconds for
	// a small one and, for the seed's 258 repositories and 135k blobs,
	// minutes (the 15-minute target) to the 10-14 hours of a
	// single-threaded importer.
	passBuckets = []float64{1, 5, 10, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 28800, 57600}
)
