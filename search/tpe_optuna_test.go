package search

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"sort"
	"strings"
	"testing"
)

// samePairs reports whether the kernels (mu[i], sd[i]) and (mu2[i], sd2[i]) are the same
// multiset of pairs, within tol.
func samePairs(mu, sd, mu2, sd2 []float64, tol float64) bool {
	if len(mu) != len(mu2) || len(sd) != len(mu) || len(sd2) != len(mu2) {
		return false
	}
	pairs := func(mu, sd []float64) [][2]float64 {
		out := make([][2]float64, len(mu))
		for i := range mu {
			out[i] = [2]float64{mu[i], sd[i]}
		}
		sort.Slice(out, func(a, b int) bool {
			if out[a][0] != out[b][0] {
				return out[a][0] < out[b][0]
			}
			return out[a][1] < out[b][1]
		})
		return out
	}
	a, b := pairs(mu, sd), pairs(mu2, sd2)
	for i := range a {
		for j := range 2 {
			if math.Abs(a[i][j]-b[i][j]) > tol*math.Max(1, math.Abs(b[i][j])) {
				return false
			}
		}
	}
	return true
}

// withWidths returns a copy of z whose kernels have the widths sd (in z's kernel order).
func withWidths(z *parzen, sd []float64) *parzen {
	c := *z
	c.sd = append([]float64(nil), sd...)
	c.logZ = make([]float64, len(c.mu))
	for i := range c.mu {
		c.logZ[i] = math.Log(phi((c.b-c.mu[i])/c.sd[i]) - phi((c.a-c.mu[i])/c.sd[i]))
	}
	return &c
}

// optunaPython returns a Python interpreter that imports Optuna 3.1, or skips the test saying
// why. PIPE_PYTHON names one; otherwise /usr/bin/python3 (Debian's, where ./run.sh test
// installs python3-optuna), then python3 on PATH.
func optunaPython(t *testing.T) string {
	t.Helper()
	var tried []string
	cands := []string{os.Getenv("PIPE_PYTHON"), "/usr/bin/python3"}
	if p, err := exec.LookPath("python3"); err == nil {
		cands = append(cands, p)
	}
	for _, py := range cands {
		if py == "" {
			continue
		}
		out, err := exec.Command(py, "-c", "import optuna; print(optuna.__version__)").CombinedOutput()
		v := strings.TrimSpace(string(out))
		switch {
		case err != nil:
			tried = append(tried, fmt.Sprintf("%s: no optuna module", py))
		case !strings.HasPrefix(v, "3.1."):
			tried = append(tried, fmt.Sprintf("%s: Optuna %s, and the comparison is with 3.1 (Debian 12's python3-optuna), whose TPE this one follows", py, v))
		default:
			return py
		}
	}
	t.Skipf("no Python with Optuna 3.1 (%s); ./run.sh test installs Debian's python3-optuna where apt-get can, or set PIPE_PYTHON",
		strings.Join(tried, "; "))
	return ""
}

