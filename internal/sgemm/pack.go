package sgemm

// Packed panel layouts shared by every micro-kernel.
//
// packA stores op(A)[i0:i0+mc, p0:p0+kc] as ⌈mc/mr⌉ micro-panels; micro-panel q holds rows
// i0+q*mr … i0+q*mr+mr-1 k-major, so element (row r of the panel, depth p) is at
// q*mr*kc + p*mr + r. Rows past mc are zero.
//
// packB stores op(B)[p0:p0+kc, j0:j0+nc] as ⌈nc/nr⌉ micro-panels; micro-panel q holds columns
// j0+q*nr … j0+q*nr+nr-1, element (depth p, column c of the panel) at q*nr*kc + p*nr + c.
// Columns past nc are zero.
//
// Both functions resolve the transpose, so one micro-kernel serves NN, NT, TN and TT.

// packA packs op(A)[i0:i0+mc, p0:p0+kc] into dst, which must hold roundUp(mc, mr)*kc floats.
// op(A)[i, p] is a[i*lda+p], or a[p*lda+i] when trans.
func packA(dst, a []float32, lda int, trans bool, i0, p0, mc, kc, mr int) {
	for ir := 0; ir < mc; ir += mr {
		panel := dst[ir*kc : ir*kc+mr*kc]
		rows := min(mr, mc-ir)
		if trans {
			for p := range kc {
				src := a[(p0+p)*lda+i0+ir:]
				src = src[:rows]
				d := panel[p*mr : p*mr+mr]
				copy(d, src)
				clear(d[rows:])
			}
			continue
		}
		for r := range rows {
			src := a[(i0+ir+r)*lda+p0:]
			src = src[:kc]
			for p, v := range src {
				panel[p*mr+r] = v
			}
		}
		for r := rows; r < mr; r++ {
			for p := range kc {
				panel[p*mr+r] = 0
			}
		}
	}
}

// packB packs op(B)[p0:p0+kc, j0:j0+nc] into dst, which must hold roundUp(nc, nr)*kc floats.
// op(B)[p, j] is b[p*ldb+j], or b[j*ldb+p] when trans. When narrowNR > 0 and the last
// micro-panel has at most narrowNR columns, that panel is packed narrowNR wide (for the
// narrow kernel) instead of nr wide.
func packB(dst, b []float32, ldb int, trans bool, p0, j0, kc, nc, nr, narrowNR int) {
	for jr := 0; jr < nc; jr += nr {
		cols := min(nr, nc-jr)
		width := nr
		if cols <= narrowNR {
			width = narrowNR
		}
		packBPanel(dst[jr*kc:jr*kc+width*kc], b, ldb, trans, p0, j0+jr, kc, cols, width)
	}
}

// packBPanel packs op(B)[p0:p0+kc, j0:j0+cols] into one micro-panel of the given width
// (≥ cols), zero-padding the columns past cols.
func packBPanel(panel, b []float32, ldb int, trans bool, p0, j0, kc, cols, width int) {
	if !trans {
		if cols == width {
			copyRows(panel, b[p0*ldb+j0:], ldb, kc, width)
			return
		}
		for p := range kc {
			src := b[(p0+p)*ldb+j0:]
			src = src[:cols]
			d := panel[p*width : p*width+width]
			copy(d, src)
			clear(d[cols:])
		}
		return
	}
	c := 0
	for ; c+8 <= cols; c += 8 {
		transpose8xK(panel[c:], width, b[(j0+c)*ldb+p0:], ldb, kc)
	}
	for ; c < cols; c++ {
		src := b[(j0+c)*ldb+p0:]
		src = src[:kc]
		for p, v := range src {
			panel[p*width+c] = v
		}
	}
	for c := cols; c < width; c++ {
		for p := range kc {
			panel[p*width+c] = 0
		}
	}
}

// copyRowsGeneric sets dst[p*w+c] = src[p*lds+c] for p < k, c < w.
func copyRowsGeneric(dst []float32, src []float32, lds int, k int, w int) {
	for p := range k {
		copy(dst[p*w:p*w+w], src[p*lds:p*lds+w])
	}
}

// transpose8xKGeneric sets dst[p*ldd+r] = src[r*lds+p] for r < 8 and p0 ≤ p < k.
func transpose8xKGeneric(dst []float32, ldd int, src []float32, lds int, p0, k int) {
	for r := range 8 {
		row := src[r*lds : r*lds+k]
		for p := p0; p < k; p++ {
			dst[p*ldd+r] = row[p]
		}
	}
}
