package transfer_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"syscall"
	"testing"

	"github.com/ferryhq/ferry/transfer"
	"github.com/ferryhq/ferry/transfer/faultblob"
	"github.com/opencontainers/go-digest"
)

func TestIsRetryable(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		// Bucket implementations give transient errors an HTTP status
		// (gocloudblob does for gocloud, Google API and gRPC errors).
		{"faultblob 503", &faultblob.Error{Status: 503}, true},
		{"faultblob 500", &faultblob.Error{Status: 500}, true},
		{"faultblob 429", &faultblob.Error{Status: 429}, true},
		{"faultblob 408", &faultblob.Error{Status: 408}, true},
		{"faultblob 404", &faultblob.Error{Status: 404}, false},
		{"faultblob 403", &faultblob.Error{Status: 403}, false},
		{"not exist", fmt.Errorf("x: %w", transfer.ErrNotExist), false},
		{"unexpected EOF", fmt.Errorf("read: %w", io.ErrUnexpectedEOF), true},
		// cloud.google.com/go/storage's reader when the CRC32C of what it
		// read does not match the object's.
		{"gcs bad CRC on read", fmt.Errorf("blob (key %q) (code=Unknown): %w", "k", errors.New("storage: bad CRC on read: got 1234, want 5678")), true},
		{"connection reset", fmt.Errorf("read: %w", syscall.ECONNRESET), true},
		{"context canceled", ctx.Err(), false},
		{"corrupt", fmt.Errorf("x: %w", transfer.ErrCorrupt), false},
		{"missing", fmt.Errorf("x: %w", transfer.ErrMissingBlob), false},
		{"invalid digest", transfer.ErrInvalidDigest, false},
		{"plain", errors.New("boom"), false},
	} {
		if got := transfer.IsRetryable(tc.err); got != tc.want {
			t.Errorf("IsRetryable(%s: %v) = %v, want %v", tc.name, tc.err, got, tc.want)
		}
	}
}

func TestNames(t *testing.T) {
	for _, ok := range []string{"a", "a/b", "group/sub-group/project", "a.b_c__d---e/f0", "x/" + strings.Repeat("a", 200)} {
		if err := transfer.ValidateRepository(ok); err != nil {
			t.Errorf("ValidateRepository(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"", "A", "a/", "/a", "a//b", "..", "a/../b", "./a", "_a", "a_", "a/-b", "a b", "a\x00", strings.Repeat("a", 256)} {
		if err := transfer.ValidateRepository(bad); !errors.Is(err, transfer.ErrInvalidName) {
			t.Errorf("ValidateRepository(%q) = %v, want ErrInvalidName", bad, err)
		}
	}
	for _, ok := range []string{"latest", "v1.2.3", "_x", "A-b.c_d", strings.Repeat("t", 128)} {
		if err := transfer.ValidateTag(ok); err != nil {
			t.Errorf("ValidateTag(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"", ".x", "-x", "a/b", "a:b", "..", strings.Repeat("t", 129)} {
		if err := transfer.ValidateTag(bad); !errors.Is(err, transfer.ErrInvalidName) {
			t.Errorf("ValidateTag(%q) = %v, want ErrInvalidName", bad, err)
		}
	}
	for _, bad := range []string{"sha256:" + strings.Repeat("A", 64), "sha256:" + strings.Repeat("a", 63), "SHA256:" + strings.Repeat("a", 64), strings.Repeat("a", 64)} {
		if _, err := transfer.ParseDigest(bad); !errors.Is(err, transfer.ErrInvalidDigest) {
			t.Errorf("ParseDigest(%q) = %v, want ErrInvalidDigest", bad, err)
		}
	}
}

func TestLayoutKeys(t *testing.T) {
	d := digest.FromBytes([]byte("x"))
	h := d.Encoded()
	for _, tc := range []struct{ root, want string }{
		{"", "docker/registry/v2/blobs/sha256/" + h[:2] + "/" + h + "/data"},
		{"/", "blobs/sha256/" + h[:2] + "/" + h + "/data"},
		{"registry/", "registry/blobs/sha256/" + h[:2] + "/" + h + "/data"},
	} {
		l, err := transfer.NewLayout(tc.root)
		if err != nil {
			t.Fatal(err)
		}
		if got := l.BlobKey(d); got != tc.want {
			t.Errorf("root %q: BlobKey = %q, want %q", tc.root, got, tc.want)
		}
	}
	l, _ := transfer.NewLayout("")
	if got, want := l.TagCurrentLinkKey("a/b", "v1"), "docker/registry/v2/repositories/a/b/_manifests/tags/v1/current/link"; got != want {
		t.Errorf("TagCurrentLinkKey = %q, want %q", got, want)
	}
	if got, want := l.LayerLinkKey("a", d), "docker/registry/v2/repositories/a/_layers/sha256/"+h+"/link"; got != want {
		t.Errorf("LayerLinkKey = %q, want %q", got, want)
	}
}
