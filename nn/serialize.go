package nn

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"

	"github.com/pipe-ml/pipe/internal/atomicfile"
	"github.com/pipe-ml/pipe/nn/optim"
)

// File names inside a model directory.
const (
	SpecFile    = "model.json"
	WeightsFile = "weights.bin"
)

// weightsMagic starts weights.bin; the format is
//
//	magic "PIPEW\x00\x00\x01" | uint32 tensor count |
//	per tensor: uint16 name length, name, uint8 rank, rank × uint32 dims |
//	then every tensor's float32 values in the same order,
//
// all little-endian.
var weightsMagic = [8]byte{'P', 'I', 'P', 'E', 'W', 0, 0, 1}

// Save writes the model to dir (created if needed) as model.json (the spec, with
// format_version) and weights.bin (params and buffers). Each file is written to a temporary
// name in dir, synced and renamed, so a reader never sees a partial file.
func (m *Model) Save(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("nn: save model: %w", err)
	}
	spec := m.spec
	spec.FormatVersion = FormatVersion
	js, err := json.MarshalIndent(spec, "", "  ")
	if err != nil {
		return fmt.Errorf("nn: save model: encode spec: %w", err)
	}
	var buf bytes.Buffer
	if err := m.writeWeights(&buf); err != nil {
		return err
	}
	if err := writeAtomic(filepath.Join(dir, WeightsFile), buf.Bytes()); err != nil {
		return err
	}
	if err := writeAtomic(filepath.Join(dir, SpecFile), append(js, '\n')); err != nil {
		return err
	}
	return nil
}

// stateTensors are the params then the buffers, the order of weights.bin.
func (m *Model) stateTensors() []*optim.Param {
	return append(append([]*optim.Param(nil), m.params...), m.buffers...)
}

func (m *Model) writeWeights(w io.Writer) error {
	ts := m.stateTensors()
	var hdr bytes.Buffer
	hdr.Write(weightsMagic[:])
	le := binary.LittleEndian
	hdr.Write(le.AppendUint32(nil, uint32(len(ts))))
	for _, t := range ts {
		if len(t.Name) > math.MaxUint16 {
			return fmt.Errorf("nn: save model: tensor name %q too long", t.Name)
		}
		hdr.Write(le.AppendUint16(nil, uint16(len(t.Name))))
		hdr.WriteString(t.Name)
		hdr.WriteByte(byte(len(t.Shape)))
		for _, d := range t.Shape {
			hdr.Write(le.AppendUint32(nil, uint32(d)))
		}
	}
	if _, err := w.Write(hdr.Bytes()); err != nil {
		return err
	}
	for _, t := range ts {
		b := make([]byte, 4*len(t.Value))
		for i, v := range t.Value {
			le.PutUint32(b[4*i:], math.Float32bits(v))
		}
		if _, err := w.Write(b); err != nil {
			return err
		}
	}
	return nil
}

func writeAtomic(path string, data []byte) error {
	if err := atomicfile.Write(path, data); err != nil {
		return fmt.Errorf("nn: save model: %w", err)
	}
	return nil
}

// Load reads a model written by Save. It checks the format version, that weights.bin holds
// exactly the model's tensors with the spec's shapes, and its length.
func Load(dir string) (*Model, error) {
	js, err := os.ReadFile(filepath.Join(dir, SpecFile))
	if err != nil {
		return nil, fmt.Errorf("nn: load model: %w", err)
	}
	var spec Spec
	if err := json.Unmarshal(js, &spec); err != nil {
		return nil, fmt.Errorf("nn: load model: %s: %w", SpecFile, err)
	}
	if spec.FormatVersion != FormatVersion {
		return nil, fmt.Errorf("nn: load model: %s has format_version %d, this build reads %d", filepath.Join(dir, SpecFile), spec.FormatVersion, FormatVersion)
	}
	m, err := Build(spec, rand.New(rand.NewPCG(0, 0)))
	if err != nil {
		return nil, fmt.Errorf("nn: load model: %w", err)
	}
	wb, err := os.ReadFile(filepath.Join(dir, WeightsFile))
	if err != nil {
		return nil, fmt.Errorf("nn: load model: %w", err)
	}
	if err := m.readWeights(wb); err != nil {
		return nil, fmt.Errorf("nn: load model: %s: %w", filepath.Join(dir, WeightsFile), err)
	}
	return m, nil
}

func (m *Model) readWeights(b []byte) error {
	le := binary.LittleEndian
	r := bytes.NewReader(b)
	var magic [8]byte
	if _, err := io.ReadFull(r, magic[:]); err != nil || magic != weightsMagic {
		return fmt.Errorf("not a pipe weights file (bad magic)")
	}
	var count uint32
	if err := binary.Read(r, le, &count); err != nil {
		return fmt.Errorf("truncated header")
	}
	ts := m.stateTensors()
	if int(count) != len(ts) {
		return fmt.Errorf("%d tensors, the spec's model has %d", count, len(ts))
	}
	for _, t := range ts {
		var nl uint16
		if err := binary.Read(r, le, &nl); err != nil {
			return fmt.Errorf("truncated header")
		}
		name := make([]byte, nl)
		if _, err := io.ReadFull(r, name); err != nil {
			return fmt.Errorf("truncated header")
		}
		rank, err := r.ReadByte()
		if err != nil {
			return fmt.Errorf("truncated header")
		}
		shape := make([]int, rank)
		for i := range shape {
			var d uint32
			if err := binary.Read(r, le, &d); err != nil {
				return fmt.Errorf("truncated header")
			}
			shape[i] = int(d)
		}
		if string(name) != t.Name {
			return fmt.Errorf("tensor %q where the spec's model has %q", name, t.Name)
		}
		if fmt.Sprint(shape) != fmt.Sprint(t.Shape) {
			return fmt.Errorf("tensor %q has shape %v, the spec says %v", name, shape, t.Shape)
		}
	}
	for _, t := range ts {
		need := 4 * len(t.Value)
		if r.Len() < need {
			return fmt.Errorf("truncated data at tensor %q", t.Name)
		}
		buf := make([]byte, need)
		_, _ = io.ReadFull(r, buf)
		for i := range t.Value {
			t.Value[i] = math.Float32frombits(le.Uint32(buf[4*i:]))
		}
	}
	if r.Len() != 0 {
		return fmt.Errorf("%d trailing bytes", r.Len())
	}
	return nil
}
