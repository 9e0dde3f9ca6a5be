"""The machinery behind sst2_compare.py, one job per module:

startup      before the heavy imports: config.py read and type-checked, --help, Ctrl-C while
loading names        the runs, splits and labels, spelled once errors       UsageError (one line,
exit 2) and Diverged console      printing on the main process (a lost console never stops a run),
and the stage stopwatch runtime      the Setup decided once (processes, device, precision, CUDA
graphs) and the Experiment processes    several processes: which this one is, the bad inputs they
agree on, the seeds dealt to them checks       the input checks, in order, and those of the config
and the output folder data         SST-2 and external files read and checked, re-split, subset
phrases      word-span searches: leakage, phrases vs whole sentences, source sentences, the
grouped split evaluation   each evaluation split as one value: labels, independent units, lengths,
leakage, floors, balance models       the pretrained encoder with a new head and its tokenizer,
loaded and checked once; freezing batches      token tables and the batches cut from them features
the frozen encoder's features, computed once cuda_graphs  training steps replayed as CUDA graphs
callbacks    the Trainer around each evaluation: when validation runs, its metrics, the best epoch
kept probe        the best linear probe: a reference for the head-only run, fitted beside the
training health       whether a run trained well enough to be evidence, judged on the weights
scored, and what to change metrics      each run's metrics, the deltas, floors, one seed's
comparison, the summary over seeds significance intervals and paired tests over independent units,
the three families, the answer across seeds verdict      the verdict's sentences report       what
is printed, and report.md files        the run folder; atomic writes, stop signals held back,
whole model folders, CSV and JSON results      results.json, predictions.csv and flips.csv: the
run's record and its schema resume       going on with a stopped run: which folder, what it
recorded, whether this run may add to it trackers     --report_to: the Trainer's trackers,
TensorBoard in the run folder, the answer logged once plots        the figures
"""
