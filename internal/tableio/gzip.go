package tableio

import (
	"compress/flate"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
)

// CorruptFileError is a compressed file that cannot be read to its end: it is truncated, or a
// byte in it is corrupt (a failed CRC check, a broken deflate stream, garbage after the end).
// It concerns the whole file, never one row: no bad-row policy skips it, and the read fails
// whatever OnBadRow says.
type CorruptFileError struct {
	File   string // the file's name (CSVOptions.Name)
	Reason string // what is wrong, e.g. "the gzip stream ends early: the file is truncated"
	Err    error  // the decompressor's error
}

// Error says which file is damaged, how, and what to do.
func (e *CorruptFileError) Error() string {
	return fmt.Sprintf("%s: the file is truncated or corrupt: %s (%v). It cannot be read to its end, whatever on_bad_row says: "+
		"fetch or compress it again (`gzip -t FILE` tests a .gz file)", e.File, e.Reason, e.Err)
}

// Unwrap returns the decompressor's error.
func (e *CorruptFileError) Unwrap() error { return e.Err }

// gzipReader turns the errors of a gzip stream into *CorruptFileError.
type gzipReader struct {
	zr   *gzip.Reader
	name string
}

// openGzip starts reading f as a gzip stream.
func openGzip(f *os.File, name string) (*gzipReader, error) {
	var magic [2]byte
	if n, _ := f.ReadAt(magic[:], 0); n == 2 && (magic[0] != 0x1f || magic[1] != 0x8b) {
		return nil, fmt.Errorf("%s: not a gzip file (it does not start with gzip's magic bytes 1f 8b); "+
			"a .csv.gz file must be gzip-compressed CSV: rename a plain CSV file to .csv", name)
	}
	zr, err := gzip.NewReader(f)
	if err == nil {
		return &gzipReader{zr: zr, name: name}, nil
	}
	if errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: the file is empty (0 bytes), so it holds no gzip stream; a .csv.gz file must be gzip-compressed CSV", name)
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return nil, &CorruptFileError{File: name, Reason: "the gzip header is cut short: the file is truncated", Err: err}
	}
	return nil, fmt.Errorf("%s: not a gzip file (%v); a .csv.gz file must be gzip-compressed CSV: rename a plain CSV file to .csv", name, err)
}

func (g *gzipReader) Read(p []byte) (int, error) {
	n, err := g.zr.Read(p)
	if err == nil || err == io.EOF {
		return n, err
	}
	var reason string
	var corrupt flate.CorruptInputError
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF):
		reason = "the gzip stream ends early: the file is truncated"
	case errors.Is(err, gzip.ErrChecksum):
		reason = "the data does not match the gzip CRC: a byte of the file is corrupt"
	case errors.Is(err, gzip.ErrHeader):
		reason = "the bytes after the end of the gzip stream are not gzip data"
	case errors.As(err, &corrupt):
		reason = fmt.Sprintf("the compressed data is corrupt at byte %d of the file's deflate stream", int64(corrupt))
	default:
		return n, fmt.Errorf("%s: reading: %w", g.name, err)
	}
	return n, &CorruptFileError{File: g.name, Reason: reason, Err: err}
}

func (g *gzipReader) Close() error { return g.zr.Close() }
