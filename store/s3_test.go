package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/pipe-ml/pipe/internal/storetest"
	"github.com/pipe-ml/pipe/pipeline"
)

// TestS3Prefix: the path of an s3:// URL is the prefix of every key in the bucket; two
// prefixes of one bucket are two stores, and a store under no prefix sees every object.
func TestS3Prefix(t *testing.T) {
	ctx := context.Background()
	srv := storetest.S3(t, "pipe")
	one, err := Open(ctx, srv.URL("pipe", "team/one"))
	if err != nil {
		t.Fatal(err)
	}
	defer one.Close()
	two, err := Open(ctx, srv.URL("pipe", "team/two/")) // a trailing slash changes nothing
	if err != nil {
		t.Fatal(err)
	}
	defer two.Close()
	put(t, one, "stages/k/entry.json", []byte("1"))
	put(t, two, "stages/k/entry.json", []byte("22"))
	put(t, two, "checkpoints/c/x", []byte("3"))

	if got, want := srv.Keys(t, "pipe"), []string{"team/one/stages/k/entry.json", "team/two/checkpoints/c/x", "team/two/stages/k/entry.json"}; !reflect.DeepEqual(got, want) {
		t.Errorf("keys in the bucket %q, want %q", got, want)
	}
	objs, err := one.List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if got := keysOf(objs); !reflect.DeepEqual(got, []string{"stages/k/entry.json"}) {
		t.Errorf("the store at team/one lists %q", got)
	}
	if got := string(get(t, two, "stages/k/entry.json")); got != "22" {
		t.Errorf("the store at team/two reads %q", got)
	}
	if one.Dir() != "" || one.URL() != srv.URL("pipe", "team/one") {
		t.Errorf("s3 store: Dir %q URL %q", one.Dir(), one.URL())
	}

	whole, err := OpenExisting(ctx, srv.URL("pipe", ""))
	if err != nil {
		t.Fatal(err)
	}
	defer whole.Close()
	objs, err = whole.List(ctx, "team/")
	if err != nil {
		t.Fatal(err)
	}
	if got := keysOf(objs); len(got) != 3 {
		t.Errorf("the store at the bucket's root lists %q under team/, want the 3 objects", got)
	}
}

// TestS3OpenErrors: a bad s3:// URL, a missing bucket, missing credentials or region and an
// unreachable server are errors that name the URL and say what to do, from Open and
// OpenExisting alike.
func TestS3OpenErrors(t *testing.T) {
	ctx := context.Background()
	srv := storetest.S3(t, "pipe")
	q := "?endpoint=" + url.QueryEscape(srv.Endpoint) + "&use_path_style=true"

	// A port that refuses connections: one that was free a moment ago.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + l.Addr().String()
	l.Close()

	cases := []struct {
		name, url string
		env       map[string]string
		want      []string
	}{
		{"no bucket", "s3:///prefix", nil, []string{"no bucket"}},
		{"credentials in the URL", "s3://key:secret@pipe/x" + q, nil, []string{"AWS_ACCESS_KEY_ID"}},
		{"a server as host", "s3://localhost:9000/pipe", nil, []string{"bucket name", "endpoint="}},
		{"prefix parameter", "s3://pipe" + q + "&prefix=x", nil, []string{"URL's path"}},
		{"bad prefix", "s3://pipe/a/../b" + q, nil, []string{`".." segment`}},
		{"unknown parameter", "s3://pipe/x" + q + "&colour=blue", nil, []string{`"colour"`, "endpoint", "use_path_style", "region"}},
		{"bad parameter value", "s3://pipe/x?use_path_style=maybe&endpoint=" + url.QueryEscape(srv.Endpoint), nil, []string{"use_path_style"}},
		{"repeated parameter", "s3://pipe/x" + q + "&use_path_style=false", nil, []string{`"use_path_style" is given twice`}},
		{"missing bucket", "s3://nobucket/x" + q, nil, []string{`bucket "nobucket" does not exist`, "pipe does not create buckets"}},
		{"no credentials", "s3://pipe/x" + q, map[string]string{"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": ""}, []string{"no AWS credentials", "AWS_ACCESS_KEY_ID"}},
		// With an endpoint= a region is not needed; without one, AWS is asked (its address
		// depends on the region: the error comes before any request).
		{"no region", "s3://pipe/x", map[string]string{"AWS_REGION": ""}, []string{"region=", "AWS_REGION"}},
		{"unreachable", "s3://pipe/x?use_path_style=true&endpoint=" + url.QueryEscape(closed), nil, []string{"cannot be reached", "endpoint="}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for k, v := range c.env {
				t.Setenv(k, v)
			}
			for op, open := range map[string]func(context.Context, string) (*Bucket, error){"Open": Open, "OpenExisting": OpenExisting} {
				b, err := open(ctx, c.url)
				if err == nil {
					b.Close()
					t.Fatalf("%s(%q): no error", op, c.url)
				}
				msg := err.Error()
				if !strings.Contains(msg, "store "+c.url) {
					t.Errorf("%s: %q does not name the URL", op, msg)
				}
				for _, w := range c.want {
					if !strings.Contains(msg, w) {
						t.Errorf("%s: %q does not say %q", op, msg, w)
					}
				}
			}
		})
	}
}

