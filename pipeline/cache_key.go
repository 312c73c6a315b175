package pipeline

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
)

// keyRecipe names the way a cache key is computed; changing what goes into a key changes it,
// so that no key of the old recipe is ever taken for one of the new.
const keyRecipe = "pipe.stage.key/1"

// keyEnv is what the keys of a run depend on beside the stages' configs.
type keyEnv struct {
	version string // pipe's version (RunOptions.Version)
	buildID string // RunOptions.BuildID
	dataDir string // RunOptions.DataDir, for Fingerprint
}

// stageKeys computes the cache key of every stage, each after the keys of its inputs. A stage
// whose key cannot be computed (its data's identity cannot be read, or an input's key is
// missing) has no key, and its problem is in problems: it is left out of the cache.
func stageKeys(ctx context.Context, p *Pipeline, env keyEnv) (keys map[string]string, problems map[string]error) {
	keys, problems = map[string]string{}, map[string]error{}
	var visit func(sc *StageConfig) string
	visit = func(sc *StageConfig) string {
		if k, done := keys[sc.Name]; done {
			return k
		}
		if _, failed := problems[sc.Name]; failed {
			return ""
		}
		inputs := map[string]string{}
		for _, ref := range sc.AllInputs() {
			dep, ok := p.byName[ref.Stage]
			if !ok {
				problems[sc.Name] = fmt.Errorf("input %s: no such stage", ref)
				return ""
			}
			k := visit(dep)
			if k == "" {
				problems[sc.Name] = fmt.Errorf("input %s has no cache key", ref)
				return ""
			}
			inputs[ref.Stage] = k
		}
		k, err := stageKey(ctx, sc, inputs, env)
		if err != nil {
			problems[sc.Name] = err
			return ""
		}
		keys[sc.Name] = k
		return k
	}
	for _, sc := range p.Stages {
		visit(sc)
	}
	return keys, problems
}

// stageKey is the SHA-256 of everything a stage's outputs depend on: its kind and the kind's
// version, pipe's version, the stage's name and the run seed (the seed the stage derives),
// its config with defaults filled in (input references and KeyExempt fields aside; file paths
// absolute), the keys
// and ports of its inputs, and the identity of the data it reads (its kind's Fingerprint).
// inputKeys maps each producing stage to its key.
func stageKey(ctx context.Context, sc *StageConfig, inputKeys map[string]string, env keyEnv) (string, error) {
	k := &keyHasher{h: sha256.New()}
	k.str(keyRecipe)
	k.str("kind")
	k.str(sc.Kind)
	k.int(int64(sc.Spec.Version))
	k.str("pipe")
	k.str(env.version)
	k.str(env.buildID)
	k.str("seed")
	k.str(sc.Name)
	k.int(int64(sc.RunSeed))
	k.str("config")
	var names []string
	for name := range sc.values {
		f := sc.Spec.field(name)
		if f != nil && (f.KeyExempt || f.Type == TypeInput || f.Type == TypeInputs) {
			continue
		}
		names = append(names, name)
	}
	sort.Strings(names)
	k.int(int64(len(names)))
	for _, name := range names {
		k.str(name)
		if f := sc.Spec.field(name); f != nil && f.Path == PathInput {
			// As the resolved config writes it (absolute), so that a run of the resolved
			// pipeline.toml (a resumed run) has the key of the run it came from.
			k.value(sc.Path(name))
			continue
		}
		k.value(sc.values[name])
	}
	k.str("inputs")
	for _, f := range sc.Spec.Fields {
		refs := sc.refs[f.Name]
		if len(refs) == 0 {
			continue
		}
		k.str(f.Name)
		k.int(int64(len(refs)))
		for _, r := range refs {
			k.str(inputKeys[r.Stage])
			k.str(r.Port)
		}
	}
	k.str("data")
	id, err := dataIdentity(ctx, sc, env)
	if err != nil {
		return "", fmt.Errorf("the identity of its data: %w", err)
	}
	k.str(id)
	return hex.EncodeToString(k.h.Sum(nil)), nil
}

