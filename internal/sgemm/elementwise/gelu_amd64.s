//go:build amd64 && !purego

#include "textflag.h"

// GELU_TERMS loads 8 floats v from (SI) into Y0 and computes, operation for operation as
// geluTerms (no FMA), cdf = Φ(v) into Y11 and pdf = φ(v) into Y7. R8 points at the table of
// broadcast constants (geluTable, 32 bytes each). Clobbers Y1-Y6, Y8-Y10, Y12.
// EXP_NONPOS computes Y5 = e^Y1 for Y1 <= 0 (or NaN), operation for operation as expNonPos
// (no FMA). R8 points at the table of broadcast constants (geluTable, 32 bytes each).
// Clobbers Y2-Y4, Y6.
#define EXP_NONPOS \
	VMULPS     32(R8), Y1, Y2 \
	VSUBPS     64(R8), Y2, Y2 \
	VCVTTPS2DQ Y2, Y3 \
	VCVTDQ2PS  Y3, Y2 \
	VMULPS     96(R8), Y2, Y4 \
	VSUBPS     Y4, Y1, Y4 \
	VMULPS     128(R8), Y2, Y5 \
	VSUBPS     Y5, Y4, Y4 \
	VMULPS     160(R8), Y4, Y5 \
	VADDPS     192(R8), Y5, Y5 \
	VMULPS     Y4, Y5, Y5 \
	VADDPS     224(R8), Y5, Y5 \
	VMULPS     Y4, Y5, Y5 \
	VADDPS     256(R8), Y5, Y5 \
	VMULPS     Y4, Y5, Y5 \
	VADDPS     288(R8), Y5, Y5 \
	VMULPS     Y4, Y5, Y5 \
	VADDPS     320(R8), Y5, Y5 \
	VMULPS     Y4, Y5, Y5 \
	VMULPS     Y4, Y5, Y5 \
	VADDPS     Y4, Y5, Y5 \
	VADDPS     352(R8), Y5, Y5 \
	VPADDD     704(R8), Y3, Y3 \
	VPSLLD     $23, Y3, Y3 \
	VMULPS     Y3, Y5, Y5 \
	VCMPPS     $0x11, 384(R8), Y1, Y6 \
	VANDNPS    Y5, Y6, Y5

// GELU_TERMS loads 8 floats v from (SI) into Y0 and computes, operation for operation as
// geluTerms, cdf = Φ(v) into Y11 and pdf = φ(v) into Y7. Clobbers Y1-Y6, Y8-Y10, Y12.
#define GELU_TERMS \
	VMOVUPS    (SI), Y0 \
	VMULPS     0(R8), Y0, Y1 \
	VMULPS     Y0, Y1, Y1 \
	EXP_NONPOS \
	VMULPS     416(R8), Y5, Y7 \
	VMULPS     448(R8), Y0, Y8 \
	VANDPS     672(R8), Y8, Y8 \
	VMULPS     480(R8), Y8, Y9 \
	VADDPS     352(R8), Y9, Y9 \
	VMOVUPS    352(R8), Y10 \
	VDIVPS     Y9, Y10, Y9 \
	VMULPS     512(R8), Y9, Y10 \
	VADDPS     544(R8), Y10, Y10 \
	VMULPS     Y9, Y10, Y10 \
	VADDPS     576(R8), Y10, Y10 \
	VMULPS     Y9, Y10, Y10 \
	VADDPS     608(R8), Y10, Y10 \
	VMULPS     Y9, Y10, Y10 \
	VADDPS     640(R8), Y10, Y10 \
	VMULPS     Y9, Y10, Y10 \
	VMULPS     64(R8), Y10, Y10 \
	VMULPS     Y5, Y10, Y10 \
	VMOVUPS    352(R8), Y11 \
	VSUBPS     Y10, Y11, Y11 \
	VXORPS     Y12, Y12, Y12 \
	VCMPPS     $0x11, Y12, Y0, Y12 \
	VBLENDVPS  Y12, Y10, Y11, Y11

// func geluAVX2(y, z *float32, n int, c *float32)
//
// y[i] = z[i]·Φ(z[i]); n a positive multiple of 8.
TEXT ·geluAVX2(SB), NOSPLIT, $0-32
	MOVQ y+0(FP), DI
	MOVQ z+8(FP), SI
	MOVQ n+16(FP), CX
	MOVQ c+24(FP), R8

geluLoop:
	GELU_TERMS
	VMULPS  Y11, Y0, Y0
	VMOVUPS Y0, (DI)
	ADDQ    $32, SI
	ADDQ    $32, DI
	SUBQ    $8, CX
	JNZ     geluLoop
	VZEROUPPER
	RET

