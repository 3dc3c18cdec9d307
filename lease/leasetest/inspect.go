package leasetest

import (
	"context"
	"fmt"

	"github.com/ferryhq/ferry/lease"
)

var _ lease.Inspector = (*Locker)(nil)

// Inspect implements lease.Inspector.
func (m *Locker) Inspect(ctx context.Context, key string) (lease.Holding, error) {
	if err := lease.CheckKey(key); err != nil {
		return lease.Holding{}, err
	}
	if err := ctx.Err(); err != nil {
		return lease.Holding{}, fmt.Errorf("lease: inspecting key %q: %w", key, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	h := lease.Holding{Key: key}
	e := m.keys[key]
	if e == nil {
		return h, nil
	}
	h.Token = e.token
	if m.clock.Now().Before(e.expires) {
		h.Held, h.Holder, h.ExpiresAt = true, e.holder, e.expires
	}
	return h, nil
}
