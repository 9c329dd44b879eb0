"""Runs Hypothesis state machines against the real devices, within a stated budget.

Each model test is a `ModelMachine`: rules that call the driver and compare every result,
errno and byte with what a small Python model predicts. `run_machine` runs one:

- under `make check`: a fixed number of examples (random sequences of calls), derandomized so
  that CI sees the same sequences every run;
- under `make fuzz` (`SCULL_FUZZ_SECONDS=N` in the guest): fresh random sequences until N
  seconds have passed.

Either way it prints how many examples and steps ran and how long they took, and a failure
is printed as the sequence of calls that failed. `make fuzz` (or `SCULL_MODEL_SHRINK=1`)
first shrinks it to the shortest sequence Hypothesis finds, a reproducer to paste into a test.
`make check` does not: shrinking against a slow TCG guest can take Hypothesis's full five
minutes, past the per-test timeout, and the derandomized sequence fails the same way when run
again with shrinking on.
"""

import os
import time

from hypothesis import HealthCheck, Phase, settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, run_state_machine_as_test

FUZZ_SECONDS = float(os.environ.get("SCULL_FUZZ_SECONDS", "0") or 0)
SHRINK = FUZZ_SECONDS > 0 or os.environ.get("SCULL_MODEL_SHRINK", "0") == "1"


class ModelMachine(RuleBasedStateMachine):
    """Counts examples and steps for the report; subclasses call super().__init__()."""

    examples = 0
    steps = 0

    def __init__(self):
        super().__init__()
        type(self).examples += 1

    @invariant()
    def count_step(self):
        type(self).steps += 1


def run_machine(machine, examples, steps, capsys):
    """Runs `machine` for `examples` sequences of up to `steps` calls (or, when fuzzing, for
    SCULL_FUZZ_SECONDS) and prints what ran past pytest's capture (`capsys` is the test's
    fixture), so that the figures show in every run's log."""
    machine.examples = machine.steps = 0
    start = time.monotonic()
    common = dict(
        stateful_step_count=steps,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.generate, Phase.shrink] if SHRINK else [Phase.generate],
        report_multiple_bugs=False,
    )
    try:
        if FUZZ_SECONDS > 0:
            while time.monotonic() - start < FUZZ_SECONDS:
                run_state_machine_as_test(machine, settings=settings(max_examples=examples,
                                                                     **common))
        else:
            run_state_machine_as_test(machine, settings=settings(max_examples=examples,
                                                                 derandomize=True, **common))
    finally:
        with capsys.disabled():
            print(f"\nmodel {machine.__name__}: {machine.examples} examples, {machine.steps} steps, "
                  f"{time.monotonic() - start:.0f} s")
