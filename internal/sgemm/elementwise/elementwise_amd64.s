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
// row[j] = max(row[j]+bias[j], 0) keeping NaN; n must be a multiple of 8.
TEXT ·biasReLUAVX(SB), NOSPLIT, $0-24
	MOVQ   row+0(FP), DI
	MOVQ   bias+8(FP), SI
	MOVQ   n+16(FP), CX
	VXORPS Y15, Y15, Y15
	SHRQ   $3, CX
	JZ     biasDone

biasLoop:
	VMOVUPS (DI), Y0
	VADDPS  (SI), Y0, Y0
	VMAXPS  Y0, Y15, Y0  // (0 > s) ? 0 : s, so NaN and -0 pass through as in Go
	VMOVUPS Y0, (DI)
	ADDQ    $32, DI
	ADDQ    $32, SI
	DECQ    CX
	JNZ     biasLoop

biasDone:
	VZEROUPPER
	RET

// func reluBackwardAVX(dy, y *float32, n int)
//
// dy[i] = 0 where !(y[i] > 0); n must be a multiple of 8.
TEXT ·reluBackwardAVX(SB), NOSPLIT, $0-24
	MOVQ   dy+0(FP), DI
	MOVQ   y+8(FP), SI
	MOVQ   n+16(FP), CX
	VXORPS Y15, Y15, Y15
	SHRQ   $3, CX
	JZ     reluDone

reluLoop:
	VMOVUPS (SI), Y1
	VCMPPS  $0x1e, Y15, Y1, Y1 // y > 0 (ordered, quiet)
	VANDPS  (DI), Y1, Y0
	VMOVUPS Y0, (DI)
	ADDQ    $32, DI
	ADDQ    $32, SI
	DECQ    CX
	JNZ     reluLoop

reluDone:
	VZEROUPPER
	RET
