package sgemm_test

import (
	"fmt"

	"github.com/pipe-ml/pipe/internal/sgemm"
)

// A 2×3 by 3×2 product; by hand, C[0][0] = 1·7 + 2·9 + 3·11 = 58 and
// C[1][1] = 4·8 + 5·10 + 6·12 = 154.
func ExampleSgemm() {
	a := []float32{
		1, 2, 3,
		4, 5, 6,
	}
	b := []float32{
		7, 8,
		9, 10,
		11, 12,
	}
	c := make([]float32, 2*2)
	sgemm.Sgemm(false, false, 2, 2, 3, 1, a, 3, b, 2, 0, c, 2)
	fmt.Println(c)

	// Bᵀ stored 2×3 (transB) gives the same product; beta = 1 accumulates into C.
	bt := []float32{
		7, 9, 11,
		8, 10, 12,
	}
	sgemm.Sgemm(false, true, 2, 2, 3, 1, a, 3, bt, 3, 1, c, 2)
	fmt.Println(c)
	// Output:
	// [58 64 139 154]
	// [116 128 278 308]
}
