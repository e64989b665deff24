"""The policy a process's sessions are recorded under, loaded once (kilometers.host assembles
the rest of the pipeline: the store, the shared sinks and each session's stage and gate)."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from .config import Settings

_log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from .security import Policy


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
            _log.warning(f'km: {exc}; on_error = "log": using the default policy (log only)')
            policy = Policy()
            settings.policy = None  # the settings say what is used (the recorder process reads them)
    if settings.redact_pii:
        policy.analysis = dataclasses.replace(policy.analysis, redact_pii=True)
    return policy
