//go:build amd64 && !purego

#include "textflag.h"

// AVX-512F micro-kernel with an 8×32 register tile.
//
// Register use: Z0–Z15 hold the 8×32 accumulator tile (row r in Z(2r), Z(2r+1)), Z16–Z17 the
// current 32-wide row of the packed B panel, Z18–Z25 the broadcast A values of one k step.
// Each k step issues 2 vector loads, 8 broadcasts and 16 FMAs; with two 512-bit FMA pipes and
// a 4-cycle latency the 16 independent accumulator chains keep both pipes busy.
//
// Packed layouts (see pack.go): a holds k steps of 8 floats (32 bytes), b holds k steps of
// 32 floats (128 bytes).

// step8x32 performs one k step: B row at boff(DI), A column values at a0 … a7.
#define step8x32(boff, a0, a1, a2, a3, a4, a5, a6, a7) \
	VMOVUPS      boff(DI), Z16;      \
	VMOVUPS      boff+64(DI), Z17;   \
	VBROADCASTSS a0, Z18;            \
	VBROADCASTSS a1, Z19;            \
	VBROADCASTSS a2, Z20;            \
	VBROADCASTSS a3, Z21;            \
	VFMADD231PS  Z16, Z18, Z0;       \
	VFMADD231PS  Z17, Z18, Z1;       \
	VFMADD231PS  Z16, Z19, Z2;       \
	VFMADD231PS  Z17, Z19, Z3;       \
	VBROADCASTSS a4, Z22;            \
	VBROADCASTSS a5, Z23;            \
	VFMADD231PS  Z16, Z20, Z4;       \
	VFMADD231PS  Z17, Z20, Z5;       \
	VFMADD231PS  Z16, Z21, Z6;       \
	VFMADD231PS  Z17, Z21, Z7;       \
	VBROADCASTSS a6, Z24;            \
	VBROADCASTSS a7, Z25;            \
	VFMADD231PS  Z16, Z22, Z8;       \
	VFMADD231PS  Z17, Z22, Z9;       \
	VFMADD231PS  Z16, Z23, Z10;      \
	VFMADD231PS  Z17, Z23, Z11;      \
	VFMADD231PS  Z16, Z24, Z12;      \
	VFMADD231PS  Z17, Z24, Z13;      \
	VFMADD231PS  Z16, Z25, Z14;      \
	VFMADD231PS  Z17, Z25, Z15

// stepT is one k step with A column-contiguous at SI (element (i, p) at p*lda + i), then
// advances SI by one A row (R9 = lda*4 bytes).
#define stepT(boff) \
	step8x32(boff, (SI), 4(SI), 8(SI), 12(SI), 16(SI), 20(SI), 24(SI), 28(SI)); \
	ADDQ R9, SI

// stepN is one k step with A row-major: rows 0–3 at SI, rows 4–7 at R11 (= SI + 4*lda*4),
// R9 = lda*4 and R10 = 3*lda*4 bytes; aoff is the byte offset along k.
#define stepN(boff, aoff) \
	step8x32(boff, aoff(SI), aoff(SI)(R9*1), aoff(SI)(R9*2), aoff(SI)(R10*1), aoff(R11), aoff(R11)(R9*1), aoff(R11)(R9*2), aoff(R11)(R10*1))

// storeRow writes accumulator pair (lo, hi) to the C row at DX, overwriting it.
#define storeRow(lo, hi) \
	VMOVUPS lo, (DX);   \
	VMOVUPS hi, 64(DX); \
	ADDQ    R8, DX

// updateRow writes lo,hi + beta*C (beta in Z31) to the C row at DX.
#define updateRow(lo, hi) \
	VFMADD231PS (DX), Z31, lo;   \
	VFMADD231PS 64(DX), Z31, hi; \
	VMOVUPS     lo, (DX);        \
	VMOVUPS     hi, 64(DX);      \
	ADDQ        R8, DX

// zeroAcc clears the accumulators.
#define zeroAcc \
	VPXORD Z0, Z0, Z0;    \
	VPXORD Z1, Z1, Z1;    \
	VPXORD Z2, Z2, Z2;    \
	VPXORD Z3, Z3, Z3;    \
	VPXORD Z4, Z4, Z4;    \
	VPXORD Z5, Z5, Z5;    \
	VPXORD Z6, Z6, Z6;    \
	VPXORD Z7, Z7, Z7;    \
	VPXORD Z8, Z8, Z8;    \
	VPXORD Z9, Z9, Z9;    \
	VPXORD Z10, Z10, Z10; \
	VPXORD Z11, Z11, Z11; \
	VPXORD Z12, Z12, Z12; \
	VPXORD Z13, Z13, Z13; \
	VPXORD Z14, Z14, Z14; \
	VPXORD Z15, Z15, Z15

