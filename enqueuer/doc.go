// Package enqueuer will hold a capacity-filling import enqueuer.
package enqueuer
