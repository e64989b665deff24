"""Fuzz the team server from its own OpenAPI schema (schemathesis), on SQLite and PostgreSQL: never a
5xx on any input, and responses, status codes, content types and 405s conform to the schema.

Requests carry a valid key with the admin scope so that generated bodies and parameters
reach the handlers rather than stopping at authentication. Two checks are left out, on
purpose: the batch endpoint answers 200 with per-event errors for invalid events (the
contract: valid events are never rejected because of bad neighbours), and opaque cursors or
cross-field rules (since < until) cannot be expressed in OpenAPI, so a "schema-valid" value
can still be a 400/422.
"""

from __future__ import annotations

import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance
from sqlalchemy import Engine

from kilometers.server import tenancy
from kilometers.server.app import ServerSettings, create_app

from factory import session_batch

CHECKS = {"excluded_checks": [negative_data_rejection, positive_data_acceptance]}


def test_api_conforms_and_never_fails(engine: Engine, store_url: str) -> None:
    org = tenancy.create_org(engine, "fuzz", "unlimited")
    key = tenancy.create_key(engine, org, "admin")
    app = create_app(store_url, ServerSettings(rate_per_second=0, retention_interval_seconds=0))
    session, events = session_batch(5)
    seeded = TestClient(app).post(
        "/api/v1/events/batch", json={"session": session, "events": events}, headers={"X-API-Key": key}
    )
    assert seeded.status_code == 200
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    # the live stream never ends by design; it has its own tests (test_live.py)
    operations = [r.ok() for r in schema.get_all_operations() if r.ok().path != "/api/v1/live"]
    assert len(operations) >= 9
    calls: list[str] = []
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def check(case: schemathesis.Case) -> None:
            case.call_and_validate(headers={"Authorization": f"Bearer {key}"}, **CHECKS)
            calls.append(f"{case.method} {case.path}")

        check()
    assert len(set(calls)) == len(operations) and len(calls) >= 10 * len(operations)
    print(f"{len(calls)} generated requests")
