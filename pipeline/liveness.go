package pipeline

import (
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// StatusCrashed is how ReadRun reports a run whose manifest still says "running" but whose
// process is gone (killed, out of memory, the machine rebooted): it never wrote a final
// manifest. It is never written into a manifest.
const StatusCrashed = "crashed"

// DefaultHeartbeat is how often a running run rewrites its manifest's heartbeat_at.
const DefaultHeartbeat = 10 * time.Second

// staleHeartbeats is how many heartbeat intervals may pass without one before ReadRun takes a
// run on another host for crashed.
const staleHeartbeats = 6

// ReadRun reads the manifest of the run in dir and says how the run stands: the manifest's
// status, except that a "running" run whose process is gone is StatusCrashed. On the run's
// own host that is decided by the run's lock (a run holds it for its whole life and the
// kernel drops it when the process dies, however it dies), or, without a lock file, by
// whether its pid is alive. For a run on another host (a shared file system) it is decided
// by the heartbeat: none for staleHeartbeats × heartbeat_seconds means crashed.
func ReadRun(dir string) (*Manifest, string, error) {
	b, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		return nil, "", err
	}
	m, err := ReadManifest(b)
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", filepath.Join(dir, "manifest.json"), err)
	}
	return m, m.liveStatus(dir, time.Now()), nil
}

// liveStatus is ReadRun's decision for the manifest of the run in dir, at now.
func (m *Manifest) liveStatus(dir string, now time.Time) string {
	if m.Status != StatusRunning {
		return m.Status
	}
	host := thisProcess().Host
	if m.Host == "" || m.Host == host {
		if held, known := probeLock(filepath.Join(dir, LockFile)); known {
			if held {
				return StatusRunning
			}
			return StatusCrashed
		}
		if m.Host == host && m.PID > 0 {
			if alive, known := processAlive(m.PID); known && !alive {
				return StatusCrashed
			}
		}
	}
	if m.HeartbeatAt != nil {
		every := time.Duration(m.HeartbeatSeconds * float64(time.Second))
		if every <= 0 {
			every = DefaultHeartbeat
		}
		if now.Sub(*m.HeartbeatAt) > staleHeartbeats*every {
			return StatusCrashed
		}
	}
	return StatusRunning
}
