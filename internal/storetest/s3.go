package storetest

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"testing"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
)

// S3Server is an S3-protocol server in the test's own process (gofakes3, objects in memory)
// on a loopback port, for tests of s3:// stores without a network.
type S3Server struct {
	// Endpoint is the server's base URL, "http://127.0.0.1:port".
	Endpoint string
	backend  *s3mem.Backend
}

// S3 starts an S3 server with the given buckets for the test, and stops it when the test ends.
// It points the AWS SDK's credentials chain at static test credentials in the environment
// (t.Setenv: the test must not be parallel), and away from the machine's ~/.aws files, its
// AWS_PROFILE and AWS_ENDPOINT_URL, and the instance metadata service.
func S3(t testing.TB, buckets ...string) *S3Server {
	t.Helper()
	none := filepath.Join(t.TempDir(), "no-aws-file")
	for k, v := range map[string]string{
		"AWS_ACCESS_KEY_ID":           "pipe-test",
		"AWS_SECRET_ACCESS_KEY":       "pipe-test-secret",
		"AWS_SESSION_TOKEN":           "",
		"AWS_REGION":                  "us-east-1",
		"AWS_DEFAULT_REGION":          "",
		"AWS_PROFILE":                 "",
		"AWS_CONFIG_FILE":             none,
		"AWS_SHARED_CREDENTIALS_FILE": none,
		"AWS_ENDPOINT_URL":            "",
		"AWS_ENDPOINT_URL_S3":         "",
		"AWS_EC2_METADATA_DISABLED":   "true",
	} {
		t.Setenv(k, v)
	}
	backend := s3mem.New()
	for _, b := range buckets {
		if err := backend.CreateBucket(b); err != nil {
			t.Fatalf("S3 test server: create bucket %s: %v", b, err)
		}
	}
	srv := httptest.NewServer(gofakes3.New(sameTimes{backend}, gofakes3.WithLogger(gofakes3.DiscardLog())).Server())
	t.Cleanup(srv.Close)
	return &S3Server{Endpoint: srv.URL, backend: backend}
}

// URL is the store URL of prefix ("" or "a/b") in bucket on the server: path-style requests
// to its endpoint.
func (s *S3Server) URL(bucket, prefix string) string {
	q := url.Values{"endpoint": {s.Endpoint}, "use_path_style": {"true"}, "region": {"us-east-1"}}
	u := url.URL{Scheme: "s3", Host: bucket, Path: "/" + prefix, RawQuery: q.Encode()}
	if prefix == "" {
		u.Path = ""
	}
	return u.String()
}

// Keys lists every object key in bucket, whatever the store's prefix, sorted.
func (s *S3Server) Keys(t testing.TB, bucket string) []string {
	t.Helper()
	list, err := s.backend.ListBucket(bucket, nil, gofakes3.ListBucketPage{})
	if err != nil {
		t.Fatalf("S3 test server: list %s: %v", bucket, err)
	}
	var keys []string
	for _, o := range list.Contents {
		keys = append(keys, o.Key)
	}
	return keys
}

// RemoveBucket removes bucket and every object in it.
func (s *S3Server) RemoveBucket(t testing.TB, bucket string) {
	t.Helper()
	if err := s.backend.ForceDeleteBucket(bucket); err != nil {
		t.Fatalf("S3 test server: remove bucket %s: %v", bucket, err)
	}
}

// sameTimes is the in-memory backend with the one change that makes it report an object's
// modification time as S3 does: the same instant in a listing as in a HEAD or GET. gofakes3
// v1.2.0 takes the Last-Modified header when a PUT request arrives and the listing's
// LastModified once its body is read, so the two can fall in different seconds, and the store's
// GC, which skips an object whose Stat no longer matches its listing (a writer stored it again),
// then left an object behind now and then. HEAD and GET here answer the listing's time.
type sameTimes struct{ *s3mem.Backend }

func (b sameTimes) HeadObject(bucket, key string) (*gofakes3.Object, error) {
	obj, err := b.Backend.HeadObject(bucket, key)
	return b.listed(bucket, key, obj, err)
}

func (b sameTimes) GetObject(bucket, key string, rng *gofakes3.ObjectRangeRequest) (*gofakes3.Object, error) {
	obj, err := b.Backend.GetObject(bucket, key, rng)
	return b.listed(bucket, key, obj, err)
}

// listed gives obj a copy of its metadata whose Last-Modified is the listing's time of key.
func (b sameTimes) listed(bucket, key string, obj *gofakes3.Object, err error) (*gofakes3.Object, error) {
	if err != nil || obj == nil {
		return obj, err
	}
	list, lerr := b.Backend.ListBucket(bucket, &gofakes3.Prefix{HasPrefix: true, Prefix: key}, gofakes3.ListBucketPage{})
	if lerr != nil {
		return obj, nil
	}
	for _, o := range list.Contents {
		if o.Key == key {
			meta := make(map[string]string, len(obj.Metadata)+1)
			for k, v := range obj.Metadata {
				meta[k] = v
			}
			meta["Last-Modified"] = o.LastModified.UTC().Format(http.TimeFormat)
			obj.Metadata = meta
			break
		}
	}
	return obj, nil
}
