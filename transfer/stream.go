package transfer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/opencontainers/go-digest"
	"golang.org/x/sync/errgroup"
)

// pipelineDepth is how many chunks may be in flight between the goroutine
// that reads and hashes and the one that writes.
const pipelineDepth = 4

// stream makes one attempt at a streamed, verified copy.
func (t *transferer) stream(ctx context.Context, st *copyState) error {
	if done, err := t.streamExisting(ctx, st); done || err != nil {
		return err
	}
	r, err := t.src.NewReader(ctx, st.key)
	if err != nil {
		return t.missing(ctx, err, st.d)
	}
	defer r.Close()
	size := r.Size()
	st.res.Bytes = size

	// Cancelling wctx before Close aborts the write, and the last chunk is
	// held back until the content is verified, so a blob that fails
	// verification is never complete at the destination.
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w, err := t.dst.NewWriter(wctx, st.key, WriterOptions{
		ContentType: "application/octet-stream",
		Metadata:    map[string]string{MetadataDigest: st.d.String()},
	})
	if err != nil {
		return bucketErr(ctx, err, t.dst, t.opts.DestinationName)
	}
	n, got, err := t.copyHashed(wctx, w, r, size, st.d)
	st.res.HostBytes += n
	if err == nil && n < size {
		err = fmt.Errorf("%w: got %d of %d bytes", errTruncated, n, size)
	}
	if err == nil && (got != st.d || n != size) {
		err = st.mismatch("source", got, n, size)
	}
	if err != nil {
		t.abort(ctx, st, w, cancel)
		return err
	}
	st.wrote = true
	if err := w.Close(); err != nil {
		return bucketErr(ctx, err, t.dst, t.opts.DestinationName)
	}
	return nil
}

// streamExisting checks what the destination already holds under the
// blob's key. done is true when it holds the verified blob. The source is
// only asked for its size when there is something to compare.
func (t *transferer) streamExisting(ctx context.Context, st *copyState) (done bool, err error) {
	da, err := t.dst.Attributes(ctx, st.key)
	if isNotExist(err) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	sa, err := t.src.Attributes(ctx, st.key)
	if err != nil {
		return false, t.missing(ctx, err, st.d)
	}
	st.res.Bytes = sa.Size
	obj := destObject{size: da.Size, metadata: da.Metadata}
	state, n, err := t.judgeExisting(ctx, st.d, st.key, obj, sa.Size, "", st.wrote)
	st.res.HostBytes += n
	if err != nil {
		return false, err
	}
	return t.settleExisting(ctx, st, state)
}

// settleExisting turns the verdict on an existing object into the
// attempt's outcome.
func (t *transferer) settleExisting(ctx context.Context, st *copyState, state existingState) (bool, error) {
	switch state {
	case existingGood:
		// Found after an attempt of ours may have written it: that attempt
		// committed and only its acknowledgement was lost.
		st.res.Skipped = !st.wrote
		return true, nil
	case existingBad:
		if t.opts.ReportMismatched {
			return false, &CorruptError{Digest: st.d, Where: ErrCorruptAtRest, Object: "destination",
				Detail: "the existing object does not match the digest (Options.ReportMismatched keeps it)"}
		}
		t.log.WarnContext(ctx, "transfer: replacing a destination object that failed verification",
			"digest", st.d.String(), "existing", t.opts.Existing.String())
		st.replaced = true
	}
	return false, nil
}

// abort stops a write that must not land. If the driver committed anyway,
// the object is removed unless it is a good copy a concurrent transfer
// wrote.
func (t *transferer) abort(ctx context.Context, st *copyState, w Writer, cancel context.CancelFunc) {
	cancel()
	if w.Close() == nil {
		t.removeIfBad(ctx, st.d, st.key)
	}
}

// removeIfBad deletes the destination object at key unless its content
// hashes to d.
func (t *transferer) removeIfBad(ctx context.Context, d digest.Digest, key string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	r, err := t.dst.NewReader(ctx, key)
	if err != nil {
		return
	}
	_, got, err := t.hashReader(ctx, r, d.Algorithm())
	_ = r.Close()
	if err == nil && got == d {
		return
	}
	if err := t.dst.Delete(ctx, key); err != nil && !isNotExist(err) {
		t.log.ErrorContext(ctx, "transfer: could not remove a copy that failed verification",
			"key", key, "error", err)
	}
}

// hashReader reads r to the end and returns its length and digest.
func (t *transferer) hashReader(ctx context.Context, r io.Reader, alg digest.Algorithm) (int64, digest.Digest, error) {
	return t.copyHashed(ctx, nil, r, -1, digest.NewDigestFromEncoded(alg, ""))
}

// copyHashed copies r to w (w may be nil: hash only), returning the byte
// count and the digest, with want's algorithm, of what was read. size is
// the expected length (-1 if unknown). Blobs that fit in one buffer are
// hashed before anything is written; larger ones go through a pipeline
// that hashes and writes concurrently but holds the last chunk back until
// the content hashes to want, so a corrupt blob is never written whole.
func (t *transferer) copyHashed(ctx context.Context, w io.Writer, r io.Reader, size int64, want digest.Digest) (int64, digest.Digest, error) {
	alg := want.Algorithm()
	h := alg.Hash()
	if size >= 0 && size <= int64(t.opts.BufferSize) {
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
		got := digest.NewDigest(alg, h)
		if w != nil && got == want && int64(n) == size {
			if _, err := w.Write(data); err != nil {
				return int64(n), got, err
			}
		}
		return int64(n), got, nil
	}

	// Three stages: one goroutine reads, one hashes, one writes. Each chunk
	// goes to both the hasher and the writer and returns to the free list
	// when both are done with it, so the hash (the costliest part) runs on
	// its own core while the copy proceeds. The writer is always one chunk
	// behind, and writes the last one only once the hash is known.
	type chunk struct {
		buf  *[]byte
		n    int
		refs atomic.Int32
	}
	free := make(chan *[]byte, pipelineDepth+1)
	for range pipelineDepth + 1 {
		free <- t.bufs.Get().(*[]byte)
	}
	release := func(c *chunk) {
		if c.refs.Add(-1) == 0 {
			free <- c.buf
		}
	}
	toHash := make(chan *chunk, pipelineDepth+1)
	toWrite := make(chan *chunk, pipelineDepth+1)
	hashed := make(chan digest.Digest, 1)
	var read int64
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
			toHash <- c // never blocks: at most pipelineDepth+1 chunks exist
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
		hashed <- digest.NewDigest(alg, h)
		return nil
	})
	var got digest.Digest
	g.Go(func() error {
		var pending *chunk
		write := func(c *chunk) error {
			defer release(c)
			if w == nil {
				return nil
			}
			_, err := w.Write((*c.buf)[:c.n])
			return err
		}
		for c := range toWrite {
			if pending != nil {
				if err := write(pending); err != nil {
					release(c)
					return err
				}
			}
			pending = c
		}
		select {
		case got = <-hashed:
		case <-gctx.Done():
			if pending != nil {
				release(pending)
			}
			return gctx.Err()
		}
		if pending == nil {
			return nil
		}
		if got != want || (size >= 0 && read != size) {
			release(pending)
			return nil
		}
		return write(pending)
	})
	err := g.Wait()
	for len(free) > 0 {
		t.bufs.Put(<-free)
	}
	if err != nil {
		return read, "", err
	}
	return read, got, nil
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
