// Package arrowutil holds small Arrow helpers the stages share: row selection (Take) for the
// column types pipe's tables use, and reading numeric or string columns as Go slices.
package arrowutil
