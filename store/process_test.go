package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pipe-ml/pipe/pipeline"
)

// The writers of TestTwoProcessesWriteOneStore.
const (
	helperDirEnv    = "PIPE_STORE_HELPER_DIR"
	helperWriterEnv = "PIPE_STORE_HELPER_WRITER"
	writers         = 2
	ownKeys         = 40 // keys each writer alone writes
	sharedKeys      = 8  // keys every writer writes, each several times
	sharedRounds    = 4
)

// payload is the object writer w puts under key in round: a header (writer, round, body
// length), a body of random bytes and the SHA-256 of header and body. Sizes differ by writer
// and round, so an object mixed from two writes shows in its length or its hash.
func payload(w, round int, key string) []byte {
	h := sha256.Sum256([]byte(key))
	rng := rand.New(rand.NewPCG(uint64(w)<<32|uint64(round), binary.LittleEndian.Uint64(h[:8])))
	n := 100_000 + rng.IntN(200_000)
	b := make([]byte, 24, 24+n+sha256.Size)
	binary.LittleEndian.PutUint64(b[0:], uint64(w))
	binary.LittleEndian.PutUint64(b[8:], uint64(round))
	binary.LittleEndian.PutUint64(b[16:], uint64(n))
	for range n / 8 {
		b = binary.LittleEndian.AppendUint64(b, rng.Uint64())
	}
	sum := sha256.Sum256(b)
	return append(b, sum[:]...)
}

// checkWhole says what is wrong with an object read back, or "" when it is a whole payload.
func checkWhole(b []byte) string {
	if len(b) < 24+sha256.Size {
		return fmt.Sprintf("%d bytes, shorter than a header", len(b))
	}
	n := binary.LittleEndian.Uint64(b[16:])
	if uint64(len(b)) != 24+n/8*8+sha256.Size {
		return fmt.Sprintf("%d bytes, the header says %d", len(b), 24+n/8*8+sha256.Size)
	}
	body, sum := b[:len(b)-sha256.Size], b[len(b)-sha256.Size:]
	if got := sha256.Sum256(body); !bytes.Equal(got[:], sum) {
		return "its checksum does not match: a mix of two writes"
	}
	return ""
}

// TestHelperProcess is one writer of TestTwoProcessesWriteOneStore, run as a process of its
// own; it does nothing in a normal test run.
func TestHelperProcess(t *testing.T) {
	dir := os.Getenv(helperDirEnv)
	if dir == "" {
		t.Skip("a helper of TestTwoProcessesWriteOneStore")
	}
	w, err := strconv.Atoi(os.Getenv(helperWriterEnv))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	s, err := Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// Start together: wait for the parent's signal file.
	for deadline := time.Now().Add(30 * time.Second); ; {
		if _, err := os.Stat(filepath.Join(filepath.Dir(dir), "go")); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no start signal")
		}
		time.Sleep(time.Millisecond)
	}
	for i := range ownKeys {
		key := fmt.Sprintf("stages/w%d-%02d/table.ipc", w, i)
		if err := s.Put(ctx, key, bytes.NewReader(payload(w, 0, key))); err != nil {
			t.Fatal(err)
		}
		if round := i % (ownKeys / sharedRounds); round < sharedKeys {
			key := fmt.Sprintf("stages/shared/obj-%d", round)
			if err := s.Put(ctx, key, bytes.NewReader(payload(w, i, key))); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// TestTwoProcessesWriteOneStore runs writers in processes of their own on one store
// directory at once, writing keys of their own and the same keys, then checks that every
// object is there and whole, and that no temporary file is left.
func TestTwoProcessesWriteOneStore(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	root := t.TempDir()
	dir := filepath.Join(root, "store")
	var cmds []*exec.Cmd
	var outs []*bytes.Buffer
	for w := range writers {
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
		cmd.Env = append(os.Environ(), helperDirEnv+"="+dir, helperWriterEnv+"="+strconv.Itoa(w))
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds, outs = append(cmds, cmd), append(outs, &out)
	}
	ctx := context.Background()
	s, err := Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := os.WriteFile(filepath.Join(root, "go"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	waited := make(chan error, 1)
	go func() {
		for i, cmd := range cmds {
			if err := cmd.Wait(); err != nil {
				waited <- fmt.Errorf("writer %d: %v\n%s", i, err, outs[i])
				return
			}
		}
		waited <- nil
	}()
	// While they write, this process reads the shared keys: what it finds is whole.
	reads, torn := 0, 0
	for running := true; running; {
		select {
		case err := <-waited:
			if err != nil {
				t.Fatal(err)
			}
			running = false
		default:
		}
		for k := range sharedKeys {
			r, err := s.Get(ctx, fmt.Sprintf("stages/shared/obj-%d", k))
			if errors.Is(err, pipeline.ErrNotFound) {
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(r)
			r.Close()
			if err != nil {
				t.Fatal(err)
			}
			reads++
			if p := checkWhole(b); p != "" {
				if torn++; torn <= 3 {
					t.Errorf("read while writing: obj-%d: %s", k, p)
				}
			}
		}
	}
	t.Logf("%d reads while writing, %d torn", reads, torn)
	for i := range cmds {
		if !strings.Contains(outs[i].String(), "PASS") {
			t.Fatalf("writer %d did not run:\n%s", i, outs[i])
		}
	}
	objs, err := s.List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if want := writers*ownKeys + sharedKeys; len(objs) != want {
		t.Errorf("%d objects, want %d", len(objs), want)
	}
	for w := range writers {
		for i := range ownKeys {
			key := fmt.Sprintf("stages/w%d-%02d/table.ipc", w, i)
			if got := get(t, s, key); !bytes.Equal(got, payload(w, 0, key)) {
				t.Errorf("%s: not what writer %d put (%s)", key, w, checkWhole(got))
			}
		}
	}
	for k := range sharedKeys {
		key := fmt.Sprintf("stages/shared/obj-%d", k)
		if problem := checkWhole(get(t, s, key)); problem != "" {
			t.Errorf("%s: %s", key, problem)
		}
	}
	if files := filesUnder(t, dir); len(files) != len(objs) {
		t.Errorf("%d files in the store for %d objects: temporary files left", len(files), len(objs))
	}
}

// TestCheckWhole makes sure the check above catches a torn object.
func TestCheckWhole(t *testing.T) {
	a, b := payload(0, 1, "k"), payload(1, 1, "k")
	if p := checkWhole(a); p != "" {
		t.Fatalf("a whole payload: %s", p)
	}
	torn := append(append([]byte(nil), a[:len(a)/2]...), b[len(a)/2:]...)
	if checkWhole(torn) == "" || checkWhole(a[:len(a)-1]) == "" {
		t.Error("a torn or short object passes as whole")
	}
}
