// Package lease will hold exclusive leases with fencing tokens.
package lease
