package vecindex

// dotF32 returns the dot product of a and b[:len(a)].
func dotF32(a, b []float32) float32 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= len(a); i += 4 {
		s0 += a[i] * b[i]
		s1 += a[i+1] * b[i+1]
		s2 += a[i+2] * b[i+2]
		s3 += a[i+3] * b[i+3]
	}
	for ; i < len(a); i++ {
		s0 += a[i] * b[i]
	}
	return s0 + s1 + s2 + s3
}

// dotsInt8Go is the portable form of dotsInt8: out[i] is the dot product
// of query with the i-th run of len(query) values in data.
func dotsInt8Go(query []int16, data []int8, out []int32) {
	stride := len(query)
	for i := range out {
		v := data[i*stride : (i+1)*stride]
		var s int32
		for j, q := range query {
			s += int32(q) * int32(v[j])
		}
		out[i] = s
	}
}
