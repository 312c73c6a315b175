//go:build amd64 && !purego

#include "textflag.h"

// func transpose8xKAVX(dst *float32, ldd int, src *float32, lds int, k int)
//
// Transposes an 8×k block (8 rows of src, row stride lds) into a k×8 block of dst (row
// stride ldd): dst[p*ldd+r] = src[r*lds+p] for r < 8, p < k. k must be a multiple of 8. Each
// 8×8 sub-block goes through registers with the unpack/shuffle/permute sequence (AVX).
TEXT ·transpose8xKAVX(SB), NOSPLIT, $0-40
	MOVQ dst+0(FP), DI
	MOVQ ldd+8(FP), R8
	SHLQ $2, R8
	MOVQ src+16(FP), SI
	MOVQ lds+24(FP), R9
	SHLQ $2, R9
	MOVQ k+32(FP), CX
	LEAQ (R9)(R9*2), R10 // 3*lds bytes
	LEAQ (SI)(R9*4), R11 // source row 4
	LEAQ (R8)(R8*2), R12 // 3*ldd bytes
	SHRQ $3, CX
	JZ   done

loop:
	LEAQ    (DI)(R8*4), R13 // destination row 4
	VMOVUPS (SI), Y0
	VMOVUPS (SI)(R9*1), Y1
	VMOVUPS (SI)(R9*2), Y2
	VMOVUPS (SI)(R10*1), Y3
	VMOVUPS (R11), Y4
	VMOVUPS (R11)(R9*1), Y5
	VMOVUPS (R11)(R9*2), Y6
	VMOVUPS (R11)(R10*1), Y7

	VUNPCKLPS Y1, Y0, Y8
	VUNPCKHPS Y1, Y0, Y9
	VUNPCKLPS Y3, Y2, Y10
	VUNPCKHPS Y3, Y2, Y11
	VUNPCKLPS Y5, Y4, Y12
	VUNPCKHPS Y5, Y4, Y13
	VUNPCKLPS Y7, Y6, Y14
	VUNPCKHPS Y7, Y6, Y15

	VSHUFPS $0x44, Y10, Y8, Y0
	VSHUFPS $0xEE, Y10, Y8, Y1
	VSHUFPS $0x44, Y11, Y9, Y2
	VSHUFPS $0xEE, Y11, Y9, Y3
	VSHUFPS $0x44, Y14, Y12, Y4
	VSHUFPS $0xEE, Y14, Y12, Y5
	VSHUFPS $0x44, Y15, Y13, Y6
	VSHUFPS $0xEE, Y15, Y13, Y7

	VPERM2F128 $0x20, Y4, Y0, Y8
	VPERM2F128 $0x20, Y5, Y1, Y9
	VPERM2F128 $0x20, Y6, Y2, Y10
	VPERM2F128 $0x20, Y7, Y3, Y11
	VPERM2F128 $0x31, Y4, Y0, Y12
	VPERM2F128 $0x31, Y5, Y1, Y13
	VPERM2F128 $0x31, Y6, Y2, Y14
	VPERM2F128 $0x31, Y7, Y3, Y15

	VMOVUPS Y8, (DI)
	VMOVUPS Y9, (DI)(R8*1)
	VMOVUPS Y10, (DI)(R8*2)
	VMOVUPS Y11, (DI)(R12*1)
	VMOVUPS Y12, (R13)
	VMOVUPS Y13, (R13)(R8*1)
	VMOVUPS Y14, (R13)(R8*2)
	VMOVUPS Y15, (R13)(R12*1)

	ADDQ $32, SI
	ADDQ $32, R11
	LEAQ (DI)(R8*8), DI
	DECQ CX
	JNZ  loop

done:
	VZEROUPPER
	RET

// func copyRowsAVX(dst *float32, src *float32, lds int, k int, w8 int)
//
// Copies k rows of 8·w8 floats, row stride lds in src, into dst as a contiguous k×8·w8
// block: dst[p*8*w8+c] = src[p*lds+c]. k ≥ 1, w8 ≥ 1. Four-chunk rows (the 32-wide panels
// of the AVX-512 kernel) take an unrolled loop.
TEXT ·copyRowsAVX(SB), NOSPLIT, $0-40
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ lds+16(FP), R9
	SHLQ $2, R9
	MOVQ k+24(FP), CX
	MOVQ w8+32(FP), DX
	CMPQ DX, $4
	JNE  general

rows4:
	VMOVUPS (SI), Y0
	VMOVUPS 32(SI), Y1
	VMOVUPS 64(SI), Y2
	VMOVUPS 96(SI), Y3
	VMOVUPS Y0, (DI)
	VMOVUPS Y1, 32(DI)
	VMOVUPS Y2, 64(DI)
	VMOVUPS Y3, 96(DI)
	ADDQ    R9, SI
	ADDQ    $128, DI
	DECQ    CX
	JNZ     rows4
	VZEROUPPER
	RET

general:
	MOVQ DX, R10
	MOVQ SI, R11

chunks:
	VMOVUPS (R11), Y0
	VMOVUPS Y0, (DI)
	ADDQ    $32, R11
	ADDQ    $32, DI
	DECQ    R10
	JNZ     chunks
	ADDQ    R9, SI
	DECQ    CX
	JNZ     general
	VZEROUPPER
	RET
