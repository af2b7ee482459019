"""Running a queue flow without I/O: the unit tests of the flows and the lifecycle answer its steps."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Generator
from typing import Any

from fluke_airflow.queues.steps import Tally

Flow = Generator[Any, Any, Any]


def drive(flow: Flow, answer: Callable[[Any], Any], tallies: Counter[str] | None = None) -> tuple[Any, list[Any]]:
    """Run ``flow`` to its end, answering each step with ``answer(step)``; the result and the steps.
    :class:`Tally` steps (what the flow counts) are added up in ``tallies``, not listed."""
    steps: list[Any] = []
    result: Any = None
    while True:
        try:
            step = flow.send(result)
        except StopIteration as stop:
            return stop.value, steps
        if isinstance(step, Tally):
            if tallies is not None:
                tallies[step.name] += step.n
            result = None
            continue
        steps.append(step)
        result = answer(step)
