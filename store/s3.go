package store

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"gocloud.dev/blob"
	"gocloud.dev/blob/s3blob"
	"gocloud.dev/gcerrors"
)

// s3Location is a parsed "s3://bucket/prefix?param=value" store URL.
type s3Location struct {
	bucket string
	// prefix is "" (the whole bucket) or a key prefix ending in "/".
	prefix string
	// query holds the parameters for gocloud's s3blob URL opener.
	query url.Values
}

// s3Params are the query parameters of an s3:// store URL that pipe documents (store/doc.go);
// s3blob reads them, and also accepts the rest of gocloud.dev/aws.V2ConfigFromURLParams'.
var s3Params = []string{"region", "endpoint", "use_path_style", "disable_https", "profile", "anonymous", "request_checksum_calculation", "response_checksum_validation"}

// parseS3 parses an s3:// URL: the host is the bucket, the path the prefix of every key.
func parseS3(raw string) (*s3Location, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("store %s: %w", raw, err)
	}
	bad := func(why string) error {
		return fmt.Errorf("store %s: %s (an S3 store is s3://bucket/prefix?region=...&endpoint=...)", raw, why)
	}
	switch {
	case u.User != nil:
		return nil, bad("credentials do not go in the URL: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE")
	case u.Host == "":
		return nil, bad("no bucket")
	case u.Port() != "" || strings.Contains(u.Host, ":"):
		return nil, bad(fmt.Sprintf("the host %q is the bucket name, not a server: give an S3-compatible server as endpoint=http://host:port", u.Host))
	case u.Fragment != "":
		return nil, bad("a fragment (#) means nothing here")
	}
	q := u.Query()
	if q.Has("prefix") {
		return nil, bad("write the prefix as the URL's path, not as prefix=")
	}
	for k, v := range q {
		if len(v) > 1 {
			return nil, bad(fmt.Sprintf("the parameter %q is given twice", k))
		}
	}
	loc := &s3Location{bucket: u.Host, query: q}
	if p := strings.Trim(u.Path, "/"); p != "" {
		if err := CheckKey(p); err != nil {
			return nil, bad("the prefix: " + err.Error())
		}
		loc.prefix = p + "/"
	}
	return loc, nil
}

// openS3 opens the bucket of loc through s3blob, with the AWS SDK's usual credentials chain
// (environment, shared config and credentials files, web identity, container and instance
// roles), and checks that the bucket exists and can be listed.
func openS3(ctx context.Context, raw string, loc *s3Location) (*blob.Bucket, error) {
	opener := &s3blob.URLOpener{}
	b, err := opener.OpenBucketURL(ctx, &url.URL{Scheme: s3blob.Scheme, Host: loc.bucket, RawQuery: loc.query.Encode()})
	if err != nil {
		return nil, fmt.Errorf("store %s: %w (the URL's parameters are %s)", raw, err, strings.Join(s3Params, ", "))
	}
	if loc.prefix != "" {
		b = blob.PrefixedBucket(b, loc.prefix)
	}
	// One listed object at most: the bucket exists, and the credentials may list it.
	if _, _, err := b.ListPage(ctx, blob.FirstPageToken, 1, nil); err != nil {
		b.Close()
		return nil, fmt.Errorf("store %s: %w%s", raw, err, s3Hint(err, loc.bucket))
	}
	return b, nil
}

// s3Hint says what to do about an error of an S3 store, as " (...)", or "" when there is
// nothing to say.
func s3Hint(err error, bucket string) string {
	msg := err.Error()
	var api smithy.APIError
	var send *smithyhttp.RequestSendError
	var netErr net.Error
	switch {
	case errors.As(err, &api) && api.ErrorCode() == "NoSuchBucket":
		return fmt.Sprintf(" (the bucket %q does not exist on this server: pipe does not create buckets; create it, or correct the URL, its region= or endpoint=)", bucket)
	case strings.Contains(msg, "failed to retrieve credentials") || strings.Contains(msg, "failed to refresh cached credentials") || strings.Contains(msg, "no EC2 IMDS role") || strings.Contains(msg, "static credentials are empty"):
		return " (no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE, or give the machine a role)"
	case strings.Contains(msg, "Invalid region"):
		return " (give the bucket's region: region=us-east-1 in the URL, or AWS_REGION)"
	case gcerrors.Code(err) == gcerrors.PermissionDenied:
		return " (the server refused the credentials or their permissions: check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE, the bucket's policy, and region=)"
	case errors.As(err, &send) || errors.As(err, &netErr):
		return " (the server cannot be reached: check endpoint= (for MinIO and the like: endpoint=http://host:9000&use_path_style=true) and the network)"
	}
	return ""
}

// isNoSuchBucket reports whether err says that the bucket itself is missing (which s3blob,
// like a missing key, reports as NotFound).
func isNoSuchBucket(err error) bool {
	var api smithy.APIError
	return errors.As(err, &api) && api.ErrorCode() == "NoSuchBucket"
}

// s3ReaderOptions keep the AWS SDK from printing a line on the process's stderr for each Get
// of an object uploaded in parts, whose checksum (one of the parts' checksums) it does not
// check: pipe's logs go through zerolog, and the line says nothing wrong.
var s3ReaderOptions = &blob.ReaderOptions{BeforeRead: func(as func(any) bool) error {
	var opts *[]func(*s3.Options)
	if as(&opts) {
		*opts = append(*opts, func(o *s3.Options) { o.DisableLogOutputChecksumValidationSkipped = true })
	}
	return nil
}}
