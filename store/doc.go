// Package store is pipe's stage store on top of gocloud.dev/blob: the outputs of finished
// stages under their content keys, which `pipe run` reads back instead of running a stage
// again, and the checkpoints of interrupted stages, which `pipe run --resume` continues from.
//
// Open returns a *Bucket, which implements pipeline.Store, for a directory (a path, or
// "file:///abs/dir") or memory ("mem://"). Object storage (s3://) comes with pipe's Temporal
// executor. A Bucket is safe for concurrent use, also by several processes sharing one
// directory: Put writes a temporary file beside the object, syncs it and renames it over the
// object, so an object is visible whole or not at all, and of two concurrent Puts of one key
// one whole object stays. Files are created with mode 0666 and directories 0777, less the
// umask, like the rest of a run's files; no metadata sidecar files are written.
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
