// Package features holds pipe's fitted table transforms and its split-assignment logic.
//
// # Fitted transforms
//
// A transform is fitted in one streaming pass over the training table: a [Fitter] observes
// each training batch and [Fitter.Finish] returns a [Transform], whose statistics come from the
// training rows only. The same Transform is then applied to every split (train, val, test and
// prediction-time data), so no statistic of a held-out split leaks into the features.
//
//   - [NewNormalizeFitter]: standard, minmax, robust or log1p scaling of numeric feature columns.
//   - [NewImputeFitter]: replaces nulls by train statistics, optionally adding indicator columns.
//   - [NewEncodeFitter]: one-hot or index encoding of string, dictionary and bool columns.
//
// Transforms only touch feature columns (see package schema): every other column (the _row
// id, targets, split columns, weights) is passed through as the same Arrow array, retained and
// not copied, and the schema metadata and each field's metadata are kept.
//
// A fitted Transform travels in a model bundle as versioned JSON: see [Marshal] and
// [Unmarshal].
//
// # Arrow ownership
//
// Observe and Apply never retain nor release the record they are given. Apply returns a new
// record that the caller owns and must Release; its unchanged columns are shared with the input
// (retained). Every buffer Apply creates comes from the memory.Allocator it is given.
//
// # Split assignment
//
// [Assign] assigns rows to train, train_dev, val and test with exact per-class quotas,
// optionally keeping whole groups together; [HashRole] is its one-pass approximate variant;
// [DefaultRatios] sizes the split by row count; [RowHash] hashes rows for the leakage audit
// (exact duplicates across splits).
//
// # Augmentation
//
// [Augmenter]s perturb a dense float32 training batch in place, drawing from a seeded
// *rand.Rand: [GaussianNoise], [FeatureDropout], [ImageShift], [ImageRotate]; [Mixup] mixes
// pairs of rows and their soft targets ([Mixup.DrawTo] and [MixRowsTo] mix further per-row
// data with the same pairs, in caller-owned buffers).
package features
