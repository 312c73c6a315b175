package temporaltest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/log"
)

// EnvCLI names the environment variable that holds the path of the Temporal CLI binary.
const EnvCLI = "PIPE_TEMPORAL_CLI"

// Namespace is the namespace every server of this package serves (the dev server creates it).
const Namespace = "default"

const (
	defaultStartTimeout = 60 * time.Second
	// stopGrace is how long Stop waits after SIGTERM before it sends SIGKILL; the dev server
	// stops in about 2 s.
	stopGrace = 15 * time.Second
	// outputKeep is how much of the server's output (stdout and stderr) is kept for errors.
	outputKeep = 64 << 10
	// outputLines is how many of its last lines an error or a failed test's log shows.
	outputLines = 40
	// startAttempts bounds the tries of a first start whose free port was taken meanwhile.
	startAttempts = 3
)

// Option changes how Start runs the server.
type Option func(*options)

type options struct {
	dbFile       string
	dynamic      []string
	startTimeout time.Duration
}

// WithDBFile keeps the server's state in path instead of a file in t.TempDir(), so that it
// outlives the test: a later Start with the same path finds the workflows of this one.
// Default: a new file in t.TempDir().
func WithDBFile(path string) Option {
	return func(o *options) { o.dbFile = path }
}

// WithDynamicConfig sets one of the server's dynamic config values (--dynamic-config-value):
// key is its name (e.g. "limit.maxIDLength") and jsonValue its value written as JSON (`20`,
// `true`, `"10s"`). Start fails the test when jsonValue is not JSON. It may be given more than once.
func WithDynamicConfig(key, jsonValue string) Option {
	return func(o *options) { o.dynamic = append(o.dynamic, key+"="+jsonValue) }
}

// WithStartTimeout bounds how long Start and Restart wait for the server to answer.
// Default: 60 s (the dev server answers in 1-5 s; the margin is for a loaded CI machine).
func WithStartTimeout(d time.Duration) Option {
	return func(o *options) { o.startTimeout = d }
}

// Server is a running Temporal dev server. Its methods are safe for concurrent use.
type Server struct {
	bin     string
	dbFile  string
	dynamic []string
	timeout time.Duration

	mu   sync.Mutex
	port int
	proc *process // nil while stopped
	last *process // the latest process, kept for its output after it stopped
}

// Start starts a Temporal dev server for tb and waits until its frontend answers and knows the
// namespace. It registers a cleanup that stops it, and logs the end of its output first when
// the test failed. It skips tb when no Temporal CLI is found, and fails it when the server does
// not start.
func Start(tb testing.TB, opts ...Option) *Server {
	tb.Helper()
	bin, skip, err := findCLI()
	if err != nil {
		tb.Fatalf("temporaltest: %v", err)
	}
	if skip != "" {
		tb.Skip(skip)
	}
	o := options{startTimeout: defaultStartTimeout}
	for _, opt := range opts {
		opt(&o)
	}
	if o.dbFile == "" {
		o.dbFile = filepath.Join(tb.TempDir(), "temporal.db")
	}
	s, err := newServer(bin, o)
	if err != nil {
		tb.Fatalf("temporaltest: %v", err)
	}
	// Cleanups run last-registered first: the server stops after the test's own cleanups
	// (a worker or a client registered after Start stops first).
	tb.Cleanup(func() {
		if tb.Failed() {
			tb.Logf("temporaltest: the last lines of the Temporal server on %s:\n%s", s.HostPort(), s.Output())
		}
		s.Stop()
	})
	if err := s.startFirst(); err != nil {
		tb.Fatalf("temporaltest: %v", err)
	}
	return s
}

