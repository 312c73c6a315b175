package pipeline

import (
	"fmt"
	"path/filepath"
	"strings"
	"time"
)

// Keys every stage table may hold beside its kind's own fields. No kind may declare them.
const (
	KeyKind         = "kind"
	KeyCache        = "cache"
	KeyRetries      = "retries"
	KeyRetryBackoff = "retry_backoff"
)

// MaxRetryBackoff caps the delay between two attempts of a stage that declares retries: the
// delay starts at retry_backoff and doubles after every failed attempt, up to this.
const MaxRetryBackoff = 5 * time.Minute

// stageCommon holds the values of the common keys of one stage.
type stageCommon struct {
	cache        bool
	retries      int
	retryBackoff time.Duration
	// written holds the common keys the user set, as they go into the resolved config (a
	// key left at its default is not written, so resolved configs stay as they were).
	written map[string]any
}

func reservedKeys() map[string]bool {
	return map[string]bool{KeyKind: true, KeyCache: true, KeyRetries: true, KeyRetryBackoff: true}
}

// commonDecodeFields are the common keys as the decoder checks them (kind is taken out of the
// table before).
func commonDecodeFields() []Field {
	return []Field{
		{Name: KeyCache, Type: TypeBool, Default: true, Doc: "Whether the stage may be read back from the stage store instead of run, and whether its outputs are stored there when it succeeds. false: the stage always runs and is never stored (`pipe run --no-cache` does this for every stage)."},
		{Name: KeyRetries, Type: TypeInt, Default: int64(0), Min: Bound(0), Max: Bound(100), Doc: "How many times a failed attempt of the stage is tried again: for sources that read from flaky mounts. " +
			"An attempt is retried when its error is not a config error, a cancellation or an input's failure. " +
			"A stage with retries hands its outputs to the stages that read them only when an attempt succeeds (a failed attempt's rows are discarded, never read), so it does not stream its tables while it writes them. " +
			"Each retry starts clean (its directory emptied) after a delay; every attempt is listed in the manifest's `attempts`."},
		{Name: KeyRetryBackoff, Type: TypeString, Default: "2s", Doc: "The delay before the first retry, a Go duration (\"500ms\", \"2s\", \"1m\"); it doubles after every failed attempt, up to 5 minutes. No jitter: the delays are the same in every run."},
	}
}

// CommonFields documents the keys every stage table may hold beside its kind's fields:
// kind, cache, retries and retry_backoff.
func CommonFields() []Field {
	return append([]Field{{Name: KeyKind, Type: TypeString, Required: true, Doc: "The stage's kind: one of the kinds below (`pipe docs` lists them)."}}, commonDecodeFields()...)
}

// common takes the common keys out of a stage's decoded values (so that the kind never sees
// them), checks retry_backoff and returns them. abs is the stage table's key path.
func (d *decoder) common(abs string, vals map[string]any, set map[string]bool) (stageCommon, bool) {
	c := stageCommon{cache: true, written: map[string]any{}}
	ok := true
	for _, f := range commonDecodeFields() {
		v, present := vals[f.Name]
		if set[f.Name] {
			c.written[f.Name] = v
		}
		delete(vals, f.Name)
		delete(set, f.Name)
		if !present {
			continue // set wrongly: already reported
		}
		switch f.Name {
		case KeyCache:
			c.cache, _ = v.(bool)
		case KeyRetries:
			n, _ := v.(int64)
			c.retries = int(n)
		case KeyRetryBackoff:
			s, _ := v.(string)
			dur, err := time.ParseDuration(strings.TrimSpace(s))
			switch {
			case err != nil:
				d.fail(joinKey(abs, f.Name), f.Name, fmt.Sprintf("%q is not a duration", s), "write a Go duration such as \"500ms\", \"2s\" or \"1m\"")
				ok = false
			case dur < 0 || dur > MaxRetryBackoff:
				d.fail(joinKey(abs, f.Name), f.Name, fmt.Sprintf("%s is out of range", s), fmt.Sprintf("give a delay from 0s to %s", MaxRetryBackoff))
				ok = false
			default:
				c.retryBackoff = dur
			}
		}
	}
	return c, ok
}

// Cache is the stage's `cache` setting: whether it may be read back from the stage store
// instead of run, and stored there when it succeeds (default true).
func (c *StageConfig) Cache() bool { return c.common.cache }

// Retries is the stage's retries key: how many times a failed attempt is tried again.
func (c *StageConfig) Retries() int { return c.common.retries }

// RetryBackoff is the delay before the stage's first retry (retry_backoff).
func (c *StageConfig) RetryBackoff() time.Duration { return c.common.retryBackoff }

// resolveStoreLocation makes a store path absolute against dir; a URL (scheme://...) stays as
// it is.
func resolveStoreLocation(s, dir string) string {
	if strings.Contains(s, "://") || filepath.IsAbs(s) {
		return s
	}
	return filepath.Join(dir, s)
}
