package nn

// TrainPass says how a training-mode forward pass (TrainStep, TrainStepWith, LossStep with
// train set) treats noise and batch-norm statistics. The zero value is the ordinary training
// pass. A ladder network runs two passes per step: a clean one (NoNoise) whose batch-norm
// statistics are the ones kept for inference, and a corrupted one (KeepRunningStats).
type TrainPass struct {
	// NoNoise turns dropout and gaussian_noise layers into the identity, as in eval mode,
	// while batch norm still normalises with the batch's statistics.
	NoNoise bool
	// KeepRunningStats leaves the batch-norm layers' running statistics as they are; the
	// pass still normalises with its own batch's statistics.
	KeepRunningStats bool
	// StatsMomentum, when > 0, is the weight of the batch's statistics in the batch-norm
	// layers' running statistics instead of each layer's momentum (1/k for the k-th batch
	// of a cumulative average; see train.RecomputeBatchNorm). KeepRunningStats wins.
	StatsMomentum float64
}

// SetTrainPass sets how the following training-mode passes run (see TrainPass) until it is
// set again. Eval-mode passes are not affected.
func (m *Model) SetTrainPass(p TrainPass) { m.rc.pass = p }

// SetLayerGradients makes the backward passes that follow add g[i] to dL/d(output of trunk
// layer i) (LayerTensors order; each g[i] Rows×width of that layer's output, or nil for
// none), as if the loss had a term on those outputs, until it is set to nil. A ladder
// network's denoising costs on the encoder's hidden pre-activations reach the weights this
// way. The model keeps g and reads it at every backward pass; g may have fewer entries than
// the trunk has layers.
func (m *Model) SetLayerGradients(g [][]float32) { m.layerExtra = g }

// SetHeadGradient makes the backward passes that follow add g (Rows×k) to dL/d(head i's
// linear output): its logits before batch norm and noise (HeadPre), as if the loss had a
// term on them, until it is set to nil. The ladder network's top-layer denoising cost,
// which compares the batch-normalised linear outputs, reaches the head this way.
func (m *Model) SetHeadGradient(i int, g []float32) { m.heads[i].extra = g }

// HeadPre returns head i's linear output of the last forward pass (rows×k): the logits
// before the head's batch norm and noise (the logits themselves without either). It is
// valid until the next pass.
func (m *Model) HeadPre(i, rows int) []float32 { return m.heads[i].pre(rows) }

// HeadNoise returns the noise head i's logits got in the last forward pass (rows×k; in
// normalised units with the head's batch norm), or nil when that pass drew none (eval mode,
// TrainPass.NoNoise, or no HeadSpec.Noise).
func (m *Model) HeadNoise(i, rows int) []float32 { return m.heads[i].noiseOf(rows) }
