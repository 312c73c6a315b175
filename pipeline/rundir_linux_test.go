//go:build linux

package pipeline

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/rs/zerolog"
)

// TestFullDiskTmpfs fills a real, small file system (a tmpfs: it needs root, and skips
// otherwise) during a run and leaves it full: the stage that hit it fails, zerolog reports no
// write error, and the space the run set aside still takes a final manifest that says so.
func TestFullDiskTmpfs(t *testing.T) {
	disk := t.TempDir()
	if err := syscall.Mount("tmpfs", disk, "tmpfs", 0, "size=512k"); err != nil {
		t.Skipf("cannot mount a small tmpfs (it needs root): %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(disk, 0) }) // before TempDir removes the mount point
	var handled int
	prev := zerolog.ErrorHandler
	zerolog.ErrorHandler = func(error) { handled++ }
	defer func() { zerolog.ErrorHandler = prev }()

	reg := testRegistry()
	reg.MustRegister(KindSpec{Kind: "fill", Shape: ShapeSink, Outputs: func(*StageConfig) []Port { return nil },
		New: func(c *StageConfig) (Stage, error) {
			// Another program fills the disk and keeps what it wrote; the stage fails on it.
			return StageFunc(func(ctx context.Context, sc *StageContext) error {
				f, err := os.Create(filepath.Join(disk, "filler"))
				if err != nil {
					return err
				}
				defer f.Close()
				chunk := make([]byte, 4<<10)
				for i := 0; ; i++ {
					sc.Log.Debug().Int("chunk", i).Msg("writing")
					if _, err := f.Write(chunk); err != nil {
						return fmt.Errorf("filler: %w", err)
					}
				}
			}), nil
		}})
	p, err := Parse([]byte("[stages.load]\nkind = \"gen\"\nrows = 100\n[stages.fill]\nkind = \"fill\"\n"), "t.toml", ".", reg, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(disk, "run")
	var console syncBuf
	_, err = Run(context.Background(), p, RunOptions{Dir: dir, LogWriter: &console, LogLevel: zerolog.DebugLevel})
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("want the stage's ENOSPC, got %v", err)
	}
	m := readManifest(t, dir)
	if m.Status != StatusFailed || m.Stages["fill"].Status != StatusFailed || !strings.Contains(m.Error, "no space left on device") {
		t.Errorf("final manifest: %s, fill %s, error %q", m.Status, m.Stages["fill"].Status, m.Error)
	}
	if m.FinishedAt == nil {
		t.Error("the manifest on disk is not the final one")
	}
	if handled != 0 {
		t.Errorf("zerolog reported %d write errors", handled)
	}
}
