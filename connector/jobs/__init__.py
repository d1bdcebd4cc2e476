"""Durable long jobs: view cache builds, dataset statistics, synthesizer fits, extracts.

A job is a row in the ``jobs`` table, enqueued idempotently by its ``key``; one loop per
process (``JobRunner``) claims due jobs with a lease, like the outbox sender, runs the handler
registered for the job's kind and records the result. A process killed with SIGKILL leaves its
job ``running`` with a lease that expires; the next runner (another replica, or this one after
a restart) claims it again and runs it from the start, so handlers write their output to a
temporary place and move it into place at the end (a job finishes once). CPU-heavy work runs
in a process pool (``JobContext.run_cpu``), never on the event loop; handlers report their
stage and percentage, which the management API and the CLI show.
"""

from connector.jobs.model import Job, JobState
from connector.jobs.runner import JobContext, JobHandler, JobRunner
from connector.jobs.store import SqlJobStore

__all__ = ["Job", "JobContext", "JobHandler", "JobRunner", "JobState", "SqlJobStore"]
