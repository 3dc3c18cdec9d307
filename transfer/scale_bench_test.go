package transfer_test

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ferryhq/ferry/internal/benchreport"
	"github.com/ferryhq/ferry/transfer"
	"github.com/ferryhq/ferry/transfer/transfertest"
)

// scaleRun is one import of a virtual registry.
type scaleRun struct {
	repos     int
	wall      time.Duration
	cpu       time.Duration // user+system time of the process during the import
	heapPeak  uint64        // live heap above the workload description, sampled
	rssPeak   uint64        // process peak RSS (VmHWM), workload included
	workload  uint64        // live heap of the workload description
	completed int
}

// importVirtual imports a virtual registry of n repositories into a
// discarding bucket and a counting sink, and measures the Importer.
func importVirtual(b *testing.B, n int) scaleRun {
	ctx := context.Background()
	src, _ := transfertest.NewVirtualRegistry(n)
	dst, _ := transfertest.DiscardBucket()
	runtime.GC()
	base := liveHeap()
	tr, err := transfer.New(src, dst, transfer.Options{})
	if err != nil {
		b.Fatal(err)
	}
	sink := &transfertest.NullSink{}
	// The Report lists only failures, as a host importing a registry of
	// this size would ask (an entry per repository is a few hundred bytes).
	im, err := transfer.NewImporter(src, tr, sink, transfer.ImportOptions{RepositoryConcurrency: 8, ReportFailuresOnly: true})
	if err != nil {
		b.Fatal(err)
	}
	var (
		peak uint64
		mu   sync.Mutex
		done = make(chan struct{})
		wg   sync.WaitGroup
	)
	wg.Go(func() {
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				if h := liveHeap(); h > base {
					mu.Lock()
					peak = max(peak, h-base)
					mu.Unlock()
				}
			}
		}
	})
	start, cpu0 := time.Now(), cpuTime()
	rep, err := im.Import(ctx)
	wall, cpu := time.Since(start), cpuTime()-cpu0
	close(done)
	wg.Wait()
	if err != nil {
		b.Fatal(err)
	}
	return scaleRun{repos: n, wall: wall, cpu: cpu, heapPeak: peak, rssPeak: vmHWM(), workload: base, completed: rep.RepositoryCount - len(rep.Failed())}
}

// cpuTime is the user and system CPU time the process has used: on a
// shared machine it tracks the work done better than wall time does.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// liveHeap is the heap found live by the last garbage collection (garbage
// not yet collected does not count).
func liveHeap() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// vmHWM is the process's peak resident set size, from /proc/self/status.
func vmHWM() uint64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// BenchmarkImportManyRepositories imports a simulated registry of many
// small repositories (transfertest.NewVirtualRegistry: computed, not
// stored; a discarding destination and a counting sink) at two sizes in
// one run and compares the cost per repository (target: at most 1.2x at
// ten times the size) and the Importer's memory (live heap, as the last
// GC found it, above the workload description, sampled every 20 ms;
// target <= 256 MiB), with ImportOptions.ReportFailuresOnly as a host of
// that size would set it. CPU time per repository is printed as well:
// wall time on a shared machine depends on the others' load. The
// sizes are FERRY_BENCH_REPOS (default "5000,50000" for make bench; the
// issue's full run is "50000,500000").
func BenchmarkImportManyRepositories(b *testing.B) {
	sizes := []int{5000, 50000}
	if v := os.Getenv("FERRY_BENCH_REPOS"); v != "" {
		sizes = nil
		for _, f := range strings.Split(v, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n <= 0 {
				b.Fatalf("FERRY_BENCH_REPOS=%q: want two sizes like 50000,500000", v)
			}
			sizes = append(sizes, n)
		}
	}
	if len(sizes) != 2 {
		b.Fatalf("want two sizes, got %v", sizes)
	}
	var small, large scaleRun
	for range b.N {
		small = importVirtual(b, sizes[0])
		large = importVirtual(b, sizes[1])
	}
	per := func(r scaleRun) float64 { return float64(r.wall.Microseconds()) / float64(r.repos) }
	cpuPer := func(r scaleRun) float64 { return float64(r.cpu.Microseconds()) / float64(r.repos) }
	ratio := per(large) / per(small)
	b.ReportMetric(per(large), "us/repo")
	b.ReportMetric(cpuPer(large), "cpu-us/repo")
	b.ReportMetric(float64(large.heapPeak>>20), "importer-MiB")
	if small.completed != small.repos || large.completed != large.repos {
		b.Fatalf("completed %d of %d and %d of %d repositories", small.completed, small.repos, large.completed, large.repos)
	}
	if !benchreport.LastRound(b) {
		return
	}
	fmt.Printf("ferry-bench: import-many-repositories-cost-per-repo ferry=%.0fus baseline=%.0fus ratio=%.2f target<=1.2 "+
		"(ferry: %d repositories in %s; baseline: %d repositories in %s; CPU per repository %.0fus vs %.0fus = %.2fx; virtual registry, 3 blobs and 1 tag each, discarding destination)\n",
		per(large), per(small), ratio, large.repos, large.wall.Round(time.Millisecond), small.repos, small.wall.Round(time.Millisecond),
		cpuPer(large), cpuPer(small), cpuPer(large)/cpuPer(small))
	fmt.Printf("ferry-bench: import-many-repositories-memory ferry=%dMiB baseline=%dMiB ratio=%.2f target<=1 "+
		"(ferry: Importer live heap peak at %d repositories, workload description (%d MiB) excluded, ReportFailuresOnly; baseline: the 256 MiB budget; at %d: %d MiB; process peak RSS %d MiB with the workload)\n",
		large.heapPeak>>20, 256, float64(large.heapPeak>>20)/256, large.repos, large.workload>>20, small.repos, small.heapPeak>>20, large.rssPeak>>20)
}
