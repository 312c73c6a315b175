//go:build amd64 && !purego

#include "textflag.h"

// AVX-512F narrow micro-kernel, 8×16 register tile, for the last column strip of C when it
// is at most 16 wide (N = 10 in the MLP's output layer): it halves the wasted work of the
// 8×32 kernel there and stores through a column mask, so the strip needs no scratch tile.
//
// Register use: Z0–Z7 accumulate rows 0–7, Z16 holds the B row, Z18–Z25 the broadcast A
// values, K1 the column mask. B is a packed 16-wide micro-panel: k steps of 64 bytes.

#define stepNarrow(boff, a0, a1, a2, a3, a4, a5, a6, a7) \
	VMOVUPS      boff(DI), Z16; \
	VBROADCASTSS a0, Z18;       \
	VBROADCASTSS a1, Z19;       \
	VBROADCASTSS a2, Z20;       \
	VBROADCASTSS a3, Z21;       \
	VBROADCASTSS a4, Z22;       \
	VBROADCASTSS a5, Z23;       \
	VBROADCASTSS a6, Z24;       \
	VBROADCASTSS a7, Z25;       \
	VFMADD231PS  Z16, Z18, Z0;  \
	VFMADD231PS  Z16, Z19, Z1;  \
	VFMADD231PS  Z16, Z20, Z2;  \
	VFMADD231PS  Z16, Z21, Z3;  \
	VFMADD231PS  Z16, Z22, Z4;  \
	VFMADD231PS  Z16, Z23, Z5;  \
	VFMADD231PS  Z16, Z24, Z6;  \
	VFMADD231PS  Z16, Z25, Z7

#define stepNarrowT(boff) \
	stepNarrow(boff, (SI), 4(SI), 8(SI), 12(SI), 16(SI), 20(SI), 24(SI), 28(SI)); \
	ADDQ R9, SI

#define stepNarrowN(boff, aoff) \
	stepNarrow(boff, aoff(SI), aoff(SI)(R9*1), aoff(SI)(R9*2), aoff(SI)(R10*1), aoff(R11), aoff(R11)(R9*1), aoff(R11)(R9*2), aoff(R11)(R10*1))

// Masked C access: masked-off columns are neither loaded (fault suppression) nor stored.
#define storeNarrow(acc) \
	VMOVUPS acc, K1, (DX); \
	ADDQ    R8, DX

#define updateNarrow(acc) \
	VFMADD231PS (DX), Z31, K1, acc; \
	VMOVUPS     acc, K1, (DX);      \
	ADDQ        R8, DX

#define narrowPrologue \
	MOVQ   k+0(FP), CX;         \
	MOVQ   a+8(FP), SI;         \
	MOVQ   lda+16(FP), R9;      \
	SHLQ   $2, R9;              \
	LEAQ   (R9)(R9*2), R10;     \
	LEAQ   (SI)(R9*4), R11;     \
	MOVQ   b+24(FP), DI;        \
	MOVQ   c+32(FP), DX;        \
	MOVQ   ldc+40(FP), R8;      \
	SHLQ   $2, R8;              \
	MOVQ   mask+56(FP), AX;     \
	KMOVW  AX, K1;              \
	VPXORD Z0, Z0, Z0;          \
	VPXORD Z1, Z1, Z1;          \
	VPXORD Z2, Z2, Z2;          \
	VPXORD Z3, Z3, Z3;          \
	VPXORD Z4, Z4, Z4;          \
	VPXORD Z5, Z5, Z5;          \
	VPXORD Z6, Z6, Z6;          \
	VPXORD Z7, Z7, Z7

#define narrowEpilogue \
	VBROADCASTSS alpha+48(FP), Z30; \
	VMULPS       Z30, Z0, Z0;       \
	VMULPS       Z30, Z1, Z1;       \
	VMULPS       Z30, Z2, Z2;       \
	VMULPS       Z30, Z3, Z3;       \
	VMULPS       Z30, Z4, Z4;       \
	VMULPS       Z30, Z5, Z5;       \
	VMULPS       Z30, Z6, Z6;       \
	VMULPS       Z30, Z7, Z7;       \
	MOVL         beta+52(FP), AX;   \
	ANDL         $0x7fffffff, AX;   \
	JZ           overwrite;         \
	VBROADCASTSS beta+52(FP), Z31;  \
	updateNarrow(Z0);               \
	updateNarrow(Z1);               \
	updateNarrow(Z2);               \
	updateNarrow(Z3);               \
	updateNarrow(Z4);               \
	updateNarrow(Z5);               \
	updateNarrow(Z6);               \
	updateNarrow(Z7);               \
	VZEROUPPER;                     \
	RET;                            \
overwrite:                          \
	storeNarrow(Z0);                \
	storeNarrow(Z1);                \
	storeNarrow(Z2);                \
	storeNarrow(Z3);                \
	storeNarrow(Z4);                \
	storeNarrow(Z5);                \
	storeNarrow(Z6);                \
	storeNarrow(Z7);                \
	VZEROUPPER;                     \
	RET

// func kernel8x16AVX512T(k int, a *float32, lda int, b, c *float32, ldc int, alpha, beta float32, mask uint64)
//
// A element (i, p) is a[p*lda+i]; only the columns j with bit j of mask set are read or
// written in C.
TEXT ·kernel8x16AVX512T(SB), NOSPLIT, $0-64
	narrowPrologue
	CMPQ CX, $4
	JLT  tail

loop4:
	stepNarrowT(0)
	stepNarrowT(64)
	stepNarrowT(128)
	stepNarrowT(192)
	ADDQ $256, DI
	SUBQ $4, CX
	CMPQ CX, $4
	JGE  loop4

tail:
	TESTQ CX, CX
	JZ    done

loop1:
	stepNarrowT(0)
	ADDQ $64, DI
	DECQ CX
	JNZ  loop1

done:
	narrowEpilogue

// func kernel8x16AVX512N(k int, a *float32, lda int, b, c *float32, ldc int, alpha, beta float32, mask uint64)
//
// A element (i, p) is a[i*lda+p]; only the columns j with bit j of mask set are read or
// written in C.
TEXT ·kernel8x16AVX512N(SB), NOSPLIT, $0-64
	narrowPrologue
	CMPQ CX, $4
	JLT  tail

loop4:
	stepNarrowN(0, 0)
	stepNarrowN(64, 4)
	stepNarrowN(128, 8)
	stepNarrowN(192, 12)
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
	stepNarrowN(0, 0)
	ADDQ $4, SI
	ADDQ $4, R11
	ADDQ $64, DI
	DECQ CX
	JNZ  loop1

done:
	narrowEpilogue
