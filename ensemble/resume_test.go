package ensemble

import (
	"bytes"
	"context"
	"encoding/gob"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/pipe-ml/pipe/nn"
	"github.com/pipe-ml/pipe/nn/train"
)

// records keeps what Options.Checkpoint and Options.Finished hand out, in their wire forms,
// by member index, as a stage store would.
type records struct {
	mu       sync.Mutex
	ckpts    map[int][]byte
	finished map[int][]byte
}

func newRecords() *records { return &records{ckpts: map[int][]byte{}, finished: map[int][]byte{}} }

func (r *records) checkpoint(i int, c *train.Checkpoint) error {
	b, err := c.MarshalBinary()
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ckpts[i] = b
	return nil
}

func (r *records) done(i int, m *FinishedMember) error {
	b, err := m.MarshalBinary()
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.finished[i] = b
	return nil
}

func (r *records) restore(i int) (*FinishedMember, *train.Checkpoint, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if b, ok := r.finished[i]; ok {
		var f FinishedMember
		if err := f.UnmarshalBinary(b); err != nil {
			return nil, nil, err
		}
		return &f, nil, nil
	}
	if b, ok := r.ckpts[i]; ok {
		var c train.Checkpoint
		if err := c.UnmarshalBinary(b); err != nil {
			return nil, nil, err
		}
		return nil, &c, nil
	}
	return nil, nil, nil
}

// reportText prints what a Report says about the ensemble, leaving out how the Train ran
// (timings, peaks, restored members): %v prints every float in its shortest exact form and
// maps sorted, so equal texts mean bit-identical values.
func reportText(rep Report) string {
	members := make([]MemberReport, len(rep.Members))
	for i, m := range rep.Members {
		m.Seconds, m.Started, m.Finished, m.Restored, m.ResumedFrom = 0, 0, 0, false, 0
		members[i] = m
	}
	var oob OOB
	if rep.OOB != nil {
		oob = *rep.OOB
	}
	return fmt.Sprintf("members %+v\nkept %d dropped %d\nwarnings %q\noob %+v\ncombiners %+v\ndiversity %v\nweights %+v",
		members, rep.Kept, rep.Dropped, rep.Warnings, oob, rep.Combiners, rep.Diversity, rep.WeightFits)
}

func sameEnsembles(t *testing.T, a, b *Ensemble) {
	t.Helper()
	ma, mb := a.Models(), b.Models()
	if len(ma) != len(mb) {
		t.Fatalf("%d members vs %d", len(ma), len(mb))
	}
	for i := range ma {
		wa, wb := modelWeights(ma[i]), modelWeights(mb[i])
		for k := range wa {
			if !bitsEqual(wa[k], wb[k]) {
				t.Fatalf("member %d tensor %d differs", i, k)
			}
		}
	}
}

// epochCounter counts the epochs each member trains.
type epochCounter struct{ n [8]atomic.Int64 }

func (c *epochCounter) hooks(member int) []train.Hook {
	return []train.Hook{train.OnEpochEnd("count", 0, func(*train.EpochInfo) error {
		c.n[member].Add(1)
		return nil
	})}
}

