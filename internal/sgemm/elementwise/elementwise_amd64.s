//go:build amd64 && !purego

#include "textflag.h"

// func adamUpdateAVX(w, grad, m, v *float32, n int, c *AdamScalars)
//
// n must be a multiple of 8. Operation order matches adamUpdateGeneric exactly (no FMA).
TEXT ·adamUpdateAVX(SB), NOSPLIT, $0-48
	MOVQ w+0(FP), DI
	MOVQ grad+8(FP), SI
	MOVQ m+16(FP), DX
	MOVQ v+24(FP), BX
	MOVQ n+32(FP), CX
	MOVQ c+40(FP), R8
	VBROADCASTSS 0(R8), Y8   // Beta1
	VBROADCASTSS 4(R8), Y9   // Beta2
	VBROADCASTSS 8(R8), Y10  // OneMinusBeta1
	VBROADCASTSS 12(R8), Y11 // OneMinusBeta2
	VBROADCASTSS 16(R8), Y12 // Eps
	VBROADCASTSS 20(R8), Y13 // Decay
	VBROADCASTSS 24(R8), Y14 // L2
	VBROADCASTSS 28(R8), Y15 // StepSize
	VBROADCASTSS 32(R8), Y7  // InvSqrtBC2
	SHRQ $3, CX
	JZ   adamDone

adamLoop:
	VMOVUPS (DI), Y0
	VMOVUPS (SI), Y1
	VMULPS  Y0, Y14, Y2      // L2*w
	VADDPS  Y2, Y1, Y1       // gi = g + L2*w
	VMOVUPS (DX), Y3
	VMULPS  Y3, Y8, Y3       // Beta1*m
	VMULPS  Y1, Y10, Y4      // OneMinusBeta1*gi
	VADDPS  Y4, Y3, Y3       // mi
	VMOVUPS (BX), Y5
	VMULPS  Y5, Y9, Y5       // Beta2*v
	VMULPS  Y1, Y11, Y6      // OneMinusBeta2*gi
	VMULPS  Y1, Y6, Y6       // ·gi
	VADDPS  Y6, Y5, Y5       // vi
	VMOVUPS Y3, (DX)
	VMOVUPS Y5, (BX)
	VSQRTPS Y5, Y6
	VMULPS  Y7, Y6, Y6       // √vi·InvSqrtBC2
	VADDPS  Y12, Y6, Y6      // + Eps
	VMULPS  Y3, Y15, Y4      // StepSize*mi
	VDIVPS  Y6, Y4, Y4       // / denom
	VMULPS  Y13, Y0, Y2      // w*Decay
	VSUBPS  Y2, Y0, Y0       // w - w*Decay
	VSUBPS  Y4, Y0, Y0       // - step
	VMOVUPS Y0, (DI)
	ADDQ    $32, DI
	ADDQ    $32, SI
	ADDQ    $32, DX
	ADDQ    $32, BX
	DECQ    CX
	JNZ     adamLoop

adamDone:
	VZEROUPPER
	RET

// func biasReLUAVX(row, bias *float32, n int)
//
// row[j] = max(row[j]+bias[j], 0) with Go's max semantics; n must be a multiple of 8.
TEXT ·biasReLUAVX(SB), NOSPLIT, $0-24
	MOVQ   row+0(FP), DI
	MOVQ   bias+8(FP), SI
	MOVQ   n+16(FP), CX
	VXORPS Y15, Y15, Y15
	SHRQ   $3, CX
	JZ     biasReLUDone

biasReLULoop:
	VMOVUPS (DI), Y0
	VADDPS  (SI), Y0, Y0
	VMAXPS  Y0, Y15, Y0  // (0 > s) ? 0 : s, so NaN passes through
	VADDPS  Y15, Y0, Y0  // + 0 turns -0 into +0 and leaves every other value (and NaN) as it is
	VMOVUPS Y0, (DI)
	ADDQ    $32, DI
	ADDQ    $32, SI
	DECQ    CX
	JNZ     biasReLULoop

