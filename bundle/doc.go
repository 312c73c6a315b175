// Package bundle is what a trained model is at prediction time, and the code that turns Arrow
// tables into the dense batches a network reads.
//
//   - An InputPlan says which columns feed the network (a dense numeric block, embedding index
//     columns) and how each target is encoded (task, class labels, standardisation). Plan
//     decides it from a training table; Tensorize reads any table with it into a dense
//     Tensors value, with typed, located errors (*ColumnError).
//   - A Bundle is a self-contained model: the input columns it asks for, the chain of fitted
//     transforms that produced its training table (its preprocessing), the plan and the
//     network. An EnsembleBundle holds several members that share the plan and the chain.
//     Save writes every file atomically and records its SHA-256 in bundle.json, written last;
//     Load verifies every checksum and the format version, so a damaged bundle is refused
//     rather than silently predicting something else.
//   - A saved preprocessing step is a Transform (Kind, Apply, Marshal). Decoders is the
//     explicit registry of the functions that rebuild them from their saved form: package
//     features registers its own (features.RegisterTransforms), and a program registers the
//     transforms of its own stage kinds the same way.
//   - Predict streams raw rows (as a source reads them) through the whole chain and the
//     network, batch by batch, and reports what it met on the way (unseen categories per
//     column).
//
// The package does not import the pipeline engine: a program that only loads a bundle and
// predicts imports bundle and features, nothing else of pipe.
package bundle
