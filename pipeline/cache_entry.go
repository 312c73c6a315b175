package pipeline

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// The stage store's layout (see ARCHITECTURE.md): every object of a finished stage's entry
// lies under stages/<key>/, and entry.json, written last, commits it.
const (
	entryFormat        = "pipe.store.entry"
	entryFormatVersion = 1
	entryObjectName    = "entry.json"
	// Inside an entry: a table output as an Arrow IPC stream, a file of the stage directory.
	entryTablesDir = "tables/"
	entryFilesDir  = "files/"
)

// entryPrefix is where the objects of a key's entry lie.
func entryPrefix(key string) string { return "stages/" + key + "/" }

// storeEntry is entry.json: the description of one finished stage's stored outputs. The fields
// up to SizeBytes are the layout's contract with the store's gc; the rest is the cache's.
type storeEntry struct {
	Format        string    `json:"format"`
	FormatVersion int       `json:"format_version"`
	Key           string    `json:"key"`
	Kind          string    `json:"kind"`
	Stage         string    `json:"stage"`
	CreatedAt     time.Time `json:"created_at"`
	SizeBytes     int64     `json:"size_bytes"`

	KindVersion int    `json:"kind_version"`
	PipeVersion string `json:"pipe_version,omitempty"`
	// Pipeline and RunID name the run that stored the entry; Seconds is the stage's own time
	// in that run (what a cached run saves).
	Pipeline string  `json:"pipeline"`
	RunID    string  `json:"run_id"`
	Seconds  float64 `json:"seconds"`
	// StageDir is the stage directory the files were stored from: a path to it in info or
	// notes is rewritten to the reading run's stage directory.
	StageDir string `json:"stage_dir"`
	// Objects are the entry's objects (entry.json aside), relative to its prefix.
	Objects []entryObject `json:"objects"`
	// Tables describes the table outputs by port; Artifacts gives each artifact output's kind.
	Tables    map[string]*entryTable `json:"tables,omitempty"`
	Artifacts map[string]string      `json:"artifacts,omitempty"`
	// Manifest is the stage's manifest entry as the run that stored it wrote it.
	Manifest entryManifest `json:"manifest"`
}

type entryObject struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

type entryTable struct {
	Object  string      `json:"object"`
	Rows    int64       `json:"rows"`
	Batches int         `json:"batches"`
	Lineage []entryStep `json:"lineage"`
}

// entryStep is a LineageStep with its transform's saved state and its input schema (an Arrow
// IPC stream of the schema alone, with its metadata).
type entryStep struct {
	Stage       string `json:"stage"`
	Kind        string `json:"kind"`
	FitOn       string `json:"fit_on"`
	TrainOnly   bool   `json:"train_only,omitempty"`
	Replayable  bool   `json:"replayable"`
	State       []byte `json:"state,omitempty"`
	InputSchema []byte `json:"input_schema,omitempty"`
}

type entryManifest struct {
	RowsIn  int64                 `json:"rows_in"`
	RowsOut int64                 `json:"rows_out"`
	Batches int                   `json:"batches"`
	Outputs map[string]OutputInfo `json:"outputs"`
	Metrics map[string]float64    `json:"metrics"`
	Info    map[string]any        `json:"info,omitempty"`
	Notes   []string              `json:"notes,omitempty"`
}

// readEntry reads and checks the committed entry of key: nil, nil when there is none (or it
// is not a whole entry of this stage: another format, another kind, an object missing).
func readEntry(ctx context.Context, s Store, key, kind string) (*storeEntry, string, error) {
	r, err := s.Get(ctx, entryPrefix(key)+entryObjectName)
	if errors.Is(err, ErrNotFound) {
		return nil, "no entry", nil
	}
	if err != nil {
		return nil, "", err
	}
	b, err := io.ReadAll(r)
	r.Close()
	if err != nil {
		return nil, "", err
	}
	var e storeEntry
	if err := json.Unmarshal(b, &e); err != nil {
		return nil, "entry.json is not an entry: " + err.Error(), nil
	}
	switch {
	case e.Format != entryFormat:
		return nil, fmt.Sprintf("entry.json has format %q", e.Format), nil
	case e.FormatVersion < 1 || e.FormatVersion > entryFormatVersion:
		return nil, fmt.Sprintf("entry.json has format version %d (this pipe reads 1 to %d)", e.FormatVersion, entryFormatVersion), nil
	case e.Key != key:
		return nil, fmt.Sprintf("entry.json is of key %s", e.Key), nil
	case e.Kind != kind:
		return nil, fmt.Sprintf("entry.json is of kind %s, not %s", e.Kind, kind), nil
	}
	objs, err := s.List(ctx, entryPrefix(key))
	if err != nil {
		return nil, "", err
	}
	have := map[string]int64{}
	for _, o := range objs {
		have[strings.TrimPrefix(o.Key, entryPrefix(key))] = o.Size
	}
	for _, o := range e.Objects {
		size, ok := have[o.Name]
		if !ok {
			return nil, "object " + o.Name + " is missing", nil
		}
		if size != o.Size {
			return nil, fmt.Sprintf("object %s has %d bytes, not %d", o.Name, size, o.Size), nil
		}
	}
	return &e, "", nil
}

