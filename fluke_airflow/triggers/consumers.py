"""What a watcher can learn about its consumer DAGs, and how: the triggerer's supervisor is all a
trigger may ask (the trigger runner has no database access).

Airflow 3.3.2's triggerer answers a trigger ``GetDRCount``, ``GetTaskStates``, ``GetTICount``,
``GetDagRunState``, ``GetPreviousTI``, connections, Variables, XComs and the asset state store
(``ToTriggerSupervisor`` in ``airflow/jobs/triggerer_job_runner.py``); not ``GetDag`` (so not
whether a DAG is paused) and no asset look-up (so not which DAGs are scheduled on the watcher's
asset). What the watcher uses:

* **runs**: ``GetDRCount`` counts a DAG's runs (0, without an error, for a DAG Airflow does not
  know); with ``states=["queued", "running"]`` it tells a busy DAG (at ``max_active_runs``) from
  an idle one.
* **whether a DAG exists**: ``GetTaskStates`` with a ``task_group_id`` makes the execution API
  load the DAG (``_get_group_tasks`` in ``execution_api/routes/task_instances.py``), and its 404
  says which was missing: "The Dag with ID: `x` was not found", or, for a DAG it knows, "Task
  group ... not found in DAG x". The supervisor logs either answer as "API server error" at ERROR
  in the triggerer's log, so a DAG is asked once per triggerer process, and only while it has no
  run (a DAG with a run exists, or existed: a renamed or deleted one shows as stalled instead).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Protocol

log = logging.getLogger("fluke_airflow.triggers")

PROBE_GROUP = "(fluke_airflow checks that the DAG exists; not an error)"
"""The task group the existence check asks for: no DAG has it (group ids have no spaces), so the
answer names what was missing, and the supervisor's log line says what it was."""
PROBE_RUN = "fluke_airflow-consumer-check"
PROBE_TIMEOUT = 60.0
"""A supervisor that cannot decode a request logs it and never answers: give up, unsure."""
BUSY = ("queued", "running")


class Runs(Protocol):
    """The consumer DAGs as the watcher sees them (the triggerer's supervisor, or a test's fake)."""

    async def count(self, dag_id: str) -> int:
        """How many runs ``dag_id`` has, in any state (0 for a DAG Airflow does not know)."""
        ...

    async def busy(self, dag_id: str) -> int:
        """How many runs of ``dag_id`` are queued or running."""
        ...

    async def exists(self, dag_id: str) -> bool | None:
        """Whether Airflow knows ``dag_id``; None when the answer does not tell."""
        ...


def _comms() -> Any:
    from airflow.sdk.execution_time import task_runner

    comms = getattr(task_runner, "SUPERVISOR_COMMS", None)
    if comms is None:
        raise RuntimeError("asking about DAG runs needs the triggerer (no supervisor to ask in this process)")
    return comms


class SupervisorRuns:
    """:class:`Runs` through the triggerer's supervisor."""

    def __init__(self) -> None:
        self._known: set[str] = set()
        """DAGs found once: not asked again of this supervisor (each ask is an ERROR line in its log)."""
        self._asked: Any = None

    async def count(self, dag_id: str) -> int:
        return await self._count(dag_id)

    async def busy(self, dag_id: str) -> int:
        return await self._count(dag_id, list(BUSY))

    async def _count(self, dag_id: str, states: list[str] | None = None) -> int:
        from airflow.sdk.execution_time.comms import DRCount, GetDRCount

        answer = await _comms().asend(GetDRCount(dag_id=dag_id, states=states))
        if not isinstance(answer, DRCount):
            raise RuntimeError(f"the triggerer's supervisor could not count the runs of DAG {dag_id!r}: {answer!r}")
        return answer.count

    async def exists(self, dag_id: str) -> bool | None:
        comms = _comms()
        if comms is not self._asked:  # another supervisor (a test's): what the last one said does not hold
            self._asked, self._known = comms, set()
        if dag_id in self._known:
            return True
        from airflow.sdk.execution_time.comms import GetTaskStates

        request = GetTaskStates(dag_id=dag_id, task_group_id=PROBE_GROUP, run_ids=[PROBE_RUN])
        try:
            answer = await asyncio.wait_for(comms.asend(request), PROBE_TIMEOUT)
        except asyncio.TimeoutError:
            log.debug("No answer about DAG %r within %.0f s", dag_id, PROBE_TIMEOUT)
            return None
        except Exception as error:  # AirflowRuntimeError: the API server's answer, as an error frame
            answer = getattr(error, "error", error)
        found = dag_found(answer)
        if found:
            self._known.add(dag_id)
        return found


def dag_found(answer: Any) -> bool | None:
    """What the answer to the existence check says (see the module's doc); None if it does not tell."""
    if type(answer).__name__ == "TaskStatesResult":  # a DAG with such a group: it exists
        return True
    text = str(getattr(answer, "detail", answer))
    if "404" not in text:
        return None
    if "Task group" in text:
        return True
    if "The Dag with ID" in text:
        return False
    return None


SUPERVISOR = SupervisorRuns()
