package cli

import (
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/pipe-ml/pipe/pipeline"
)

// display writes log lines to the terminal and, on a TTY, keeps a progress bar below them: the
// number of stages done, and what the running stages report (epochs, rows, members).
type display struct {
	mu      sync.Mutex
	w       io.Writer
	tty     bool
	bar     *progressbar.ProgressBar
	running map[string]string
	done    int
}

func newDisplay(w io.Writer, progress bool, stages int) *display {
	d := &display{w: w, running: map[string]string{}}
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		d.tty = true
	}
	if d.tty && progress {
		d.bar = progressbar.NewOptions(stages,
			progressbar.OptionSetWriter(w),
			progressbar.OptionSetWidth(24),
			progressbar.OptionShowCount(),
			progressbar.OptionSetPredictTime(false),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionClearOnFinish(),
			progressbar.OptionSetDescription("stages"),
		)
	}
	return d
}

// Write prints a log line above the bar.
func (d *display) Write(p []byte) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.bar != nil {
		_ = d.bar.Clear()
	}
	n, err := d.w.Write(p)
	if d.bar != nil {
		_ = d.bar.RenderBlank()
	}
	return n, err
}

func (d *display) event(ev pipeline.Event) {
	if d.bar == nil {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	switch ev.Status {
	case pipeline.StatusRunning:
		d.running[ev.Stage] = ""
	case "":
		switch {
		case ev.Total > 0:
			d.running[ev.Stage] = fmt.Sprintf("%s %d/%d", ev.Unit, ev.Done, ev.Total)
		default:
			d.running[ev.Stage] = fmt.Sprintf("%d %s", ev.Done, ev.Unit)
		}
	default:
		delete(d.running, ev.Stage)
		d.done++
		_ = d.bar.Set(d.done)
	}
	names := make([]string, 0, len(d.running))
	for n := range d.running {
		names = append(names, n)
	}
	sort.Strings(names)
	parts := make([]string, 0, len(names))
	for _, n := range names {
		if s := d.running[n]; s != "" {
			parts = append(parts, n+": "+s)
		} else {
			parts = append(parts, n)
		}
	}
	d.bar.Describe(strings.Join(parts, "  "))
}

func (d *display) finish() {
	if d.bar != nil {
		d.mu.Lock()
		_ = d.bar.Finish()
		d.mu.Unlock()
	}
}

func sortStrings(s []string) { sort.Strings(s) }
