// Package f32le writes and reads float32 slices as little-endian IEEE 754 bits, in bulk: one
// copy on a little-endian machine, a loop elsewhere. Checkpoints and optimizer states use it,
// so that saving a few million weights costs a memory copy, not a per-value encoding.
package f32le
