"""A property-based run (issue 12): schemathesis over the served /openapi.json of a real server.

Every operation the API documents is called with values generated from its schema, valid ones
and invalid ones (wrong types, out of range, missing, odd strings), against `urbis serve` over
the synced sample and the coverage tests' raster layers, with the admin API on (its token sent
with every request, so the admin operations are there and reached). Whatever comes, the answer
is no 5xx but a 503 (the database busy or away) and comes within ANSWER_BOUND; and it is what
the definition documents (status, media type, schema). The run is deterministic: Hypothesis
draws from a fixed seed (`derandomize`) with no example database, so a run repeats the last one
request for request.

`make test` runs a small budget per operation; the `slow` test a larger one.
"""

from __future__ import annotations

import itertools
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core import NotSet
from schemathesis.core.transport import Response

from tests.api.conftest import CoverageSources, start_server

pytestmark = pytest.mark.api

ANSWER_BOUND = 5.0  # seconds any one answer may take
SEED = 20261206
FAST_EXAMPLES = 10  # per operation, path variant and generation mode
DOCUMENTED = [status_code_conformance, content_type_conformance, response_schema_conformance]
SLOW_EXAMPLES = 100  # about 11,000 requests, some 6 minutes


TOKEN = "property-run-admin-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def fuzzed_api(coverage_database_url: str, coverage_sources: CoverageSources) -> Iterator[str]:
    proc, base = start_server(
        coverage_database_url,
        URBIS_ADMIN_TOKEN=TOKEN,
        URBIS_CONFIG=str(coverage_sources.config),
    )
    try:
        for paths in KNOWN_PATHS:  # a finished job per variant, whose id the run then uses
            paths["job_id"] = finished_zonal_job(base, paths["coverage_id"])
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def finished_zonal_job(base: str, coverage_id: str) -> str:
    """A zonal statistics job of the coverage over the municipalities, once it has ended."""
    with httpx.Client(base_url=base, timeout=30) as client:
        accepted = client.post(
            f"/coverages/{coverage_id}/zonal", params={"collection": "municipalities"}
        )
        assert accepted.status_code == 202, accepted.text
        job_id = str(accepted.json()["id"])
        deadline = time.monotonic() + 60
        while client.get(f"/jobs/{job_id}").json()["status"] not in ("successful", "failed"):
            assert time.monotonic() < deadline, f"job {job_id} still running after 60 s"
            time.sleep(0.2)
    return job_id


@pytest.fixture(scope="module")
def served_schema(fuzzed_api: str) -> schemathesis.BaseSchema:
    schema = schemathesis.openapi.from_url(f"{fuzzed_api}/openapi.json")
    schema.config.update(base_url=fuzzed_api)
    return schema


# Path parameters drawn from the schema alone are nearly always unknown (a 404 at once): each
# operation is also run with the sample's own collections, raster layers, both tile matrix
# sets and a finished job (its id added by `fuzzed_api`), so the generated query parameters and
# bodies reach the code behind them.
KNOWN_PATHS = [
    {"collection_id": "addresses", "tms_id": "WebMercatorQuad", "coverage_id": "terrain"},
    {"collection_id": "municipalities", "tms_id": "BelgianLambert72", "coverage_id": "imagery"},
]


@dataclass
class Outcome:
    requests: int = 0
    operations: set[str] = field(default_factory=set)  # those that were called at least once
    failures: list[str] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    slowest: tuple[float, str] = (0.0, "")


def _check(case: schemathesis.Case, outcome: Outcome) -> None:
    response = case.call(timeout=ANSWER_BOUND * 4, headers=AUTH)
    where = f"{case.method} {response.request.url}"
    if not isinstance(case.body, NotSet):
        where += f" with body {str(case.body)[:200]}"
    outcome.requests += 1
    outcome.operations.add(case.operation.label)
    outcome.statuses[response.status_code] += 1
    outcome.slowest = max(outcome.slowest, (response.elapsed, where[:200]))
    assert response.status_code < 500 or response.status_code == 503, (
        f"{where} answered {response.status_code}: {response.text[:300]}"
    )
    assert response.elapsed < ANSWER_BOUND, f"{where} took {response.elapsed:.1f} s"
    problems = undocumented(case, response)
    assert not problems, f"{where} answered {response.status_code}: {problems}"


