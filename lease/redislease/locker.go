package redislease

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ferryhq/ferry/lease"
)

// Options tunes New. The zero value is ready to use.
type Options struct {
	// Prefix starts every Redis key the Locker uses. Default "ferry:lease:".
	Prefix string
	// Holder names this process in the HeldError that other holders get.
	// Default "<hostname>/<pid>".
	Holder string
}

// Locker is a lease.Locker on Redis. It is safe for concurrent use.
type Locker struct {
	client redis.Scripter
	prefix string
	holder string
}

var _ lease.Locker = (*Locker)(nil)

// New returns a Locker on client: a *redis.Client, *redis.ClusterClient,
// *redis.Ring or anything else that runs scripts.
func New(client redis.Scripter, opts Options) *Locker {
	if opts.Prefix == "" {
		opts.Prefix = "ferry:lease:"
	}
	if opts.Holder == "" {
		host, _ := os.Hostname()
		opts.Holder = fmt.Sprintf("%s/%d", host, os.Getpid())
	}
	return &Locker{client: client, prefix: opts.Prefix, holder: opts.Holder}
}

// acquireScript sets the lease if the key is free and returns its token.
// When the key is held it returns {current value, remaining ms}.
// KEYS: lease, counter. ARGV: value ("nonce:holder"), ttl in ms.
//
// INCR returns 1 only when the counter is new or was lost; the token then
// starts from the server's clock in microseconds, which is past every
// token handed out before (they grew by one per acquisition from an
// earlier clock reading). TIME is read only then, as it costs a little.
// The script does as little as it can, as Lua is most of what a lease
// costs the server: the value comes whole from the client (the random
// nonce makes it unique to the acquisition; the token would add nothing
// but string work), and the reply is one integer.
var acquireScript = redis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if cur then
	return {cur, redis.call('PTTL', KEYS[1])}
end
local token = redis.call('INCR', KEYS[2])
if token == 1 then
	local now = redis.call('TIME')
	token = tonumber(now[1]) * 1000000 + tonumber(now[2])
	redis.call('SET', KEYS[2], string.format('%d', token))
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return token
`)

// renewScript extends the lease if it still has this acquisition's value.
var renewScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
	return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
`)

// releaseScript deletes the lease if it still has this acquisition's value.
var releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
	return redis.call('DEL', KEYS[1])
end
return 0
`)

func (lk *Locker) keys(key string) []string {
	k := lk.prefix + "{" + key + "}"
	return []string{k, k + ":token"}
}

// Acquire implements lease.Locker.
func (lk *Locker) Acquire(ctx context.Context, key string, ttl time.Duration) (lease.Lease, error) {
	if err := lease.Check(key, ttl); err != nil {
		return nil, err
	}
	var nonce [12]byte
	_, _ = rand.Read(nonce[:]) // never fails (crypto/rand)
	value := hex.EncodeToString(nonce[:]) + ":" + lk.holder
	keys := lk.keys(key)
	sent := time.Now()
	res, err := bounded(ctx, func() (any, error) {
		return acquireScript.Run(ctx, lk.client, keys, value, ttl.Milliseconds()).Result()
	})
	if err != nil {
		return nil, fmt.Errorf("lease: acquiring key %q: %w", key, err)
	}
	switch res := res.(type) {
	case int64:
		return lease.New(&driver{client: lk.client, keys: keys[:1], value: value}, key, res, ttl, sent), nil
	case []any:
		if len(res) == 2 {
			val, _ := res[0].(string)
			pttl, _ := res[1].(int64)
			held := &lease.HeldError{Key: key, Holder: holderOf(val)}
			if pttl > 0 {
				held.ExpiresAt = sent.Add(time.Duration(pttl) * time.Millisecond)
			}
			return nil, held
		}
	}
	return nil, fmt.Errorf("lease: acquiring key %q: unexpected reply %v", key, res)
}

// holderOf returns the holder's name from a lease value "nonce:holder".
func holderOf(val string) string {
	_, holder, _ := strings.Cut(val, ":")
	return holder
}

// driver is the lease.Driver of one acquisition: the scripts recognise it
// by the value it set, which is unique to it, so the key and token that
// lease.Lease passes are the ones it already knows.
type driver struct {
	client redis.Scripter
	keys   []string // the lease's Redis key
	value  string
}

// Renew implements lease.Driver.
func (d *driver) Renew(ctx context.Context, _ string, _ int64, ttl time.Duration) (bool, error) {
	n, err := bounded(ctx, func() (int64, error) {
		return renewScript.Run(ctx, d.client, d.keys, d.value, ttl.Milliseconds()).Int64()
	})
	return n == 1, err
}

// Release implements lease.Driver.
func (d *driver) Release(ctx context.Context, _ string, _ int64) (bool, error) {
	n, err := bounded(ctx, func() (int64, error) {
		return releaseScript.Run(ctx, d.client, d.keys, d.value).Int64()
	})
	return n == 1, err
}

var _ lease.Breaker = (*Locker)(nil)

// breakScript deletes the lease, whoever holds it; the token counter stays,
// so the next acquisition's token is larger.
var breakScript = redis.NewScript(`return redis.call('DEL', KEYS[1])`)

// Break implements lease.Breaker: an administrator's way to free a key
// whose holder is stuck. The holder's next renewal fails with
// lease.ErrLost.
func (lk *Locker) Break(ctx context.Context, key string) (bool, error) {
	if err := lease.CheckKey(key); err != nil {
		return false, err
	}
	n, err := bounded(ctx, func() (int64, error) {
		return breakScript.Run(ctx, lk.client, lk.keys(key)[:1]).Int64()
	})
	if err != nil {
		return false, fmt.Errorf("lease: breaking key %q: %w", key, err)
	}
	return n == 1, nil
}