biasReLUDone:
	VZEROUPPER
	RET

// func biasAddAVX(row, bias *float32, n int)
//
// row[j] += bias[j]; n must be a multiple of 8.
TEXT ·biasAddAVX(SB), NOSPLIT, $0-24
	MOVQ row+0(FP), DI
	MOVQ bias+8(FP), SI
	MOVQ n+16(FP), CX
	SHRQ $3, CX
	JZ   biasAddDone

biasAddLoop:
	VMOVUPS (DI), Y0
	VADDPS  (SI), Y0, Y0
	VMOVUPS Y0, (DI)
	ADDQ    $32, DI
	ADDQ    $32, SI
	DECQ    CX
	JNZ     biasAddLoop

biasAddDone:
	VZEROUPPER
	RET

// func reluBackwardAVX(dy, y *float32, n int)
//
// dy[i] = 0 where y[i] <= 0 (NaN y keeps dy); n must be a multiple of 8.
TEXT ·reluBackwardAVX(SB), NOSPLIT, $0-24
	MOVQ   dy+0(FP), DI
	MOVQ   y+8(FP), SI
	MOVQ   n+16(FP), CX
	VXORPS Y15, Y15, Y15
	SHRQ   $3, CX
	JZ     reluDone

reluLoop:
	VMOVUPS (SI), Y1
	VCMPPS  $0x16, Y15, Y1, Y1 // !(y <= 0) (NLE_UQ: true for NaN)
	VANDPS  (DI), Y1, Y0
	VMOVUPS Y0, (DI)
	ADDQ    $32, DI
	ADDQ    $32, SI
	DECQ    CX
	JNZ     reluLoop

reluDone:
	VZEROUPPER
	RET

// func columnSumAVX(dst, m *float32, rows, n, ldm int)
//
// dst[j] = Σ_i m[i*ldm+j] for j < n, rows added in order to +0; n must be a multiple of 8
// and rows at least 1. Blocks of 64 columns keep 8 independent accumulators in flight.
TEXT ·columnSumAVX(SB), NOSPLIT, $0-40
	MOVQ dst+0(FP), DI
	MOVQ m+8(FP), SI
	MOVQ rows+16(FP), CX
	MOVQ n+24(FP), DX
	MOVQ ldm+32(FP), R8
	SHLQ $2, R8          // row stride in bytes

csum64:
	CMPQ   DX, $64
	JLT    csum8
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
	MOVQ   SI, R10
	MOVQ   CX, R11

csum64Row:
	VADDPS (R10), Y0, Y0
	VADDPS 32(R10), Y1, Y1
	VADDPS 64(R10), Y2, Y2
	VADDPS 96(R10), Y3, Y3
	VADDPS 128(R10), Y4, Y4
	VADDPS 160(R10), Y5, Y5
	VADDPS 192(R10), Y6, Y6
	VADDPS 224(R10), Y7, Y7
	ADDQ   R8, R10
	DECQ   R11
	JNZ    csum64Row
	VMOVUPS Y0, (DI)
	VMOVUPS Y1, 32(DI)
	VMOVUPS Y2, 64(DI)
	VMOVUPS Y3, 96(DI)
	VMOVUPS Y4, 128(DI)
	VMOVUPS Y5, 160(DI)
	VMOVUPS Y6, 192(DI)
	VMOVUPS Y7, 224(DI)
	ADDQ    $256, DI
	ADDQ    $256, SI
	SUBQ    $64, DX
	JMP     csum64

csum8:
	CMPQ   DX, $8
	JLT    csumDone
	VXORPS Y0, Y0, Y0
	MOVQ   SI, R10
	MOVQ   CX, R11

csum8Row:
	VADDPS (R10), Y0, Y0
	ADDQ   R8, R10
	DECQ   R11
	JNZ    csum8Row
	VMOVUPS Y0, (DI)
	ADDQ    $32, DI
	ADDQ    $32, SI
	SUBQ    $8, DX
	JMP     csum8

csumDone:
	VZEROUPPER
	RET

