package transfer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/opencontainers/go-digest"
)

// serverSideState is what a server-side Transfer carries between attempts.
type serverSideState struct {
	src      *ObjectVersion // the pinned source version, nil until known
	verified bool           // src was hashed against the digest
	// stale is set when a copy did not match src's size or checksum: the
	// description itself may have been damaged on the way, so it is read
	// again (keeping verified if the generation and size are the same).
	stale    bool
	progress CopyProgress
}

// serverSide makes one attempt at a server-side copy: pin the source
// version, verify it (VerifySource) by hashing it through the host without
// writing it, let the service copy exactly that version, and check the
// copy's size and service checksum.
func (t *transferer) serverSide(ctx context.Context, st *copyState) error {
	c := t.opts.ServerSide
	ss := st.server()
	if ss.src == nil || ss.stale {
		v, err := c.Source(ctx, st.key)
		if err != nil {
			if errors.Is(err, ErrMissingBlob) {
				return fmt.Errorf("%w: %s", err, st.d)
			}
			return err
		}
		same := ss.src != nil && ss.src.Generation != "" && ss.src.Generation == v.Generation && ss.src.Size == v.Size
		ss.src, ss.verified, ss.stale, ss.progress = &v, ss.verified && same, false, CopyProgress{}
	}
	src := *ss.src
	st.res.Bytes = src.Size

	if err := t.verifySource(ctx, st, ss); err != nil {
		return err
	}
	trusted := ""
	if ss.verified || t.opts.ServerSideVerify == TrustChecksums {
		trusted = src.Checksum
	}
	if dv, ok, err := c.Destination(ctx, st.key); err != nil {
		return err
	} else if ok {
		state, n, err := t.judgeExisting(ctx, st.d, st.key, destObject{size: dv.Size, metadata: dv.Metadata, checksum: dv.Checksum}, src.Size, trusted, st.wrote)
		st.res.HostBytes += n
		if err != nil {
			return err
		}
		if done, err := t.settleExisting(ctx, st, state); done || err != nil {
			// Found after a copy of ours whose answer was lost: that copy
			// was done by the service.
			st.res.ServerSide = done && st.wrote
			return err
		}
	}

	if ss.progress.Token != "" {
		t.log.InfoContext(ctx, "transfer: resuming server-side copy",
			slog.String("digest", st.d.String()), slog.Int64("size", src.Size), slog.Int64("done", ss.progress.BytesDone))
	}
	meta := map[string]string{MetadataDigest: st.d.String()}
	if src.Checksum != "" {
		meta[MetadataChecksum] = src.Checksum
	}
	st.wrote = true
	got, err := c.Copy(ctx, st.key, src, meta, &ss.progress)
	if errors.Is(err, ErrSourceChanged) {
		// A new generation replaced the one we checked: start over with it.
		ss.src = nil
	}
	if errors.Is(err, ErrMissingBlob) {
		return fmt.Errorf("%w: %s", err, st.d)
	}
	if err != nil {
		return err
	}
	if got.Size != src.Size || got.Checksum != src.Checksum {
		// The copy landed but is not what we verified: remove exactly it.
		delErr := c.RemoveDestination(ctx, st.key, got)
		ss.progress, ss.stale = CopyProgress{}, true
		st.corrupt = append(st.corrupt, corruptRead{got: digest.Digest("copy-checksum:" + got.Checksum), n: got.Size})
		return errors.Join(&CorruptError{Digest: st.d, Where: ErrCorruptInTransit, Object: "server-side copy",
			Detail: fmt.Sprintf("copy has size %d checksum %s, source has size %d checksum %s", got.Size, got.Checksum, src.Size, src.Checksum)}, delErr)
	}
	st.res.ServerSide, st.res.Skipped = true, false
	return nil
}

// verifySource hashes the pinned source version against the digest once
// per Transfer (unless TrustChecksums).
func (t *transferer) verifySource(ctx context.Context, st *copyState, ss *serverSideState) error {
	if ss.verified || t.opts.ServerSideVerify == TrustChecksums {
		return nil
	}
	src := *ss.src
	r, err := t.opts.ServerSide.ReadSource(ctx, st.key, src)
	if errors.Is(err, ErrSourceChanged) {
		ss.src = nil
	}
	if err != nil {
		return err
	}
	defer r.Close()
	n, got, err := t.hashReader(ctx, r, st.d.Algorithm())
	st.res.HostBytes += n
	if err != nil {
		return err
	}
	if n < src.Size {
		return fmt.Errorf("%w: got %d of %d bytes", errTruncated, n, src.Size)
	}
	if got != st.d || n != src.Size {
		return st.mismatch("source", got, n, src.Size)
	}
	ss.verified = true
	return nil
}

// server returns the server-side state of a Transfer, creating it.
func (st *copyState) server() *serverSideState {
	if st.ss == nil {
		st.ss = &serverSideState{}
	}
	return st.ss
}
