"""``joblog cancel``: ask a running job to stop, as ``POST /api/v1/jobs/{id}/cancel`` does.

Cancelling is cooperative: it sets the job's ``cancel_requested``; the producer sees it
(``job.cancel_requested`` in Python, heartbeat answers over HTTP) and ends the job as
cancelled. On a database the flag is set by the same transaction the API runs
(:meth:`joblog.storage.producer.ProducerWrites.request_cancel`), after the same
resolution (:data:`joblog.resolve.JOB_TIERS`: the job's UUID or external ID); through a
server it is that API call, with a write token.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import click

from joblog.cli.common import (
    Target,
    escaped,
    fail_cleanly,
    read_store,
    server_options,
    target,
    url_option,
)
from joblog.exceptions import InvalidTransition, JobLogError, JobNotFound
from joblog.model import ResolvedBy

if TYPE_CHECKING:
    from joblog.resolve import Resolver

__all__ = ["EXIT_ENDED", "cancel_command"]

#: The job already ended: there is nothing to cancel (a script racing the job's end may
#: take this as success).
EXIT_ENDED = 3

#: Why an ID that names no job row by UUID or external ID cannot be cancelled, by the
#: tier that does know it.
_NOT_A_JOB = {
    ResolvedBy.CONTEXT_ID.value: "is a context ID; cancel names a job by its UUID or external"
    " ID (this context's newest job is {job})",
    ResolvedBy.LOG_EVENTS.value: "is known only from log events: its producer made no job row,"
    " so there is no job to cancel",
    ResolvedBy.FAILOVER_JOBS.value: "is a legacy failover_jobs row: the older system runs that"
    " job and joblog cannot cancel it",
}


class JobEnded(click.ClickException):
    exit_code = EXIT_ENDED


@click.command("cancel")
@url_option
@server_options
@click.option("--json", "as_json", is_flag=True, help="Print the job as the API's JSON object.")
@click.argument("job_id")
def cancel_command(
    url: str, server: str | None, token: str | None, as_json: bool, job_id: str
) -> None:
    """Ask a running job to stop: sets its cancel_requested, which its producer polls
    (job.cancel_requested) before it ends the job as cancelled.

    The job by its UUID or external ID, as the API's cancel route takes it. On a database
    URL the flag is set directly; with --server (or JOBLOG_SERVER) through the server's
    API, with a write token (--token or JOBLOG_TOKEN).

    \b
    Exit status:
      0  cancel requested (or already requested; the job still runs)
      1  nothing to cancel: unknown ID, a legacy or events-only ID, a
         context ID; or the database or server could not be used
      2  a bad option
      3  the job already ended (completed, failed or cancelled)
    """
    where = target(url, server, token)
    job = _by_server(where, job_id) if where.server else _on_database(where.url, job_id)
    if as_json:
        click.echo(json.dumps(job, ensure_ascii=True))
        return
    external = job.get("external_job_id")
    named = f"job {job.get('id')}" + (f" ({external})" if external else "")
    click.echo(escaped(f"cancel requested for {named}: its producer ends it at its next check"))


def _on_database(url: str, any_id: str) -> dict[str, Any]:
    from joblog.api.serialize import job_to_dict
    from joblog.resolve import JOB_TIERS, Resolver
    from joblog.storage.producer import ProducerWrites

    store = read_store(url)
    try:
        resolver = Resolver(store)
        try:
            located = resolver.locate(any_id, tiers=JOB_TIERS, with_job=True)
        except JobNotFound:
            raise click.ClickException(_why_not(any_id, _other_tier(resolver, any_id))) from None
        assert located.job_id is not None
        job = located.job
        if job is not None and job.is_terminal:
            raise _ended(job.id, job.status.value)
        producer = ProducerWrites(store, attach=resolver.attach)
        try:
            return job_to_dict(producer.request_cancel(located.job_id))
        except InvalidTransition:
            # It ended between the read above and the cancel's transaction.
            ended = store.reads.get_job(located.job_id)
            raise _ended(located.job_id, ended.status.value if ended else "ended") from None
    except JobLogError as error:
        raise fail_cleanly(error) from error
    finally:
        store.close()


def _other_tier(resolver: Resolver, any_id: str) -> tuple[str, str | None] | None:
    """(tier, job ID) of the tier that knows an ID no job tier knows; None: unknown."""
    try:
        located = resolver.locate(any_id)
    except JobNotFound:
        return None
    return located.tier.value, located.job_id


def _why_not(any_id: str, found: tuple[str, str | None] | None) -> str:
    if found is None or found[0] not in _NOT_A_JOB:
        return f"no job is known by the ID '{escaped(any_id)}'"
    tier, job = found
    return escaped(f"'{any_id}' " + _NOT_A_JOB[tier].format(job=job))


def _ended(job_id: str, status: str) -> JobEnded:
    return JobEnded(escaped(f"job {job_id} already ended ({status}): nothing to cancel"))


def _by_server(where: Target, any_id: str) -> dict[str, Any]:
    from joblog.cli.server import ServerApi, job_path
    from joblog.resolve import is_resolvable

    if not is_resolvable(any_id):
        raise click.ClickException(f"no job is known by the ID '{escaped(any_id)}'")
    api = ServerApi(where)
    try:
        status, body = api.call("POST", job_path(any_id, "/cancel"))
        if status == 202:
            return body
        error = body.get("error")
        if status == 409 and error == "invalid_transition":
            raise JobEnded(f"{escaped(body.get('detail'))}: nothing to cancel")
        if status == 404 and error == "job_not_found":
            found, summary = api.call("GET", job_path(any_id))
            tier = summary.get("resolved_by")
            job = summary.get("job")
            job_id = job.get("id") if isinstance(job, dict) else None
            known = (str(tier), str(job_id)) if found == 200 else None
            raise click.ClickException(_why_not(any_id, known))
        if status in (404, 405):
            raise click.ClickException(
                f"the joblog server at {api.server} takes no writes (joblog serve --read-only?)"
            )
        raise click.ClickException(
            f"the joblog server at {api.server} refused the cancel ({status}):"
            f" {escaped(str(body.get('detail') or error or body))[:300]}"
        )
    finally:
        api.close()
