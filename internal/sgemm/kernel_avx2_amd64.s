//go:build amd64 && !purego

#include "textflag.h"

// AVX2+FMA micro-kernels with a 6×16 register tile.
//
// Register use: Y0–Y11 hold the 6×16 accumulator tile (row r in Y(2r), Y(2r+1)), Y12–Y13 the
// current 16-wide row of the packed B micro-panel, Y14–Y15 alternate as broadcast A values.
// All 16 ymm registers are in use; each k step issues 2 vector loads, 6 broadcasts and 12
// FMAs. B is a packed micro-panel: k steps of 16 floats (64 bytes).

// step6x16 performs one k step: B row at boff(DI), A column values at a0 … a5.
#define step6x16(boff, a0, a1, a2, a3, a4, a5) \
	VMOVUPS      boff(DI), Y12;    \
	VMOVUPS      boff+32(DI), Y13; \
	VBROADCASTSS a0, Y14;          \
	VBROADCASTSS a1, Y15;          \
	VFMADD231PS  Y12, Y14, Y0;     \
	VFMADD231PS  Y13, Y14, Y1;     \
	VFMADD231PS  Y12, Y15, Y2;     \
	VFMADD231PS  Y13, Y15, Y3;     \
	VBROADCASTSS a2, Y14;          \
	VBROADCASTSS a3, Y15;          \
	VFMADD231PS  Y12, Y14, Y4;     \
	VFMADD231PS  Y13, Y14, Y5;     \
	VFMADD231PS  Y12, Y15, Y6;     \
	VFMADD231PS  Y13, Y15, Y7;     \
	VBROADCASTSS a4, Y14;          \
	VBROADCASTSS a5, Y15;          \
	VFMADD231PS  Y12, Y14, Y8;     \
	VFMADD231PS  Y13, Y14, Y9;     \
	VFMADD231PS  Y12, Y15, Y10;    \
	VFMADD231PS  Y13, Y15, Y11

// stepT is one k step with A column-contiguous at SI (element (i, p) at p*lda + i), then
// advances SI by one A row (R9 = lda*4 bytes).
#define stepT(boff) \
	step6x16(boff, (SI), 4(SI), 8(SI), 12(SI), 16(SI), 20(SI)); \
	ADDQ R9, SI

// stepN is one k step with A row-major: rows 0–2 at SI, rows 3–5 at R11 (= SI + 3*lda*4),
// R9 = lda*4 bytes; aoff is the byte offset along k.
#define stepN(boff, aoff) \
	step6x16(boff, aoff(SI), aoff(SI)(R9*1), aoff(SI)(R9*2), aoff(R11), aoff(R11)(R9*1), aoff(R11)(R9*2))

#define storeRow(lo, hi) \
	VMOVUPS lo, (DX);   \
	VMOVUPS hi, 32(DX); \
	ADDQ    R8, DX

// updateRow writes lo,hi + beta*C (beta in Y15) to the C row at DX.
#define updateRow(lo, hi) \
	VFMADD231PS (DX), Y15, lo;   \
	VFMADD231PS 32(DX), Y15, hi; \
	VMOVUPS     lo, (DX);        \
	VMOVUPS     hi, 32(DX);      \
	ADDQ        R8, DX

#define zeroAcc \
	VXORPS Y0, Y0, Y0;    \
	VXORPS Y1, Y1, Y1;    \
	VXORPS Y2, Y2, Y2;    \
	VXORPS Y3, Y3, Y3;    \
	VXORPS Y4, Y4, Y4;    \
	VXORPS Y5, Y5, Y5;    \
	VXORPS Y6, Y6, Y6;    \
	VXORPS Y7, Y7, Y7;    \
	VXORPS Y8, Y8, Y8;    \
	VXORPS Y9, Y9, Y9;    \
	VXORPS Y10, Y10, Y10; \
	VXORPS Y11, Y11, Y11

