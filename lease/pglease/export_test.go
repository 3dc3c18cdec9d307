package pglease

// DeleteExpiredSQLForTest is DeleteExpired's statement on the default
// table, for tests that hold its transaction open.
var DeleteExpiredSQLForTest = onTable(deleteExpiredSQL, LeasesTable)
