// Package store is pipe's stage store on top of gocloud.dev/blob: the outputs of finished
// stages under their content keys, which `pipe run` reads back instead of running a stage
// again, and the checkpoints of interrupted stages, which `pipe run --resume` continues from.
//
// Open returns a *Bucket, which implements pipeline.Store, for a directory (a path, or
// "file:///abs/dir"), an S3 bucket ("s3://bucket/prefix", below) or memory ("mem://"). A
// Bucket is safe for concurrent use, also by several processes sharing one store. On a
// directory, Put writes a temporary file beside the object, syncs it and renames it over the
// object, so an object is visible whole or not at all, and of two concurrent Puts of one key
// one whole object stays. Files are created with mode 0666 and directories 0777, less the
// umask, like the rest of a run's files; no metadata sidecar files are written.
//
// # S3 and S3-compatible servers
//
// "s3://bucket/prefix?param=value&..." is the store of the keys under prefix/ in an existing
// bucket (pipe creates no bucket); without a prefix, the whole bucket. Several machines (pipe
// worker processes, `pipe run --engine temporal`) share one store this way. An object appears
// whole when its upload completes (S3 writes are atomic), or not at all. The parameters, read
// by gocloud.dev/blob/s3blob:
//
//	region=us-east-1                 the bucket's region; default AWS_REGION or the profile's
//	endpoint=https://host:port       an S3-compatible server (MinIO, Ceph, R2, ...) instead
//	                                 of AWS; http:// for a server without TLS
//	use_path_style=true              requests to endpoint/bucket/key rather than to
//	                                 bucket.endpoint/key: MinIO and most self-hosted servers
//	disable_https=true               plain HTTP to AWS's own endpoints (an endpoint= says its
//	                                 scheme itself)
//	profile=name                     a profile of the shared AWS config files
//	anonymous=true                   no credentials (a public bucket; reading only)
//	request_checksum_calculation=when_required, response_checksum_validation=when_required
//	                                 for servers that reject the AWS SDK's default checksums
//
// gocloud's other AWS parameters (role=, fips=, dualstack=, ...) work too; an unknown one is
// an error. Credentials never go in the URL nor in pipe's files: they come from the AWS SDK's
// usual chain (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE and ~/.aws, web
// identity, a container or instance role). Open lists the bucket once, so that a missing
// bucket, missing credentials or region, and a server out of reach are an error at once that
// names the URL and says what to do. Examples:
//
//	s3://ml-cache/pipe?region=eu-west-1
//	s3://pipe/store?endpoint=http://minio.lan:9000&use_path_style=true&region=us-east-1
//	s3://pipe-cache/store?endpoint=https://<account>.r2.cloudflarestorage.com&region=auto
//
// On S3, modification times are whole seconds (what HEAD reports), and an upload that fails
// midway may leave invisible parts of a multipart upload: a bucket lifecycle rule that aborts
// incomplete multipart uploads after a day removes them.
//
// The layout of a store:
//
//	stages/<key>/...            the objects of one finished stage's entry (tables as Arrow
//	                            IPC files, the stage directory's files, artifacts' files);
//	                            <key> is the stage's cache key (64 hex digits)
//	stages/<key>/entry.json     written last, the commit marker (Entry); an entry without
//	                            it is incomplete and is never read
//	checkpoints/<key>/...       checkpoints of a stage that has not finished
//
// Entries lists a store's entries; GC removes those no kept run refers to, oldest first,
// down to a size limit (DefaultMaxBytes, 20 GiB), and the leftovers of crashed writers once
// they are stale (DefaultStaleAfter, 24 h). KeptKeys collects the keys that the manifests of
// kept runs refer to; `pipe gc` puts the two together.
package store