// TestResumeInterruptedTrain interrupts a Train of 4 members while the third trains (the
// first two finished), then trains again with what was recorded: the finished members are not
// trained again, the third continues from its checkpoint, and the ensemble and its Report are
// bit-identical to an uninterrupted Train's, with other worker counts on each side.
func TestResumeInterruptedTrain(t *testing.T) {
	data := blobs(240, 6, 3, 1)
	trainSet, val := data.Subset(seq(0, 180)), data.Subset(seq(180, 240))
	const members, stopMember, stopEpoch = 4, 2, 1 // stop member 2 after its epoch 1 (0-based)
	epochs := testEpochs()
	cfg := bagConfig(6, 3, members)

	ref := cfg
	ref.Workers = 2
	want, wantRep, err := Train(context.Background(), ref, trainSet, val, 77, Options{})
	if err != nil {
		t.Fatal(err)
	}

	rec := newRecords()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	first := cfg
	first.Workers = 1 // members in turn: 0 and 1 finish before 2 starts
	_, _, err = Train(ctx, first, trainSet, val, 77, Options{Checkpoint: rec.checkpoint, Finished: rec.done,
		Hooks: func(i int) []train.Hook {
			return []train.Hook{train.OnEpochEnd("interrupt", 0, func(e *train.EpochInfo) error {
				if i == stopMember && e.Epoch == stopEpoch {
					cancel()
				}
				return nil
			})}
		}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted Train: %v, want canceled", err)
	}
	if len(rec.finished) != 2 || rec.finished[0] == nil || rec.finished[1] == nil {
		t.Fatalf("finished records of members %v, want 0 and 1", keys(rec.finished))
	}
	if _, c, _ := rec.restore(stopMember); c == nil || c.Epoch != stopEpoch+1 {
		t.Fatalf("member %d's checkpoint: %+v, want the one after epoch %d", stopMember, c, stopEpoch)
	}

	var count epochCounter
	second := cfg
	second.Workers = 3
	got, gotRep, err := Train(context.Background(), second, trainSet, val, 77, Options{Restore: rec.restore, Hooks: count.hooks,
		Checkpoint: rec.checkpoint, Finished: rec.done})
	if err != nil {
		t.Fatal(err)
	}
	sameEnsembles(t, want, got)
	if a, b := reportText(wantRep), reportText(gotRep); a != b {
		t.Fatalf("reports differ:\nuninterrupted %s\nresumed       %s", a, b)
	}
	for i, wantEpochs := range []int{0, 0, epochs - (stopEpoch + 1), epochs} {
		if n := count.n[i].Load(); n != int64(wantEpochs) {
			t.Errorf("member %d trained %d epochs on resume, want %d", i, n, wantEpochs)
		}
	}
	for i, m := range gotRep.Members {
		wantRestored, wantFrom := i < stopMember, 0
		if i == stopMember {
			wantFrom = stopEpoch + 1
		}
		if m.Restored != wantRestored || m.ResumedFrom != wantFrom {
			t.Errorf("member %d: restored %v, resumed from %d; want %v, %d", i, m.Restored, m.ResumedFrom, wantRestored, wantFrom)
		}
	}
}

// TestResumeSetsAsideWhatDoesNotFit gives Train a finished record of another model for
// member 0 and a checkpoint of another optimizer for member 1: both train from the start,
// with a warning each, and the ensemble is the uninterrupted one.
func TestResumeSetsAsideWhatDoesNotFit(t *testing.T) {
	data := blobs(200, 6, 3, 4)
	trainSet, val := data.Subset(seq(0, 150)), data.Subset(seq(150, 200))
	cfg := bagConfig(6, 3, 2)
	cfg.Workers = 2
	rec := newRecords()
	want, wantRep, err := Train(context.Background(), cfg, trainSet, val, 5, Options{Checkpoint: rec.checkpoint, Finished: rec.done})
	if err != nil {
		t.Fatal(err)
	}
	foreign, ck, err := rec.restore(0)
	if err != nil || foreign == nil {
		t.Fatalf("record of member 0: %v", err)
	}
	foreign.Spec.Layers[0].Activation = "tanh" // same tensors, another model
	var c train.Checkpoint
	if err := c.UnmarshalBinary(rec.ckpts[1]); err != nil {
		t.Fatal(err)
	}
	c.OptimizerName = "sgd"
	var count epochCounter
	got, gotRep, err := Train(context.Background(), cfg, trainSet, val, 5, Options{Hooks: count.hooks,
		Restore: func(i int) (*FinishedMember, *train.Checkpoint, error) {
			if i == 0 {
				return foreign, ck, nil
			}
			return nil, &c, nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	sameEnsembles(t, want, got)
	if len(gotRep.Warnings) != len(wantRep.Warnings)+2 {
		t.Fatalf("warnings %q, want two more than %q", gotRep.Warnings, wantRep.Warnings)
	}
	if w := strings.Join(gotRep.Warnings, "\n"); !strings.Contains(w, "member 0 (member_0): its record") || !strings.Contains(w, "member 1 (member_1): its checkpoint") {
		t.Errorf("warnings %q do not name both members", gotRep.Warnings)
	}
	for i := range 2 {
		if n := count.n[i].Load(); n != int64(testEpochs()) || gotRep.Members[i].Restored || gotRep.Members[i].ResumedFrom != 0 {
			t.Errorf("member %d: %d epochs, restored %v, resumed from %d; want all %d from the start", i, n, gotRep.Members[i].Restored, gotRep.Members[i].ResumedFrom, testEpochs())
		}
	}
}

// TestFinishedMemberRoundTrip: the record's binary form keeps every value bit for bit, and a
// record of another version is refused.
func TestFinishedMemberRoundTrip(t *testing.T) {
	data := blobs(120, 6, 3, 2)
	rec := newRecords()
	cfg := bagConfig(6, 3, 1)
	cfg.Members = 1
	if _, _, err := Train(context.Background(), cfg, data.Subset(seq(0, 90)), data.Subset(seq(90, 120)), 3, Options{Finished: rec.done}); err != nil {
		t.Fatal(err)
	}
	var f FinishedMember
	if err := f.UnmarshalBinary(rec.finished[0]); err != nil {
		t.Fatal(err)
	}
	again, err := f.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var g FinishedMember
	if err := g.UnmarshalBinary(again); err != nil {
		t.Fatal(err)
	}
	if a, b := fmt.Sprintf("%+v", f), fmt.Sprintf("%+v", g); a != b || len(f.Weights) == 0 || len(f.History.Epochs) == 0 {
		t.Fatalf("round trip changed the record:\n%s\n%s", a, b)
	}
	type plain FinishedMember // gob without MarshalBinary, which writes the current version
	f.Version = 99
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode((*plain)(&f)); err != nil {
		t.Fatal(err)
	}
	var h FinishedMember
	if err := h.UnmarshalBinary(buf.Bytes()); err == nil || !strings.Contains(err.Error(), "version 99") {
		t.Fatalf("record of version 99: %v", err)
	}
	if err := h.UnmarshalBinary([]byte("not a record")); err == nil {
		t.Fatal("garbage decoded as a record")
	}
}

func keys(m map[int][]byte) []int {
	var out []int
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestTrainMembersApart trains an ensemble as an engine that spreads it does: each member
// alone (Options.Members), in reverse order and with other worker counts, then a Train of the
// whole with the records. That Train trains nothing, and its ensemble and Report are
// bit-identical to those of one Train, also when it is given the tables' targets but not
// their inputs (RecordsOnly), which it refuses when a record lacks the predictions.
func TestTrainMembersApart(t *testing.T) {
	data := blobs(240, 6, 3, 1)
	trainSet, val := data.Subset(seq(0, 180)), data.Subset(seq(180, 240))
	const members = 3
	cfg := bagConfig(6, 3, members)
	want, wantRep, err := Train(context.Background(), cfg, trainSet, val, 91, Options{})
	if err != nil {
		t.Fatal(err)
	}
	rec := newRecords()
	for i := members - 1; i >= 0; i-- {
		part := cfg
		part.Workers = 1 + i%2
		ens, rep, err := Train(context.Background(), part, trainSet, val, 91, Options{Members: []int{i},
			Checkpoint: rec.checkpoint, Finished: rec.done, Restore: rec.restore})
		if err != nil {
			t.Fatalf("member %d: %v", i, err)
		}
		if ens != nil {
			t.Fatalf("member %d: a part returned an ensemble", i)
		}
		if rep.Members[i].Epochs == 0 {
			t.Fatalf("member %d: the report of the part has no epochs", i)
		}
		if len(rec.finished) != members-i {
			t.Fatalf("after member %d: %d finished records, want %d (only the member asked for trains)", i, len(rec.finished), members-i)
		}
	}
	var f FinishedMember
	if err := f.UnmarshalBinary(rec.finished[0]); err != nil || !f.outputsFit(val.Len(), f.OOBRows) || f.OOBRows == 0 || len(f.ValOut.Heads) == 0 {
		t.Fatalf("member 0's record: %v; predictions kept %v, %d val and %d OOB rows", err, f.HasOutputs, f.ValRows, f.OOBRows)
	}
	// With every record and its predictions, the tables' targets are enough (RecordsOnly):
	// the same ensemble and Report.
	noInputs := func(d train.Dataset) train.Dataset {
		return train.Dataset{NumInputs: d.NumInputs, Cat: make([][]int32, len(d.Cat)), Targets: d.Targets, Index: d.Index}
	}
	got, gotRep, err := Train(context.Background(), cfg, noInputs(trainSet), noInputs(val), 91, Options{Restore: rec.restore, RecordsOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	sameEnsembles(t, want, got)
	if a, b := reportText(wantRep), reportText(gotRep); a != b {
		t.Fatalf("reports differ:\none Train     %s\nrecords only %s", a, b)
	}
	// A record of the first format (no predictions): the member's predictions are computed
	// again, with the same result; without the inputs, Train says it needs them.
	f.HasOutputs, f.ValOut, f.OOBOut = false, nn.Outputs{}, nn.Outputs{}
	if rec.finished[0], err = f.MarshalBinary(); err != nil {
		t.Fatal(err)
	}
	if ens, _, err := Train(context.Background(), cfg, noInputs(trainSet), noInputs(val), 91, Options{Restore: rec.restore, RecordsOnly: true}); ens != nil || !errors.Is(err, ErrInputsNeeded) || !strings.Contains(err.Error(), "member 0") {
		t.Fatalf("records only, member 0's record without predictions: ensemble %v, error %v; want ErrInputsNeeded naming member 0", ens != nil, err)
	}
	var count epochCounter
	got, gotRep, err = Train(context.Background(), cfg, trainSet, val, 91, Options{Restore: rec.restore, Hooks: count.hooks})
	if err != nil {
		t.Fatal(err)
	}
	for i := range members {
		if n := count.n[i].Load(); n != 0 {
			t.Errorf("member %d trained %d epochs in the final Train, want 0", i, n)
		}
	}
	sameEnsembles(t, want, got)
	if a, b := reportText(wantRep), reportText(gotRep); a != b {
		t.Fatalf("reports differ:\none Train %s\napart     %s", a, b)
	}
	if _, _, err := Train(context.Background(), cfg, trainSet, val, 91, Options{Members: []int{members}}); err == nil || !strings.Contains(err.Error(), "outside") {
		t.Fatalf("member %d of %d: %v, want an error", members, members, err)
	}
}