// prefetchC touches the 8 rows of the C tile at DX (row stride R8) into L1.
#define prefetchC \
	MOVQ       DX, AX;   \
	PREFETCHT0 (AX);     \
	PREFETCHT0 64(AX);   \
	ADDQ       R8, AX;   \
	PREFETCHT0 (AX);     \
	PREFETCHT0 64(AX);   \
	ADDQ       R8, AX;   \
	PREFETCHT0 (AX);     \
	PREFETCHT0 64(AX);   \
	ADDQ       R8, AX;   \
	PREFETCHT0 (AX);     \
	PREFETCHT0 64(AX);   \
	ADDQ       R8, AX;   \
	PREFETCHT0 (AX);     \
	PREFETCHT0 64(AX);   \
	ADDQ       R8, AX;   \
	PREFETCHT0 (AX);     \
	PREFETCHT0 64(AX);   \
	ADDQ       R8, AX;   \
	PREFETCHT0 (AX);     \
	PREFETCHT0 64(AX);   \
	ADDQ       R8, AX;   \
	PREFETCHT0 (AX);     \
	PREFETCHT0 64(AX)

// epilogue scales the accumulators by alpha and writes C = acc + beta*C (beta in
// beta+52(FP)); beta == ±0 overwrites C without reading it.
#define epilogue \
	VBROADCASTSS alpha+48(FP), Z30; \
	VMULPS       Z30, Z0, Z0;       \
	VMULPS       Z30, Z1, Z1;       \
	VMULPS       Z30, Z2, Z2;       \
	VMULPS       Z30, Z3, Z3;       \
	VMULPS       Z30, Z4, Z4;       \
	VMULPS       Z30, Z5, Z5;       \
	VMULPS       Z30, Z6, Z6;       \
	VMULPS       Z30, Z7, Z7;       \
	VMULPS       Z30, Z8, Z8;       \
	VMULPS       Z30, Z9, Z9;       \
	VMULPS       Z30, Z10, Z10;     \
	VMULPS       Z30, Z11, Z11;     \
	VMULPS       Z30, Z12, Z12;     \
	VMULPS       Z30, Z13, Z13;     \
	VMULPS       Z30, Z14, Z14;     \
	VMULPS       Z30, Z15, Z15;     \
	MOVL         beta+52(FP), AX;   \
	ANDL         $0x7fffffff, AX;   \
	JZ           overwrite;         \
	VBROADCASTSS beta+52(FP), Z31;  \
	updateRow(Z0, Z1);              \
	updateRow(Z2, Z3);              \
	updateRow(Z4, Z5);              \
	updateRow(Z6, Z7);              \
	updateRow(Z8, Z9);              \
	updateRow(Z10, Z11);            \
	updateRow(Z12, Z13);            \
	updateRow(Z14, Z15);            \
	VZEROUPPER;                     \
	RET;                            \
overwrite:                          \
	storeRow(Z0, Z1);               \
	storeRow(Z2, Z3);               \
	storeRow(Z4, Z5);               \
	storeRow(Z6, Z7);               \
	storeRow(Z8, Z9);               \
	storeRow(Z10, Z11);             \
	storeRow(Z12, Z13);             \
	storeRow(Z14, Z15);             \
	VZEROUPPER;                     \
	RET

// func kernel8x32AVX512T(k int, a *float32, lda int, b, c *float32, ldc int, alpha, beta float32)
//
// A element (i, p) is a[p*lda+i]: a transposed A read in place, or a packed micro-panel
// (lda = 8). B is a packed 32-wide micro-panel.
TEXT ·kernel8x32AVX512T(SB), NOSPLIT, $0-56
	MOVQ k+0(FP), CX
	MOVQ a+8(FP), SI
	MOVQ lda+16(FP), R9
	SHLQ $2, R9
	MOVQ b+24(FP), DI
	MOVQ c+32(FP), DX
	MOVQ ldc+40(FP), R8
	SHLQ $2, R8
	zeroAcc
	prefetchC
	CMPQ CX, $4
	JLT  tail

loop4:
	stepT(0)
	stepT(128)
	stepT(256)
	stepT(384)
	ADDQ $512, DI
	SUBQ $4, CX
	CMPQ CX, $4
	JGE  loop4

tail:
	TESTQ CX, CX
	JZ    done

loop1:
	stepT(0)
	ADDQ $128, DI
	DECQ CX
	JNZ  loop1

done:
	epilogue

// func kernel8x32AVX512N(k int, a *float32, lda int, b, c *float32, ldc int, alpha, beta float32)
//
// A element (i, p) is a[i*lda+p]: a row-major A read in place. B is a packed 32-wide
// micro-panel.
TEXT ·kernel8x32AVX512N(SB), NOSPLIT, $0-56
	MOVQ k+0(FP), CX
	MOVQ a+8(FP), SI
	MOVQ lda+16(FP), R9
	SHLQ $2, R9
	LEAQ (R9)(R9*2), R10
	LEAQ (SI)(R9*4), R11
	MOVQ b+24(FP), DI
	MOVQ c+32(FP), DX
	MOVQ ldc+40(FP), R8
	SHLQ $2, R8
	zeroAcc
	prefetchC
	CMPQ CX, $4
	JLT  tail

loop4:
	stepN(0, 0)
	stepN(128, 4)
	stepN(256, 8)
	stepN(384, 12)
	ADDQ $16, SI
	ADDQ $16, R11
	ADDQ $512, DI
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
	ADDQ $128, DI
	DECQ CX
	JNZ  loop1

done:
	epilogue
