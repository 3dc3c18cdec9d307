// Package syncbuf provides a text buffer that one goroutine writes while
// others read it, for capturing a child process's or a logger's output in
// tests.
package syncbuf