// dataIdentity is the kind's Fingerprint, or the identity (path, size, modification time) of
// every file a PathInput field names.
func dataIdentity(ctx context.Context, sc *StageConfig, env keyEnv) (string, error) {
	if sc.Spec.Fingerprint != nil {
		return sc.Spec.Fingerprint(ctx, sc, FingerprintEnv{DataDir: env.dataDir})
	}
	var parts []string
	for _, f := range sc.Spec.Fields {
		if f.Path != PathInput || sc.String(f.Name) == "" {
			continue
		}
		id, err := FileIdentity(ctx, sc.Path(f.Name), false)
		if err != nil {
			return "", err
		}
		parts = append(parts, f.Name+"="+id)
	}
	k := &keyHasher{h: sha256.New()}
	for _, p := range parts {
		k.str(p)
	}
	if len(parts) == 0 {
		return "", nil
	}
	return hex.EncodeToString(k.h.Sum(nil)), nil
}

// FileIdentity returns the identity of a file, or of a directory's regular files, for a cache
// key. By default it is the absolute path, size and modification time of each (a file touched
// or rewritten gets a new identity, without reading it); with content, the SHA-256 of the
// content of each file (and, for a directory, their relative paths), so that a file moved,
// copied or touched without being changed keeps its identity. Reading stops when ctx is done.
func FileIdentity(ctx context.Context, path string, content bool) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	st, err := os.Stat(abs)
	if err != nil {
		return "", err
	}
	k := &keyHasher{h: sha256.New()}
	one := func(p, name string, info fs.FileInfo) error {
		k.str(name)
		if !content {
			k.int(info.Size())
			k.int(info.ModTime().UnixNano())
			return nil
		}
		sum, err := fileSHA256(ctx, p)
		if err != nil {
			return err
		}
		k.str(sum)
		return nil
	}
	if !content {
		k.str(abs)
	}
	if !st.IsDir() {
		if err := one(abs, "", st); err != nil {
			return "", err
		}
		return hex.EncodeToString(k.h.Sum(nil)), nil
	}
	err = filepath.WalkDir(abs, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(abs, p)
		if err != nil {
			return err
		}
		return one(p, filepath.ToSlash(rel), info)
	})
	if err != nil {
		return "", err
	}
	return hex.EncodeToString(k.h.Sum(nil)), nil
}

// fileSHA256 hashes a file's content, stopping when ctx is done.
func fileSHA256(ctx context.Context, path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, ctxReader{ctx: ctx, r: f}); err != nil {
		return "", fmt.Errorf("hash %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// ctxReader stops reading when its context is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, context.Cause(c.ctx)
	}
	return c.r.Read(p)
}

// keyHasher writes values into a hash in a canonical, unambiguous form: each value is tagged
// with its type and strings are length-prefixed, so that no two different configs give the
// same bytes; map keys are sorted, floats written as their exact bits.
type keyHasher struct{ h hash.Hash }

func (k *keyHasher) str(s string) {
	k.h.Write([]byte(strconv.Itoa(len(s))))
	k.h.Write([]byte{':'})
	k.h.Write([]byte(s))
}

func (k *keyHasher) int(v int64) {
	k.h.Write([]byte("i" + strconv.FormatInt(v, 10) + ";"))
}

func (k *keyHasher) value(v any) {
	switch x := v.(type) {
	case nil:
		k.h.Write([]byte("n"))
	case string:
		k.h.Write([]byte("s"))
		k.str(x)
	case bool:
		if x {
			k.h.Write([]byte("t"))
		} else {
			k.h.Write([]byte("f"))
		}
	case int64:
		k.int(x)
	case int:
		k.int(int64(x))
	case float64:
		k.h.Write([]byte("d" + strconv.FormatUint(math.Float64bits(x), 16) + ";"))
	case []string:
		k.h.Write([]byte("l"))
		k.int(int64(len(x)))
		for _, s := range x {
			k.str(s)
		}
	case []any:
		k.h.Write([]byte("a"))
		k.int(int64(len(x)))
		for _, e := range x {
			k.value(e)
		}
	case map[string]any:
		keys := make([]string, 0, len(x))
		for name := range x {
			keys = append(keys, name)
		}
		sort.Strings(keys)
		k.h.Write([]byte("m"))
		k.int(int64(len(keys)))
		for _, name := range keys {
			k.str(name)
			k.value(x[name])
		}
	default:
		// A TOML date or time (a TypeAny field): its printed form is exact.
		k.h.Write([]byte("x"))
		k.str(fmt.Sprintf("%T:%v", v, v))
	}
}