// storable says why a succeeded stage's outputs cannot be stored, or "".
func (rs *runState) storable(st *stageState) string {
	if len(st.sc.degraded) > 0 {
		return "it dropped something (the next run tries again)"
	}
	for _, port := range st.cfg.outputs {
		s := rs.slots[Ref{Stage: st.cfg.Name, Port: port.Name, Kind: port.Kind}]
		if s.artifact != nil {
			if rs.p.reg == nil || rs.p.reg.ArtifactLoader(s.artifact.ArtifactKind()) == nil {
				return fmt.Sprintf("no loader reads %s artifacts back", s.artifact.ArtifactKind())
			}
		}
		if s.table == nil {
			continue
		}
		for _, step := range s.table.lineage {
			if step.Transform == nil {
				continue
			}
			if rs.p.reg == nil || rs.p.reg.TransformDecoder() == nil {
				return fmt.Sprintf("no decoder reads the %s transform of its output %s back", step.Kind, port.Name)
			}
		}
	}
	return ""
}

// storeStage writes a succeeded stage's entry: every table output as an Arrow IPC stream,
// every file of its stage directory, then entry.json with its manifest entry. The tables must
// not be released yet. A stage stored again (--refresh) is uncommitted first.
func (rs *runState) storeStage(ctx context.Context, st *stageState) (err error) {
	sc := st.sc
	key := sc.cacheKey
	prefix := entryPrefix(key)
	store := rs.store
	if err := store.Delete(ctx, prefix+entryObjectName); err != nil {
		return fmt.Errorf("uncommit the old entry: %w", err)
	}
	e := &storeEntry{Format: entryFormat, FormatVersion: entryFormatVersion, Key: key, Kind: st.cfg.Kind, Stage: st.cfg.Name,
		KindVersion: st.cfg.Spec.Version, PipeVersion: rs.man.PipeVersion, Pipeline: rs.man.Pipeline, RunID: rs.man.RunID,
		Tables: map[string]*entryTable{}, Artifacts: map[string]string{}}
	put := func(name string, write func(w io.Writer) error) error {
		pr, pw := io.Pipe()
		h := &hashCounter{h: sha256.New()}
		done := make(chan error, 1)
		go func() {
			err := write(io.MultiWriter(pw, h))
			pw.CloseWithError(err)
			done <- err
		}()
		perr := store.Put(ctx, prefix+name, pr)
		pr.CloseWithError(errors.Join(perr, errors.New("the store stopped reading")))
		werr := <-done
		if err := errors.Join(perr, werr); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		e.Objects = append(e.Objects, entryObject{Name: name, Size: h.n, SHA256: hex.EncodeToString(h.h.Sum(nil))})
		e.SizeBytes += h.n
		return nil
	}

	rs.mu.Lock()
	type tableOut struct {
		port string
		t    *Table
	}
	var tables []tableOut
	for _, port := range st.cfg.outputs {
		s := rs.slots[Ref{Stage: st.cfg.Name, Port: port.Name, Kind: port.Kind}]
		if s.artifact != nil {
			e.Artifacts[port.Name] = s.artifact.ArtifactKind()
		}
		if s.table != nil {
			tables = append(tables, tableOut{port.Name, s.table})
		}
	}
	m := st.man
	e.Seconds = m.Seconds
	e.Manifest = entryManifest{RowsIn: m.RowsIn, RowsOut: m.RowsOut, Batches: m.Batches, Outputs: m.Outputs, Metrics: m.Metrics, Info: m.Info, Notes: m.Notes}
	rs.mu.Unlock()

	for _, to := range tables {
		lineage, err := encodeLineage(to.t.lineage, rs.mem)
		if err != nil {
			return fmt.Errorf("output %s: %w", to.port, err)
		}
		name := entryTablesDir + to.port + ".arrows"
		if err := put(name, func(w io.Writer) error { return writeTableIPC(ctx, to.t, w, rs.mem) }); err != nil {
			return err
		}
		e.Tables[to.port] = &entryTable{Object: name, Rows: to.t.Rows(), Batches: to.t.NumBatches(), Lineage: lineage}
	}

	dir := filepath.Join(rs.dir, "stages", st.cfg.Name)
	e.StageDir = dir
	files, err := stageFiles(dir)
	if err != nil {
		return err
	}
	for _, rel := range files {
		if err := put(entryFilesDir+rel, func(w io.Writer) error {
			f, err := os.Open(filepath.Join(dir, filepath.FromSlash(rel)))
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = io.Copy(w, f)
			return err
		}); err != nil {
			return err
		}
	}
	e.CreatedAt = time.Now().UTC()
	b, err := json.MarshalIndent(e, "", "  ")
	if err != nil {
		return err
	}
	if err := store.Put(ctx, prefix+entryObjectName, bytes.NewReader(append(b, '\n'))); err != nil {
		return fmt.Errorf("%s: %w", entryObjectName, err)
	}
	return nil
}

