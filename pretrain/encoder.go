package pretrain

import (
	"fmt"
	"math/rand/v2"

	"github.com/pipe-ml/pipe/nn"
)

// codeHead is the name of the Encoder model's identity head.
const codeHead = "code"

// Encoder is a pretrained encoder trunk: the embedding tables and encoder layers of an
// autoencoder (or of embedding pretraining) with their trained weights. It is an nn.Model whose
// trunk is the encoder and whose only head, "code", is a frozen identity map, so that
// Predict returns the code and nn's serialisation saves it.
type Encoder struct {
	model *nn.Model
}

// newEncoder builds the encoder model and copies the encoder layers' tensors from src.
func newEncoder(src *nn.Model, numInputs int, inputShape []int, embeds []nn.EmbeddingSpec, layers []nn.LayerSpec, codeWidth int) (*Encoder, error) {
	clean := append([]nn.LayerSpec(nil), layers...)
	spec := nn.Spec{NumInputs: numInputs, InputShape: inputShape, Embeddings: embeds, Layers: clean,
		Heads: []nn.HeadSpec{{Name: codeHead, Kind: nn.HeadRegression, Outputs: codeWidth, Loss: nn.LossMSE}}}
	m, err := nn.Build(spec, rand.New(rand.NewPCG(0, 0)))
	if err != nil {
		return nil, fmt.Errorf("pretrain: build encoder: %w", err)
	}
	e := &Encoder{model: m}
	if err := e.identityHead(); err != nil {
		return nil, err
	}
	if names := e.ParamLayers(); len(names) > 0 {
		if _, err := m.InitFrom(src, names...); err != nil {
			return nil, fmt.Errorf("pretrain: copy encoder weights: %w", err)
		}
	}
	return e, nil
}

// identityHead sets the code head to the identity and freezes it.
func (e *Encoder) identityHead() error {
	w, b := e.model.Param("head_"+codeHead+"/W"), e.model.Param("head_"+codeHead+"/b")
	if w == nil || b == nil || w.Shape[0] != w.Shape[1] {
		return fmt.Errorf("pretrain: encoder: head %q is not square (code width mismatch)", codeHead)
	}
	k := w.Shape[0]
	clear(w.Value)
	clear(b.Value)
	for i := range k {
		w.Value[i*k+i] = 1
	}
	_, err := e.model.Freeze("head_" + codeHead)
	return err
}

// Model returns the encoder as an nn.Model (trunk = the encoder, head "code" = frozen
// identity). It is the Encoder's own model: do not train it.
func (e *Encoder) Model() *nn.Model { return e.model }

// Spec returns the encoder's inputs (NumInputs, Embeddings) and layers with their names; its
// Heads hold the identity code head.
func (e *Encoder) Spec() nn.Spec { return e.model.Spec() }

// CodeWidth is the width of the code (the encoder trunk's output).
func (e *Encoder) CodeWidth() int { return e.model.Heads()[0].Outputs }

// ParamLayers returns the names of the encoder's layers that hold tensors (embeddings first,
// then trunk layers input side first): the layers InitFrom copies.
func (e *Encoder) ParamLayers() []string {
	var out []string
	seen := map[string]bool{}
	add := func(name string) {
		if !seen[name] {
			seen[name] = true
			out = append(out, name)
		}
	}
	for _, p := range append(e.model.Params(), e.model.Buffers()...) {
		l := layerOf(p.Name)
		if l != "head_"+codeHead {
			add(l)
		}
	}
	return out
}

// Tables returns a copy of every embedding table by name (Cardinality×Dim, row-major; row 0 is
// the unknown bucket).
func (e *Encoder) Tables() map[string][]float32 {
	out := map[string][]float32{}
	for _, es := range e.model.Spec().Embeddings {
		if p := e.model.Param(es.Name + "/W"); p != nil {
			out[es.Name] = append([]float32(nil), p.Value...)
		}
	}
	return out
}

// Encode returns the code of every row of b, b.Rows×CodeWidth, freshly allocated (eval mode:
// no dropout or noise). b is not modified.
func (e *Encoder) Encode(b nn.Batch) ([]float32, error) {
	out, err := e.model.Predict(b)
	if err != nil {
		return nil, fmt.Errorf("pretrain: encode: %w", err)
	}
	return out.Heads[0], nil
}

// Save writes the encoder to dir with nn's serialisation (model.json + weights.bin).
func (e *Encoder) Save(dir string) error {
	if err := e.model.Save(dir); err != nil {
		return fmt.Errorf("pretrain: save encoder: %w", err)
	}
	return nil
}

// LoadEncoder reads an encoder written by Encoder.Save.
func LoadEncoder(dir string) (*Encoder, error) {
	m, err := nn.Load(dir)
	if err != nil {
		return nil, fmt.Errorf("pretrain: load encoder: %w", err)
	}
	hs := m.Heads()
	if len(hs) != 1 || hs[0].Name != codeHead {
		return nil, fmt.Errorf("pretrain: load encoder: %s holds a model with heads %v, not an encoder (one head %q)", dir, hs, codeHead)
	}
	e := &Encoder{model: m}
	if _, err := m.Freeze("head_" + codeHead); err != nil {
		return nil, err
	}
	return e, nil
}

// layerOf is the top-level layer of a param name ("enc_1/W" → "enc_1").
func layerOf(param string) string {
	for i := 0; i < len(param); i++ {
		if param[i] == '/' {
			return param[:i]
		}
	}
	return param
}
