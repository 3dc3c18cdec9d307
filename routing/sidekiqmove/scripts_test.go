package sidekiqmove

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
)

// The window finds its place by the anchor when consumers popped jobs since
// the last window, and restarts at the tail when the anchor itself is gone.
func TestListWindowFollowsItsAnchor(t *testing.T) {
	ctx := context.Background()
	c := newRedis(t)
	// Head "j" ... tail "a": a is the oldest.
	require.NoError(t, c.LPush(ctx, "queue:q", "a", "b", "c", "d", "e", "f", "g", "h", "i", "j").Err())
	window := func(anchor string, kept int) (int64, []any) {
		t.Helper()
		res, err := listWindow.Run(ctx, c, []string{"queue:q"}, anchor, kept, 3).Slice()
		require.NoError(t, err)
		return res[0].(int64), res[1].([]any)
	}
	stop, items := window("", 0)
	require.Equal(t, int64(-1), stop)
	require.Equal(t, []any{"c", "b", "a"}, items)
	// "c" was kept: 3 kept at the tail, the next window is left of it.
	stop, items = window("c", 3)
	require.Equal(t, int64(-4), stop)
	require.Equal(t, []any{"f", "e", "d"}, items)
	// Consumers popped a and b: c is now 1st from the tail, found by LPOS.
	require.NoError(t, c.RPop(ctx, "queue:q").Err())
	require.NoError(t, c.RPop(ctx, "queue:q").Err())
	stop, items = window("c", 3)
	require.Equal(t, int64(-2), stop)
	require.Equal(t, []any{"f", "e", "d"}, items)
	// c popped too: everything older went with it; restart at the tail.
	require.NoError(t, c.RPop(ctx, "queue:q").Err())
	stop, items = window("c", 1)
	require.Equal(t, int64(-1), stop)
	require.Equal(t, []any{"f", "e", "d"}, items)
}

// A job not at the index it was read from (consumers popped) is found from
// the tail; a job that is gone is reported, not pushed.
func TestMoveListJobsFallbacks(t *testing.T) {
	ctx := context.Background()
	c := newRedis(t)
	require.NoError(t, c.LPush(ctx, "queue:old", "x1", "x2", "x3", "x4").Err()) // tail x1
	flags, err := moveListJobs.Run(ctx, c, []string{"queue:old", "queues", "queue:new"},
		4, "\x00tomb",
		3, -1, "x1", "y1", // at its index
		3, -1, "x2", "y2", // really at -2: found from the tail
		3, -3, "gone", "never", // not in the list
		3, -4, "x4", "y4", // at its index
		"new").Int64Slice()
	require.NoError(t, err)
	require.Equal(t, []int64{1, 1, 0, 1}, flags)
	require.Equal(t, []string{"x3"}, lrange(ctx, t, c, "queue:old"))
	require.Equal(t, []string{"y4", "y2", "y1"}, lrange(ctx, t, c, "queue:new"))
	require.Equal(t, []string{"new"}, c.SMembers(ctx, "queues").Val())
}
