//go:build !purego

package vecindex

import "golang.org/x/sys/cpu"

// hasInt8Kernel reports whether dotsInt8 runs the AVX2 kernel; without it
// quantised scanning is slower than float32 and the index scans float32.
var hasInt8Kernel = cpu.X86.HasAVX2

// dotsInt8 sets out[i] to the dot product of query with the i-th run of
// len(query) values in data. len(query) must be a positive multiple of 32
// and len(data) at least len(out)*len(query).
func dotsInt8(query []int16, data []int8, out []int32) {
	if len(out) == 0 {
		return
	}
	_ = data[len(out)*len(query)-1] // bounds check for the assembly
	dotsAVX2(query, data, out)
}

// dotsAVX2 is dotsInt8 in AVX2 assembly (dot_amd64.s).
//
//go:noescape
func dotsAVX2(query []int16, data []int8, out []int32)