// findCLI returns the Temporal CLI to run: $PIPE_TEMPORAL_CLI, else `temporal` on PATH. With
// neither it returns a reason to skip; a $PIPE_TEMPORAL_CLI that is not an executable file is
// an error.
func findCLI() (bin, skip string, err error) {
	if p := os.Getenv(EnvCLI); p != "" {
		fi, err := os.Stat(p)
		if err != nil {
			return "", "", fmt.Errorf("$%s=%s: %w; unset it or point it at a Temporal CLI binary (./run.sh test builds one)", EnvCLI, p, err)
		}
		if fi.IsDir() || fi.Mode().Perm()&0o111 == 0 {
			return "", "", fmt.Errorf("$%s=%s is not an executable file; point it at a Temporal CLI binary (./run.sh test builds one)", EnvCLI, p)
		}
		return p, "", nil
	}
	if p, err := exec.LookPath("temporal"); err == nil {
		return p, "", nil
	}
	return "", "no Temporal CLI: $" + EnvCLI + " is unset and there is no `temporal` on PATH; " +
		"run ./run.sh test, which builds the Temporal CLI", nil
}

func newServer(bin string, o options) (*Server, error) {
	for _, kv := range o.dynamic {
		key, value, _ := strings.Cut(kv, "=")
		if key == "" || !json.Valid([]byte(value)) {
			return nil, fmt.Errorf("dynamic config %q: want a key and a JSON value (WithDynamicConfig(\"limit.maxIDLength\", \"20\"), strings quoted: `\"10s\"`)", kv)
		}
	}
	if o.startTimeout <= 0 {
		o.startTimeout = defaultStartTimeout
	}
	return &Server{bin: bin, dbFile: o.dbFile, dynamic: o.dynamic, timeout: o.startTimeout}, nil
}

// HostPort is the address of the server's frontend, "127.0.0.1:PORT", for client.Options.HostPort.
func (s *Server) HostPort() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port))
}

// Namespace is the namespace to use on this server ("default").
func (s *Server) Namespace() string { return Namespace }

// DBFile is the path of the SQLite file that holds the server's state.
func (s *Server) DBFile() string { return s.dbFile }

// ClientOptions are the client.Options that reach this server: its HostPort, its Namespace,
// and a logger that discards the SDK's logs (a worker logs a warning for each failed poll while
// the server restarts).
func (s *Server) ClientOptions() client.Options {
	return client.Options{
		HostPort:  s.HostPort(),
		Namespace: s.Namespace(),
		Logger:    quietLogger(),
	}
}

// Dial connects a client to the server with ClientOptions, and closes it when tb ends (before
// the server stops). It fails tb when the server does not answer.
func (s *Server) Dial(tb testing.TB) client.Client {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	defer cancel()
	c, err := client.DialContext(ctx, s.ClientOptions())
	if err != nil {
		tb.Fatalf("temporaltest: dial the Temporal server on %s: %v", s.HostPort(), err)
	}
	tb.Cleanup(c.Close)
	return c
}

// Output is the end of the server's output (stdout and stderr together, its last lines), of
// the running process or else of the latest one.
func (s *Server) Output() string {
	s.mu.Lock()
	p := s.last
	s.mu.Unlock()
	if p == nil {
		return ""
	}
	return p.out.tail(outputLines)
}

// Stop stops the server: SIGTERM, then SIGKILL when it has not exited after 15 s. It returns
// when the process has exited. Stopping a stopped server does nothing.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopLocked(false)
}

// Kill stops the server at once with SIGKILL, as a crash would, and returns when the process
// has exited. Restart starts it again.
func (s *Server) Kill() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopLocked(true)
}

// Restart stops the server (if it runs) and starts it again on the same port with the same
// database file, and waits until it answers. Workflows started before Restart are there after
// it. A worker or client keeps working across it: they reconnect.
func (s *Server) Restart() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopLocked(false)
	if err := s.startLocked(); err != nil {
		return fmt.Errorf("restart: %w", err)
	}
	return nil
}

func (s *Server) stopLocked(kill bool) {
	p := s.proc
	if p == nil {
		return
	}
	s.proc = nil
	if !kill {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
			return
		case <-time.After(stopGrace):
		}
	}
	_ = p.cmd.Process.Kill()
	<-p.done
}

// startFirst starts the server on a free port; when the port was taken between finding it and
// the server binding it, it tries another.
func (s *Server) startFirst() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var err error
	for range startAttempts {
		s.port, err = freePort()
		if err != nil {
			return err
		}
		err = s.startLocked()
		if err == nil || !errors.Is(err, errPortTaken) {
			return err
		}
	}
	return err
}

