package transfer

import (
	"fmt"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
)

// Pass is one of the two import passes.
type Pass int

const (
	// PreImport copies blobs and manifests but no tags. It can run while
	// the source registry still accepts writes; it does the slow work
	// ahead of time.
	PreImport Pass = iota + 1
	// FinalImport does everything PreImport does (skipping what is already
	// there) and then records the tags. Run it with the repository
	// read-only; after a PreImport it is quick.
	FinalImport
)

// String returns the pass's name.
func (p Pass) String() string {
	switch p {
	case PreImport:
		return "pre-import"
	case FinalImport:
		return "final-import"
	}
	return fmt.Sprintf("pass(%d)", int(p))
}

// Report is the outcome of one pass (or dry run) over a set of
// repositories.
type Report struct {
	Pass   Pass
	DryRun bool
	// Repositories has one entry per repository considered, sorted by
	// name (only the failed and too-large ones with
	// ImportOptions.ReportFailuresOnly).
	Repositories []RepositoryReport
	// RepositoryCount is how many repositories the pass considered.
	RepositoryCount int
	// TooLarge is the catalog of repositories skipped because they have
	// more tags than ImportOptions.MaxTags.
	TooLarge []TooLargeRepository

	// Distinct blobs copied, found already present, and bytes copied.
	BlobsCopied  int64
	BlobsSkipped int64
	BytesCopied  int64
	// Manifests and Tags are the totals over all repositories (what would
	// be written, in a dry run).
	Manifests int
	Tags      int

	Duration time.Duration
	Stats    Stats
}

// RepositoryReport is the outcome for one repository.
type RepositoryReport struct {
	Name string
	// Err is nil on success. It wraps the cause (for example
	// ErrMissingBlob) and says where in the repository it was found.
	Err error
	// TooLarge is true if the repository was skipped for having too many
	// tags.
	TooLarge bool
	// TagsTotal is the number of tags in the source; Tags the selected
	// ones (recorded only by the final import), newest first.
	TagsTotal int
	Tags      []string
	// Manifests is how many manifests were (or would be) put; Known how
	// many the sink already had.
	Manifests      int
	ManifestsKnown int
	// Referrers is how many of the manifests were imported because their
	// subject was (OCI 1.1 referrers).
	Referrers int
	// TagsRemoved are tags the sink held that the source no longer has
	// (or the policy no longer selects), removed by the final pass.
	TagsRemoved []string
	// StaleManifests and StaleBlobs are manifests and blob links the sink
	// held that a one-pass import of the current source would not have,
	// found by the final pass; removed unless ImportOptions.Stale is
	// ReportStale (see StalePolicy).
	StaleManifests []digest.Digest
	StaleBlobs     []digest.Digest
	// Blobs is how many distinct blobs the repository links; Bytes their
	// total size.
	Blobs    int
	Bytes    int64
	Duration time.Duration
}

// TooLargeRepository is an entry in the catalog of repositories that were
// not imported because of their tag count.
type TooLargeRepository struct {
	Name  string
	Tags  int
	Limit int
}

// Failed returns the repositories that failed.
func (r *Report) Failed() []RepositoryReport {
	var out []RepositoryReport
	for _, rr := range r.Repositories {
		if rr.Err != nil {
			out = append(out, rr)
		}
	}
	return out
}

// Summary is a short human-readable account of the report.
func (r *Report) Summary() string {
	var b strings.Builder
	mode := r.Pass.String()
	if r.DryRun {
		mode += " (dry run)"
	}
	fmt.Fprintf(&b, "%s: %d repositories, %d failed, %d too large; %d manifests, %d tags; blobs %d copied, %d already present, %s copied in %s",
		mode, r.RepositoryCount, len(r.Failed()), len(r.TooLarge), r.Manifests, r.Tags,
		r.BlobsCopied, r.BlobsSkipped, FormatBytes(r.BytesCopied), r.Duration.Round(time.Millisecond))
	return b.String()
}

// FormatBytes renders n with a binary unit, e.g. "1.5 MiB".
func FormatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
