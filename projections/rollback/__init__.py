"""Rollback planning: read-side logic over a guest's versions, snapshots and backups.

:func:`rollback_targets` lists the points a guest can be taken back to; :func:`plan_rollback`
answers the Proxmox VE calls that would take it there. Neither changes anything: a plan is
for an operator (or proxmoxer) to run.
"""

from .models import (
    PlanRequest,
    PlanStep,
    PlanTarget,
    RollbackPlan,
    RollbackTarget,
    RollbackTargets,
)
from .plan import plan_rollback
from .targets import rollback_targets

__all__ = [
    "PlanRequest",
    "PlanStep",
    "PlanTarget",
    "RollbackPlan",
    "RollbackTarget",
    "RollbackTargets",
    "plan_rollback",
    "rollback_targets",
]
