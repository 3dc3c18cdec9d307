package gcscopy_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/ferryhq/ferry/internal/benchreport"
	"github.com/ferryhq/ferry/transfer"
	"github.com/ferryhq/ferry/transfer/gcstest"
	"github.com/ferryhq/ferry/transfer/transfertest"
)

// BenchmarkGCSServerSideVerifiedVsTrusted copies the same blobs GCS→GCS
// (fake-gcs-server, in process) three ways in one run: server-side with the
// default verification (the source is read once and hashed), server-side
// trusting the service's checksums (no blob bytes through the host), and
// streamed; it reports blob bytes through the host and wall time of each.
func BenchmarkGCSServerSideVerifiedVsTrusted(b *testing.B) {
	const blobs, size = 16, 512 << 10
	ctx := context.Background()
	type mode struct {
		name string
		opts func(c transfer.ServerSideCopier) transfer.Options
	}
	modes := []mode{
		{"verified", func(c transfer.ServerSideCopier) transfer.Options { return transfer.Options{ServerSide: c} }},
		{"trusted", func(c transfer.ServerSideCopier) transfer.Options {
			return transfer.Options{ServerSide: c, ServerSideVerify: transfer.TrustChecksums}
		}},
		{"streamed", func(transfer.ServerSideCopier) transfer.Options { return transfer.Options{} }},
	}
	hostBytes := map[string]int64{}
	wall := map[string]time.Duration{}
	for range b.N {
		for _, m := range modes {
			b.StopTimer()
			gcs := gcstest.NewFakeGCS(b, "src", "dst")
			src, dst := gcs.Bucket(b, "src"), gcs.Bucket(b, "dst")
			l := mustLayout(b, "")
			var ds []digest.Digest
			for i := range blobs {
				ds = append(ds, transfertest.PutBlob(b, src, l, transfertest.RandomBytes(uint64(i), size)))
			}
			tr := mustNew(b, src, dst, m.opts(mustCopier(b, src, dst)))
			gcs.Traffic.Reset()
			b.StartTimer()
			start := time.Now()
			for _, d := range ds {
				if _, err := tr.Transfer(ctx, d); err != nil {
					b.Fatal(err)
				}
			}
			wall[m.name] += time.Since(start)
			hostBytes[m.name] += gcs.Traffic.PayloadBytes()
		}
	}
	b.StopTimer()
	n := int64(b.N)
	for _, m := range modes {
		b.ReportMetric(float64(hostBytes[m.name]/n), m.name+"-host-bytes")
	}
	if hostBytes["trusted"] != 0 {
		b.Fatalf("trusted server-side copies moved %d blob bytes through the host", hostBytes["trusted"])
	}
	if !benchreport.LastRound(b) {
		return
	}
	total := int64(blobs * size)
	fmt.Printf("ferry-bench: gcs-server-side-verified-vs-trusted-wall ferry=%.1fms baseline=%.1fms ratio=%.2f "+
		"(ferry: server-side, source hashed once (default); baseline: server-side trusting checksums; %d blobs, %s; streamed: %.1fms; fake-gcs-server)\n",
		ms(wall["verified"], n), ms(wall["trusted"], n), float64(wall["verified"])/float64(wall["trusted"]), blobs, transfer.FormatBytes(total), ms(wall["streamed"], n))
	fmt.Printf("ferry-bench: gcs-server-side-bytes-through-host ferry=%dB baseline=%dB ratio=%.3f target<=1 "+
		"(ferry: verified server-side copy reads each blob once, writes none; baseline: streamed copy reads and writes; trusted: %dB; blobs total %s)\n",
		hostBytes["verified"]/n, hostBytes["streamed"]/n, float64(hostBytes["verified"])/float64(max(hostBytes["streamed"], 1)), hostBytes["trusted"]/n, transfer.FormatBytes(total))
}

func ms(d time.Duration, n int64) float64 { return float64(d.Microseconds()) / 1000 / float64(n) }