// TestS3BucketGone: a bucket removed after Open is not a missing key (which a reader takes for
// "not stored yet"): Get and Put say that the bucket is gone.
func TestS3BucketGone(t *testing.T) {
	ctx := context.Background()
	srv := storetest.S3(t, "pipe")
	s, err := Open(ctx, srv.URL("pipe", "x"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	srv.RemoveBucket(t, "pipe")
	if _, err := s.Get(ctx, "stages/k/entry.json"); errors.Is(err, pipeline.ErrNotFound) || err == nil || !strings.Contains(err.Error(), `bucket "pipe" does not exist`) {
		t.Errorf("Get in a removed bucket: %v, want an error saying the bucket is gone", err)
	}
	if err := s.Put(ctx, "stages/k/entry.json", strings.NewReader("x")); errors.Is(err, pipeline.ErrNotFound) || err == nil || !strings.Contains(err.Error(), `bucket "pipe" does not exist`) {
		t.Errorf("Put in a removed bucket: %v, want an error saying the bucket is gone", err)
	}
}

// TestS3Multipart: an object larger than one part (8 MiB) goes up as a multipart upload and
// reads back whole, and without a word from the AWS SDK on stderr (that it does not check
// the checksum of an object in parts); one whose source fails after two parts leaves the
// object that was there.
func TestS3Multipart(t *testing.T) {
	ctx := context.Background()
	srv := storetest.S3(t, "pipe")
	// The SDK's logger takes os.Stderr when the store is opened.
	stderr, err := os.Create(filepath.Join(t.TempDir(), "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	oldStderr := os.Stderr
	os.Stderr = stderr
	s, err := Open(ctx, srv.URL("pipe", "big"))
	os.Stderr = oldStderr
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	big := make([]byte, 19<<20)
	for i := range big {
		big[i] = byte(i*7 + i>>13)
	}
	put(t, s, "stages/k/table.ipc", big)
	if got := get(t, s, "stages/k/table.ipc"); !bytes.Equal(got, big) {
		t.Fatalf("read back %d bytes, not the %d written", len(got), len(big))
	}
	if said, err := os.ReadFile(stderr.Name()); err != nil || len(said) != 0 {
		t.Errorf("the AWS SDK wrote on stderr: %q %v", said, err)
	}
	err = s.Put(ctx, "stages/k/table.ipc", &failingReader{n: 17 << 20})
	if !errors.Is(err, errBroken) {
		t.Fatalf("Put from a failing reader: %v, want the reader's error", err)
	}
	if got := get(t, s, "stages/k/table.ipc"); !bytes.Equal(got, big) {
		t.Errorf("a failed multipart Put left %d bytes, want the old object", len(got))
	}
	if err := s.Put(ctx, "stages/k/new.ipc", &failingReader{n: 17 << 20}); !errors.Is(err, errBroken) {
		t.Fatalf("Put from a failing reader: %v", err)
	}
	if got := srv.Keys(t, "pipe"); !reflect.DeepEqual(got, []string{"big/stages/k/table.ipc"}) {
		t.Errorf("keys in the bucket %q, want the whole object alone", got)
	}
}

// TestS3ListPages: S3 lists at most 1000 keys a request; List (and so gc) sees every object.
func TestS3ListPages(t *testing.T) {
	ctx := context.Background()
	srv := storetest.S3(t, "pipe")
	s, err := Open(ctx, srv.URL("pipe", "many"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const n = 1203
	for i := range n {
		put(t, s, fmt.Sprintf("stages/k%04d/entry.json", i), []byte("x"))
	}
	objs, err := s.List(ctx, "stages/")
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != n || objs[0].Key != "stages/k0000/entry.json" || objs[n-1].Key != fmt.Sprintf("stages/k%04d/entry.json", n-1) {
		t.Errorf("List: %d objects, want %d", len(objs), n)
	}
}
