package storage

import (
	"bytes"
	"io"
	"io/fs"
	"slices"
	"strings"
	"time"
)

// MigrationsFS returns Ferry's own migrations as files in the layout of
// golang-migrate's file and iofs sources (NNNN_name.up.sql and
// NNNN_name.down.sql), for a host that runs them with its own migrator:
//
//	src, err := iofs.New(storage.MigrationsFS(), ".")
//	m, err := migrate.NewWithSourceInstance("iofs", src,
//		"pgx5://registry@db/registry?search_path=ferry&x-migrations-table=registry_ferry_migrations")
//	err = m.Up()
//
// Point the migrator's search_path at the schema of Ferry's tables (the
// files name tables unqualified), give Ferry's line a version table of its
// own (not the host's, and not Migrate's ferry_schema_migrations: run
// Ferry's migrations one way per database), and give Ferry's packages a Handle in that schema
// (WithSchema). It reads Ferry's embedded files; nothing is read from disk.
func MigrationsFS() fs.FS {
	ms, err := Migrations()
	if err != nil {
		panic(err) // the embedded files are checked by Ferry's tests
	}
	files := make(memFS, 2*len(ms))
	for _, m := range ms {
		base := strings.TrimSuffix(strings.TrimSuffix(m.Name, ".sql"), ".up")
		files[base+".up.sql"] = []byte(m.Up)
		files[base+".down.sql"] = []byte(m.Down)
	}
	return files
}

// memFS is a read-only, flat file system in memory.
type memFS map[string][]byte

var (
	_ fs.ReadDirFS  = memFS(nil)
	_ fs.ReadFileFS = memFS(nil)
)

func (m memFS) Open(name string) (fs.File, error) {
	if name == "." {
		return &memDir{entries: m.entries()}, nil
	}
	data, ok := m[name]
	if !ok {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	return &memFile{info: memInfo{name: name, size: int64(len(data))}, r: bytes.NewReader(data)}, nil
}

func (m memFS) ReadFile(name string) ([]byte, error) {
	data, ok := m[name]
	if !ok {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	return slices.Clone(data), nil
}

func (m memFS) ReadDir(name string) ([]fs.DirEntry, error) {
	if name != "." {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: fs.ErrNotExist}
	}
	return m.entries(), nil
}

func (m memFS) entries() []fs.DirEntry {
	out := make([]fs.DirEntry, 0, len(m))
	for name, data := range m {
		out = append(out, fs.FileInfoToDirEntry(memInfo{name: name, size: int64(len(data))}))
	}
	slices.SortFunc(out, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	return out
}

type memFile struct {
	info memInfo
	r    *bytes.Reader
}

func (f *memFile) Stat() (fs.FileInfo, error) { return f.info, nil }
func (f *memFile) Read(p []byte) (int, error) { return f.r.Read(p) }
func (f *memFile) Close() error               { return nil }

// memDir is the root directory.
type memDir struct {
	entries []fs.DirEntry
	off     int
}

func (d *memDir) Stat() (fs.FileInfo, error) { return memInfo{name: ".", dir: true}, nil }
func (d *memDir) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: ".", Err: fs.ErrInvalid}
}
func (d *memDir) Close() error { return nil }

func (d *memDir) ReadDir(n int) ([]fs.DirEntry, error) {
	rest := d.entries[d.off:]
	if n <= 0 {
		d.off = len(d.entries)
		return rest, nil
	}
	if len(rest) == 0 {
		return nil, io.EOF
	}
	rest = rest[:min(n, len(rest))]
	d.off += len(rest)
	return rest, nil
}

type memInfo struct {
	name string
	size int64
	dir  bool
}

func (i memInfo) Name() string { return i.name }
func (i memInfo) Size() int64  { return i.size }
func (i memInfo) Mode() fs.FileMode {
	if i.dir {
		return fs.ModeDir | 0o555
	}
	return 0o444
}
func (i memInfo) ModTime() time.Time { return time.Time{} }
func (i memInfo) IsDir() bool        { return i.dir }
func (i memInfo) Sys() any           { return nil }
