"""Every rule id the analyzer can report, with its usual severity and a one-line description.

Ids are stable: stores, filters and user configuration refer to them. A finding's actual
severity can differ from the usual one (e.g. ``low`` for documentation example keys,
``critical`` for ``rm -rf /``) and can be overridden in the configuration.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import NamedTuple

from .findings import Severity


class Rule(NamedTuple):
    severity: Severity
    description: str


_RULES: dict[str, Rule] = {
    # secrets (by value)
    "secret.aws_access_key": Rule("high", "AWS access key ID (AKIA/ASIA...)"),
    "secret.aws_secret_key": Rule("critical", "AWS secret access key next to an AWS-secret name"),
    "secret.gcp_api_key": Rule("high", "Google API key (AIza...)"),
    "secret.gcp_oauth_token": Rule("high", "Google OAuth access token (ya29....)"),
    "secret.gcp_client_secret": Rule("high", "Google OAuth client secret (GOCSPX-...)"),
    "secret.azure_storage_key": Rule(
        "critical", "Azure storage account / shared access key in a connection string"
    ),
    "secret.azure_sas_token": Rule("high", "Azure shared access signature (sig=...)"),
    "secret.azure_client_secret": Rule("high", "Microsoft Entra ID (Azure AD) client secret"),
    "secret.github_token": Rule("high", "GitHub token (ghp_, gho_, ghu_, ghs_, ghr_, github_pat_)"),
    "secret.gitlab_token": Rule("high", "GitLab token (glpat- and other gl*- prefixes)"),
    "secret.slack_token": Rule("high", "Slack token (xoxb-, xoxp-, xapp-...)"),
    "secret.slack_webhook": Rule("high", "Slack incoming webhook URL"),
    "secret.stripe_key": Rule("high", "Stripe secret/restricted key or webhook secret (test keys: medium)"),
    "secret.openai_api_key": Rule("high", "OpenAI API key"),
    "secret.anthropic_api_key": Rule("high", "Anthropic API key"),
    "secret.generic_api_key": Rule("medium", "random sk- style API key of another provider"),
    "secret.huggingface_token": Rule("high", "Hugging Face token (hf_...)"),
    "secret.npm_token": Rule("high", "npm access token (npm_...)"),
    "secret.pypi_token": Rule("high", "PyPI API token"),
    "secret.private_key": Rule("critical", "private key block (PEM, OpenSSH, PGP, PuTTY)"),
    "secret.jwt": Rule("high", "JSON Web Token (bearer credential; unsigned: medium)"),
    "secret.url_password": Rule("high", "password inside a URL (scheme://user:password@host)"),
    "secret.generic_credential": Rule("medium", "random value in a credential-named field or assignment"),
    # personal data
    "pii.email": Rule("low", "e-mail address"),
    "pii.phone": Rule("low", "phone number (international + form or North American)"),
    "pii.payment_card": Rule("high", "payment card number (network prefix and Luhn checked)"),
    "pii.iban": Rule("medium", "IBAN (country length and mod-97 checked)"),
    "pii.us_ssn": Rule("high", "US social security number"),
    "pii.national_id": Rule("high", "national identity number with a check digit (ES, BR, FR, IN, UK)"),
    # dangerous tool calls
    "danger.shell_exec": Rule("medium", "command runs with elevated privileges (sudo, privileged container)"),
    "danger.destructive_command": Rule(
        "high", "command deletes or overwrites data outside a project (rm -rf /, disks: critical)"
    ),
    "danger.remote_code": Rule("critical", "download-and-execute or reverse shell"),
    "danger.exfiltration": Rule("high", "command sends files, credentials or the environment to the network"),
    "danger.system_write": Rule(
        "high", "write to a system, startup or credential location (/etc, ~/.bashrc, authorized_keys, cron)"
    ),
    "danger.destructive_tool": Rule("medium", "deleting tool (annotated destructive only: low; broad: high)"),
    "danger.sensitive_path": Rule(
        "high", "reads a credential store (~/.ssh, .env, cloud credentials, key stores, cloud metadata)"
    ),
    "danger.destructive_sql": Rule("high", "DROP/TRUNCATE, DELETE/UPDATE without WHERE, drop-all in NoSQL"),
    "danger.exfiltration_url": Rule("high", "URL to a capture/paste/tunnel service or carrying secrets/data"),
    # tool poisoning
    "poisoning.instruction_tag": Rule("high", "<IMPORTANT>/<system>-style tags or chat-template tokens"),
    "poisoning.model_instruction": Rule("high", "text overriding the model's instructions or pressuring it"),
    "poisoning.concealment": Rule("high", "instructions to keep something from the user"),
    "poisoning.secret_access": Rule("critical", "instructions to read or hand over secrets"),
    "poisoning.exfiltration": Rule(
        "high", "instructions to send the conversation, the system prompt or other tools' output somewhere"
    ),
    "poisoning.tool_shadowing": Rule("high", "text steering other tools or servers"),
    "poisoning.invisible_unicode": Rule(
        "high", "invisible characters (Unicode tags with hidden text: critical)"
    ),
    "poisoning.ansi_escape": Rule("high", "ANSI escape sequences or terminal control characters"),
    "poisoning.whitespace_padding": Rule("medium", "long whitespace pushing text out of view"),
    # rug pulls
    "pinning.changed": Rule(
        "high", "pinned tool definition changed (only output schema/annotations: medium)"
    ),
    "pinning.new_tool": Rule("medium", "tool appeared after the server's tools were pinned"),
    "pinning.removed_tool": Rule("low", "pinned tool no longer listed"),
    "pinning.name_collision": Rule("medium", "duplicate tool name, or a name another server already offers"),
    # policy
    "policy.denied_tool": Rule("high", "call of a tool matching a deny_tools pattern"),
    "policy.undeclared_tool": Rule("medium", "call of a tool the server did not list in tools/list"),
    "policy.blocked": Rule("high", "km refused the call in block mode (the message names the reason)"),
}

RULES: Mapping[str, Rule] = MappingProxyType(_RULES)
