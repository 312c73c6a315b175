package elementwise

// SGDUpdate applies one plain SGD step in place to the weights w from the gradient g (at least
// as long as w), with an optional L2 penalty l2 folded into the gradient:
//
//	w[i] = w[i] - lr*g[i]                  when l2 == 0
//	w[i] = w[i] - lr*(g[i] + l2*w[i])      otherwise
//
// rounding after every operation (no fused multiply-add).
func SGDUpdate(w, g []float32, lr, l2 float32) {
	g = g[:len(w)]
	done := sgdVector(w, g, lr, l2)
	sgdGeneric(w[done:], g[done:], lr, l2)
}

func sgdGeneric(w, g []float32, lr, l2 float32) {
	g = g[:len(w)]
	if l2 == 0 {
		for i, gi := range g {
			w[i] -= float32(lr * gi)
		}
		return
	}
	for i, gi := range g {
		w[i] -= float32(lr * (gi + float32(l2*w[i])))
	}
}

// SGDMomentum applies one SGD step with momentum mu (PyTorch's formulation, dampening 0) in
// place to the weights w and the momentum buffer buf, from the gradient g; g and buf must be
// at least as long as w. Element by element:
//
//	gi := g[i] + l2*w[i]
//	buf[i] = mu*buf[i] + gi
//	w[i] = w[i] - lr*buf[i]               (nesterov false)
//	w[i] = w[i] - lr*(gi + mu*buf[i])     (nesterov true)
//
// rounding after every operation (no fused multiply-add).
func SGDMomentum(w, g, buf []float32, lr, l2, mu float32, nesterov bool) {
	g, buf = g[:len(w)], buf[:len(w)]
	done := sgdMomentumVector(w, g, buf, lr, l2, mu, nesterov)
	sgdMomentumGeneric(w[done:], g[done:], buf[done:], lr, l2, mu, nesterov)
}

func sgdMomentumGeneric(w, g, buf []float32, lr, l2, mu float32, nesterov bool) {
	g, buf = g[:len(w)], buf[:len(w)]
	for i, wi := range w {
		gi := g[i] + float32(l2*wi)
		b := float32(mu*buf[i]) + gi
		buf[i] = b
		d := b
		if nesterov {
			d = gi + float32(mu*b)
		}
		w[i] = wi - float32(lr*d)
	}
}
