package storetest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/pipe-ml/pipe/pipeline"
)

// MemStore is a pipeline.Store in memory: a map under a mutex. It counts the objects put and
// read by key. The zero value is not usable: call New.
type MemStore struct {
	mu      sync.Mutex
	objects map[string][]byte
	mod     map[string]time.Time
	puts    map[string]int
	gets    map[string]int
}

// New returns an empty store.
func New() *MemStore {
	return &MemStore{objects: map[string][]byte{}, mod: map[string]time.Time{}, puts: map[string]int{}, gets: map[string]int{}}
}

var _ pipeline.Store = (*MemStore)(nil)

// Put implements pipeline.Store.
func (s *MemStore) Put(_ context.Context, key string, r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.objects[key] = b
	s.mod[key] = time.Now()
	s.puts[key]++
	return nil
}

// Get implements pipeline.Store.
func (s *MemStore) Get(_ context.Context, key string) (io.ReadCloser, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.objects[key]
	if !ok {
		return nil, fmt.Errorf("get %s: %w", key, pipeline.ErrNotFound)
	}
	s.gets[key]++
	return io.NopCloser(bytes.NewReader(b)), nil
}

// Stat implements pipeline.Store.
func (s *MemStore) Stat(_ context.Context, key string) (pipeline.ObjectInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.objects[key]
	if !ok {
		return pipeline.ObjectInfo{}, fmt.Errorf("stat %s: %w", key, pipeline.ErrNotFound)
	}
	return pipeline.ObjectInfo{Key: key, Size: int64(len(b)), ModTime: s.mod[key]}, nil
}

// List implements pipeline.Store.
func (s *MemStore) List(_ context.Context, prefix string) ([]pipeline.ObjectInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []pipeline.ObjectInfo
	for k, b := range s.objects {
		if strings.HasPrefix(k, prefix) {
			out = append(out, pipeline.ObjectInfo{Key: k, Size: int64(len(b)), ModTime: s.mod[k]})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

// Delete implements pipeline.Store.
func (s *MemStore) Delete(_ context.Context, key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.objects, key)
	return nil
}

// Puts returns how many objects whose key contains sub were put since the last Reset.
func (s *MemStore) Puts(sub string) int { return s.count(s.puts, sub) }

// Gets returns how many objects whose key contains sub were read since the last Reset.
func (s *MemStore) Gets(sub string) int { return s.count(s.gets, sub) }

func (s *MemStore) count(m map[string]int, sub string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for k, c := range m {
		if strings.Contains(k, sub) {
			n += c
		}
	}
	return n
}

// Reset sets the counters to zero.
func (s *MemStore) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.puts, s.gets = map[string]int{}, map[string]int{}
}

// Size is the total size of the objects.
func (s *MemStore) Size() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var n int64
	for _, b := range s.objects {
		n += int64(len(b))
	}
	return n
}