// func sgdAVX(w, grad *float32, n int, lr float32)
//
// w[i] = w[i] - lr*g[i]; n must be a multiple of 8.
TEXT ·sgdAVX(SB), NOSPLIT, $0-28
	MOVQ         w+0(FP), DI
	MOVQ         grad+8(FP), SI
	MOVQ         n+16(FP), CX
	VBROADCASTSS lr+24(FP), Y15
	SHRQ         $3, CX
	JZ           sgdDone

sgdLoop:
	VMULPS  (SI), Y15, Y1 // lr*g
	VMOVUPS (DI), Y0
	VSUBPS  Y1, Y0, Y0    // w - lr*g
	VMOVUPS Y0, (DI)
	ADDQ    $32, DI
	ADDQ    $32, SI
	DECQ    CX
	JNZ     sgdLoop

sgdDone:
	VZEROUPPER
	RET

// func sgdL2AVX(w, grad *float32, n int, lr, l2 float32)
//
// w[i] = w[i] - lr*(g[i] + l2*w[i]); n must be a multiple of 8.
TEXT ·sgdL2AVX(SB), NOSPLIT, $0-32
	MOVQ         w+0(FP), DI
	MOVQ         grad+8(FP), SI
	MOVQ         n+16(FP), CX
	VBROADCASTSS lr+24(FP), Y15
	VBROADCASTSS l2+28(FP), Y14
	SHRQ         $3, CX
	JZ           sgdL2Done

sgdL2Loop:
	VMOVUPS (DI), Y0
	VMULPS  Y0, Y14, Y1   // l2*w
	VADDPS  (SI), Y1, Y1  // g + l2*w
	VMULPS  Y1, Y15, Y1   // lr*(...)
	VSUBPS  Y1, Y0, Y0    // w - lr*(...)
	VMOVUPS Y0, (DI)
	ADDQ    $32, DI
	ADDQ    $32, SI
	DECQ    CX
	JNZ     sgdL2Loop

sgdL2Done:
	VZEROUPPER
	RET

// func sgdMomentumAVX(w, grad, buf *float32, n int, lr, l2, mu float32)
//
// gi = g + l2*w; buf = mu*buf + gi; w = w - lr*buf; n must be a multiple of 8.
TEXT ·sgdMomentumAVX(SB), NOSPLIT, $0-44
	MOVQ         w+0(FP), DI
	MOVQ         grad+8(FP), SI
	MOVQ         buf+16(FP), DX
	MOVQ         n+24(FP), CX
	VBROADCASTSS lr+32(FP), Y15
	VBROADCASTSS l2+36(FP), Y14
	VBROADCASTSS mu+40(FP), Y13
	SHRQ         $3, CX
	JZ           momDone

momLoop:
	VMOVUPS (DI), Y0
	VMULPS  Y0, Y14, Y1  // l2*w
	VADDPS  (SI), Y1, Y1 // gi = g + l2*w
	VMULPS  (DX), Y13, Y2 // mu*buf
	VADDPS  Y1, Y2, Y2   // b = mu*buf + gi
	VMOVUPS Y2, (DX)
	VMULPS  Y2, Y15, Y2  // lr*b
	VSUBPS  Y2, Y0, Y0   // w - lr*b
	VMOVUPS Y0, (DI)
	ADDQ    $32, DI
	ADDQ    $32, SI
	ADDQ    $32, DX
	DECQ    CX
	JNZ     momLoop

momDone:
	VZEROUPPER
	RET

// func sgdNesterovAVX(w, grad, buf *float32, n int, lr, l2, mu float32)
//
// gi = g + l2*w; buf = mu*buf + gi; w = w - lr*(gi + mu*buf); n must be a multiple of 8.
TEXT ·sgdNesterovAVX(SB), NOSPLIT, $0-44
	MOVQ         w+0(FP), DI
	MOVQ         grad+8(FP), SI
	MOVQ         buf+16(FP), DX
	MOVQ         n+24(FP), CX
	VBROADCASTSS lr+32(FP), Y15
	VBROADCASTSS l2+36(FP), Y14
	VBROADCASTSS mu+40(FP), Y13
	SHRQ         $3, CX
	JZ           nestDone