// stageFiles lists the regular files under a stage directory, slash-separated and sorted;
// none when it does not exist.
func stageFiles(dir string) ([]string, error) {
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == dir && errors.Is(err, fs.ErrNotExist) {
				return fs.SkipAll
			}
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		out = append(out, filepath.ToSlash(rel))
		return nil
	})
	sort.Strings(out)
	return out, err
}

// hashCounter hashes and counts what is written through it.
type hashCounter struct {
	h hash.Hash
	n int64
}

func (c *hashCounter) Write(p []byte) (int, error) {
	c.h.Write(p)
	c.n += int64(len(p))
	return len(p), nil
}

// writeTableIPC writes a closed table's batches as an Arrow IPC stream (LZ4-compressed
// buffers), with its schema and metadata.
func writeTableIPC(ctx context.Context, t *Table, w io.Writer, mem memory.Allocator) error {
	iw := ipc.NewWriter(w, ipc.WithSchema(t.Schema()), ipc.WithAllocator(mem), ipc.WithLZ4())
	r := t.Scan(ctx)
	defer r.Release()
	for r.Next() {
		if err := iw.Write(r.RecordBatch()); err != nil {
			iw.Close()
			return err
		}
	}
	if err := r.Err(); err != nil {
		iw.Close()
		return err
	}
	return iw.Close()
}

func encodeLineage(steps []LineageStep, mem memory.Allocator) ([]entryStep, error) {
	out := make([]entryStep, len(steps))
	for i, s := range steps {
		es := entryStep{Stage: s.Stage, Kind: s.Kind, FitOn: s.FitOn, TrainOnly: s.TrainOnly, Replayable: s.Transform != nil}
		if s.Transform != nil {
			state, err := s.Transform.Marshal()
			if err != nil {
				return nil, fmt.Errorf("lineage step %d (%s of stage %s): %w", i+1, s.Kind, s.Stage, err)
			}
			es.State = state
		}
		if s.Input != nil {
			b, err := encodeSchema(s.Input, mem)
			if err != nil {
				return nil, err
			}
			es.InputSchema = b
		}
		out[i] = es
	}
	return out, nil
}

func decodeLineage(steps []entryStep, dec TransformDecoder, mem memory.Allocator) ([]LineageStep, error) {
	out := make([]LineageStep, len(steps))
	for i, es := range steps {
		s := LineageStep{Stage: es.Stage, Kind: es.Kind, FitOn: es.FitOn, TrainOnly: es.TrainOnly}
		if es.Replayable {
			if dec == nil {
				return nil, fmt.Errorf("no decoder for the %s transform of stage %s", es.Kind, es.Stage)
			}
			t, err := dec(es.Kind, es.State)
			if err != nil {
				return nil, fmt.Errorf("lineage step %d (%s of stage %s): %w", i+1, es.Kind, es.Stage, err)
			}
			s.Transform = t
		}
		if es.InputSchema != nil {
			sch, err := decodeSchema(es.InputSchema, mem)
			if err != nil {
				return nil, fmt.Errorf("lineage step %d: input schema: %w", i+1, err)
			}
			s.Input = sch
		}
		out[i] = s
	}
	return out, nil
}

