package pglease

import "strings"

// DeleteExpiredSQLForTest is DeleteExpired's statement on the default
// table, for tests that hold its transaction open.
var DeleteExpiredSQLForTest = strings.ReplaceAll(deleteExpiredSQL, "{leases}", LeasesTable)