nestLoop:
	VMOVUPS (DI), Y0
	VMULPS  Y0, Y14, Y1   // l2*w
	VADDPS  (SI), Y1, Y1  // gi = g + l2*w
	VMULPS  (DX), Y13, Y2 // mu*buf
	VADDPS  Y1, Y2, Y2    // b = mu*buf + gi
	VMOVUPS Y2, (DX)
	VMULPS  Y2, Y13, Y2   // mu*b
	VADDPS  Y2, Y1, Y1    // gi + mu*b
	VMULPS  Y1, Y15, Y1   // lr*(...)
	VSUBPS  Y1, Y0, Y0    // w - lr*(...)
	VMOVUPS Y0, (DI)
	ADDQ    $32, DI
	ADDQ    $32, SI
	ADDQ    $32, DX
	DECQ    CX
	JNZ     nestLoop

nestDone:
	VZEROUPPER
	RET

// func sumSquaresAVX(x *float32, n int) float32
//
// Eight float32 lanes acc[j] += x[i+j]*x[i+j] (multiply, then add: no FMA), then the lanes are
// reduced as ((a0+a4)+(a1+a5)) + ((a2+a6)+(a3+a7)); n must be a multiple of 8.
TEXT ·sumSquaresAVX(SB), NOSPLIT, $0-20
	MOVQ   x+0(FP), SI
	MOVQ   n+8(FP), CX
	VXORPS Y2, Y2, Y2
	SHRQ   $3, CX
	JZ     ssqReduce

ssqLoop:
	VMOVUPS (SI), Y0
	VMULPS  Y0, Y0, Y0
	VADDPS  Y0, Y2, Y2
	ADDQ    $32, SI
	DECQ    CX
	JNZ     ssqLoop

ssqReduce:
	VEXTRACTF128 $1, Y2, X3
	VADDPS       X3, X2, X2
	VHADDPS      X2, X2, X2
	VHADDPS      X2, X2, X2
	MOVSS        X2, ret+16(FP)
	VZEROUPPER
	RET

// func l2GradAVX(w, grad *float32, n int, c float32) float32
//
// grad[i] += c*w[i] (multiply, then add) and returns Σ w[i]² reduced like sumSquaresAVX; n must
// be a multiple of 8.
TEXT ·l2GradAVX(SB), NOSPLIT, $0-36
	MOVQ         w+0(FP), DI
	MOVQ         grad+8(FP), SI
	MOVQ         n+16(FP), CX
	VBROADCASTSS c+24(FP), Y15
	VXORPS       Y2, Y2, Y2
	SHRQ         $3, CX
	JZ           l2gReduce

l2gLoop:
	VMOVUPS (DI), Y0
	VMULPS  Y0, Y15, Y1  // c*w
	VADDPS  (SI), Y1, Y1 // g + c*w
	VMOVUPS Y1, (SI)
	VMULPS  Y0, Y0, Y0   // w*w
	VADDPS  Y0, Y2, Y2
	ADDQ    $32, DI
	ADDQ    $32, SI
	DECQ    CX
	JNZ     l2gLoop

l2gReduce:
	VEXTRACTF128 $1, Y2, X3
	VADDPS       X3, X2, X2
	VHADDPS      X2, X2, X2
	VHADDPS      X2, X2, X2
	MOVSS        X2, ret+32(FP)
	VZEROUPPER
	RET

// func prefetchAVX(p *float32, n int)
//
// Issues a PREFETCHT0 for every 64-byte line of p[0:n]; n > 0.
TEXT ·prefetchAVX(SB), NOSPLIT, $0-16
	MOVQ p+0(FP), SI
	MOVQ n+8(FP), CX
	LEAQ (SI)(CX*4), DX

pfLoop:
	PREFETCHT0 (SI)
	ADDQ       $64, SI
	CMPQ       SI, DX
	JB         pfLoop
	RET
