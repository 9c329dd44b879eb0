"""Runs Hypothesis state machines against the real devices, within a stated budget.

Each model test is a `ModelMachine`: rules that call the driver and compare every result,
errno and byte with what a small Python model predicts. `run_machine` runs one:

- under `make check`: a fixed number of examples (random sequences of calls), from a seed
  drawn afresh for every run, so that each CI run explores sequences no earlier run tried;
- under `make fuzz` (`SCULL_FUZZ_SECONDS=N` in the guest): fresh random sequences until N
  seconds have passed.

Either way it prints the seed, how many examples and steps ran, how long they took and how
often each rule ran; a rule that ran fewer than `MIN_RULE_RUNS` times fails the test, since
its calls were never really checked. `SCULL_MODEL_SEED=S` (passed into the guest by
scripts/vm) replays the run that printed seed S. A failure is printed as the sequence of calls
that failed. `make fuzz` (or `SCULL_MODEL_SHRINK=1`) first shrinks it to the shortest sequence
Hypothesis finds, a reproducer to paste into a test. `make check` does not: shrinking against
a slow TCG guest can take Hypothesis's full five minutes, past the per-test timeout, and the
seed replays the same sequence with shrinking on.
"""

import collections
import functools
import os
import time

import hypothesis
from hypothesis import HealthCheck, Phase, settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, run_state_machine_as_test

FUZZ_SECONDS = float(os.environ.get("SCULL_FUZZ_SECONDS", "0") or 0)
SHRINK = FUZZ_SECONDS > 0 or os.environ.get("SCULL_MODEL_SHRINK", "0") == "1"
REPLAY_SEED = os.environ.get("SCULL_MODEL_SEED", "")

# Fewest runs of each rule that a run of `make check` must make for its figures to count: a
# rule whose preconditions almost never hold checks next to nothing.
MIN_RULE_RUNS = 3


class ModelMachine(RuleBasedStateMachine):
    """Counts examples and steps for the report; subclasses call super().__init__()."""

    examples = 0
    steps = 0
    rule_runs = collections.Counter()
    outcomes = collections.Counter()

    def __init__(self):
        super().__init__()
        type(self).examples += 1

    def saw(self, outcome):
        """Counts an outcome that the run must show it reached (see `run_machine`)."""
        type(self).outcomes[outcome] += 1

    @invariant()
    def count_step(self):
        type(self).steps += 1


def count_rule_runs(machine):
    """Wraps each rule of `machine`, once, so that the `rule_runs` of the class that runs it
    counts how often it ran."""
    for r in machine.rules():
        # A subclass shares its rules with its base, and every run asks again.
        if getattr(r.function, "counts_runs", False):
            continue

        def counted(self, *args, _rule=r.function, **kwargs):
            type(self).rule_runs[_rule.__name__] += 1
            return _rule(self, *args, **kwargs)
        r.function = functools.wraps(r.function)(counted)
        r.function.counts_runs = True


def run_machine(machine, examples, steps, capsys, min_rule_runs=MIN_RULE_RUNS, reached=()):
    """Runs `machine` for `examples` sequences of up to `steps` calls (or, when fuzzing, for
    SCULL_FUZZ_SECONDS) and prints what ran past pytest's capture (`capsys` is the test's
    fixture), so that the figures show in every run's log. Fails when a rule ran fewer than
    `min_rule_runs` times, or an outcome named in `reached` was seen (`saw`) fewer."""
    count_rule_runs(machine)
    machine.examples = machine.steps = 0
    machine.rule_runs = collections.Counter()
    machine.outcomes = collections.Counter()
    seed = int(REPLAY_SEED) if REPLAY_SEED else int.from_bytes(os.urandom(4), "little")
    hypothesis.seed(seed)(machine)
    start = time.monotonic()
    common = dict(
        stateful_step_count=steps,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.generate, Phase.shrink] if SHRINK else [Phase.generate],
        report_multiple_bugs=False,
    )
    passed = False
    try:
        if FUZZ_SECONDS > 0:
            while time.monotonic() - start < FUZZ_SECONDS:
                run_state_machine_as_test(machine, settings=settings(max_examples=examples,
                                                                     **common))
                # Each round its own sequences.
                hypothesis.seed(int.from_bytes(os.urandom(4), "little"))(machine)
        else:
            run_state_machine_as_test(machine, settings=settings(max_examples=examples,
                                                                 **common))
        passed = True
    finally:
        runs = ", ".join(f"{name} {n}" for name, n in sorted(machine.rule_runs.items()))
        outcomes = ", ".join(f"{name} {n}" for name, n in sorted(machine.outcomes.items()))
        with capsys.disabled():
            print(f"\nmodel {machine.__name__}: seed {seed}, {machine.examples} examples, "
                  f"{machine.steps} steps, {time.monotonic() - start:.0f} s; rule runs: {runs}"
                  + (f"; outcomes: {outcomes}" if outcomes else ""))
            if not passed:
                print(f"model {machine.__name__}: replay with SCULL_MODEL_SEED={seed}"
                      + (" (the fuzzing run's first round)" if FUZZ_SECONDS > 0 else ""))
    rare = {r.function.__name__: machine.rule_runs[r.function.__name__]
            for r in machine.rules()
            if machine.rule_runs[r.function.__name__] < min_rule_runs}
    assert not rare, f"rules that ran fewer than {min_rule_runs} times: {rare}"
    unreached = {name: machine.outcomes[name] for name in reached
                 if machine.outcomes[name] < min_rule_runs}
    assert not unreached, f"outcomes seen fewer than {min_rule_runs} times: {unreached}"
