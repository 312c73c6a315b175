package stages

import (
	"context"
	"fmt"
	"github.com/pipe-ml/pipe/bundle"
	"strings"

	"github.com/pipe-ml/pipe/nn"
	"github.com/pipe-ml/pipe/nn/train"
	"github.com/pipe-ml/pipe/pipeline"
)

// TransferSource is an artifact whose layers a train stage can start from: a model bundle, or
// a pretrained encoder.
type TransferSource interface {
	pipeline.Artifact
	// TransferModel holds the weights, by layer name.
	TransferModel() *nn.Model
	// TransferLayers are the trunk layers to copy (bottom to top), with their names.
	TransferLayers() []nn.LayerSpec
}

func transferFields() []pipeline.Field {
	return []pipeline.Field{
		{Name: "init_from", Type: pipeline.TypeInput, Port: pipeline.PortArtifact, Doc: "Start from the layers of another stage's model or of a pretrain stage's encoder (e.g. \"dae.encoder\"): every layer, and every embedding table (emb_<column>), with the same name is loaded, with a shape check. Without `layers`, the trunk is the source's layers. Fine-tuning uses cosine annealing unless `schedule` is set."},
		{Name: "init_from_path", Type: pipeline.TypeString, Path: pipeline.PathInput, Doc: "Like init_from, from a bundle directory of an earlier run (relative to the pipeline file)."},
		{Name: "freeze", Type: pipeline.TypeStrings, Doc: "Layers or params to freeze, by anchored regular expression: \"enc_.*\", \"dense_1\", \"dense_1/W\"."},
		{Name: "unfreeze", Type: pipeline.TypeTable, Fields: []pipeline.Field{
			{Name: "every_epochs", Type: pipeline.TypeInt, Default: int64(1), Min: pipeline.Bound(1), Doc: "One more layer is unfrozen every this many epochs."},
			{Name: "lr_scale", Type: pipeline.TypeFloat, Min: pipeline.Bound(0), MinExclusive: true, Doc: "The learning-rate multiplier of the unfrozen layers (default 1)."},
			{Name: "layers", Type: pipeline.TypeStrings, Doc: "The layers to unfreeze, bottom to top (default: the transferred layers)."},
		}, Doc: "Gradual unfreezing of the transferred layers: { every_epochs = 3, lr_scale = 0.1 }: all start frozen and one more is unfrozen, from the top, every N epochs, training at lr × lr_scale (discriminative fine-tuning). layers = [...] lists them (default: the transferred layers)."},
	}
}

type transferSpec struct {
	from       string // stage.port of init_from
	fromPath   string
	freeze     []string
	unfreeze   *nn.UnfreezeSchedule
	unfreezeOn bool
}

func parseTransfer(c *pipeline.StageConfig) (*transferSpec, error) {
	t := &transferSpec{freeze: c.Strings("freeze")}
	if ref, ok := c.Input("init_from"); ok {
		t.from = ref.String()
	}
	if c.String("init_from_path") != "" {
		t.fromPath = c.Path("init_from_path")
	}
	if t.from != "" && t.fromPath != "" {
		return nil, c.Errorf("init_from_path", "set init_from or init_from_path, not both")
	}
	if u := c.Table("unfreeze"); u != nil {
		var us struct {
			EveryEpochs int      `json:"every_epochs"`
			LRScale     float32  `json:"lr_scale"`
			Layers      []string `json:"layers"`
		}
		if err := decodeStrict(u, &us); err != nil {
			return nil, c.Errorf("unfreeze", "%v", jsonErr(err))
		}
		if t.from == "" && t.fromPath == "" && len(us.Layers) == 0 {
			return nil, c.Errorf("unfreeze", "unfreezing needs init_from (or layers = [...])")
		}
		t.unfreeze = &nn.UnfreezeSchedule{Layers: us.Layers, EveryEpochs: us.EveryEpochs, LRScale: us.LRScale}
		t.unfreezeOn = true
	}
	return t, nil
}

// source resolves init_from / init_from_path.
func (t *transferSpec) source(ctx context.Context, sc *pipeline.StageContext) (TransferSource, error) {
	switch {
	case t.from != "":
		ref, _ := sc.Config.Input("init_from")
		a, err := sc.ArtifactOf(ctx, ref)
		if err != nil {
			return nil, err
		}
		s, ok := a.(TransferSource)
		if !ok {
			return nil, fmt.Errorf("init_from: %s is a %s, which has no layers to transfer", t.from, a.ArtifactKind())
		}
		return s, nil
	case t.fromPath != "":
		b, err := bundle.LoadModel(t.fromPath)
		if err != nil {
			return nil, fmt.Errorf("init_from_path: %w", err)
		}
		return b, nil
	}
	return nil, nil
}

// apply loads the source's layers into m, freezes, and returns the unfreeze hook.
func (t *transferSpec) apply(sc *pipeline.StageContext, m *nn.Model, src TransferSource) ([]train.Hook, error) {
	var layers []string
	if src != nil {
		for _, l := range src.TransferLayers() {
			if m.Param(l.Name+"/W") != nil || hasLayer(m, l.Name) {
				layers = append(layers, l.Name)
			}
		}
		// Embedding tables travel by name too (emb_<column>), shape-checked like layers.
		for _, e := range src.TransferModel().Spec().Embeddings {
			if m.Param(e.Name+"/W") != nil {
				layers = append(layers, e.Name)
			}
		}
		if len(layers) == 0 {
			return nil, fmt.Errorf("init_from: no layer of %s has a namesake in this model (its layers: %s)", t.from+t.fromPath, layerNames(src.TransferLayers()))
		}
		loaded, err := m.InitFrom(src.TransferModel(), layers...)
		if err != nil {
			return nil, fmt.Errorf("init_from: %w (set layers to match the source, or rename them)", err)
		}
		sc.Note("loaded %d tensors of layers %s from %s", len(loaded), strings.Join(layers, ", "), t.from+t.fromPath)
		sc.SetInfo("transferred_layers", layers)
	}
	for _, f := range t.freeze {
		n, err := m.Freeze(f)
		if err != nil {
			return nil, err
		}
		if n == 0 {
			return nil, fmt.Errorf("freeze: %q matches no parameter", f)
		}
		sc.Note("froze %d tensors matching %q", n, f)
	}
	if !t.unfreezeOn {
		return nil, nil
	}
	u := *t.unfreeze
	if len(u.Layers) == 0 {
		u.Layers = layers
	}
	if _, err := u.Apply(m, 0); err != nil {
		return nil, fmt.Errorf("unfreeze: %w", err)
	}
	sc.Note("gradual unfreezing of %s, one more layer every %d epochs", strings.Join(u.Layers, ", "), max(u.EveryEpochs, 1))
	return []train.Hook{train.OnEpochEnd("unfreeze", 0, func(e *train.EpochInfo) error {
		open, err := u.Apply(e.Model, e.Epoch+1)
		if err == nil {
			sc.Log.Debug().Int("epoch", e.Epoch+1).Strs("trainable", open).Msg("unfreeze")
		}
		return err
	})}, nil
}

func hasLayer(m *nn.Model, name string) bool {
	for _, p := range m.Params() {
		if strings.HasPrefix(p.Name, name+"/") {
			return true
		}
	}
	return false
}

func layerNames(ls []nn.LayerSpec) string {
	var names []string
	for _, l := range ls {
		names = append(names, l.Name)
	}
	return strings.Join(names, ", ")
}
