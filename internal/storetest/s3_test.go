package storetest

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
)

// slowBody yields half of its bytes, waits until the wall clock has passed a second
// boundary, then yields the rest: the PUT's body is read across two seconds.
type slowBody struct {
	data  []byte
	half  bool
	start time.Time
}

func (s *slowBody) Read(p []byte) (int, error) {
	if len(s.data) == 0 {
		return 0, io.EOF
	}
	n := len(s.data)
	if !s.half {
		n = len(s.data) / 2
		s.half = true
	} else if next := s.start.Truncate(time.Second).Add(time.Second); time.Now().Before(next) {
		time.Sleep(time.Until(next) + 20*time.Millisecond)
	}
	n = copy(p, s.data[:n])
	s.data = s.data[n:]
	return n, nil
}

// TestS3TimesAgree checks that the test server gives an object the same modification time
// in a HEAD as in a listing, to the second, when its PUT's body arrives in a later second
// than the request: gofakes3 alone answers the two from different instants.
func TestS3TimesAgree(t *testing.T) {
	srv := S3(t, "b")
	body := []byte(strings.Repeat("x", 64))
	req, err := http.NewRequest(http.MethodPut, srv.Endpoint+"/b/k", &slowBody{data: body, start: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = int64(len(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT: %s", resp.Status)
	}
	for _, method := range []string{http.MethodHead, http.MethodGet} {
		req, _ := http.NewRequest(method, srv.Endpoint+"/b/k", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		header, err := http.ParseTime(resp.Header.Get("Last-Modified"))
		if err != nil {
			t.Fatalf("%s: Last-Modified %q: %v", method, resp.Header.Get("Last-Modified"), err)
		}
		list, err := srv.backend.ListBucket("b", nil, gofakes3.ListBucketPage{})
		if err != nil {
			t.Fatal(err)
		}
		if len(list.Contents) != 1 {
			t.Fatalf("listing: %d objects", len(list.Contents))
		}
		listed := list.Contents[0].LastModified.Truncate(time.Second)
		if !header.Equal(listed) {
			t.Errorf("%s says Last-Modified %s, the listing %s", method, header.Format(time.RFC3339), listed.Format(time.RFC3339))
		}
	}
}
