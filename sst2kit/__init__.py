"""The machinery behind sst2_compare.py, one job per module:

startup      before the heavy imports: config.py read and type-checked, --help, Ctrl-C
settings     the command line over config.py: the flags, their help, one line for a mistake
names        the runs, splits and labels, spelled once
errors       UsageError (one line, exit 2) and Diverged
console      printing on the main process (a lost console never stops a run), the stopwatch
runtime      the Setup decided once (processes, device, precision, CUDA graphs), the Experiment
processes    several processes: which this one is, the inputs they agree on, the seeds dealt
checks       the input checks, in order, and those of the config and the output folder
data         SST-2 and external files read and checked, re-split, subset
phrases      word-span searches: leakage, phrases vs whole sentences, source sentences
evaluation   each evaluation split as one value: labels, units, lengths, leakage, floors
models       the pretrained encoder with a new head and its tokenizer, loaded once; freezing
batches      token tables and the batches cut from them
features     the frozen encoder's features, computed once
cuda_graphs  training steps replayed as CUDA graphs
callbacks    the Trainer around each evaluation: when validation runs, its metrics, best epoch
probe        the best linear probe: a reference for the head-only run, fitted beside training
health       whether a run trained well enough to be evidence, and what to change
metrics      each run's metrics on a split, the deltas, floors, accuracy by length
comparison   one seed's comparison as a typed record, its claims decided
seeds        the answer over seeds as a typed record, its claims decided
significance intervals and paired tests over units, the three families, the across-seed answer
verdict      the verdict's sentences
report       what is printed, and report.md
files        the run folder; atomic writes, stop signals held back, whole model folders
results      results.json, predictions.csv and flips.csv: the run's record and its schema
resume       going on with a stopped run: which folder, what it recorded, whether it may add
trackers     --report_to: the Trainer's trackers, TensorBoard in the run folder, the answer
plots        the figures
"""
