package train

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/rs/zerolog"
)

// TestEpochLogHasMetrics: the debug line written after every epoch carries the epoch's
// metrics (zerolog's Fields silently drops a map[string]float64), so a job's log.jsonl shows
// the learning curve while the run goes on.
func TestEpochLogHasMetrics(t *testing.T) {
	var log bytes.Buffer
	cfg := Config{Epochs: 2, Logger: zerolog.New(&log).Level(zerolog.DebugLevel)}
	if _, err := Fit(context.Background(), buildModel(t, richSpec()), blobs(1, 120), blobs(2, 60), cfg); err != nil {
		t.Fatal(err)
	}
	epochs := 0
	for _, line := range strings.Split(log.String(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) != nil || m["message"] != "epoch" {
			continue
		}
		epochs++
		if v, ok := m["val_loss"].(float64); !ok || !(v > 0) {
			t.Errorf("epoch line without its val_loss: %s", line)
		}
		if _, ok := m["loss"].(float64); !ok {
			t.Errorf("epoch line without its loss: %s", line)
		}
	}
	if epochs != 2 {
		t.Errorf("%d epoch lines, want 2:\n%s", epochs, log.String())
	}
}