// epilogue scales the accumulators by alpha and writes C = acc + beta*C; beta == ±0
// overwrites C without reading it.
#define epilogue \
	VBROADCASTSS alpha+48(FP), Y14; \
	VMULPS       Y14, Y0, Y0;       \
	VMULPS       Y14, Y1, Y1;       \
	VMULPS       Y14, Y2, Y2;       \
	VMULPS       Y14, Y3, Y3;       \
	VMULPS       Y14, Y4, Y4;       \
	VMULPS       Y14, Y5, Y5;       \
	VMULPS       Y14, Y6, Y6;       \
	VMULPS       Y14, Y7, Y7;       \
	VMULPS       Y14, Y8, Y8;       \
	VMULPS       Y14, Y9, Y9;       \
	VMULPS       Y14, Y10, Y10;     \
	VMULPS       Y14, Y11, Y11;     \
	MOVL         beta+52(FP), AX;   \
	ANDL         $0x7fffffff, AX;   \
	JZ           overwrite;         \
	VBROADCASTSS beta+52(FP), Y15;  \
	updateRow(Y0, Y1);              \
	updateRow(Y2, Y3);              \
	updateRow(Y4, Y5);              \
	updateRow(Y6, Y7);              \
	updateRow(Y8, Y9);              \
	updateRow(Y10, Y11);            \
	VZEROUPPER;                     \
	RET;                            \
overwrite:                          \
	storeRow(Y0, Y1);               \
	storeRow(Y2, Y3);               \
	storeRow(Y4, Y5);               \
	storeRow(Y6, Y7);               \
	storeRow(Y8, Y9);               \
	storeRow(Y10, Y11);             \
	VZEROUPPER;                     \
	RET

// func kernel6x16AVX2T(k int, a *float32, lda int, b, c *float32, ldc int, alpha, beta float32)
//
// A element (i, p) is a[p*lda+i]: a transposed A read in place, or a packed micro-panel
// (lda = 6).
TEXT ·kernel6x16AVX2T(SB), NOSPLIT, $0-56
	MOVQ k+0(FP), CX
	MOVQ a+8(FP), SI
	MOVQ lda+16(FP), R9
	SHLQ $2, R9
	MOVQ b+24(FP), DI
	MOVQ c+32(FP), DX
	MOVQ ldc+40(FP), R8
	SHLQ $2, R8
	zeroAcc
	CMPQ CX, $4
	JLT  tail

loop4:
	stepT(0)
	stepT(64)
	stepT(128)
	stepT(192)
	ADDQ $256, DI
	SUBQ $4, CX
	CMPQ CX, $4
	JGE  loop4

tail:
	TESTQ CX, CX
	JZ    done

loop1:
	stepT(0)
	ADDQ $64, DI
	DECQ CX
	JNZ  loop1

done:
	epilogue

// func kernel6x16AVX2N(k int, a *float32, lda int, b, c *float32, ldc int, alpha, beta float32)
//
// A element (i, p) is a[i*lda+p]: a row-major A read in place.
TEXT ·kernel6x16AVX2N(SB), NOSPLIT, $0-56
	MOVQ k+0(FP), CX
	MOVQ a+8(FP), SI
	MOVQ lda+16(FP), R9
	SHLQ $2, R9
	LEAQ (R9)(R9*2), R10
	LEAQ (SI)(R10*1), R11
	MOVQ b+24(FP), DI
	MOVQ c+32(FP), DX
	MOVQ ldc+40(FP), R8
	SHLQ $2, R8
	zeroAcc
	CMPQ CX, $4
	JLT  tail

loop4:
	stepN(0, 0)
	stepN(64, 4)
	stepN(128, 8)
	stepN(192, 12)
	ADDQ $16, SI
	ADDQ $16, R11
	ADDQ $256, DI
	SUBQ $4, CX
	CMPQ CX, $4
	JGE  loop4

tail:
	TESTQ CX, CX
	JZ    done

loop1:
	stepN(0, 0)
	ADDQ $4, SI
	ADDQ $4, R11
	ADDQ $64, DI
	DECQ CX
	JNZ  loop1

done:
	epilogue
