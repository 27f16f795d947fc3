//go:build !race

package proxy

// heapSlack scales the heap that tests allow (see race_test.go).
const heapSlack = 1
