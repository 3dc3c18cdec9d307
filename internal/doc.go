// Package internal holds helpers shared by Ferry packages that are not part of
// the public API, such as pgtest, a throwaway PostgreSQL server for tests.
package internal
