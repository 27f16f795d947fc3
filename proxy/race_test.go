//go:build race

package proxy

// heapSlack scales the heap that tests allow: the race detector's
// instrumentation makes each goroutine and request take about twice
// what the program takes.
const heapSlack = 2
