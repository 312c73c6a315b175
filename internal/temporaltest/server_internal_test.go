package temporaltest

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writeScript writes an executable shell script standing in for the Temporal CLI.
func writeScript(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "temporal")
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestFindCLI(t *testing.T) {
	dir := t.TempDir()
	notExec := filepath.Join(dir, "notexec")
	if err := os.WriteFile(notExec, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	script := writeScript(t, "exit 0")
	onPath := t.TempDir()
	if err := os.Symlink(script, filepath.Join(onPath, "temporal")); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, env, path   string
		wantBin           string
		wantSkip, wantErr string // substrings; "" means none
	}{
		{name: "env", env: script, path: t.TempDir(), wantBin: script},
		{name: "env before PATH", env: script, path: onPath, wantBin: script},
		{name: "PATH", path: onPath, wantBin: filepath.Join(onPath, "temporal")},
		{name: "none", path: t.TempDir(), wantSkip: "run ./run.sh test, which builds the Temporal CLI"},
		{name: "env missing", env: filepath.Join(dir, "missing"), path: onPath, wantErr: "missing: stat"},
		{name: "env not executable", env: notExec, path: onPath, wantErr: "notexec is not an executable file"},
		{name: "env a directory", env: dir, path: onPath, wantErr: "is not an executable file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(EnvCLI, tc.env)
			t.Setenv("PATH", tc.path)
			bin, skip, err := findCLI()
			if bin != tc.wantBin {
				t.Errorf("bin %q, want %q", bin, tc.wantBin)
			}
			if (skip == "") != (tc.wantSkip == "") || !strings.Contains(skip, tc.wantSkip) {
				t.Errorf("skip %q, want one containing %q", skip, tc.wantSkip)
			}
			if (err == nil) != (tc.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) {
				t.Errorf("error %v, want one containing %q", err, tc.wantErr)
			}
			if err != nil && !strings.Contains(err.Error(), "$"+EnvCLI) {
				t.Errorf("error %v does not name $%s", err, EnvCLI)
			}
		})
	}
}

// TestStartFailures runs stand-ins for the CLI that never serve: the error says why, shows the
// end of the process's output, and the process is gone afterwards.
func TestStartFailures(t *testing.T) {
	for _, tc := range []struct {
		name, script string
		want         []string
	}{
		{
			name:   "exits",
			script: `echo "Error: unknown flag: --headless" >&2; exit 3`,
			want:   []string{"exited (exit status 3) before it answered", "Error: unknown flag: --headless", "start-dev on 127.0.0.1:"},
		},
		{
			name:   "never answers",
			script: `echo "starting, slowly" >&2; exec sleep 60`,
			want:   []string{"did not answer within 300ms", "starting, slowly"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := newServer(writeScript(t, tc.script), options{dbFile: filepath.Join(t.TempDir(), "t.db"), startTimeout: 300 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			err = s.startFirst()
			if err == nil {
				t.Fatal("start succeeded")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\ndoes not contain %q", err, w)
				}
			}
			if errors.Is(err, errPortTaken) {
				t.Errorf("error %v counted as a taken port", err)
			}
			if d := time.Since(start); d > 10*time.Second {
				t.Errorf("start took %v to fail", d)
			}
			if s.last == nil || !s.last.exited() {
				t.Error("the process still runs after the failed start")
			}
			if s.proc != nil {
				t.Error("a failed start left a running process recorded")
			}
		})
	}
}

// TestStartRetriesTakenPort: a stand-in that reports its port taken is started again on
// another port, startAttempts times in all.
func TestStartRetriesTakenPort(t *testing.T) {
	log := filepath.Join(t.TempDir(), "calls")
	script := writeScript(t, `echo "$@" >> `+log+`
echo "Error: can't set frontend port 1: listen tcp: address already in use" >&2; exit 1`)
	s, err := newServer(script, options{dbFile: filepath.Join(t.TempDir(), "t.db"), startTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	err = s.startFirst()
	if !errors.Is(err, errPortTaken) {
		t.Fatalf("error %v, want a taken port", err)
	}
	calls, rerr := os.ReadFile(log)
	if rerr != nil {
		t.Fatal(rerr)
	}
	if n := strings.Count(string(calls), "start-dev"); n != startAttempts {
		t.Errorf("started %d times, want %d:\n%s", n, startAttempts, calls)
	}
}

func TestDynamicConfigChecked(t *testing.T) {
	for _, tc := range []struct {
		key, value string
		ok         bool
	}{
		{"limit.maxIDLength", "20", true},
		{"frontend.enableUpdateWorkflowExecution", "true", true},
		{"history.defaultActivityRetryPolicy", `{"InitialIntervalInSeconds": 1}`, true},
		{"system.someDuration", "10s", false}, // a string must be quoted
		{"", "1", false},
	} {
		o := options{}
		WithDynamicConfig(tc.key, tc.value)(&o)
		_, err := newServer("temporal", o)
		if (err == nil) != tc.ok {
			t.Errorf("WithDynamicConfig(%q, %q): error %v, want ok=%v", tc.key, tc.value, err, tc.ok)
		}
		if err != nil && !strings.Contains(err.Error(), tc.key+"="+tc.value) {
			t.Errorf("error %v does not name the value", err)
		}
	}
}

func TestTailBuffer(t *testing.T) {
	b := &tailBuffer{max: 16}
	if got := b.tail(3); got != "(no output)" {
		t.Errorf("empty: %q", got)
	}
	for _, line := range []string{"one\n", "two\n", "three\n", "four\n", "five\n"} {
		if _, err := b.Write([]byte(line)); err != nil {
			t.Fatal(err)
		}
	}
	// 24 bytes written: the last 16 are kept.
	all := "one\ntwo\nthree\nfour\nfive\n"
	if got, want := string(b.buf), all[len(all)-16:]; got != want {
		t.Errorf("kept %q, want %q", got, want)
	}
	if got := b.tail(2); got != "four\nfive" {
		t.Errorf("tail(2) = %q, want %q", got, "four\nfive")
	}
}
