package cluster

import (
	"fmt"

	"github.com/rs/zerolog"
	"go.temporal.io/sdk/log"
)

// temporalLogger sends the Temporal SDK's log to zerolog; its info lines (worker started,
// polling) are debug lines of pipe's.
type temporalLogger struct{ l zerolog.Logger }

func newTemporalLogger(l zerolog.Logger) log.Logger {
	return temporalLogger{l.With().Str("component", "temporal").Logger()}
}

func (t temporalLogger) line(ev *zerolog.Event, msg string, kv []any) {
	for i := 0; i+1 < len(kv); i += 2 {
		if err, ok := kv[i+1].(error); ok {
			ev = ev.AnErr(fmt.Sprint(kv[i]), err)
			continue
		}
		ev = ev.Interface(fmt.Sprint(kv[i]), kv[i+1])
	}
	ev.Msg(msg)
}

func (t temporalLogger) Debug(msg string, kv ...any) { t.line(t.l.Debug(), msg, kv) }
func (t temporalLogger) Info(msg string, kv ...any)  { t.line(t.l.Debug(), msg, kv) }
func (t temporalLogger) Warn(msg string, kv ...any)  { t.line(t.l.Warn(), msg, kv) }
func (t temporalLogger) Error(msg string, kv ...any) { t.line(t.l.Error(), msg, kv) }
