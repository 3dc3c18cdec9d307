// Package bbm will hold batched background migrations.
package bbm