// func geluBackwardAVX2(d, z *float32, n int, c *float32)
//
// d[i] *= Φ(z[i]) + z[i]·φ(z[i]); n a positive multiple of 8.
TEXT ·geluBackwardAVX2(SB), NOSPLIT, $0-32
	MOVQ d+0(FP), DI
	MOVQ z+8(FP), SI
	MOVQ n+16(FP), CX
	MOVQ c+24(FP), R8

geluBackLoop:
	GELU_TERMS
	VMULPS  Y7, Y0, Y13
	VADDPS  Y13, Y11, Y13
	VMOVUPS (DI), Y14
	VMULPS  Y13, Y14, Y14
	VMOVUPS Y14, (DI)
	ADDQ    $32, SI
	ADDQ    $32, DI
	SUBQ    $8, CX
	JNZ     geluBackLoop
	VZEROUPPER
	RET

// func sigmoidAVX2(y, z *float32, n int, c *float32)
//
// y[i] = sigmoidOne(z[i]); n a positive multiple of 8.
TEXT ·sigmoidAVX2(SB), NOSPLIT, $0-32
	MOVQ y+0(FP), DI
	MOVQ z+8(FP), SI
	MOVQ n+16(FP), CX
	MOVQ c+24(FP), R8

sigmoidLoop:
	VMOVUPS (SI), Y0
	VANDPS  672(R8), Y0, Y1
	VXORPS  736(R8), Y1, Y1
	EXP_NONPOS
	VADDPS    352(R8), Y5, Y7
	VMOVUPS   352(R8), Y8
	VDIVPS    Y7, Y8, Y8
	VDIVPS    Y7, Y5, Y9
	VXORPS    Y10, Y10, Y10
	VCMPPS    $0x1d, Y10, Y0, Y10
	VBLENDVPS Y10, Y8, Y9, Y9
	VMOVUPS   Y9, (DI)
	ADDQ      $32, SI
	ADDQ      $32, DI
	SUBQ      $8, CX
	JNZ       sigmoidLoop
	VZEROUPPER
	RET

// func tanhAVX2(y, z *float32, n int, c *float32)
//
// y[i] = tanhOne(z[i]); n a positive multiple of 8.
TEXT ·tanhAVX2(SB), NOSPLIT, $0-32
	MOVQ y+0(FP), DI
	MOVQ z+8(FP), SI
	MOVQ n+16(FP), CX
	MOVQ c+24(FP), R8

tanhLoop:
	VMOVUPS (SI), Y0
	VANDPS  672(R8), Y0, Y11
	VMULPS  768(R8), Y11, Y1
	EXP_NONPOS
	VMOVUPS   352(R8), Y7
	VSUBPS    Y5, Y7, Y7
	VADDPS    352(R8), Y5, Y8
	VDIVPS    Y8, Y7, Y7
	VANDPS    736(R8), Y0, Y8
	VORPS     Y8, Y7, Y7
	VMULPS    Y0, Y0, Y9
	VMULPS    832(R8), Y9, Y10
	VADDPS    864(R8), Y10, Y10
	VMULPS    Y9, Y10, Y10
	VADDPS    896(R8), Y10, Y10
	VMULPS    Y9, Y10, Y10
	VADDPS    928(R8), Y10, Y10
	VMULPS    Y9, Y10, Y10
	VADDPS    960(R8), Y10, Y10
	VMULPS    Y9, Y10, Y10
	VMULPS    Y0, Y10, Y10
	VADDPS    Y0, Y10, Y10
	VCMPPS    $0x11, 800(R8), Y11, Y12
	VBLENDVPS Y12, Y10, Y7, Y7
	VMOVUPS   Y7, (DI)
	ADDQ      $32, SI
	ADDQ      $32, DI
	SUBQ      $8, CX
	JNZ       tanhLoop
	VZEROUPPER
	RET

// func eluAVX2(y, z *float32, n int, c *float32)
//
// y[i] = eluOne(z[i]); n a positive multiple of 8.
TEXT ·eluAVX2(SB), NOSPLIT, $0-32
	MOVQ y+0(FP), DI
	MOVQ z+8(FP), SI
	MOVQ n+16(FP), CX
	MOVQ c+24(FP), R8

eluLoop:
	VMOVUPS (SI), Y0
	VMOVUPS Y0, Y1
	EXP_NONPOS
	VSUBPS    352(R8), Y5, Y5
	VXORPS    Y10, Y10, Y10
	VCMPPS    $0x11, Y10, Y0, Y10
	VBLENDVPS Y10, Y5, Y0, Y0
	VMOVUPS   Y0, (DI)
	ADDQ      $32, SI
	ADDQ      $32, DI
	SUBQ      $8, CX
	JNZ       eluLoop
	VZEROUPPER
	RET
