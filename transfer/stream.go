package transfer

import (
	"context"
	"errors"
	"io"
	"sync/atomic"

	"github.com/opencontainers/go-digest"
	"golang.org/x/sync/errgroup"
)

// pipelineDepth is how many chunks may be in flight between the goroutine
// that reads and hashes and the one that writes.
const pipelineDepth = 4

// copyHashed copies r to w, returning the byte count and the digest (with
// algorithm alg) of what was read. size is the expected length; blobs that fit in one
// buffer are copied in place, larger ones through a two-stage pipeline so
// hashing overlaps with writing.
func (t *transferer) copyHashed(ctx context.Context, w io.Writer, r io.Reader, size int64, alg digest.Algorithm) (int64, digest.Digest, error) {
	h := alg.Hash()
	if size <= int64(t.opts.BufferSize) {
		bp := t.bufs.Get().(*[]byte)
		defer t.bufs.Put(bp)
		// One spare byte tells us whether the object is longer than it said.
		buf := (*bp)[:size]
		n, err := fill(r, buf)
		if err == nil && n == len(buf) {
			var one [1]byte
			var m int
			m, err = fill(r, one[:])
			n += m
		}
		if err != nil {
			return int64(n), "", err
		}
		data := buf[:min(n, len(buf))]
		h.Write(data)
		if _, err := w.Write(data); err != nil {
			return int64(n), "", err
		}
		return int64(n), digest.NewDigest(alg, h), nil
	}

	// Three stages: one goroutine reads, one hashes, one writes. Each chunk
	// goes to both the hasher and the writer and returns to the free list
	// when both are done with it, so the hash (the costliest part) runs on
	// its own core while the copy proceeds.
	type chunk struct {
		buf  *[]byte
		n    int
		refs atomic.Int32
	}
	free := make(chan *[]byte, pipelineDepth)
	for range pipelineDepth {
		free <- t.bufs.Get().(*[]byte)
	}
	release := func(c *chunk) {
		if c.refs.Add(-1) == 0 {
			free <- c.buf
		}
	}
	toHash := make(chan *chunk, pipelineDepth)
	toWrite := make(chan *chunk, pipelineDepth)
	var read, written int64
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		defer close(toHash)
		defer close(toWrite)
		for {
			var bp *[]byte
			select {
			case bp = <-free:
			case <-gctx.Done():
				return gctx.Err()
			}
			n, err := fill(r, *bp)
			if n == 0 {
				free <- bp
				return err
			}
			read += int64(n)
			c := &chunk{buf: bp, n: n}
			c.refs.Store(2)
			toHash <- c // never blocks: at most pipelineDepth chunks exist
			select {
			case toWrite <- c:
			case <-gctx.Done():
				release(c)
				return gctx.Err()
			}
			if err != nil || n < len(*bp) {
				return err
			}
		}
	})
	g.Go(func() error {
		for c := range toHash {
			h.Write((*c.buf)[:c.n])
			release(c)
		}
		return nil
	})
	g.Go(func() error {
		for c := range toWrite {
			if _, err := w.Write((*c.buf)[:c.n]); err != nil {
				release(c)
				return err
			}
			written += int64(c.n)
			release(c)
		}
		return nil
	})
	err := g.Wait()
	for len(free) > 0 {
		t.bufs.Put(<-free)
	}
	if err != nil {
		return written, "", err
	}
	return read, digest.NewDigest(alg, h), nil
}

// fill reads into buf until it is full or r ends. Unlike io.ReadFull it
// passes through a genuine io.ErrUnexpectedEOF from r and treats io.EOF as
// a normal end.
func fill(r io.Reader, buf []byte) (int, error) {
	const maxEmptyReads = 100
	n, empty := 0, 0
	for n < len(buf) {
		m, err := r.Read(buf[n:])
		n += m
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		if m > 0 {
			empty = 0
		} else if empty++; empty >= maxEmptyReads {
			return n, io.ErrNoProgress
		}
	}
	return n, nil
}
