package pretrain

import (
	"fmt"

	"github.com/pipe-ml/pipe/nn"
)

// Output activations of a convolutional autoencoder (AutoencoderConfig.Output).
const (
	OutputLinear  = "linear"
	OutputSigmoid = "sigmoid"
)

// convDecoderOut is the name of a convolutional decoder's last layer, the reconstruction.
const convDecoderOut = "dec_out"

// resolveConv checks a convolutional autoencoder's encoder (AutoencoderConfig.InputShape set)
// and builds its mirrored decoder. Every encoder layer must be one the decoder can mirror:
//
//   - conv (padding same, any kernel; a stride s needs H and W divisible by s) and an image
//     residual block (type residual with filters) become upsample by s (when s > 1) then a
//     conv of the same kernel back to the layer's input channels, with the activation of the
//     encoder layer that made those channels; the first one (which reads the image) becomes
//     dec_out, a conv back to the image's channels with the Output activation;
//   - max_pool and avg_pool with stride s whose output is exactly H/s × W/s (a 2×2 pool on an
//     even image, say) become upsample by s;
//   - batch_norm, activation, dropout and gaussian_noise keep the shape and are not mirrored
//     (as the dense autoencoder mirrors only its dense layers).
//
// Anything else (dense, flatten, global_avg_pool, layer_norm, custom, upsample) is an error
// that names the layer: the code is the last encoder layer's image.
func (lay *aeLayout) resolveConv(shape []int, numInputs int) error {
	cfg := lay.cfg
	if len(shape) != 3 || shape[0] < 1 || shape[1] < 1 || shape[2] < 1 {
		return fmt.Errorf("pretrain: convolutional autoencoder: input shape %v: want [channels, height, width], each >= 1", shape)
	}
	if n := shape[0] * shape[1] * shape[2]; n != numInputs {
		return fmt.Errorf("pretrain: convolutional autoencoder: input shape %v holds %d values per row, and the data has %d inputs", shape, n, numInputs)
	}
	if cfg.Tied {
		return fmt.Errorf("pretrain: convolutional autoencoder: tied decoders are for dense encoders (a conv decoder has its own filters): drop tied")
	}
	if len(cfg.Groups) > 0 {
		return fmt.Errorf("pretrain: convolutional autoencoder: column groups (one-hot blocks) are for dense autoencoders: an image's pixels are all reconstructed with MSE")
	}
	switch cfg.Output {
	case "":
		lay.cfg.Output = OutputLinear
	case OutputLinear, OutputSigmoid:
	default:
		return fmt.Errorf("pretrain: output %q: want linear or sigmoid", cfg.Output)
	}
	type step struct {
		l      nn.LayerSpec
		in     []int // [C, H, W] before the layer
		stride int
	}
	var (
		steps []step
		c, h  = shape[0], shape[1]
		w     = shape[2]
		// act is the activation of the layers that made the current channels ("" for the
		// input image).
		act   string
		acts  = map[int]string{} // encoder index → activation of its input channels
		first = -1               // the first layer with filters
	)
	for i := range lay.encoder {
		l := lay.encoder[i]
		in := []int{c, h, w}
		where := fmt.Sprintf("pretrain: convolutional autoencoder: encoder layer %d (%s, %s) on a %d×%d×%d image", i+1, l.Name, l.Type, c, h, w)
		switch {
		case l.Type == nn.LayerConv || l.Type == nn.LayerResidual && l.Filters > 0:
			k, s, pad := l.Kernel, max(l.Stride, 1), l.Padding
			if l.Type == nn.LayerResidual {
				k, pad = max(k, 0), nn.PaddingSame
				if k == 0 {
					k = 3
				}
			}
			if pad != nn.PaddingSame {
				return fmt.Errorf("%s: padding %q shrinks the image by kernel - 1, which the decoder cannot mirror: set padding = \"same\"", where, valueOr(pad, nn.PaddingValid))
			}
			if h%s != 0 || w%s != 0 {
				return fmt.Errorf("%s: stride %d does not divide the height and width, so upsampling by %d cannot restore them: use a stride that divides both, or pad the images", where, s, s)
			}
			if l.Filters < 1 || k < 1 {
				return fmt.Errorf("%s: needs filters >= 1 and kernel >= 1", where)
			}
			if first < 0 {
				first = i
			}
			acts[i] = act
			steps = append(steps, step{l: l, in: in, stride: s})
			c, h, w = l.Filters, h/s, w/s
			act = l.Activation
			if l.Type == nn.LayerResidual && act == "" {
				act = "relu"
			}
		case l.Type == nn.LayerMaxPool || l.Type == nn.LayerAvgPool:
			k := l.Kernel
			if k == 0 {
				k = 2
			}
			s := l.Stride
			if s == 0 {
				s = k
			}
			ho, wo := (h-k)/s+1, (w-k)/s+1
			if l.Padding == nn.PaddingSame {
				ho, wo = (h+s-1)/s, (w+s-1)/s
			}
			if k < 1 || s < 1 || h < k && l.Padding != nn.PaddingSame {
				return fmt.Errorf("%s: kernel %d, stride %d do not fit", where, k, s)
			}
			if ho*s != h || wo*s != w {
				return fmt.Errorf("%s: kernel %d, stride %d, padding %s gives %d×%d, which upsampling by %d makes %d×%d, not %d×%d: the decoder cannot mirror it; use a pool whose kernel equals its stride and divides the height and width (e.g. { max_pool = 2 } on an even image)",
					where, k, s, valueOr(l.Padding, nn.PaddingValid), ho, wo, s, ho*s, wo*s, h, w)
			}
			steps = append(steps, step{l: l, in: in, stride: s})
			h, w = ho, wo
		case l.Type == nn.LayerActivation:
			act = l.Activation
		case l.Type == nn.LayerBatchNorm || l.Type == nn.LayerDropout || l.Type == nn.LayerGaussianNoise:
		default:
			return fmt.Errorf("%s: a convolutional autoencoder's encoder takes conv, max_pool, avg_pool, type = \"residual\" with filters, batch_norm, activation, dropout and gaussian_noise layers; its code is the last layer's image (a train stage adds flatten and dense layers after the transferred ones)", where)
		}
	}
	if first < 0 {
		return fmt.Errorf("pretrain: convolutional autoencoder: the encoder has no conv layer (e.g. { conv = 16, kernel = 3, padding = \"same\" })")
	}
	lay.codeWidth = c * h * w
	lay.inputShape = append([]int(nil), shape...)
	// The decoder: the steps in reverse.
	n := 0
	for j := len(steps) - 1; j >= 0; j-- {
		st := steps[j]
		if st.stride > 1 {
			n++
			lay.decoder = append(lay.decoder, nn.LayerSpec{Type: nn.LayerUpsample, Name: fmt.Sprintf("dec_%d", n), Factor: st.stride})
		}
		if st.l.Type == nn.LayerMaxPool || st.l.Type == nn.LayerAvgPool {
			continue
		}
		k := st.l.Kernel
		if k == 0 {
			k = 3 // an image residual block's default
		}
		d := nn.LayerSpec{Type: nn.LayerConv, Filters: st.in[0], Kernel: k, Padding: nn.PaddingSame}
		if steps[j].l.Name == lay.encoder[first].Name {
			d.Name = convDecoderOut
			if lay.cfg.Output == OutputSigmoid {
				d.Activation = OutputSigmoid
			} else {
				d.Activation = OutputLinear
			}
		} else {
			n++
			d.Name = fmt.Sprintf("dec_%d", n)
			d.Activation = valueOr(actsOf(lay.encoder, steps[j].l.Name, acts), OutputLinear)
		}
		lay.decoder = append(lay.decoder, d)
	}
	lay.numeric = make([]int, numInputs)
	for i := range lay.numeric {
		lay.numeric[i] = i
	}
	return nil
}

// actsOf is the activation of the channels encoder layer name reads.
func actsOf(enc []nn.LayerSpec, name string, acts map[int]string) string {
	for i, l := range enc {
		if l.Name == name {
			return acts[i]
		}
	}
	return ""
}

func valueOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
