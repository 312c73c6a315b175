package train

import (
	"testing"

	"golang.org/x/sys/unix"
)

// Rows not in the page cache (the kernel reads them in a worker, not inside the system
// call) come back right too.
func TestMappedReadRowsUncached(t *testing.T) {
	d := blobs(10, 2000)
	md := mapBlobs(t, d, 0)
	if !ringAvailable(t) {
		t.Skip("io_uring unavailable")
	}
	if err := md.Mapped.f.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := unix.Fadvise(md.Mapped.fd, 0, 0, unix.FADV_DONTNEED); err != nil {
		t.Skipf("cannot drop the file's cached pages: %v", err)
	}
	rows := make([]int, 200)
	for i := range rows {
		rows[i] = (i * 997) % 2000
	}
	readRowsMatch(t, md.Mapped, d, rows)
	if calls := md.Mapped.ReadCalls(); calls >= int64(len(rows)) {
		t.Errorf("%d system calls for %d uncached rows: not read with io_uring", calls, len(rows))
	}
}
