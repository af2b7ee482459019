"""How make test spreads the suite over pytest-xdist workers (``-n``): by module, and the end-to-end
modules by Airflow stack.

* A module is one unit of work, so its module-scoped fixtures (a wheel built once, an Azurite to
  restart) are set up once, on one worker.
* tests/e2e runs on real Airflow stacks, each a worker's own (``tests/e2e/conftest.py``). A stack's
  modules restart and kill its components, so they run one after the other on it: each group
  below is one unit, on one worker. The groups are balanced by what they took on 2 cores, and they
  are handed out first, being the longest units of the run.

The controller only sees node ids, not markers (and xdist's own ``loadgroup`` reads ``xdist_group``
marks by rewriting ``item._nodeid``, which pytest 9.2 no longer uses), hence a scheduler of ours.
"""

from __future__ import annotations

from typing import Any

E2E = "tests/e2e/"
STACK_GROUPS = {
    "test_e2e_event_driven.py": "e2e-events",
    "test_e2e_consumers.py": "e2e-events",
    "test_e2e_success.py": "e2e-events",
    "test_e2e_scale_out.py": "e2e-triggerers",
    "test_e2e_triggerer_restart.py": "e2e-triggerers",
    "test_e2e_faults.py": "e2e-faults",
    "test_e2e_airflow.py": "e2e-faults",
    "test_e2e_browser.py": "e2e-faults",
    "test_e2e_postgres.py": "e2e-postgres",  # a stack of its own: PostgreSQL, two schedulers, two triggerers
}
"""The e2e module -> its stack's group; a module missing here gets a stack of its own.
test_e2e_success.py shares the event-driven stack: its needs are the same (watchers on queues of its
own, the triggerer killed and restarted, nothing left behind), and a fourth stack on 2 cores would
slow every other."""


def unit_of(nodeid: str) -> str:
    """The unit of work a test belongs to: its e2e stack group, or its module."""
    module = nodeid.split("::", 1)[0]
    if module.startswith(E2E):
        name = module.rsplit("/", 1)[-1]
        return STACK_GROUPS.get(name, f"e2e-{name.removesuffix('.py')}")
    return module


def make_scheduler(config: Any, log: Any) -> Any:
    """xdist's scope scheduling with :func:`unit_of` as the scope, e2e groups handed out first.
    (xdist is imported here: the compat tier's virtualenvs run without it.)"""
    from xdist.scheduler import LoadScopeScheduling

    class ModuleAndStackScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return unit_of(nodeid)

        def _assign_work_unit(self, node: Any) -> None:
            stacks = [scope for scope in self.workqueue if scope.startswith("e2e-")]
            if stacks:
                self.workqueue.move_to_end(stacks[0], last=False)
            super()._assign_work_unit(node)

    return ModuleAndStackScheduling(config, log)