var errPortTaken = errors.New("port taken")

// startLocked starts the process on s.port and waits until it answers; on failure the process
// is stopped and the error holds the end of its output.
func (s *Server) startLocked() error {
	args := []string{
		"server", "start-dev",
		"--headless",
		"--ip", "127.0.0.1",
		"--port", strconv.Itoa(s.port),
		"--db-filename", s.dbFile,
		"--log-level", "warn",
		"--color", "never",
	}
	for _, kv := range s.dynamic {
		args = append(args, "--dynamic-config-value", kv)
	}
	p, err := launch(s.bin, args)
	if err != nil {
		return fmt.Errorf("start %s: %w", s.bin, err)
	}
	s.last = p
	hostPort := net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port))
	if err := waitReady(p, hostPort, s.timeout); err != nil {
		if p.exited() {
			<-p.done
		} else {
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		out := p.out.tail(outputLines)
		if strings.Contains(out, "address already in use") || strings.Contains(out, "can't set frontend port") {
			err = fmt.Errorf("%w: %w", errPortTaken, err)
		}
		return fmt.Errorf("temporal server start-dev on %s (%s): %w; its output ends with:\n%s", hostPort, s.bin, err, out)
	}
	s.proc = p
	return nil
}

// process is one run of the CLI.
type process struct {
	cmd  *exec.Cmd
	out  *tailBuffer
	done chan struct{} // closed once the process has exited and been reaped
	err  error         // cmd.Wait's error, set before done is closed
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// launch starts bin with args, its output going to a tail buffer. The child is started from a
// goroutine locked to its OS thread, which lives until the child is reaped: on Linux the child
// gets SIGKILL when that thread dies (Pdeathsig), so a test binary that dies (a test timeout, a
// panic) leaves no server behind.
func launch(bin string, args []string) (*process, error) {
	p := &process{out: &tailBuffer{max: outputKeep}, done: make(chan struct{})}
	cmd := exec.Command(bin, args...)
	cmd.Stdout = p.out
	cmd.Stderr = p.out
	cmd.SysProcAttr = sysProcAttr()
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread exits with this goroutine, after Wait
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		p.err = cmd.Wait()
		close(p.done)
	}()
	if err := <-started; err != nil {
		return nil, err
	}
	p.cmd = cmd
	return p, nil
}

// waitReady waits until the frontend on hostPort answers a health check and describes the
// namespace, or the process exits, or timeout passes.
func waitReady(p *process, hostPort string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var last error
	for {
		if p.exited() {
			return fmt.Errorf("the server exited (%v) before it answered", p.err)
		}
		last = probe(ctx, hostPort)
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the server did not answer within %v (last try: %v)", timeout, last)
		case <-p.done:
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// probe dials hostPort, checks the frontend's health and describes the namespace, each
// bounded by 2 s.
func probe(ctx context.Context, hostPort string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	c, err := client.DialContext(ctx, client.Options{HostPort: hostPort, Namespace: Namespace, Logger: quietLogger()})
	if err != nil {
		return fmt.Errorf("dial: %w", err)
	}
	defer c.Close()
	if _, err := c.CheckHealth(ctx, &client.CheckHealthRequest{}); err != nil {
		return fmt.Errorf("health check: %w", err)
	}
	if _, err := c.WorkflowService().DescribeNamespace(ctx, &workflowservice.DescribeNamespaceRequest{Namespace: Namespace}); err != nil {
		return fmt.Errorf("describe namespace %q: %w", Namespace, err)
	}
	return nil
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func quietLogger() log.Logger {
	return log.NewStructuredLogger(slog.New(slog.DiscardHandler))
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if over := len(b.buf) - b.max; over > 0 {
		b.buf = append(b.buf[:0], b.buf[over:]...)
	}
	return len(p), nil
}

// tail returns the last n lines written, or "(no output)".
func (b *tailBuffer) tail(n int) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	text := bytes.TrimRight(b.buf, "\n")
	if len(text) == 0 {
		return "(no output)"
	}
	lines := bytes.Split(text, []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}
