// Package childproc runs throwaway servers (PostgreSQL, redis-server) as
// child processes that never outlive the process that started them: on
// Linux the kernel signals them when it dies (Pdeathsig), their temp dirs
// carry the parent's pid so a later run sweeps what a crashed run left (on
// other Unix systems, the only guard), and Stop escalates from a graceful
// signal to a hard one. Elsewhere (Windows) Start fails with ErrUnsupported,
// so the library still builds there.
package childproc
