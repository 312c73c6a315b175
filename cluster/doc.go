// Package cluster runs pipe pipelines on Temporal (https://temporal.io): the same pipeline file,
// spread over worker processes on as many machines as a Temporal cluster has workers.
//
// A run is a workflow (WorkflowName). Its first activity plans the run (pipeline.PlanStore:
// every stage's key in the stage store, which stages are there already, which split into
// parts); then every stage is an activity that runs it alone on some worker (pipeline.Run with
// RunOptions.Only), once the stages it reads from have succeeded. An ensemble stage first fans
// out one activity per member (RunOptions.Part), so members train on all workers at once, and
// then combines them in its own activity. A search stage's trials run the same way, but in
// steps (pipeline.SteppedStage): the workflow asks a worker which trials can make progress
// (the ready activity reads the search's board from the store), runs each as an activity until
// it finishes or pauses at a pruning decision that waits on lower trials, and asks again as
// each ends (a search of ensembles likewise: its trials are never pruned, so each runs in one
// activity); the search stage's own activity then finds every trial finished. Stages reach
// each other through the stage store only
// (a shared directory, or object storage): what crosses Temporal is the pipeline's store key,
// stage names, part numbers, keys and small records, never data. A worker keeps the tables
// its activities read back from the store in memory (pipeline.TableCache, within the run's
// memory budget), so that the next activities of the run on that worker (an ensemble's other
// members, its combining run) do not fetch and decode them again; with them, the dense copies
// of the training and validation tables the first member built (StageContext.Shared), which
// the other members on the worker take instead of building their own.
//
// Activities heartbeat; a heartbeat carries the store key of the activity's last checkpoint.
// A worker that dies stops heartbeating, and Temporal gives the activity to another worker,
// which continues from that checkpoint: a stage's results are the same, bit for bit, however
// the work was spread and however many attempts it took, because every stage and member
// derives its randomness from the run seed and its own name and index, and checkpoints resume
// bit-identically.
//
// The client (Engine, behind `pipe run --engine temporal`) submits the workflow, shows its
// progress, and when it ends writes the same run directory as a local run, reading every
// stage's outputs back from the store (RunOptions.Remote), with the workflow's id and each
// stage's worker and attempts in the manifest. Ctrl-C cancels the workflow and its activities.
// Worker runs the activities (`pipe worker`, or a program's own main with its own stage
// kinds). Schedules (Schedule*) start the workflow on a cron spec; such a run's directory is
// written by a final activity on a worker (RunInput.RecordDir).
package cluster
