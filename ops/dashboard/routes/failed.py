"""The failure record: list, show, retry or delete one or all."""

from urllib.parse import quote

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ops.dashboard import rendering
from ops.dashboard.csrf import checked_form
from workers.failures import FailureRecord


async def failed_list(request: Request) -> Response:
    record = FailureRecord(request.app.state.redis)
    number, offset = rendering.page_args(request)
    total = await record.count()
    return rendering.page(
        request,
        "failed.html",
        failures=await record.page(offset, rendering.PAGE_SIZE),
        total=total,
        page_number=number,
        pages=max((total + rendering.PAGE_SIZE - 1) // rendering.PAGE_SIZE, 1),
        base_query="",
    )


async def retry(request: Request) -> Response:
    await checked_form(request)
    job_id = request.path_params["job_id"]
    try:
        new_id = await FailureRecord(request.app.state.redis).retry(job_id)
    except LookupError as e:
        raise HTTPException(404, str(e)) from None
    except ValueError as e:
        return rendering.back("/failed", str(e))
    return rendering.back(f"/jobs/{quote(new_id, safe='')}", f"retried {job_id}: enqueued as {new_id}")


async def delete(request: Request) -> Response:
    await checked_form(request)
    job_id = request.path_params["job_id"]
    if not await FailureRecord(request.app.state.redis).delete(job_id):
        raise HTTPException(404, f"no failed job {job_id!r}")
    return rendering.back("/failed", f"deleted {job_id} from the failure record")


async def retry_all(request: Request) -> Response:
    await checked_form(request)
    retried, errors = await FailureRecord(request.app.state.redis).retry_all()
    message = f"retried {len(retried)} job(s)"
    if errors:
        message += f"; {len(errors)} could not be retried (first: {errors[0]})"
    return rendering.back("/failed", message)


async def delete_all(request: Request) -> Response:
    await checked_form(request)
    deleted = await FailureRecord(request.app.state.redis).delete_all()
    return rendering.back("/failed", f"deleted {deleted} failed job(s)")


routes = [
    Route("/failed", failed_list, methods=["GET"]),
    Route("/failed/retry-all", retry_all, methods=["POST"]),
    Route("/failed/delete-all", delete_all, methods=["POST"]),
    Route("/failed/{job_id:path}/retry", retry, methods=["POST"]),
    Route("/failed/{job_id:path}/delete", delete, methods=["POST"]),
]
