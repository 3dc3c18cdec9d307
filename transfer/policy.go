package transfer

import (
	"regexp"
	"slices"
	"strings"

	"github.com/Masterminds/semver/v3"
)

// TagPolicy chooses which tags of a repository to import.
type TagPolicy interface {
	// SelectTags returns the tags of repository repo to import. tags is
	// sorted newest first (see SortTagsNewestFirst) and must not be
	// modified.
	SelectTags(repo string, tags []Tag) []Tag
}

// TagPolicyFunc adapts a function to TagPolicy.
type TagPolicyFunc func(repo string, tags []Tag) []Tag

// SelectTags calls f.
func (f TagPolicyFunc) SelectTags(repo string, tags []Tag) []Tag { return f(repo, tags) }

// PerRepository chooses a policy for each repository: choose returns the
// policy for repo (nil means AllTags).
func PerRepository(choose func(repo string) TagPolicy) TagPolicy {
	return TagPolicyFunc(func(repo string, tags []Tag) []Tag {
		p := choose(repo)
		if p == nil {
			p = AllTags()
		}
		return p.SelectTags(repo, tags)
	})
}

// AllTags imports every tag.
func AllTags() TagPolicy {
	return TagPolicyFunc(func(_ string, tags []Tag) []Tag { return append([]Tag(nil), tags...) })
}

// MostRecentTags imports the n most recently written tags.
func MostRecentTags(n int) TagPolicy {
	return TagPolicyFunc(func(_ string, tags []Tag) []Tag {
		return append([]Tag(nil), tags[:min(max(n, 0), len(tags))]...)
	})
}

// semverRE matches semantic versions with an optional leading "v" (as
// in semver.org's suggested expression), plus the tags "latest" and
// "master".
var semverRE = regexp.MustCompile(`^v?(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)` +
	`(?:-((?:0|[1-9][0-9]*|[0-9]*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9][0-9]*|[0-9]*[a-zA-Z-][0-9a-zA-Z-]*))*))?` +
	`(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$|^latest$|^master$`)

// IsSemverTag reports whether SemverTags would match tag on its own.
func IsSemverTag(tag string) bool { return semverRE.MatchString(tag) }

// SemverTags imports tags that are semantic versions (optionally prefixed
// with "v"), "latest" and "master". When fewer than keep tags match, the
// most recent other tags are added until keep tags are selected (or the
// repository runs out), so that repositories without release tags still
// keep their recent images.
func SemverTags(keep int) TagPolicy { return MatchingTags(semverRE, keep) }

// MatchingTags imports the tags matching re, back-filled with the most
// recent other tags up to keep tags in total, as SemverTags does.
func MatchingTags(re *regexp.Regexp, keep int) TagPolicy {
	return TagPolicyFunc(func(_ string, tags []Tag) []Tag {
		var out, others []Tag
		for _, t := range tags {
			if re.MatchString(t.Name) {
				out = append(out, t)
			} else {
				others = append(others, t)
			}
		}
		if missing := keep - len(out); missing > 0 {
			out = append(out, others[:min(missing, len(others))]...)
			SortTagsNewestFirst(out)
		}
		return out
	})
}

// NewestSemver imports only tags that are strict semantic versions
// (optionally prefixed with "v"), the n highest by semver precedence (a
// pre-release ranks below its release; build metadata is ignored, and the
// tag written last wins a tie). Tags are parsed and ordered with
// github.com/Masterminds/semver/v3. n <= 0 keeps every semver tag.
func NewestSemver(n int) TagPolicy {
	return TagPolicyFunc(func(_ string, tags []Tag) []Tag {
		type versioned struct {
			tag Tag
			v   *semver.Version
		}
		var vs []versioned
		for _, t := range tags {
			v, err := semver.StrictNewVersion(strings.TrimPrefix(t.Name, "v"))
			if err == nil {
				vs = append(vs, versioned{t, v})
			}
		}
		// tags are newest first; a stable sort keeps that order among
		// equal versions.
		slices.SortStableFunc(vs, func(a, b versioned) int { return b.v.Compare(a.v) })
		if n > 0 && len(vs) > n {
			vs = vs[:n]
		}
		out := make([]Tag, len(vs))
		for i, v := range vs {
			out[i] = v.tag
		}
		SortTagsNewestFirst(out)
		return out
	})
}