def undocumented(case: schemathesis.Case, response: Response) -> str:
    """How the answer differs from what the definition documents (status, media type,
    schema); empty when it does not."""
    try:
        case.validate_response(response, checks=DOCUMENTED)
    except BaseExceptionGroup as group:  # schemathesis groups its checks' failures
        return "; ".join(str(failure).splitlines()[0] for failure in group.exceptions)
    return ""


def _variants(operation: schemathesis.APIOperation) -> list[dict[str, str]]:
    names = {p.name for p in operation.path_parameters}
    known = [{k: v for k, v in paths.items() if k in names} for paths in KNOWN_PATHS]
    return [{}] + [paths for paths in known if paths] if names & set(KNOWN_PATHS[0]) else [{}]


def fuzz(
    operation: Any,
    mode: GenerationMode,
    paths: dict[str, str] | None,
    examples: int,
    outcome: Outcome,
) -> str | None:
    """One operation's generated requests in one mode, checked: its first failure, shrunk.

    Hypothesis draws from SEED with no example database, so a run repeats the last one.
    `paths` fixes path parameters (a real collection or coverage) rather than drawing them.
    """
    strategy = operation.as_strategy(generation_mode=mode, path_parameters=paths)

    @seed(SEED)
    @settings(
        max_examples=examples,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
    )
    @given(case=strategy)
    def call(case: schemathesis.Case) -> None:
        _check(case, outcome)

    try:
        call()
    except Unsatisfiable:
        pass  # nothing to make invalid: an operation without parameters or body
    except AssertionError as exc:
        return str(exc)
    return None


def run(schema: schemathesis.BaseSchema, examples: int) -> Outcome:
    """Every operation, valid and invalid values: what went wrong (the smallest example each).

    Hypothesis draws from SEED with no example database: a run repeats the last one. Each
    operation's first failure is shrunk to its smallest form and kept; the run goes on.
    """
    outcome = Outcome()
    operations = [result.ok() for result in schema.get_all_operations()]
    # Deletions last: DELETE /jobs/{job_id} would take the known jobs from the operations after.
    operations.sort(key=lambda operation: operation.method.upper() == "DELETE")
    for operation in operations:
        for paths, mode in itertools.product(
            _variants(operation), (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
        ):
            failure = fuzz(operation, mode, paths or None, examples, outcome)
            if failure:
                outcome.failures.append(f"{operation.label} {paths} ({mode.value}): {failure}")
    assert outcome.operations == {o.label for o in operations}  # the run reached every one
    print(
        f"\n{outcome.requests} requests; statuses {dict(sorted(outcome.statuses.items()))}; "
        f"slowest {outcome.slowest[0]:.2f} s: {outcome.slowest[1]}"
    )
    return outcome


def test_no_request_gets_a_server_error_or_a_slow_answer(served_schema):
    outcome = run(served_schema, FAST_EXAMPLES)
    assert not outcome.failures, "\n".join(outcome.failures)


@pytest.mark.slow
def test_no_request_gets_a_server_error_or_a_slow_answer_in_a_long_run(served_schema):
    outcome = run(served_schema, SLOW_EXAMPLES)
    assert not outcome.failures, "\n".join(outcome.failures)


def test_the_run_would_see_an_answer_the_definition_does_not_document(served_schema):
    case = served_schema["/conformance"]["GET"].Case()
    real = case.call()

    def altered(status: int, content: bytes) -> Response:
        return Response(status, real.headers, content, real.request, real.elapsed, verify=False)

    assert undocumented(case, real) == ""
    assert "Undocumented status code" in undocumented(case, altered(418, real.content))
    assert "schema" in undocumented(case, altered(200, b'{"conformsTo": "no list"}')).lower()
