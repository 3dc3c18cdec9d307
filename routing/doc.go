// Package routing will hold worker-attribute selectors and routing rules.
package routing
