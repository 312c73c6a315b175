package optim

// Param is one trainable tensor of a model: its values and the gradient accumulated for them in
// the current step. Layers own their Params; optimizers update Value from Grad in place.
//
// Value and Grad have the same length, the product of Shape. Both are float32, row-major.
type Param struct {
	// Name is stable and unique within a model: "<layer>/<tensor>", e.g. "dense_1/W".
	Name  string
	Shape []int
	Value []float32
	Grad  []float32
	// Frozen params are skipped by optimizers, clipping and EMA (transfer learning).
	Frozen bool
	// NoDecay marks biases and normalization scales: L2 and weight decay do not apply to them.
	NoDecay bool
	// LRScale multiplies the learning rate for this param (discriminative fine-tuning). Zero
	// means 1.
	LRScale float32
}

// Size is the number of scalars in p.
func (p *Param) Size() int { return len(p.Value) }
