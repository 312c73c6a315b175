package pipeline

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// memStore is an in-memory Store for tests: a map under a mutex, with counters of what was
// put and got, and a switch that makes every Put fail.
type memStore struct {
	mu      sync.Mutex
	objects map[string][]byte
	mod     map[string]time.Time
	puts    map[string]int
	gets    map[string]int
	failPut error
}

func newMemStore() *memStore {
	return &memStore{objects: map[string][]byte{}, mod: map[string]time.Time{}, puts: map[string]int{}, gets: map[string]int{}}
}

func (s *memStore) Put(ctx context.Context, key string, r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failPut != nil {
		return s.failPut
	}
	s.objects[key] = b
	s.mod[key] = time.Now()
	s.puts[key]++
	return nil
}

func (s *memStore) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.objects[key]
	if !ok {
		return nil, fmt.Errorf("get %s: %w", key, ErrNotFound)
	}
	s.gets[key]++
	return io.NopCloser(bytes.NewReader(b)), nil
}

func (s *memStore) Stat(ctx context.Context, key string) (ObjectInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.objects[key]
	if !ok {
		return ObjectInfo{}, fmt.Errorf("stat %s: %w", key, ErrNotFound)
	}
	return ObjectInfo{Key: key, Size: int64(len(b)), ModTime: s.mod[key]}, nil
}

func (s *memStore) List(ctx context.Context, prefix string) ([]ObjectInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []ObjectInfo
	for k, b := range s.objects {
		if strings.HasPrefix(k, prefix) {
			out = append(out, ObjectInfo{Key: k, Size: int64(len(b)), ModTime: s.mod[k]})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

func (s *memStore) Delete(ctx context.Context, key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.objects, key)
	return nil
}

// count returns how many times an object whose key matches was put or got.
func (s *memStore) count(m map[string]int, match func(key string) bool) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for k, c := range m {
		if match(k) {
			n += c
		}
	}
	return n
}

func (s *memStore) resetCounts() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.puts, s.gets = map[string]int{}, map[string]int{}
}

// runCounts counts the runs of every stage (a cached stage does not run).
type runCounts struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *runCounts) add(stage string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n[stage]++
}

// ran returns the stages that ran since the last call, sorted, and resets the counts.
func (c *runCounts) ran() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for s, n := range c.n {
		for range n {
			out = append(out, s)
		}
	}
	sort.Strings(out)
	c.n = map[string]int{}
	return out
}

// counted wraps a kind's stages so that each run is counted.
func counted(k KindSpec, c *runCounts) KindSpec {
	inner := k.New
	k.New = func(cfg *StageConfig) (Stage, error) {
		st, err := inner(cfg)
		if err != nil {
			return nil, err
		}
		return StageFunc(func(ctx context.Context, sc *StageContext) error {
			c.add(sc.Name)
			return st.Run(ctx, sc)
		}), nil
	}
	return k
}

// scaleTransform multiplies x (column 0) by a factor: a fitted, replayable lineage step.
type scaleTransform struct {
	Factor int64 `json:"factor"`
}

func (s scaleTransform) Kind() string { return "scale" }
func (s scaleTransform) Apply(_ context.Context, mem memory.Allocator, rec arrow.RecordBatch) (arrow.RecordBatch, error) {
	xs := rec.Column(0).(*array.Int64)
	b := array.NewInt64Builder(mem)
	defer b.Release()
	for i := 0; i < xs.Len(); i++ {
		b.Append(s.Factor * xs.Value(i))
	}
	a := b.NewArray()
	defer a.Release()
	cols := append([]arrow.Array{a}, rec.Columns()[1:]...)
	return array.NewRecordBatch(rec.Schema(), cols, rec.NumRows()), nil
}
func (s scaleTransform) Marshal() ([]byte, error) { return json.Marshal(s) }

// flakyFailures counts down the failing attempts of flaky stages, by stage name.
var flakyFailures = struct {
	sync.Mutex
	left map[string]int
}{left: map[string]int{}}

