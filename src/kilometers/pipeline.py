"""Which sinks a recording session gets, in one place for every transport (stdio, HTTP).

Order matters: the store comes first, so that everything after it (the uploader above all)
works from what was committed locally.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from .config import Settings
from .sinks import Sink

if TYPE_CHECKING:
    from .model import Session
    from .recorder import Recorder
    from .security import Gate, Policy, SecurityStage


def build_sinks(
    settings: Settings,
    metrics_port: int | None = None,
    backlog: Callable[[], int] | None = None,
    server_side: bool = False,
) -> list[Sink]:
    """``server_side``: km answers the client in the server's place (km proxy)."""
    from .store.writer import StoreSink

    sinks: list[Sink] = [StoreSink(settings.db_url)]
    if settings.api_url and settings.api_key:
        from .sync.sink import UploaderSink

        sinks.append(
            UploaderSink(
                settings.api_url,
                settings.api_key,
                db_url=settings.db_url,
                batch_size=settings.upload_batch_size,
                interval=settings.upload_interval,
            )
        )
    if settings.otel:
        try:
            from .export.otel import OtelSink

            sinks.append(
                OtelSink(
                    payloads=settings.otel_payloads,
                    legacy_names=settings.otel_legacy_names,
                    server_side=server_side,
                )
            )
        except Exception as exc:  # a bad OTEL_* setting must not keep the server from starting
            print(f"km: OpenTelemetry export is off: {exc}", file=sys.stderr)
    if metrics_port is not None:
        try:
            from .export.prometheus import MetricsSink

            sinks.append(MetricsSink(metrics_port, backlog=backlog))
        except OSError as exc:
            print(f"km: cannot serve metrics on port {metrics_port}: {exc}", file=sys.stderr)
    from .plugins import plugin_sinks

    sinks.extend(plugin_sinks(settings))
    return sinks


def build_recorder(
    settings: Settings, session: Session, metrics_port: int | None = None, policy: Policy | None = None
) -> tuple[Recorder, Gate | None]:
    """The whole recording pipeline of a session: capture, security stage, sinks (and the gate
    of a blocking policy, wired to the recorder)."""
    from .jsonrpc import Capture, Filters
    from .recorder import Recorder

    filters = Filters(settings.exclude_ping, settings.include_methods, settings.exclude_methods)
    capture = Capture(session, filters)  # the payload limit applies after redaction (recorder)
    stage, gate = security_stage(settings, session.name or "server", policy)
    recorder = Recorder(capture, [], stage=stage, payload_limit=settings.payload_limit)
    if gate is not None:
        gate.barrier = recorder.barrier
    recorder.sinks.extend(build_sinks(settings, metrics_port, recorder.backlog))
    return recorder, gate


def load_policy(settings: Settings) -> Policy:
    """The policy of the sessions to record, loaded once before the server starts.

    A policy file that cannot be used raises :class:`~kilometers.security.PolicyError`: km must
    not run a server the user believes is protected. Unless the file itself (``on_error``) or,
    when it cannot say, ``[monitor] policy_on_error`` / ``KM_POLICY_ON_ERROR`` says ``log``: then
    the error is reported and the default (log-only) policy is used; redaction stays on."""
    from .security import Policy, PolicyError

    policy = Policy()
    if settings.policy:
        path = Path(settings.policy).expanduser()
        try:
            policy = Policy.load(path)
            if policy.mode == "block" and not settings.analysis:
                raise PolicyError(
                    f'policy file {path} says mode = "block", but the analysis is off '
                    "([monitor] analysis = false or KM_ANALYSIS=0): nothing would be blocked",
                    policy.on_error,
                )
        except PolicyError as exc:
            if (exc.on_error or settings.policy_on_error) != "log":
                raise
            print(f'km: {exc}; on_error = "log": using the default policy (log only)', file=sys.stderr)
            policy = Policy()
            settings.policy = None  # the settings say what is used (the recorder process reads them)
    if settings.redact_pii:
        policy.analysis = dataclasses.replace(policy.analysis, redact_pii=True)
    return policy


def security_stage(
    settings: Settings, server: str, policy: Policy | None = None
) -> tuple[SecurityStage | None, Gate | None]:
    """The analysis/redaction stage every session gets, and the blocking gate when the policy
    (:func:`load_policy`'s, when not given) says ``mode = "block"``."""
    from .security import Gate, SecurityStage

    if not settings.analysis:
        print("km: security analysis and redaction are off (analysis = false)", file=sys.stderr)
        return None, None
    if policy is None:
        policy = load_policy(settings)
    stage = SecurityStage(policy, settings.db_url)
    gate = Gate(policy, stage, server) if policy.mode == "block" else None
    return stage, gate
