package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"

	"github.com/pipe-ml/pipe/pipeline"
)

// Memo keys pipe sets on its schedules and on the workflows they start.
const (
	memoPipeline = "pipe.pipeline"
	memoSchedule = "pipe.schedule"
	memoCron     = "pipe.cron"
)

// Overlap policies, by the names pipe's flags use (Temporal's SCHEDULE_OVERLAP_POLICY_*).
var overlapNames = []string{"skip", "buffer_one", "buffer_all", "cancel_other", "terminate_other", "allow_all"}

// Errors of the schedule functions; they wrap them with the schedule's name.
var (
	// ErrScheduleNotFound: there is no schedule of that name in the namespace.
	ErrScheduleNotFound = errors.New("no such schedule")
	// ErrScheduleExists: a schedule of that name exists already.
	ErrScheduleExists = errors.New("a schedule of that name exists already")
	// ErrNotPipeSchedule: the schedule starts another workflow than pipe's.
	ErrNotPipeSchedule = errors.New("not a schedule of pipe runs")
	// ErrBadSchedule: a schedule option is wrong (name, cron, overlap, runs directory).
	ErrBadSchedule = errors.New("bad schedule")
)

// ScheduleOptions say when a schedule starts a run, and how.
type ScheduleOptions struct {
	// Name is the schedule's id in the namespace: letters, digits, '.', '_' and '-', starting
	// with a letter or a digit, at most 200 characters. Required.
	Name string
	// Cron says when, as Temporal reads a cron spec: 5 fields (minute hour day-of-month month
	// day-of-week; 6 or 7 add the year, and seconds first), or @hourly, @daily, @weekly,
	// @monthly, @yearly, "@every 6h". In UTC unless it starts with CRON_TZ=<zone>. Required.
	Cron string
	// Overlap is what a start does while a run of the schedule still runs: skip (the
	// default: it does not start), buffer_one, buffer_all, cancel_other, terminate_other or
	// allow_all.
	Overlap string
	// TaskQueue is where the runs go. Default DefaultTaskQueue.
	TaskQueue string
	// RecordDir is the runs directory, absolute, on the workers' shared filesystem: the last
	// activity of each run writes its run directory there (<RecordDir>/<pipeline>/<run id>).
	// Required.
	RecordDir string
	// Note is the schedule's note (Temporal shows it; pause and unpause replace it). Optional.
	Note string
	// Paused creates the schedule paused.
	Paused bool
}

// Schedule is a schedule of pipe runs as Temporal describes it.
type Schedule struct {
	Name     string `json:"name"`
	Pipeline string `json:"pipeline"`
	// Cron is the spec the schedule was created with.
	Cron      string `json:"cron"`
	Overlap   string `json:"overlap"`
	Paused    bool   `json:"paused"`
	Note      string `json:"note,omitempty"`
	TaskQueue string `json:"task_queue,omitempty"`
	// ConfigKey is where the pipeline's config is in the stage store Store; RunsDir is where
	// the runs' directories are written.
	ConfigKey string `json:"config_key,omitempty"`
	Store     string `json:"store,omitempty"`
	RunsDir   string `json:"runs_dir,omitempty"`
	// Actions is how many runs the schedule started (triggers included); SkippedOverlap how
	// many starts the overlap policy skipped.
	Actions        int       `json:"actions"`
	SkippedOverlap int       `json:"skipped_overlap"`
	CreatedAt      time.Time `json:"created_at"`
	// Next are the next start times (up to 10; none while paused).
	Next []time.Time `json:"next_runs"`
	// Recent are the latest runs, oldest first (up to 10).
	Recent []ScheduledRun `json:"recent_runs"`
}

// ScheduledRun is a run a schedule started.
type ScheduledRun struct {
	WorkflowID  string    `json:"workflow_id"`
	RunID       string    `json:"workflow_run_id"`
	ScheduledAt time.Time `json:"scheduled_at"`
	StartedAt   time.Time `json:"started_at"`
	// Status is the workflow's (RunStatus): running, succeeded, failed, canceled, terminated,
	// timed_out; "unknown" when Temporal could not say.
	Status string `json:"status"`
}

// badSchedule is an ErrBadSchedule whose message is its own.
type badSchedule struct{ msg string }

func (e *badSchedule) Error() string        { return e.msg }
func (e *badSchedule) Is(target error) bool { return target == ErrBadSchedule }

func badf(format string, args ...any) error { return &badSchedule{fmt.Sprintf(format, args...)} }

var scheduleNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$`)

// CheckScheduleName reports whether name can name a schedule (ScheduleOptions.Name).
func CheckScheduleName(name string) error {
	if !scheduleNameRE.MatchString(name) {
		return badf("schedule name %q: use letters, digits, '.', '_' and '-', starting with a letter or a digit, at most 200 characters", name)
	}
	return nil
}

// cronField is one field of a cron spec as Temporal reads it.
var cronField = regexp.MustCompile(`^[0-9A-Za-z*?/,#-]+$`)

// CheckCron checks the form of a cron spec (ScheduleOptions.Cron) before Temporal reads it:
// its number of fields and their characters. The Temporal server checks the rest when the
// schedule is created.
func CheckCron(spec string) error {
	bad := func(why string) error {
		return badf("cron spec %q: %s; write 5 fields, minute hour day-of-month month day-of-week (e.g. \"0 2 * * *\": 02:00 UTC every day), or @hourly, @daily, @weekly, \"@every 6h\"", spec, why)
	}
	s := strings.TrimSpace(spec)
	if i := strings.Index(s, " #"); i >= 0 { // a comment ("5#3" is a day-of-week field)
		s = strings.TrimSpace(s[:i])
	}
	fields := strings.Fields(s)
	if len(fields) > 0 && (strings.HasPrefix(fields[0], "CRON_TZ=") || strings.HasPrefix(fields[0], "TZ=")) {
		if _, err := time.LoadLocation(fields[0][strings.IndexByte(fields[0], '=')+1:]); err != nil {
			return bad(fmt.Sprintf("unknown time zone: %v", err))
		}
		fields = fields[1:]
	}
	switch {
	case len(fields) == 0:
		return bad("empty")
	case strings.HasPrefix(fields[0], "@"):
		switch fields[0] {
		case "@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly":
			if len(fields) == 1 {
				return nil
			}
		case "@every":
			if len(fields) == 2 {
				return nil
			}
			return bad("@every takes one interval, e.g. \"@every 6h\"")
		}
		return bad(fmt.Sprintf("unknown shorthand %q", strings.Join(fields, " ")))
	case len(fields) < 5 || len(fields) > 7:
		return bad(fmt.Sprintf("%d fields", len(fields)))
	}
	for i, f := range fields {
		if !cronField.MatchString(f) {
			return bad(fmt.Sprintf("field %d (%q) holds a character a cron field cannot", i+1, f))
		}
	}
	return nil
}

// ParseOverlap returns the Temporal overlap policy of a name of ScheduleOptions.Overlap ("":
// skip).
func ParseOverlap(name string) (enumspb.ScheduleOverlapPolicy, error) {
	if name == "" {
		name = "skip"
	}
	v, ok := enumspb.ScheduleOverlapPolicy_value["SCHEDULE_OVERLAP_POLICY_"+strings.ToUpper(name)]
	if !ok || v == 0 || strings.ToLower(name) != name {
		msg := fmt.Sprintf("overlap policy %q: it is one of %s", name, strings.Join(overlapNames, ", "))
		if s := pipeline.Suggest(name, overlapNames); s != "" {
			msg += fmt.Sprintf(" (did you mean %q?)", s)
		}
		return 0, badf("%s", msg)
	}
	return enumspb.ScheduleOverlapPolicy(v), nil
}

// overlapName is the name of a Temporal overlap policy (the server's default, skip, for an
// unspecified one).
func overlapName(p enumspb.ScheduleOverlapPolicy) string {
	if p == enumspb.SCHEDULE_OVERLAP_POLICY_UNSPECIFIED {
		return "skip"
	}
	return strings.ToLower(strings.TrimPrefix(enumspb.ScheduleOverlapPolicy_name[int32(p)], "SCHEDULE_OVERLAP_POLICY_"))
}

// ScheduleConfigKey is the store key of a schedule's pipeline config: per schedule and per
// config (hash), so that a schedule created again with another config never changes the
// config under a run of the old one.
func ScheduleConfigKey(name string, p *pipeline.Pipeline) string {
	return "schedules/" + name + "/" + p.Hash()[:16] + "/pipeline.toml"
}

// CreateSchedule creates a schedule that starts a run of p (workflow WorkflowName on the task
// queue) at the times of so.Cron. It puts p's resolved config into the stage store opts.Store
// first (ScheduleConfigKey); every run plans its own stages' keys when it starts (the data
// may have changed since the last one) and a worker writes its run directory under
// so.RecordDir. Of opts it reads Store (required: the workers' store), StoreLocation,
// Overrides, DataDir, NoCache and Refresh. The runs' ids are made by the workflow from its
// start time (WorkflowRunID), and they run on whatever pipe build the workers have.
func CreateSchedule(ctx context.Context, c client.Client, p *pipeline.Pipeline, opts pipeline.RunOptions, so ScheduleOptions) error {
	if err := CheckScheduleName(so.Name); err != nil {
		return err
	}
	if err := CheckCron(so.Cron); err != nil {
		return err
	}
	overlap, err := ParseOverlap(so.Overlap)
	if err != nil {
		return err
	}
	if !filepath.IsAbs(so.RecordDir) {
		return badf("schedule %s: the runs directory %q is not absolute (the workers write the run directories there)", so.Name, so.RecordDir)
	}
	if opts.Store == nil {
		return errors.New("a schedule needs a stage store that every worker shares (--store)")
	}
	if so.TaskQueue == "" {
		so.TaskQueue = DefaultTaskQueue
	}
	key := ScheduleConfigKey(so.Name, p)
	if err := opts.Store.Put(ctx, key, bytes.NewReader(p.Resolved())); err != nil {
		return fmt.Errorf("put the pipeline into the stage store: %w", err)
	}
	file := p.File
	if abs, err := filepath.Abs(file); err == nil {
		file = abs
	}
	in := RunInput{Pipeline: p.Name, ConfigKey: key, ConfigFile: file, ConfigDir: p.Dir, Overrides: opts.Overrides,
		DataDir: opts.DataDir, NoCache: opts.NoCache, Refresh: opts.Refresh, Settings: ParseSettings(p.Temporal),
		RecordDir: so.RecordDir, Store: opts.StoreLocation}
	_, err = c.ScheduleClient().Create(ctx, client.ScheduleOptions{
		ID:      so.Name,
		Spec:    client.ScheduleSpec{CronExpressions: []string{so.Cron}},
		Overlap: overlap,
		Note:    so.Note,
		Paused:  so.Paused,
		Memo:    map[string]any{memoPipeline: p.Name, memoCron: so.Cron},
		Action: &client.ScheduleWorkflowAction{
			ID:        "pipe-" + p.Name + "-schedule-" + so.Name,
			Workflow:  WorkflowName,
			Args:      []any{in},
			TaskQueue: so.TaskQueue,
			Memo:      map[string]any{memoPipeline: p.Name, memoSchedule: so.Name},
		},
	})
	switch {
	case errors.Is(err, temporal.ErrScheduleAlreadyRunning):
		return fmt.Errorf("schedule %s: %w (pipe schedule delete %s removes it)", so.Name, ErrScheduleExists, so.Name)
	case isInvalidArgument(err):
		return badf("schedule %s: Temporal refuses it (is the cron spec %q right?): %v", so.Name, so.Cron, err)
	case err != nil:
		return fmt.Errorf("create schedule %s: %w", so.Name, err)
	}
	return nil
}

func isInvalidArgument(err error) bool {
	var ia *serviceerror.InvalidArgument
	return errors.As(err, &ia)
}

// handle returns the handle of pipe's schedule name, after checking that it is one.
func handle(ctx context.Context, c client.Client, name string) (client.ScheduleHandle, *client.ScheduleDescription, error) {
	if err := CheckScheduleName(name); err != nil {
		return nil, nil, err
	}
	h := c.ScheduleClient().GetHandle(ctx, name)
	d, err := h.Describe(ctx)
	if err != nil {
		var nf *serviceerror.NotFound
		if errors.As(err, &nf) {
			return nil, nil, fmt.Errorf("schedule %s: %w", name, ErrScheduleNotFound)
		}
		return nil, nil, fmt.Errorf("schedule %s: %w", name, err)
	}
	a, ok := d.Schedule.Action.(*client.ScheduleWorkflowAction)
	if !ok || fmt.Sprint(a.Workflow) != WorkflowName {
		what := "no workflow"
		if ok {
			what = fmt.Sprintf("workflow %v", a.Workflow)
		}
		return nil, nil, fmt.Errorf("schedule %s starts %s: %w; pipe leaves it alone", name, what, ErrNotPipeSchedule)
	}
	return h, d, nil
}

// DescribeSchedule describes pipe's schedule name, with the status of its recent runs.
func DescribeSchedule(ctx context.Context, c client.Client, name string) (*Schedule, error) {
	_, d, err := handle(ctx, c, name)
	if err != nil {
		return nil, err
	}
	s := &Schedule{Name: name, Actions: d.Info.NumActions, SkippedOverlap: d.Info.NumActionsSkippedOverlap,
		CreatedAt: d.Info.CreatedAt, Next: d.Info.NextActionTimes, Recent: []ScheduledRun{}}
	if s.Next == nil {
		s.Next = []time.Time{}
	}
	if st := d.Schedule.State; st != nil {
		s.Paused, s.Note = st.Paused, st.Note
	}
	if pol := d.Schedule.Policy; pol != nil {
		s.Overlap = overlapName(pol.Overlap)
	}
	memo(d.Memo, memoCron, &s.Cron)
	if a, ok := d.Schedule.Action.(*client.ScheduleWorkflowAction); ok {
		s.TaskQueue = a.TaskQueue
		if len(a.Args) == 1 {
			if p, ok := a.Args[0].(*commonpb.Payload); ok {
				var in RunInput
				if converter.GetDefaultDataConverter().FromPayload(p, &in) == nil {
					s.Pipeline, s.ConfigKey, s.Store, s.RunsDir = in.Pipeline, in.ConfigKey, in.Store, in.RecordDir
				}
			}
		}
	}
	for _, r := range d.Info.RecentActions {
		sr := ScheduledRun{ScheduledAt: r.ScheduleTime, StartedAt: r.ActualTime, Status: "unknown"}
		if w := r.StartWorkflowResult; w != nil {
			sr.WorkflowID, sr.RunID = w.WorkflowID, w.FirstExecutionRunID
			if desc, err := c.DescribeWorkflow(ctx, w.WorkflowID, w.FirstExecutionRunID); err == nil {
				sr.Status = RunStatus(desc.RawResponse.GetWorkflowExecutionInfo().GetStatus())
			}
		}
		s.Recent = append(s.Recent, sr)
	}
	return s, nil
}

// memo decodes a memo's string field into v, when it has one.
func memo(m *commonpb.Memo, key string, v *string) {
	if p := m.GetFields()[key]; p != nil {
		_ = converter.GetDefaultDataConverter().FromPayload(p, v)
	}
}

// ListSchedules lists pipe's schedules (those that start WorkflowName), by name. Temporal's
// list is eventually consistent: a schedule created a moment ago may be missing, and a
// schedule's Paused may be stale (DescribeSchedule is not). Next holds the next start only,
// Recent nothing.
func ListSchedules(ctx context.Context, c client.Client) ([]Schedule, error) {
	it, err := c.ScheduleClient().List(ctx, client.ScheduleListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list the schedules: %w", err)
	}
	out := []Schedule{}
	for it.HasNext() {
		e, err := it.Next()
		if err != nil {
			return nil, fmt.Errorf("list the schedules: %w", err)
		}
		if e.WorkflowType.Name != WorkflowName {
			continue
		}
		s := Schedule{Name: e.ID, Paused: e.Paused, Note: e.Note, Next: []time.Time{}, Recent: []ScheduledRun{}}
		memo(e.Memo, memoPipeline, &s.Pipeline)
		memo(e.Memo, memoCron, &s.Cron)
		if len(e.NextActionTimes) > 0 {
			s.Next = e.NextActionTimes[:1]
		}
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// PauseSchedule pauses pipe's schedule name: it starts no run until unpaused (a trigger
// still does). note replaces the schedule's note ("" : "paused by pipe").
func PauseSchedule(ctx context.Context, c client.Client, name, note string) error {
	h, _, err := handle(ctx, c, name)
	if err != nil {
		return err
	}
	if note == "" {
		note = "paused by pipe"
	}
	if err := h.Pause(ctx, client.SchedulePauseOptions{Note: note}); err != nil {
		return fmt.Errorf("pause schedule %s: %w", name, err)
	}
	return nil
}

// UnpauseSchedule unpauses pipe's schedule name. note replaces the schedule's note ("":
// "unpaused by pipe").
func UnpauseSchedule(ctx context.Context, c client.Client, name, note string) error {
	h, _, err := handle(ctx, c, name)
	if err != nil {
		return err
	}
	if note == "" {
		note = "unpaused by pipe"
	}
	if err := h.Unpause(ctx, client.ScheduleUnpauseOptions{Note: note}); err != nil {
		return fmt.Errorf("unpause schedule %s: %w", name, err)
	}
	return nil
}

// TriggerSchedule starts a run of pipe's schedule name now, under its overlap policy (with
// skip, nothing starts while a run of the schedule runs).
func TriggerSchedule(ctx context.Context, c client.Client, name string) error {
	h, _, err := handle(ctx, c, name)
	if err != nil {
		return err
	}
	if err := h.Trigger(ctx, client.ScheduleTriggerOptions{}); err != nil {
		return fmt.Errorf("trigger schedule %s: %w", name, err)
	}
	return nil
}

// DeleteSchedule deletes pipe's schedule name. Its runs that are running go on; its config
// stays in the stage store (a run in flight reads it).
func DeleteSchedule(ctx context.Context, c client.Client, name string) error {
	h, _, err := handle(ctx, c, name)
	if err != nil {
		return err
	}
	if err := h.Delete(ctx); err != nil {
		return fmt.Errorf("delete schedule %s: %w", name, err)
	}
	return nil
}