// TestTPEAgainstOptuna fits pipe's TPE and Optuna 3.1's TPESampler (the peer itself, through
// search/testdata/tpe_optuna.py, which runs its sample_independent and captures the two
// Parzen estimators it builds) to the same trials, and compares, for every parameter, whether
// TPE draws it from a model, how many trials each density holds and the log densities l(x)
// and g(x) at points across the range (every value of an integer or a choice), within 1e-9.
// The cases cover every distribution, a conditional parameter, failed and pruned trials
// (ranked by epochs reached, then value), tied values (ranked by trial order), both
// directions, fewer trials than Startup, the good share's steps (10 and 11 trials) and the
// weights of old trials (a set of more than 25).
func TestTPEAgainstOptuna(t *testing.T) {
	py := optunaPython(t)
	s := mustSpace(t, `
u = { uniform = [-2.0, 6.0] }
lu = { log_uniform = [1e-4, 1.0] }
i = { int = [1, 10] }
li = { log_int = [2, 300] }
c = { choice = ["a", "b", "c", "d"] }
opt = { choice = ["adam", "sgd"] }
mom = { uniform = [0.8, 0.99], when = { opt = "sgd" } }
`, nil)
	type jsonParam struct {
		Name    string  `json:"name"`
		Dist    Dist    `json:"dist"`
		Lo      float64 `json:"lo"`
		Hi      float64 `json:"hi"`
		Choices []any   `json:"choices,omitempty"`
	}
	type jsonTrial struct {
		State  string  `json:"state"`
		Params Params  `json:"params"`
		Value  float64 `json:"value"`
		Epochs int     `json:"epochs,omitempty"`
	}
	type jsonCase struct {
		Maximize bool                 `json:"maximize"`
		Space    []jsonParam          `json:"space"`
		Trials   []jsonTrial          `json:"trials"`
		Points   map[string][]float64 `json:"points"`
	}
	var space []jsonParam
	points := map[string][]float64{}
	for _, p := range s.params {
		space = append(space, jsonParam{Name: p.Name, Dist: p.Dist, Lo: p.Lo, Hi: p.Hi, Choices: p.Choices})
		var pts []float64
		switch {
		case p.Dist == Choice:
			for c := range p.Choices {
				pts = append(pts, float64(c))
			}
		case p.Dist.integer():
			for k := p.Lo; k <= p.Hi; k++ {
				pts = append(pts, k)
			}
		default:
			a, b := Range{Dist: p.Dist, Lo: p.Lo, Hi: p.Hi}.axis()
			for j := range 41 {
				x := a + (b-a)*float64(j)/40
				if p.Dist.log() {
					x = math.Exp(x)
				}
				pts = append(pts, math.Min(math.Max(x, p.Lo), p.Hi))
			}
		}
		points[p.Name] = pts
	}
	var cases []jsonCase
	var results [][]TrialResult
	rng := rand.New(rand.NewPCG(17, 4))
	for ci, n := range []int{5, 9, 10, 11, 26, 40, 90} {
		var res []TrialResult
		var trials []jsonTrial
		for i := range n {
			p := s.Sample(s.Region(), rng)
			u, _ := number(p["u"])
			lr, _ := number(p["lu"])
			v := math.Round(10*((u-2)*(u-2)/4+math.Abs(math.Log10(lr)+2)+rng.NormFloat64()*0.5)) / 10 // ties
			r := TrialResult{Trial: Trial{Index: i, Params: p}, Status: Completed, Value: v}
			jt := jsonTrial{State: "complete", Params: p, Value: v}
			switch x := rng.Float64(); {
			case x < 0.1:
				r.Status, r.Value, jt.State, jt.Value = Failed, math.NaN(), "failed", 0
			case x < 0.3:
				r.Status, r.Epochs = Pruned, 1+rng.IntN(4)
				jt.State, jt.Epochs = "pruned", r.Epochs
			}
			res = append(res, r)
			trials = append(trials, jt)
		}
		results = append(results, res)
		cases = append(cases, jsonCase{Maximize: ci%2 == 1, Space: space, Trials: trials, Points: points})
	}
	in, err := json.Marshal(map[string]any{"cases": cases})
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(py, "testdata/tpe_optuna.py")
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("testdata/tpe_optuna.py: %v\n%s", err, stderr.String())
	}
	type peerKernels struct {
		W, Mu, Sd, Probs []float64
	}
	type peerParam struct {
		Model bool
		L, G  peerKernels
		LogL  []float64 `json:"logl"`
		LogG  []float64 `json:"logg"`
		RawL  []float64 `json:"raw_logl"`
		RawG  []float64 `json:"raw_logg"`
	}
	var peer struct {
		Optuna string                 `json:"optuna"`
		Cases  []map[string]peerParam `json:"cases"`
	}
	if err := json.Unmarshal(out, &peer); err != nil {
		t.Fatalf("the peer's output: %v\n%s", err, out)
	}
	t.Logf("compared with Optuna %s", peer.Optuna)
	if len(peer.Cases) != len(cases) {
		t.Fatalf("the peer answered %d cases of %d", len(peer.Cases), len(cases))
	}
	near := func(a, b []float64, tol float64) bool {
		if len(a) != len(b) {
			return false
		}
		for i := range a {
			if !(math.Abs(a[i]-b[i]) <= tol*math.Max(1, math.Abs(b[i]))) {
				return false
			}
		}
		return true
	}
	worst, raw, models := 0.0, 0.0, 0
	for ci, res := range results {
		c := cases[ci]
		m := Config{Space: s, Maximize: c.Maximize}.fitTPE(res)
		for k, p := range s.params {
			want, ok := peer.Cases[ci][p.Name]
			where := fmt.Sprintf("case %d (%d trials, maximize %v), %s", ci, len(res), c.Maximize, p.Name)
			if !ok {
				t.Fatalf("%s: the peer did not answer", where)
			}
			l, g := m.l[k], m.g[k]
			if (l != nil) != want.Model {
				t.Errorf("%s: pipe has a model %v, Optuna %v", where, l != nil, want.Model)
				continue
			}
			if l == nil {
				continue
			}
			models++
			// Kernels at the same value (an integer drawn twice) have the same centre; which
			// of them takes which width follows the sort of the centres, and numpy's argsort
			// is not stable, so widths are compared as (centre, width) pairs, and the
			// densities with Optuna's assignment. (Where the prior's centre is a value too,
			// its place among the kernels there changes which widths they take, not only
			// who takes which; so the int range here, [1, 10], has its centre at 5.5.)
			for _, d := range []struct {
				name string
				z    **parzen
				want peerKernels
			}{{"l", &l, want.L}, {"g", &g, want.G}} {
				z := *d.z
				ok := near(z.w, d.want.W, 1e-12)
				if p.Dist == Choice {
					ok = ok && near(z.probs, d.want.Probs, 1e-12)
				} else {
					ok = ok && near(z.mu, d.want.Mu, 1e-12) && samePairs(z.mu, z.sd, d.want.Mu, d.want.Sd, 1e-12)
				}
				if !ok {
					t.Errorf("%s: %s differs from Optuna's\npipe:   weights %.6g, centres %.6g, widths %.6g, probabilities %.6g\nOptuna: weights %.6g, centres %.6g, widths %.6g, probabilities %.6g",
						where, d.name, z.w, z.mu, z.sd, z.probs, d.want.W, d.want.Mu, d.want.Sd, d.want.Probs)
					continue
				}
				if p.Dist != Choice {
					*d.z = withWidths(z, d.want.Sd)
				}
			}
			for j, x := range c.Points[p.Name] {
				ax := x
				switch {
				case p.Dist.integer():
					a, b := valueAxis(p.Dist, x)
					ax = (a + b) / 2
				case p.Dist.log():
					ax = math.Log(x)
				}
				gl, gg := l.logPDF(ax), g.logPDF(ax)
				dl, dg := math.Abs(gl-want.LogL[j]), math.Abs(gg-want.LogG[j])
				worst = math.Max(worst, math.Max(dl, dg))
				raw = math.Max(raw, math.Max(math.Abs(gl-want.RawL[j]), math.Abs(gg-want.RawG[j])))
				if dl > 1e-9 || dg > 1e-9 || math.IsNaN(dl+dg) {
					t.Errorf("%s at %g: log l %.12g, log g %.12g; Optuna's %.12g, %.12g", where, x, gl, gg, want.LogL[j], want.LogG[j])
					break
				}
			}
		}
	}
	if models < 20 {
		t.Errorf("only %d of the parameters had a model: the cases do not exercise the densities", models)
	}
	t.Logf("%d estimator pairs; largest difference of a log density: %.3g (from Optuna 3.1's own log_pdf, without the fixes of optuna/optuna#5110 and #6258: %.3g)", models, worst, raw)
}
