package storage

import (
	"context"
	"errors"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// WAL page header sizes of a server whose maximum alignment is 8 bytes
// (every 64-bit build): a segment's first page has the long header.
const (
	shortPageHeader = 24
	longPageHeader  = 40
)

// walGeometry is the primary's WAL page and segment size, for recordEnd.
// The zero value makes no correction.
type walGeometry struct {
	blockSize, segmentSize uint64
}

// recordEnd turns a WAL insert position into the end of the last record
// inserted before it, the position a replica reports once it has replayed
// that record. They differ only when the last record ended exactly at a
// page boundary: the insert position is then past the next page's header
// (which no record can end inside), while the replica reports the
// boundary. An idle primary sits there after every WAL segment switch
// (pg_switch_wal, archive_timeout, a base backup), and until its next
// record a read waiting for that position would never go to a replica.
func (g walGeometry) recordEnd(insert uint64) uint64 {
	if g.blockSize == 0 || g.segmentSize == 0 {
		return insert
	}
	header := uint64(shortPageHeader)
	if insert%g.segmentSize < g.blockSize {
		header = longPageHeader
	}
	if insert%g.blockSize == header {
		return insert - header
	}
	return insert
}

// walGeometryOf reads the server's WAL geometry. ok is false when it
// could not be read for now (a connection error, or ctx ended): ask again
// later. A server that refuses the question (an SQL error: no such
// function, no permission) or aligns other than 8 bytes gets the zero
// walGeometry for good: no correction, so a read after a write at a page
// boundary waits for the primary's next record (safe, and how it was
// before).
func walGeometryOf(ctx context.Context, q Querier) (g walGeometry, ok bool) {
	var align int32
	var block, segment int64
	err := q.QueryRow(ctx, `SELECT max_data_alignment, wal_block_size, bytes_per_wal_segment FROM pg_control_init()`).
		Scan(&align, &block, &segment)
	var pgErr *pgconn.PgError
	switch {
	case err != nil && ctx.Err() == nil && errors.As(err, &pgErr) && refusal(pgErr.Code):
		return walGeometry{}, true
	case err != nil:
		return walGeometry{}, false
	case align != 8 || block <= 0 || segment <= 0:
		return walGeometry{}, true
	}
	return walGeometry{blockSize: uint64(block), segmentSize: uint64(segment)}, true
}

// recordEnd is walGeometry.recordEnd with the primary's geometry, read on
// first use (concurrent first uses may each read it; they agree).
func (db *DB) recordEnd(ctx context.Context, insert uint64) uint64 {
	g := db.walGeometry.Load()
	if g == nil {
		got, ok := walGeometryOf(ctx, db.primary)
		if !ok {
			return insert
		}
		db.walGeometry.Store(&got)
		g = &got
	}
	return g.recordEnd(insert)
}

// refusal reports whether SQLSTATE code says the server will never answer
// the question (no such function, no permission, not supported), as
// opposed to a condition that passes (too many connections, starting up,
// a timeout).
func refusal(code string) bool {
	return strings.HasPrefix(code, "42") || code == "0A000"
}