// encodeSchema writes a schema (with its metadata) as an Arrow IPC stream without batches.
func encodeSchema(s *arrow.Schema, mem memory.Allocator) ([]byte, error) {
	var buf bytes.Buffer
	w := ipc.NewWriter(&buf, ipc.WithSchema(s), ipc.WithAllocator(mem))
	if err := w.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func decodeSchema(b []byte, mem memory.Allocator) (*arrow.Schema, error) {
	r, err := ipc.NewReader(bytes.NewReader(b), ipc.WithAllocator(mem))
	if err != nil {
		return nil, err
	}
	defer r.Release()
	return r.Schema(), nil
}

// getObject opens an object of an entry and checks, as it is read to the end, that it is the
// object the entry describes (size and SHA-256).
func getObject(ctx context.Context, s Store, key string, o entryObject) (io.ReadCloser, error) {
	r, err := s.Get(ctx, entryPrefix(key)+o.Name)
	if err != nil {
		return nil, err
	}
	return &checkedReader{rc: r, want: o, h: sha256.New()}, nil
}

type checkedReader struct {
	rc   io.ReadCloser
	want entryObject
	h    hash.Hash
	n    int64
}

func (c *checkedReader) Read(p []byte) (int, error) {
	n, err := c.rc.Read(p)
	c.h.Write(p[:n])
	c.n += int64(n)
	if err == io.EOF {
		if c.n != c.want.Size || hex.EncodeToString(c.h.Sum(nil)) != c.want.SHA256 {
			return n, fmt.Errorf("stored object %s is damaged: %d bytes, SHA-256 differs from its entry's", c.want.Name, c.n)
		}
	}
	return n, err
}

func (c *checkedReader) Close() error { return c.rc.Close() }

// objectOf returns the entry's object called name.
func (e *storeEntry) objectOf(name string) (entryObject, bool) {
	for _, o := range e.Objects {
		if o.Name == name {
			return o, true
		}
	}
	return entryObject{}, false
}

// restoreFiles copies the stored files of the stage directory into dir, each written
// atomically after its checksum was verified.
func restoreFiles(ctx context.Context, s Store, e *storeEntry, dir string) error {
	for _, o := range e.Objects {
		rel, ok := strings.CutPrefix(o.Name, entryFilesDir)
		if !ok {
			continue
		}
		clean := path.Clean(rel)
		if clean != rel || strings.HasPrefix(clean, "../") || path.IsAbs(clean) {
			return fmt.Errorf("stored file %q leaves the stage directory", rel)
		}
		dst := filepath.Join(dir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		r, err := getObject(ctx, s, e.Key, o)
		if err != nil {
			return fmt.Errorf("%s: %w", o.Name, err)
		}
		err = WriteAtomic(dst, func(f *os.File) error {
			_, err := io.Copy(f, ctxReader{ctx: ctx, r: r})
			return err
		})
		r.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", o.Name, err)
		}
	}
	return nil
}

// storedTable is an open stored table: its object, checked as it is read, and the IPC
// reader of its stream, whose schema holds the table's split role and column roles.
type storedTable struct {
	rc io.ReadCloser
	ir *ipc.Reader
	// keep, when set, is called once: with the batches read (a reference each, for it) once
	// the whole object has been read and its sum checked, or with nil when it was not.
	keep func(recs []arrow.RecordBatch)
	kept []arrow.RecordBatch
}

func openStoredTable(ctx context.Context, s Store, e *storeEntry, o entryObject, mem memory.Allocator) (*storedTable, error) {
	rc, err := getObject(ctx, s, e.Key, o)
	if err != nil {
		return nil, err
	}
	ir, err := ipc.NewReader(ctxReader{ctx: ctx, r: rc}, ipc.WithAllocator(mem))
	if err != nil {
		rc.Close()
		return nil, fmt.Errorf("%s: %w", o.Name, err)
	}
	return &storedTable{rc: rc, ir: ir}, nil
}

func (st *storedTable) schema() *arrow.Schema { return st.ir.Schema() }

// fill appends every batch to t and closes it (with the error, if reading fails), then
// closes the stored table.
func (st *storedTable) fill(t *Table) error {
	err := func() error {
		defer st.abandon()
		for st.ir.Next() {
			rec := st.ir.RecordBatch()
			if err := t.Append(rec); err != nil {
				return err
			}
			if st.keep != nil {
				rec.Retain()
				st.kept = append(st.kept, rec)
			}
		}
		if err := st.ir.Err(); err != nil {
			return err
		}
		// The stream's end marker is read; reading the object to its end checks its sum.
		if _, err := io.Copy(io.Discard, st.rc); err != nil {
			return err
		}
		if keep := st.keep; keep != nil {
			st.keep = nil
			keep(st.kept)
			st.kept = nil
		}
		return nil
	}()
	if err != nil {
		err = fmt.Errorf("read back from the stage store: %w", err)
	}
	t.Close(err)
	return err
}

// abandon closes the stored table without reading it (again).
func (st *storedTable) abandon() {
	if keep := st.keep; keep != nil {
		st.keep = nil
		releaseAll(st.kept)
		st.kept = nil
		keep(nil)
	}
	st.ir.Release()
	st.rc.Close()
}

// rewritePaths replaces the old stage directory by the new one in the strings of a decoded
// JSON value (info recorded a file's path, say).
func rewritePaths(v any, old, new string) any {
	if old == "" || old == new {
		return v
	}
	switch x := v.(type) {
	case string:
		return strings.ReplaceAll(x, old, new)
	case []any:
		for i := range x {
			x[i] = rewritePaths(x[i], old, new)
		}
	case map[string]any:
		for k := range x {
			x[k] = rewritePaths(x[k], old, new)
		}
	}
	return v
}
