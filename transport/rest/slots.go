package rest

import "sync"

// slots counts what is held — connections, event streams — in all and per
// holder (a client address, an API key), within a bound on each (0: none).
// Over both bounds at once, the holder's own comes first: it is the one the
// caller can do something about.
type slots struct {
	mu        sync.Mutex
	most      int
	perHolder int
	total     int
	held      map[string]int
}

// slotRefusal says which bound a take was refused by.
type slotRefusal int

const (
	slotTaken    slotRefusal = iota // within both bounds: the slot is taken
	holderFull                      // the holder holds its share
	allSlotsFull                    // all slots are held
)

func newSlots(most, perHolder int) *slots {
	return &slots{most: most, perHolder: perHolder, held: map[string]int{}}
}

// take takes a slot for holder, or says which bound refuses it.
func (s *slots) take(holder string) slotRefusal {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.perHolder > 0 && s.held[holder] >= s.perHolder:
		return holderFull
	case s.most > 0 && s.total >= s.most:
		return allSlotsFull
	}
	s.held[holder]++
	s.total++
	return slotTaken
}

// give gives back a slot holder took.
func (s *slots) give(holder string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.total--
	s.held[holder]--
	if s.held[holder] <= 0 {
		delete(s.held, holder)
	}
}
