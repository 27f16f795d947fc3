package ratelimit

// capped gathers observations, at most MaxObservations of them, and counts
// drops. Once full it is a max-heap, so that a new observation displaces
// the greatest kept one only if it sorts before it: what it keeps is the
// first MaxObservations in Compare order, whatever the order of adding.
type capped struct {
	obs     []Observation
	dropped int
	heaped  bool // obs is a max-heap, full, once a value has overflowed it
	// room is the capacity obs starts with, when the first observation
	// comes: about as many as there are headers, not six appends' growth.
	room int
}

func (c *capped) add(o Observation) {
	if c.obs == nil && c.room > 0 {
		c.obs = make([]Observation, 0, min(c.room, MaxObservations))
	}
	if len(c.obs) < MaxObservations {
		c.obs = append(c.obs, o)
		return
	}
	c.dropped++
	if !c.heaped {
		for i := len(c.obs)/2 - 1; i >= 0; i-- {
			siftDown(c.obs, i)
		}
		c.heaped = true
	}
	if Compare(o, c.obs[0]) < 0 {
		c.obs[0] = o
		siftDown(c.obs, 0)
	}
}

// siftDown moves h[i] down until no child below it sorts after it, restoring
// a max-heap whose subtrees below i already are heaps.
func siftDown(h []Observation, i int) {
	for {
		top := i
		for _, c := range [2]int{2*i + 1, 2*i + 2} {
			if c < len(h) && Compare(h[c], h[top]) > 0 {
				top = c
			}
		}
		if top == i {
			return
		}
		h[i], h[top] = h[top], h[i]
		i = top
	}
}
