//go:build !amd64 || purego

package vecindex

// hasInt8Kernel is false: the portable int8 loop is slower than float32,
// so the index scans float32.
const hasInt8Kernel = false

func dotsInt8(query []int16, data []int8, out []int32) { dotsInt8Go(query, data, out) }
