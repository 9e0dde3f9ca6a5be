"""The runs, the evaluation splits and the labels: one spelling each, imported everywhere."""

RUNS = ("head_only", "full_finetune")
HEAD_ONLY, FULL_FINETUNE = RUNS
RUN_NAMES = {"head_only": "head-only", "full_finetune": "full fine-tune"}  # inside a sentence
RUN_TITLES = {"head_only": "head-only (frozen encoder)", "full_finetune": "full fine-tune"}
# the best linear probe on the frozen features: a reference, not one of the two runs
PROBE = "probe"
PROBE_TITLE = "best linear probe (reference)"

# Reports list the splits in this order: whole sentences first (the population the question is
# about), the re-split test set's phrases last. external_test is evaluated only when
# external_test_file is set.
EVAL_SPLITS = ("validation", "external_test", "test")
SPLIT_TITLES = {
    "validation": "GLUE validation",
    "external_test": "the external test set",
    "test": "the re-split test set",
}
LABEL_NAMES = ("negative", "positive")


def evaluated(splits):
    """The evaluation splits among the keys of `splits`, in EVAL_SPLITS' order."""
    return tuple(split for split in EVAL_SPLITS if split in splits)


def headline_split(splits):
    """The split whose delta answers the question best: whole sentences never seen in training, the
    external set (larger, and outside GLUE) when there is one, else GLUE validation."""
    return "external_test" if "external_test" in splits else "validation"
