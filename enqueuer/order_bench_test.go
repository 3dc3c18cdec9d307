package enqueuer_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/ferryhq/ferry/enqueuer"
)

// BenchmarkPickOrder100k measures one pick of the enqueuer (a page of 35
// waiting repositories, ready, in Config.Order) from 100,000 waiting
// repositories on Postgres: OrderOldest (the baseline), OrderPriority
// (the host's priority then age, served by its own index) and a custom
// order of the host's keys that no index serves (a top-N sort in the
// database; the waiting set never reaches the process).
func BenchmarkPickOrder100k(b *testing.B) {
	ctx := context.Background()
	db := openDB(b)
	store := newPostgresStore(b, db)
	if _, err := db.Exec(ctx, `
		INSERT INTO ferry_enqueuer_repositories (path, tag_count, priority, created_at, updated_at, state_changed_at)
		SELECT 'bench/r' || i, (i * 7919) % 5000, i % 4, t, t, t
		FROM generate_series(1, 100000) i, LATERAL (SELECT now() - i * interval '1 second' AS t) x`); err != nil {
		b.Fatal(err)
	}
	if _, err := db.Exec(ctx, `ANALYZE ferry_enqueuer_repositories`); err != nil {
		b.Fatal(err)
	}
	orders := []struct {
		name  string
		order enqueuer.Order
	}{
		{"oldest", enqueuer.OrderOldest},
		{"priority", enqueuer.OrderPriority},
		{"custom", enqueuer.OrderBy("-priority", "tag_count")},
	}
	per := map[string]time.Duration{}
	for _, o := range orders {
		b.Run(o.name, func(b *testing.B) {
			start := time.Now()
			for range b.N {
				page, err := store.List(ctx, enqueuer.ListOptions{State: enqueuer.StateDefault, Ready: true, Order: o.order, Limit: 35})
				if err != nil || len(page) != 35 {
					b.Fatal(len(page), err)
				}
			}
			per[o.name] = time.Since(start) / time.Duration(b.N)
		})
	}
	if len(per) < len(orders) {
		return // a sub-benchmark was filtered out
	}
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	fmt.Printf("ferry-bench: enqueuer_pick_priority_100k ferry=%.3fms baseline=%.3fms ratio=%.2f (a page of 35 in OrderPriority vs OrderOldest, 100,000 waiting, Postgres)\n",
		ms(per["priority"]), ms(per["oldest"]), float64(per["priority"])/float64(per["oldest"]))
	fmt.Printf("ferry-bench: enqueuer_pick_custom_order_100k ferry=%.3fms baseline=%.3fms ratio=%.2f (a page of 35 in OrderBy(-priority, tag_count), no index: top-N sort in Postgres, vs OrderOldest)\n",
		ms(per["custom"]), ms(per["oldest"]), float64(per["custom"])/float64(per["oldest"]))
}
