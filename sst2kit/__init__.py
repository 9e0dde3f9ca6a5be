"""The machinery behind sst2_compare.py, one job per module:

  names        the runs, splits and labels, spelled once
  errors       UsageError (one line, exit 2) and Diverged
  console      printing on the main process, and the stage stopwatch
  checks       bad input found before anything is loaded or written
  data         SST-2 and external files read, re-split, subset
  phrases      word-span searches: leakage, phrases vs whole sentences, source sentences, the grouped split
  evaluation   each evaluation split as one value: labels, independent units, lengths, leakage, floors
  models       the pretrained encoder with a new head, its tokenizer, freezing, precision
  batches      token tables and the batches cut from them
  features     the frozen encoder's features, computed once
  cuda_graphs  training steps replayed as CUDA graphs
  probe        the best linear probe: a reference for the head-only run
  metrics      each run's metrics, the deltas, floors, one seed's comparison, the summary over seeds
  significance intervals and paired tests over independent units, and the Holm correction
  verdict      the verdict's sentences
  report       what is printed
  results      the run folder's files: results.json, predictions.csv, flips.csv, written atomically
  plots        the figures
"""
