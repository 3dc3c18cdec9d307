// Package examples holds runnable programs that show how a registry wires Ferry;
// start with examples/quickstart.
package examples
