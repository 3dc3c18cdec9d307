package transfer

import (
	"regexp"
)

// TagPolicy chooses which tags of a repository to import.
type TagPolicy interface {
	// SelectTags returns the tags to import. tags is sorted newest first
	// (see SortTagsNewestFirst) and must not be modified.
	SelectTags(tags []Tag) []Tag
}

// TagPolicyFunc adapts a function to TagPolicy.
type TagPolicyFunc func(tags []Tag) []Tag

// SelectTags calls f.
func (f TagPolicyFunc) SelectTags(tags []Tag) []Tag { return f(tags) }

// AllTags imports every tag.
func AllTags() TagPolicy {
	return TagPolicyFunc(func(tags []Tag) []Tag { return append([]Tag(nil), tags...) })
}

// MostRecentTags imports the n most recently written tags.
func MostRecentTags(n int) TagPolicy {
	return TagPolicyFunc(func(tags []Tag) []Tag {
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
	return TagPolicyFunc(func(tags []Tag) []Tag {
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
