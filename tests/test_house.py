"""The house rules a newcomer relies on when reading the code, checked on its source: the script
reads as the experiment (run() at the top, its stages reached in a few calls, no functions handed
around as values), functions stay short and take few positional arguments, and the run names have
one spelling. Each rule names what broke it."""

import ast

from conftest import ROOT

SCRIPT = ROOT / "sst2_compare.py"
SOURCES = [SCRIPT, *sorted((ROOT / "sst2kit").glob("*.py"))]
MAX_SCRIPT_LINES = 320
MAX_FUNCTION_LINES = 40
MAX_POSITIONAL = 3
# the brief's own signature: make_trainer(model, lr, epochs, run_name), and the helper beside it
POSITIONAL_BY_DESIGN = {"make_trainer"}


def functions(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [node for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)]


def calls(function):
    """The names a function calls: plain names and the attribute of a method call."""
    called = set()
    for node in ast.walk(function):
        if isinstance(node, ast.Call):
            target = node.func
            called.add(target.id if isinstance(target, ast.Name) else getattr(target, "attr", ""))
    return called


def test_the_script_is_short_and_run_comes_right_after_make_trainer():
    lines = SCRIPT.read_text(encoding="utf-8").count("\n")
    assert lines <= MAX_SCRIPT_LINES, f"sst2_compare.py has {lines} lines"
    tree = ast.parse(SCRIPT.read_text(encoding="utf-8"))
    defined = [node.name for node in tree.body if isinstance(node, ast.FunctionDef)]
    assert defined[:2] == ["make_trainer", "run"], defined


def test_from_run_a_reader_reaches_make_trainer_and_trainer_train_in_three_calls():
    script = {f.name: f for f in functions(SCRIPT)}
    reached, frontier = set(), {"run"}
    for _ in range(3):
        frontier = set().union(*(calls(script[name]) for name in frontier if name in script))
        reached |= frontier
    assert {"make_trainer", "train"} <= reached, sorted(reached)


def test_the_script_times_its_stages_in_blocks_not_by_handing_functions_around():
    source = SCRIPT.read_text(encoding="utf-8")
    assert ".timed(" not in source and "functools.partial" not in source


def test_no_function_is_long_or_takes_many_positional_arguments():
    long, positional = [], []
    for path in SOURCES:
        for function in functions(path):
            where = f"{path.name}:{function.name}"
            if function.end_lineno - function.lineno + 1 > MAX_FUNCTION_LINES:
                long.append(where)
            names = [a.arg for a in function.args.posonlyargs + function.args.args]
            names = [name for name in names if name not in ("self", "cls")]
            if len(names) > MAX_POSITIONAL and function.name not in POSITIONAL_BY_DESIGN:
                positional.append(where)
    assert not long, f"over {MAX_FUNCTION_LINES} lines: {long}"
    assert not positional, f"over {MAX_POSITIONAL} positional parameters: {positional}"


def test_the_run_names_are_spelled_in_names_py_alone():
    spelled = [
        f"{path.name}:{node.lineno}"
        for path in SOURCES
        if path.name != "names.py"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Constant) and node.value in ("head_only", "full_finetune")
    ]
    assert not spelled, f"a run name spelled outside names.py: {spelled}"


def test_the_seed_range_is_computed_in_one_place():
    computed = [
        path.name
        for path in SOURCES
        if "cfg.seed + cfg.num_seeds" in path.read_text(encoding="utf-8")
    ]
    assert computed == ["settings.py"], computed
