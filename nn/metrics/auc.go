package metrics

import "math"

// ROCAUC is the area under the ROC curve. For k == 2 it is the binary AUC of column 1 (the
// positive class) against labels 0/1; for k > 2 it is the unweighted mean of the one-vs-rest
// AUCs of each class c (column c against label == c), as scikit-learn's
// roc_auc_score(multi_class="ovr", average="macro").
//
// It is computed exactly through the Mann–Whitney statistic, tied scores receiving their
// average rank (a tie between a positive and a negative counts one half), after a radix sort:
// O(n) per class.
// Missing labels are skipped. A binary problem with a single class present gives NaN; in the
// multi-class case, classes with no positive or no negative row are left out of the mean (and
// NaN is returned when no class is left). Any NaN score gives NaN.
func ROCAUC(labels []int32, probs []float32, k int) float64 {
	if !validShape(labels, probs, k) {
		return math.NaN()
	}
	rows := make([]int, 0, len(labels))
	for i, l := range labels {
		if l < 0 {
			continue
		}
		for _, s := range probs[i*k : (i+1)*k] {
			if s != s {
				return math.NaN()
			}
		}
		rows = append(rows, i)
	}
	keys := make([]uint64, 2*len(rows))
	keys, tmp := keys[:len(rows)], keys[len(rows):]
	if k == 2 {
		return binaryAUC(keys, tmp, rows, labels, probs, k, 1)
	}
	var sum float64
	classes := 0
	for c := range k {
		auc := binaryAUC(keys, tmp, rows, labels, probs, k, int32(c))
		if math.IsNaN(auc) {
			continue // class absent, or the only one present
		}
		sum += auc
		classes++
	}
	if classes == 0 {
		return math.NaN()
	}
	return sum / float64(classes)
}

// binaryAUC is the AUC of column c of probs for "label == c" over rows, using keys and tmp
// (len(rows) long each) as scratch. It is NaN when a class is missing; the scores must not be
// NaN.
func binaryAUC(keys, tmp []uint64, rows []int, labels []int32, probs []float32, k int, c int32) float64 {
	if len(rows) == 0 {
		return math.NaN()
	}
	var nPos, nNeg float64
	for j, i := range rows {
		pos := labels[i] == c
		keys[j] = sortKey(probs[i*k+int(c)], pos)
		if pos {
			nPos++
		} else {
			nNeg++
		}
	}
	if nPos == 0 || nNeg == 0 {
		return math.NaN()
	}
	keys = radixSortHigh32(keys, tmp)
	// Sum of the (1-based, tie-averaged) ranks of the positives.
	var rankSum float64
	for lo := 0; lo < len(keys); {
		score := keys[lo] >> 32
		hi, pos := lo, 0
		for ; hi < len(keys) && keys[hi]>>32 == score; hi++ {
			pos += int(keys[hi] & 1)
		}
		avgRank := float64(lo+1+hi) / 2 // mean of ranks lo+1 .. hi
		rankSum += float64(pos) * avgRank
		lo = hi
	}
	return (rankSum - nPos*(nPos+1)/2) / (nPos * nNeg)
}

// sortKey packs a score and a positive flag into a uint64 whose upper 32 bits order like the
// score (IEEE bits, sign-flipped; -0 is folded onto +0 so that they tie) and whose lowest bit
// is the flag.
func sortKey(score float32, positive bool) uint64 {
	bits := math.Float32bits(score)
	if bits == 1<<31 { // -0
		bits = 0
	}
	if bits&(1<<31) != 0 {
		bits = ^bits
	} else {
		bits |= 1 << 31
	}
	key := uint64(bits) << 32
	if positive {
		key |= 1
	}
	return key
}

// radixSortHigh32 sorts keys by their upper 32 bits (LSD radix sort, four 8-bit passes),
// using tmp (at least len(keys) long) as scratch, and returns the sorted slice (keys or tmp).
func radixSortHigh32(keys, tmp []uint64) []uint64 {
	tmp = tmp[:len(keys)]
	for shift := uint(32); shift < 64; shift += 8 {
		var count [257]int
		for _, key := range keys {
			count[(key>>shift)&0xff+1]++
		}
		if count[((keys[0]>>shift)&0xff)+1] == len(keys) {
			continue // every key has the same byte here
		}
		for i := 1; i < len(count); i++ {
			count[i] += count[i-1]
		}
		for _, key := range keys {
			b := (key >> shift) & 0xff
			tmp[count[b]] = key
			count[b]++
		}
		keys, tmp = tmp, keys
	}
	return keys
}