// cacheRegistry holds cacheable fake kinds: a generated source, a file source, a scaling
// transform, a sum (an artifact, and a file in its directory), a report that reads it, a
// probe that records what it reads, and a source that fails its first attempts.
func cacheRegistry(c *runCounts, scaleVersion int) *Registry {
	r := NewRegistry()
	gen := testRegistry()
	src, _ := gen.Kind("gen")
	s := *src
	s.Cacheable = true
	r.MustRegister(counted(s, c))
	r.MustRegister(counted(KindSpec{
		Kind: "lines", Shape: ShapeSource, Cacheable: true, Doc: "Reads one integer per line.",
		Fields: []Field{{Name: "path", Type: TypeString, Required: true, Path: PathInput, Doc: "The file."}},
		New: func(cfg *StageConfig) (Stage, error) {
			return SourceStage(SourceFunc(func(ctx context.Context, sc *StageContext) (RecordReader, error) {
				b, err := os.ReadFile(cfg.Path("path"))
				if err != nil {
					return nil, err
				}
				xb := array.NewInt64Builder(sc.Mem)
				yb := array.NewFloat64Builder(sc.Mem)
				defer xb.Release()
				defer yb.Release()
				for _, l := range strings.Fields(string(b)) {
					v, err := strconv.ParseInt(l, 10, 64)
					if err != nil {
						return nil, err
					}
					xb.Append(v)
					yb.Append(0)
				}
				xa, ya := xb.NewArray(), yb.NewArray()
				defer xa.Release()
				defer ya.Release()
				rec := array.NewRecordBatch(genSchema, []arrow.Array{xa, ya}, int64(xa.Len()))
				defer rec.Release()
				rr, err := array.NewRecordReader(genSchema, []arrow.RecordBatch{rec})
				return rr, err
			})), nil
		},
	}, c))
	r.MustRegister(counted(KindSpec{
		Kind: "scale", Shape: ShapeTransform, Cacheable: true, Version: scaleVersion, Doc: "Multiplies x by factor.",
		Fields: []Field{
			{Name: "input", Type: TypeInput, Required: true, Port: PortTable, Doc: "The table."},
			{Name: "factor", Type: TypeInt, Default: int64(2), Doc: "The factor."},
		},
		New: func(cfg *StageConfig) (Stage, error) {
			return ReplayableTransformStage(func(in *arrow.Schema) (*arrow.Schema, error) { return in, nil }, scaleTransform{Factor: cfg.Int64("factor")}), nil
		},
	}, c))
	r.MustRegister(counted(KindSpec{
		Kind: "sum", Shape: ShapeFit, Cacheable: true, Doc: "Sums x into an artifact, a metric and sum.txt.",
		Fields: []Field{
			{Name: "input", Type: TypeInputs, Required: true, Port: PortTable, Doc: "Tables to sum."},
			{Name: "workers", Type: TypeInt, Default: int64(0), KeyExempt: true, Doc: "Does not change the sum."},
			{Name: "shared", Type: TypeBool, Default: false, KeyExempt: true, Doc: "Each table's sum is a value StageContext.Shared shares."},
		},
		Outputs: func(*StageConfig) []Port { return []Port{{Name: "total", Kind: PortArtifact}} },
		New: func(cfg *StageConfig) (Stage, error) {
			shared := cfg.Bool("shared")
			return StageFunc(func(ctx context.Context, sc *StageContext) error {
				ts, err := sc.Inputs(ctx, "input")
				if err != nil {
					return err
				}
				var sum int64
				for _, t := range ts {
					tableSum := func() (any, int64, error) {
						var n int64
						r := sc.Scan(ctx, t)
						defer r.Release()
						for r.Next() {
							for _, v := range r.RecordBatch().Column(0).(*array.Int64).Int64Values() {
								n += v
							}
						}
						return n, 8, r.Err()
					}
					if !shared {
						n, _, err := tableSum()
						if err != nil {
							return err
						}
						sum += n.(int64)
						continue
					}
					n, _, err := sc.Shared(ctx, t, "sum", tableSum)
					if err != nil {
						return err
					}
					sum += n.(int64)
				}
				dir, err := sc.Dir()
				if err != nil {
					return err
				}
				if err := WriteFileAtomic(filepath.Join(dir, "sum.txt"), []byte(strconv.FormatInt(sum, 10))); err != nil {
					return err
				}
				sc.Metrics.Set("all_sum", float64(sum))
				sc.SetInfo("file", filepath.Join(dir, "sum.txt"))
				sc.Note("summed %d tables", len(ts))
				return sc.SetArtifact("total", countArtifact{sum})
			}), nil
		},
	}, c))
	r.MustRegister(counted(KindSpec{
		Kind: "show", Shape: ShapeSink, Cacheable: true, Doc: "Reads the count into a metric and report.txt.",
		Fields:  []Field{{Name: "model", Type: TypeInput, Required: true, Port: PortArtifact, Doc: "The count."}},
		Outputs: func(*StageConfig) []Port { return nil },
		New: func(cfg *StageConfig) (Stage, error) {
			return StageFunc(func(ctx context.Context, sc *StageContext) error {
				a, err := sc.Artifact(ctx, "model")
				if err != nil {
					return err
				}
				total := a.(countArtifact).total
				dir, err := sc.Dir()
				if err != nil {
					return err
				}
				sc.Metrics.Set("test_total", float64(total))
				return WriteFileAtomic(filepath.Join(dir, "report.txt"), []byte(fmt.Sprintf("total %d\n", total)))
			}), nil
		},
	}, c))
	r.MustRegister(counted(KindSpec{
		Kind: "probe", Shape: ShapeSink, Cacheable: true, Doc: "Records the split, lineage and sum of a table.",
		Fields:  []Field{{Name: "input", Type: TypeInput, Required: true, Port: PortTable, Doc: "The table."}},
		Outputs: func(*StageConfig) []Port { return nil },
		New: func(cfg *StageConfig) (Stage, error) {
			return StageFunc(func(ctx context.Context, sc *StageContext) error {
				t, err := sc.Input(ctx, "input")
				if err != nil {
					return err
				}
				var steps []string
				for _, st := range t.Lineage() {
					state := ""
					if st.Transform != nil {
						b, _ := st.Transform.Marshal()
						state = st.Transform.Kind() + string(b)
					}
					in := ""
					if st.Input != nil {
						in = st.Input.String()
					}
					steps = append(steps, fmt.Sprintf("%s/%s/%s/%v/%s/%s", st.Stage, st.Kind, st.FitOn, st.TrainOnly, state, in))
				}
				var sum int64
				var batches []int64
				r := sc.Scan(ctx, t)
				for r.Next() {
					batches = append(batches, r.RecordBatch().NumRows())
					for _, v := range r.RecordBatch().Column(0).(*array.Int64).Int64Values() {
						sum += v
					}
				}
				r.Release()
				sc.SetInfo("split", t.Split())
				sc.SetInfo("schema", t.Schema().String())
				sc.SetInfo("lineage", steps)
				sc.SetInfo("batches", batches)
				sc.Metrics.Set("all_sum", float64(sum))
				return r.Err()
			}), nil
		},
	}, c))
	r.MustRegister(counted(KindSpec{
		Kind: "flaky", Shape: ShapeSource, Cacheable: true, Doc: "Generates rows; fails its first fail_times attempts after some rows.",
		Fields: []Field{
			{Name: "rows", Type: TypeInt, Default: int64(100), Doc: "Rows."},
			{Name: "fail_times", Type: TypeInt, Default: int64(0), Doc: "Attempts that fail."},
			{Name: "config_error", Type: TypeBool, Default: false, Doc: "Fail with a config error."},
		},
		New: func(cfg *StageConfig) (Stage, error) {
			return SourceStage(SourceFunc(func(ctx context.Context, sc *StageContext) (RecordReader, error) {
				if cfg.Bool("config_error") {
					return nil, cfg.Errorf("rows", "injected config error")
				}
				flakyFailures.Lock()
				fail := flakyFailures.left[sc.Name] > 0
				if fail {
					flakyFailures.left[sc.Name]--
				}
				flakyFailures.Unlock()
				failAt := -1
				if fail {
					failAt = cfg.Int("rows") / 2
				}
				return &genReader{mem: sc.Mem, rows: cfg.Int("rows"), batch: 10, failAt: failAt, ctx: ctx}, nil
			})), nil
		},
	}, c))
	r.SetTransformDecoder(func(kind string, state []byte) (FittedTransform, error) {
		if kind != "scale" {
			return nil, fmt.Errorf("no decoder for %q", kind)
		}
		var s scaleTransform
		err := json.Unmarshal(state, &s)
		return s, err
	})
	r.SetArtifactLoader("count", func(_ context.Context, dir string) (Artifact, error) {
		b, err := os.ReadFile(filepath.Join(dir, "sum.txt"))
		if err != nil {
			return nil, err
		}
		n, err := strconv.ParseInt(string(b), 10, 64)
		return countArtifact{n}, err
	})
	return r
}
