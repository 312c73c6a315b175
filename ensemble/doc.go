// Package ensemble trains bagged ensembles of nn models concurrently and combines their
// predictions.
//
// Train builds Config.Members members from one base Member perturbed per member (Vary) or from
// a list of heterogeneous Members (cycled), gives each a row sample of the training Dataset
// (bootstrap or subsample, as an index view: the base matrix is never copied) and optionally a
// random subset of the input columns, and fits them with nn/train in a bounded pool of
// goroutines that also respects a memory budget. Every random choice of member i comes from
// PCG streams derived from (seed, i) only, so the members' weights and the ensemble's
// predictions are bit-identical whatever Config.Workers is.
//
// Combiners (Mean, Median, Vote, Weighted) are pure functions over per-member outputs laid out
// as rows×k row-major slices; Weighted's simplex weights are fitted on a validation set
// (FitWeightsLogLoss, FitWeightsMSE). A Combiner serialises to a CombinerSpec (name and
// weights) and back with NewCombiner.
//
// The Report of a Train holds per-member row counts, training summaries, validation metrics,
// errors, timings and memory estimates; the out-of-bag predictions and score; the members'
// diversity; and the gain of each combiner over the best single member on the validation set.
//
// Train is resumable: Options.Checkpoint and Options.Finished hand out, per member, the
// trainer's epoch checkpoints and the record of a finished member (FinishedMember, with a
// versioned binary form), and Options.Restore gives them back to a later Train, which then
// trains only what was left and ends bit-identical to an uninterrupted one.
//
// An Ensemble predicts per head with a chosen combiner (Predict, PredictHeads), exposes the
// members' raw outputs (MemberOutputs) and their diversity, and is saved and loaded as a
// directory of nn model directories plus ensemble.json (Save, Load); New assembles one from
// models trained elsewhere.
//
// The package knows nothing of Arrow or of the pipeline engine: it works on train.Dataset views
// and nn.Batch slices.
package ensemble
