package redislease

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ferryhq/ferry/lease"
)

var _ lease.Inspector = (*Locker)(nil)

// inspectScript reads the lease's value, its remaining time and the token
// counter at one instant. KEYS: lease, counter. A missing key reads as
// false, which the client sees as nil.
var inspectScript = redis.NewScript(`
return {redis.call('GET', KEYS[1]), redis.call('PTTL', KEYS[1]), redis.call('GET', KEYS[2])}
`)

// Inspect implements lease.Inspector. The counter holds the last token
// handed out, which is the live lease's token while the key is held.
func (lk *Locker) Inspect(ctx context.Context, key string) (lease.Holding, error) {
	if err := lease.CheckKey(key); err != nil {
		return lease.Holding{}, err
	}
	sent := time.Now()
	res, err := bounded(ctx, func() ([]any, error) {
		return inspectScript.Run(ctx, lk.client, lk.keys(key)).Slice()
	})
	if err != nil {
		return lease.Holding{}, fmt.Errorf("lease: inspecting key %q: %w", key, err)
	}
	if len(res) != 3 {
		return lease.Holding{}, fmt.Errorf("lease: inspecting key %q: unexpected reply %v", key, res)
	}
	h := lease.Holding{Key: key}
	if s, ok := res[2].(string); ok {
		if h.Token, err = strconv.ParseInt(s, 10, 64); err != nil {
			return lease.Holding{}, fmt.Errorf("lease: inspecting key %q: token counter %q: %w", key, s, err)
		}
	}
	val, held := res[0].(string)
	pttl, _ := res[1].(int64)
	if held && pttl > 0 {
		h.Held, h.Holder = true, holderOf(val)
		h.ExpiresAt = sent.Add(time.Duration(pttl) * time.Millisecond)
	}
	return h, nil
}
