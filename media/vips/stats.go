package vips

// #include "capi.h"
import "C"

// Stats are libvips' own figures of memory and of its operation cache.
type Stats struct {
	// Memory is what libvips tracks as allocated for pixels now, and
	// MemoryHighwater the most it ever was.
	Memory, MemoryHighwater uint64
	// Allocations are its tracked allocations now, Files its open files.
	Allocations, Files int
	// CacheSize is the operations in its cache; CacheMax and
	// CacheMaxMemory its bounds (vitrine turns the cache off: 0).
	CacheSize, CacheMax int
	CacheMaxMemory      uint64
}

// Stats reads libvips' figures; zero after Shutdown.
func (rt *Runtime) Stats() Stats {
	leave, err := rt.enter()
	if err != nil {
		return Stats{}
	}
	defer leave()
	var s C.VtStats
	C.vt_stats(&s)
	return Stats{Memory: uint64(s.mem), MemoryHighwater: uint64(s.mem_highwater), Allocations: int(s.allocs), Files: int(s.files),
		CacheSize: int(s.cache_size), CacheMax: int(s.cache_max), CacheMaxMemory: uint64(s.cache_max_mem)}
}
