"""Asynchronous requests: ``GET /services/rest/async/v1/job/{id}[/task[/{taskId}[/result]]]``, as Oracle
documents them in "REST Web Services Request Processing"."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get
from litestar.params import FromPath

from sandboxes.netsuite.account import (
    _COLLECTION,
    _JOBS,
    NetSuiteError,
    NetSuiteSandbox,
    _Job,
    _not_found,
)
from sandboxes.netsuite.responses import (
    _base,
    _json,
    _outcome_response,
    _Sandbox,
)

__all__ = ["list_tasks", "read_job", "read_task", "read_task_result"]


def _job_document(base: str, job: _Job, completed: bool, progress: str) -> dict[str, Any]:
    url = f"{base}{_JOBS}/{job.id}"
    return {
        "links": [{"rel": "self", "href": url}],
        "id": job.id,
        "completed": completed,
        "progress": progress,
        # As in Oracle's example ("Sending an Asynchronous Request"): the task collection, rel self.
        "task": {"links": [{"rel": "self", "href": f"{url}/task"}]},
    }


@get(f"{_JOBS}/{{job_id:str}}")
async def read_job(
    request: Request[Any, Any, Any], job_id: FromPath[str], sandbox: _Sandbox
) -> Response[bytes]:
    job = sandbox.job(job_id)
    completed, progress = sandbox.job_state(job, poll=True)
    return _json(_job_document(_base(request), job, completed, progress))


def _task(sandbox: NetSuiteSandbox, job_id: str, task_id: str) -> _Job:
    job = sandbox.job(job_id)
    if task_id != job.task_id:
        raise _not_found(None)
    return job


@get(f"{_JOBS}/{{job_id:str}}/task")
async def list_tasks(
    request: Request[Any, Any, Any], job_id: FromPath[str], sandbox: _Sandbox
) -> Response[bytes]:
    """The job's tasks (one per request; "get the task ID of the asynchronous request"), as a collection."""
    job = sandbox.job(job_id)
    url = f"{_base(request)}{_JOBS}/{job.id}/task"
    item = {"links": [{"rel": "self", "href": f"{url}/{job.task_id}"}], "id": job.task_id}
    return _json(
        {
            "links": [{"rel": "self", "href": url}],
            "count": 1,
            "hasMore": False,
            "items": [item],
            "offset": 0,
            "totalResults": 1,
        },
        media=_COLLECTION,
    )


@get(f"{_JOBS}/{{job_id:str}}/task/{{task_id:str}}")
async def read_task(
    request: Request[Any, Any, Any], job_id: FromPath[str], task_id: FromPath[str], sandbox: _Sandbox
) -> Response[bytes]:
    job = _task(sandbox, job_id, task_id)
    completed, progress = sandbox.job_state(job, poll=False)
    url = f"{_base(request)}{_JOBS}/{job.id}/task/{job.task_id}"
    return _json(
        {
            "links": [{"rel": "self", "href": url}, {"rel": "related", "href": f"{url}/result"}],
            "id": job.task_id,
            "completed": completed,
            "progress": progress,
        }
    )


@get(f"{_JOBS}/{{job_id:str}}/task/{{task_id:str}}/result")
async def read_task_result(
    job_id: FromPath[str], task_id: FromPath[str], sandbox: _Sandbox
) -> Response[bytes]:
    job = _task(sandbox, job_id, task_id)
    completed, _ = sandbox.job_state(job, poll=False)
    if not completed:
        raise NetSuiteError(400, "USER_ERROR", f"The task of job {job.id} has not completed yet.")
    return _outcome_response(job.outcome)
