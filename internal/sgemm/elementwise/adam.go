package elementwise

import "math"

// AdamScalars are the per-step constants of an Adam/AdamW update (see AdamUpdate).
type AdamScalars struct {
	Beta1, Beta2                 float32 // moment decay rates
	OneMinusBeta1, OneMinusBeta2 float32 // 1-Beta1, 1-Beta2
	Eps                          float32 // added to the bias-corrected √v
	Decay                        float32 // decoupled weight decay (AdamW), lr·λ; 0 for none
	L2                           float32 // L2 penalty folded into the gradient (Adam); 0 for none
	StepSize                     float32 // lr / (1-Beta1^t)
	InvSqrtBC2                   float32 // 1 / √(1-Beta2^t)
}

// AdamUpdate applies one Adam step in place to the weights w and moments m, v from the
// gradient g; g, m and v must be at least as long as w. Element by element it computes
//
//	gi := g[i] + L2*w[i]
//	m[i] = Beta1*m[i] + OneMinusBeta1*gi
//	v[i] = Beta2*v[i] + OneMinusBeta2*gi*gi
//	w[i] = w[i] - w[i]*Decay - StepSize*m[i]/(√v[i]*InvSqrtBC2 + Eps)
//
// rounding after every operation (no fused multiply-add), left to right.
func AdamUpdate(w, g, m, v []float32, c AdamScalars) {
	n := len(w)
	g, m, v = g[:n], m[:n], v[:n]
	done := adamUpdateVector(w, g, m, v, &c)
	adamUpdateGeneric(w[done:], g[done:], m[done:], v[done:], &c)
}

// adamUpdateGeneric is AdamUpdate's pure-Go loop; the float32 conversions forbid the
// compiler from fusing multiply-adds, so it matches the assembly bit for bit.
func adamUpdateGeneric(w, g, m, v []float32, c *AdamScalars) {
	g, m, v = g[:len(w)], m[:len(w)], v[:len(w)]
	for i, wi := range w {
		gi := g[i] + float32(c.L2*wi)
		mi := float32(c.Beta1*m[i]) + float32(c.OneMinusBeta1*gi)
		vi := float32(c.Beta2*v[i]) + float32(float32(c.OneMinusBeta2*gi)*gi)
		m[i], v[i] = mi, vi
		denom := float32(float32(math.Sqrt(float64(vi)))*c.InvSqrtBC2) + c.Eps
		w[i] = (wi - float32(wi*c.Decay)) - float32(c.StepSize*mi)/denom
	}
}
