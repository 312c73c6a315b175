// Package tableio reads and writes pipe's tables: CSV (optionally gzip-compressed), Parquet
// and Arrow IPC files, as streams of Arrow record batches.
//
// # Readers
//
// Every reader follows arrow-go's array.RecordReader conventions (Reader): Schema, Next,
// RecordBatch (owned by the reader, valid until the next Next; Retain to keep it), Err and
// Release. Every allocating call takes a memory.Allocator, which allocates the batches.
// OpenFile picks the reader by the file name's extension; NewCSVReader reads any io.Reader.
//
// # CSV
//
// The CSV reader accepts RFC 4180 text: a header row naming the columns, quoted fields that
// may hold delimiters, doubled quotes ("") and line breaks, "\n" or "\r\n" line ends, an
// optional UTF-8 byte-order mark, and an optional final line break. Blank lines are skipped
// (as pandas does); they are not rows. A row with the wrong number of fields, a field that
// does not parse as its column's type, a NaN or infinite number (pipe never lets NaN in
// silently) or a broken quote is a bad row: by default it stops the read with a *RowError
// that names the file, line, row and column and says how to fix it; with OnBadRow = "skip"
// it is dropped, counted (SkippedRows) and the first ten are described (SkippedExamples).
//
// Text must be UTF-8: a field of a string column (or a column name) that is not is a bad row
// (or a header error) naming its row and column, and a Parquet or IPC string value that is not
// is an error naming its row and column. A header that reads as one column holding another
// separator (';', a tab, ',', '|') gives a warning (CSVReader.Warnings) that names the
// delimiter to set, and the errors such a file causes carry the same hint.
//
// A .csv.gz whose gzip stream is truncated or corrupt (a failed CRC check) is a
// *CorruptFileError for the whole file, whatever OnBadRow says: a bad row that the damage
// produced before the decompressor noticed it is reported as the damage.
//
// Column types are declared (CSVOptions.Schema, by column name) or inferred from the first
// SampleRows rows (int64, float64, bool or utf8). A later value that does not fit an inferred
// type is not widened silently: it is a *RowError naming its row, whose hint says to declare
// the column's type (widening is impossible once earlier batches have gone downstream).
//
// # Why a hand-written CSV parser
//
// arrow-go's arrow/csv reader is built on encoding/csv, which allocates a string per field
// and a []string per row, and it infers types from the first row only, so a column whose
// first value is empty or an integer is mistyped. pipe's reader:
//   - reads the input in large blocks and cuts them at row boundaries found outside quotes
//     (SIMD byte searches for '\n' and '"', with quote parity), in one goroutine;
//   - parses whole blocks of up to BatchRows rows concurrently (CSVOptions.Workers), with
//     integer and decimal parsing on bytes (an exact fast path; strconv.ParseFloat only for
//     unusual forms) and no per-field allocation for numeric columns; numbers are parsed
//     row-major into a small cache-resident buffer and scattered 32 rows at a time into
//     Arrow buffers from the allocator (writing one value per column per row would touch a
//     cache line and a page per column per row);
//   - returns batches in input order whatever the number of workers, so output is
//     deterministic, and reports the first bad row in input order;
//   - infers types from a sample of many rows.
//
// A Release while the input blocks in Read (a pipe, a network stream) waits for that Read.
//
// # Writers
//
// Writer (and WriteFile) writes CSV, Parquet (zstd, with the Arrow schema stored so field
// metadata such as pipe.role survives) or Arrow IPC files atomically: to a temporary file in
// the same directory, fsynced and renamed into place on Close, removed on Abort or error.
package tableio
