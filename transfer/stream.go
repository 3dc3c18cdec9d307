package transfer

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"hash"
	"io"

	"golang.org/x/sync/errgroup"
)

// pipelineDepth is how many chunks may be in flight between the goroutine
// that reads and hashes and the one that writes.
const pipelineDepth = 4

// copyHashed copies r to w, returning the byte count and the sha256 digest
// of what was read. size is the expected length; blobs that fit in one
// buffer are copied in place, larger ones through a two-stage pipeline so
// hashing overlaps with writing.
func (t *transferer) copyHashed(ctx context.Context, w io.Writer, r io.Reader, size int64) (int64, Digest, error) {
	h := sha256.New()
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
		return int64(n), sum(h), nil
	}

	free := make(chan *[]byte, pipelineDepth)
	full := make(chan []byte, pipelineDepth)
	for range pipelineDepth {
		free <- t.bufs.Get().(*[]byte)
	}
	var read, written int64
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		defer close(full)
		for {
			var bp *[]byte
			select {
			case bp = <-free:
			case <-gctx.Done():
				return gctx.Err()
			}
			n, err := fill(r, *bp)
			if n > 0 {
				read += int64(n)
				h.Write((*bp)[:n])
				select {
				case full <- (*bp)[:n]:
				case <-gctx.Done():
					t.bufs.Put(bp)
					return gctx.Err()
				}
			} else {
				free <- bp
			}
			if err != nil || n < len(*bp) {
				return err
			}
		}
	})
	g.Go(func() error {
		for chunk := range full {
			if _, err := w.Write(chunk); err != nil {
				return err
			}
			written += int64(len(chunk))
			chunk = chunk[:cap(chunk)]
			free <- &chunk
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
	return read, sum(h), nil
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

func sum(h hash.Hash) Digest {
	return Digest(sha256Prefix + hex.EncodeToString(h.Sum(nil)))
}
