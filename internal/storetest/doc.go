// Package storetest holds an in-memory pipeline.Store for tests of the stage store's users
// (the stages, the command), with counters of what was put and read, and an S3-protocol server
// on loopback (S3) for tests of s3:// stores.
package storetest
