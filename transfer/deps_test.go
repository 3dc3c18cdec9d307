package transfer_test

import (
	"os/exec"
	"strings"
	"testing"
)

// maxCoreDeps bounds the non-standard-library packages that importing
// transfer links into a host (12 when this test was written; 183 when the
// core took *blob.Bucket and linked gocloud, gRPC and OpenTelemetry).
const maxCoreDeps = 60

// The core package must stay free of storage clients: they belong in
// transfer/gocloudblob and transfer/gcscopy, which a host imports only if it
// uses them.
func TestCoreLinksNoStorageClient(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go tool is needed to list transfer's dependencies: %v", err)
	}
	out, err := exec.Command(goTool, "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", "github.com/ferryhq/ferry/transfer").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	deps := strings.Fields(string(out))
	for _, d := range deps {
		for _, banned := range []string{"gocloud.dev/", "cloud.google.com/", "google.golang.org/", "go.opentelemetry.io/", "github.com/googleapis/"} {
			if strings.HasPrefix(d, banned) {
				t.Errorf("transfer links %s (%s...): storage clients belong in a subpackage", d, banned)
			}
		}
	}
	if len(deps) > maxCoreDeps {
		t.Errorf("transfer links %d non-standard packages, more than %d:\n%s", len(deps), maxCoreDeps, strings.Join(deps, "\n"))
	}
	t.Logf("transfer links %d non-standard packages", len(deps))
}
