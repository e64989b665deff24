"""Tool poisoning: instructions hidden in what a server tells the model about its tools.

Listings get every rule: ``tools/list``, ``prompts/list``, ``resources/list`` and
``resources/templates/list`` results and the ``instructions`` of ``initialize`` (every string:
names, titles, descriptions, schema texts, enum values; object keys too, for invisible
characters). Content the model reads later (tool results, resources, prompts, sampling
requests) gets the subset that signals indirect prompt injection, with severity capped at
``medium`` and only the strong forms of hidden characters (see :func:`scan_content`).

Rules (usual severity in brackets):

* ``poisoning.instruction_tag`` (high): ``<IMPORTANT>``, ``<system>``, ``<instructions>``,
  ``[INST]``, ``<|im_start|>``...; an HTML comment with text (hidden when rendered): medium.
* ``poisoning.model_instruction`` (high): "ignore all previous instructions", "you are now
  ...", "new instructions:", "note to the AI", "do not follow the user", jailbreak words;
  pressure wording ("VERY VERY important", "otherwise the tool will not work"): medium.
* ``poisoning.concealment`` (high): keep something from the user: "do not tell/mention ...
  the user", "without informing the user", "the user must not know", "could upset the
  user", "silently forward".
* ``poisoning.secret_access`` (critical): an instruction to read credential files
  (``~/.ssh``, ``id_rsa``, ``.env``, ``mcp.json``, ``~/.aws``...) that also hands them over or
  addresses the model ("pass its content as", "before using this tool", "first"); a
  description that merely says what the tool reads ("Loads ~/.pypirc") is not one. Handing
  over secrets, the conversation or the system prompt through a parameter: high.
* ``poisoning.tool_shadowing`` (high): steering other tools: "when this tool is available",
  "side effect on the ... tool", "all emails must be sent to", "change the recipient to",
  "instead of the X tool" or "the X tool must" where X is not a tool of this server,
  ``mcp_tool_*`` references.
* ``poisoning.invisible_unicode`` (high; critical for Unicode tag characters, whose hidden
  ASCII is shown in the message): zero-width characters, bidi overrides, variation-selector
  smuggling. Allowed: emoji ZWJ sequences, flag tag sequences, ZWNJ/ZWJ/LRM/RLM in scripts
  that need them, a leading BOM, one variation selector after a symbol.
* ``poisoning.ansi_escape`` (high): ESC/CSI sequences and C0/C1 control characters (a lone
  carriage return: medium). In content only sequences that hide or rewrite text (conceal,
  cursor movement, erase, OSC): coloured test output is not flagged.
* ``poisoning.whitespace_padding`` (medium): a whitespace run with 20+ line breaks or 1000+
  characters, pushing text out of view.

Phrase rules are found from cheap anchors (a substring search per anchor word), and their
regexes only run in a window around each anchor.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from . import instructions
from .findings import SEVERITY_RANK, Severity
from .leaves import SEP, Hit, Leaves, PathPart, pointer

LISTING_METHODS = frozenset({"tools/list", "prompts/list", "resources/list", "resources/templates/list"})

_INVISIBLE = re.compile(
    "[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f"
    "\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff9-\ufffb\U0001d173-\U0001d17a\U000e0000-\U000e007f\U000e0100-\U000e01ef]"
)
_CONTROL_BYTES = bytes(
    b for b in range(256) if 0x20 <= b <= 0x7E or b in (0x00, 0x09, 0x0A, 0x0D) or b >= 0x80
)
_CONTROL = re.compile("[\x01-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_ANSI = re.compile("\x1b(?:\\[[0-9;?]*[ -/]*[@-~]|\\][^\x07\x1b]*(?:\x07|\x1b\\\\)?|[@-Z\\\\-_])|\x9b")
_PADDING = re.compile(r"[ \t\r\n\u00a0\u2000-\u200a\u3000]{20,}")
"""Candidates; a run counts when it holds 20+ line breaks or is 1000+ characters long (the
alignment spaces of a markdown table are not padding)."""


def _rtl_or_indic(c: str) -> bool:
    o = ord(c)
    return 0x0590 <= o <= 0x08FF or 0x0900 <= o <= 0x0DFF or 0xFB1D <= o <= 0xFDFF or 0xFE70 <= o <= 0xFEFC


def _emoji(c: str) -> bool:
    o = ord(c)
    return o >= 0x1F000 or 0x2190 <= o <= 0x2BFF or o in (0x200D, 0xFE0F, 0x20E3, 0x00A9, 0x00AE)


def _allowed_invisible(text: str, i: int) -> bool:
    c = text[i]
    prev = text[i - 1] if i > 0 else ""
    nxt = text[i + 1] if i + 1 < len(text) else ""
    o = ord(c)
    if c == "\u200d":
        return bool(
            prev and nxt and (_emoji(prev) or _rtl_or_indic(prev)) and (_emoji(nxt) or _rtl_or_indic(nxt))
        )
    if c == "\u200c":
        return bool(prev and _rtl_or_indic(prev))
    if c in "\u200e\u200f\u061c":
        # right-to-left text around the mark, in its own string (not in the leaves beside it)
        around = text[max(0, i - 40) : i].rpartition(SEP)[2] + text[i : i + 40].partition(SEP)[0]
        return any(_rtl_or_indic(ch) for ch in around)
    if c == "\ufeff":
        return i == 0 or prev == SEP
    if 0xFE00 <= o <= 0xFE0F:
        # one variation selector after a symbol/emoji/CJK character is ordinary text
        return (
            bool(prev) and not (0xFE00 <= ord(prev) <= 0xFE0F) and not (nxt and 0xFE00 <= ord(nxt) <= 0xFE0F)
        )
    if 0xE0020 <= o <= 0xE007F:
        # emoji tag sequences: a black flag followed by tag letters and a cancel tag
        j = i
        while j > 0 and 0xE0020 <= ord(text[j - 1]) <= 0xE007F:
            j -= 1
        return j > 0 and text[j - 1] == "\U0001f3f4"
    return False


def _invisible_hits(text: str, *, strong_only: bool = False) -> list[tuple[int, int, Severity, str]]:
    """(start, end, severity, message) of each run of disallowed invisible characters.

    ``strong_only``: only what hides text deliberately (tag characters, bidi overrides, runs of
    variation selectors or zero-width characters); for content like source files and charset
    tables, where a stray zero-width space or soft hyphen is ordinary.
    """
    out: list[tuple[int, int, Severity, str]] = []
    last_end = -1
    for count, m in enumerate(_INVISIBLE.finditer(text)):
        if len(out) >= _MAX_HITS or count >= 20 * _MAX_HITS:
            break
        i = m.start()
        if i < last_end or _allowed_invisible(text, i):
            continue
        j = i + 1
        while j < len(text) and _INVISIBLE.match(text, j) and not _allowed_invisible(text, j):
            j += 1
        run = text[i:j]
        last_end = j
        tags = "".join(chr(ord(c) - 0xE0000) for c in run if 0xE0020 <= ord(c) <= 0xE007E)
        codes = ", ".join(sorted({f"U+{ord(c):04X}" for c in run}))[:60]
        if tags:
            hidden = tags[:40] + ("…" if len(tags) > 40 else "")
            out.append((i, j, "critical", f"hidden text in Unicode tag characters: {hidden!r}"))
        elif any(c in "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069" for c in run):
            out.append((i, j, "high", f"bidirectional override characters ({codes})"))
        elif any(0xE0100 <= ord(c) <= 0xE01EF or 0xFE00 <= ord(c) <= 0xFE0F for c in run):
            if not strong_only or len(run) >= 4:
                out.append((i, j, "high", f"{len(run)} variation selectors (can smuggle hidden data)"))
        elif strong_only:
            if len(run) >= 3 and "\u00ad" not in run:
                out.append((i, j, "high", f"{len(run)} invisible characters in a row ({codes})"))
        elif run == "\u00ad":
            out.append((i, j, "medium", "soft hyphen (invisible when rendered)"))
        else:
            out.append((i, j, "high", f"{len(run)} invisible character(s) ({codes})"))
    return out


_CSI = re.compile("\x1b\\[([0-9;?]*)[ -/]*([@-~])|\x1b\\]")
_MOVES = frozenset("ABCDEFGHJKSTfu")


def _hides(m: re.Match[str]) -> bool:
    """Whether an escape sequence hides or rewrites text (conceal, cursor movement, erase, OSC).

    Colours do not: coloured terminal output in tool results is ordinary.
    """
    final = m.group(2)
    if final is None:
        return True  # OSC: hyperlinks, window titles
    if final in _MOVES:
        return True
    if final != "m":
        return False
    params = [p for p in m.group(1).split(";")]
    i = 0
    while i < len(params):
        if params[i] in ("38", "48", "58"):
            i += 3 if i + 1 < len(params) and params[i + 1] == "5" else 5
            continue
        if params[i] == "8":
            return True
        i += 1
    return False


def _control_hits(text: str, *, strong_only: bool = False) -> list[tuple[int, int, Severity, str]]:
    out: list[tuple[int, int, Severity, str]] = []
    for m in (_CSI if strong_only else _ANSI).finditer(text):
        if len(out) >= _MAX_HITS:
            break
        if strong_only and not _hides(m):
            continue
        seq = m.group().encode("unicode_escape").decode()[:24]
        out.append((m.start(), m.end(), "high", f"ANSI escape sequence {seq!r}"))
    if out or strong_only:
        return out
    for m in _CONTROL.finditer(text):
        code = f"U+{ord(m.group()):04X}"
        out.append((m.start(), m.end(), "high", f"terminal control character {code}"))
        break
    return out


def has_control(blob: str) -> bool:
    """Cheap test for C0/C1 control characters other than tab, newline and carriage return."""
    if blob.isascii():
        return bool(blob.encode().translate(None, _CONTROL_BYTES))
    return _CONTROL.search(blob) is not None


@dataclass(frozen=True, slots=True)
class _Phrase:
    rule: str
    severity: Severity
    label: str
    anchors: tuple[str, ...]
    regex: re.Pattern[str]
    back: int = 0
    """How far before an anchor a match may start (0: the match starts at the anchor)."""
    content: tuple[str, ...] = ()
    """Anchors used in tool results and resources (indirect prompt injection); none: not checked there."""
    near: tuple[str, ...] = ()
    """Words one of which must occur around the anchor before the regex runs (cheap prefilter)."""
    word: bool = False
    """The anchor must be a whole word (``user``/``users``, not ``username``)."""
    confirm: tuple[str, ...] = ()
    """Words one of which must occur in the sentence of a match (an imperative aimed at the model, a
    parameter to smuggle data through), so that "Loads credentials from ~/.pypirc" is not an attack."""


def _ph(
    rule: str,
    severity: Severity,
    label: str,
    anchors: tuple[str, ...],
    regex: str,
    back: int = 0,
    content: tuple[str, ...] = (),
    near: tuple[str, ...] = (),
    word: bool = False,
    confirm: tuple[str, ...] = (),
) -> _Phrase:
    return _Phrase(rule, severity, label, anchors, re.compile(regex), back, content, near, word, confirm)


_W = r"(?:[\w'’-]+\s+)"
"""One word and the spaces after it (never crosses a leaf: ``\\s`` does not match the NUL separator)."""
_SENSITIVE_FILES = (
    r"(?:~/\.ssh(?!/(?:config|known_hosts)\b)|\.ssh/(?!config\b|known_hosts\b)|\bid_(?:rsa|dsa|ecdsa|ed25519)\b"
    r"(?!\.pub)|(?<![\w.])\.env\b(?!\.example)|\bmcp\.json\b|claude_desktop_config|~/\.aws\b|\.aws/credentials|"
    r"\.netrc\b|/etc/(?:passwd|shadow)\b|\.git-credentials|\.kube/config|\.docker/config|\.npmrc|\.pypirc|"
    r"\bkeychain\b|\.config/gcloud|\.cursor/|/proc/self/environ)"
)
_HANDOVER_CUES = (
    "pass",
    "send",
    "include",
    "attach",
    "put ",
    "provide",
    "append",
    "paste",
    "upload",
    "post",
    "forward",
    "sidenote",
    "parameter",
    "argument",
    "field",
    "first",
    "before",
    "must",
    "please",
    "make sure",
    "always",
    "also read",
    "don't forget",
    "do not forget",
    "as well",
    "too",
)
_PARAMETER_CUES = (
    "parameter",
    "argument",
    "field",
    "'",
    '"',
    "`",
    "sidenote",
    "before",
    "first",
    "must",
    "always",
    "please",
)
_SECRET_THINGS = (
    r"(?:conversation history|chat history|previous messages|(?:the |your )?system prompt|"
    r"(?:all )?environment "
    r"variables|env vars|api[ _-]?keys|access tokens|secrets|passwords|credentials|private keys?|ssh keys|"
    r"session cookies?|auth(?:entication)? tokens)"
)

PHRASES: tuple[_Phrase, ...] = (
    _ph(
        "poisoning.model_instruction",
        "high",
        "tells the model to ignore its instructions",
        ("ignore", "disregard", "forget", "override", "bypass"),
        r"\b(?:ignore|disregard|forget|override|bypass)\s+(?:(?:all|any|every)\s+(?:of\s+)?"
        r"(?:the\s+|your\s+|my\s+)?" + _W + r"{0,2}|(?:the\s+|your\s+|my\s+|any\s+)?"
        r"(?:previous|prior|above|earlier|preceding|other|existing|original|system|safety|developer|user'?s?)"
        r"\s+" + _W + r"?)(?:instructions?|rules|prompts?|directions|guidelines|guardrails|policies|"
        r"constraints|restrictions)\b",
        content=("ignore", "disregard"),
    ),
    _ph(
        "poisoning.model_instruction",
        "high",
        "tries to redefine the model's role",
        ("you are now",),
        r"\byou are now\s+(?:in\s+)?(?:a|an|the|dan|developer|jailbroken|unrestricted|free|no longer|"
        r"my|in)\b",
        content=("you are now",),
    ),
    _ph(
        "poisoning.model_instruction",
        "high",
        "announces new instructions",
        ("instruction", "system prompt", "system message", "system override"),
        r"\b(?:new|updated|real|actual|true|hidden|secret|additional|important)\s+(?:system\s+)?"
        r"instructions?\s*:|\bsystem\s+(?:prompt|message|override)\s*:",
        back=40,
        content=("instruction",),
    ),
    _ph(
        "poisoning.model_instruction",
        "high",
        "addresses the AI directly",
        ("note to", "attention", "message to", "dear ai", "dear assistant", "hey ai", "hey claude"),
        r"\b(?:(?:note|message|instructions?)\s+(?:to|for)\s+(?:the\s+)?(?:ai|assistant|model|llm|agent|"
        r"claude|chatgpt|gpt|copilot)\b|attention\s+(?:ai|assistant|model|llm|agent|claude)\b|"
        r"(?:dear|hey)\s+(?:ai|assistant|claude|model)\b)",
    ),
    _ph(
        "poisoning.model_instruction",
        "high",
        "tells the model to disobey the user",
        ("user",),
        r"\b(?:do not|don't|never|must not)\s+(?:follow|obey|listen\s+to|comply\s+with)\s+"
        r"(?:the\s+)?user",
        back=60,
        content=("user",),
        near=("follow", "obey", "listen", "comply"),
        word=True,
    ),
    _ph(
        "poisoning.model_instruction",
        "high",
        "jailbreak wording",
        ("jailbreak", "developer mode", "dan mode"),
        r"\b(?:jailbreak(?:ing|en)?|developer mode (?:enabled|activated|on)|dan mode)\b",
    ),
    _ph(
        "poisoning.model_instruction",
        "medium",
        "pressure wording typical of poisoned tools",
        ("important",),
        r"\b(?:(?:very\s+){2,}important|(?:extremely|vitally|critically)\s+important)\b",
        back=40,
    ),
    _ph(
        "poisoning.model_instruction",
        "medium",
        "threatens failure to force compliance",
        ("otherwise",),
        r"\botherwise[\s,]+(?:the\s+)?(?:tool|it|this|application|app|system|server|everything)\s+"
        r"(?:will\s+)?(?:not\s+work|won't\s+work|crash|break|stop\s+working)",
    ),
    _ph(
        "poisoning.concealment",
        "high",
        "tells the model to keep something from the user",
        ("user",),
        r"\b(?:do not|don't|never|must not|should not|shouldn't|without|not to|avoid|refrain from)\s+"
        + _W
        + r"{0,4}"
        r"(?:tell|telling|mention|mentioning|inform|informing|reveal|revealing|disclose|disclosing|notify|notifying|"
        r"alert|alerting|show|showing|let|letting|bother|bothering)\s+" + _W + r"{0,2}"
        r"(?:to\s+)?(?:the\s+)?users?\b",
        back=160,
        content=("user",),
        near=("not", "n't", "never", "without", "avoid", "refrain"),
        word=True,
    ),
    _ph(
        "poisoning.concealment",
        "high",
        "hides something from the user",
        ("user",),
        r"\b(?:hide|conceal|keep|hidden)\s+" + _W + r"{0,5}(?:from|secret\s+from)\s+(?:the\s+)?users?\b"
        r"|\b(?:the\s+)?users?\s+(?:must|should|need|needs|does|do)\s*(?:not|n't)\s+(?:to\s+)?"
        r"(?:know|see|notice|find\s+out|be\s+(?:told|informed|aware|notified))\b"
        r"|\b(?:upset|scare|alarm|worry|confuse|bother)\s+the\s+user\b"
        r"|\bnot\s+(?:be\s+)?visible\s+to\s+the\s+user\b",
        back=160,
        content=("user",),
        near=(
            "hid",
            "conceal",
            "keep",
            "not",
            "n't",
            "upset",
            "scare",
            "alarm",
            "worry",
            "confuse",
            "bother",
        ),
        word=True,
    ),
    _ph(
        "poisoning.concealment",
        "high",
        "acts secretly",
        ("silently", "secretly", "covertly", "quietly"),
        r"\b(?:silently|secretly|covertly|quietly)\s+" + _W + r"{0,2}(?:send|forward|copy|upload|read|call|"
        r"include|add|pass|exfiltrate|transmit|post|bcc|cc|append|attach|collect|email)\b",
    ),
    _ph(
        "poisoning.secret_access",
        "critical",
        "tells the model to read credential files",
        (
            "ssh",
            "id_",
            "env",
            "mcp.json",
            "claude_desktop",
            "aws",
            "netrc",
            "/etc/",
            "credentials",
            "kube",
            "docker",
            "npmrc",
            "pypirc",
            "keychain",
            "gcloud",
            "cursor",
            "environ",
        ),
        r"\b(?:read|cat|open|access|load|fetch|retrieve|extract|copy|collect|grab|obtain|upload|send|include|attach|"
        r"pass|exfiltrate|get|check|look\s+(?:at|in)|parse|print|output|return|list)\b(?:[^\n\x00.]|\.(?=\S)){0,80}?"
        + _SENSITIVE_FILES,
        back=120,
        confirm=_HANDOVER_CUES,
    ),
    _ph(
        "poisoning.secret_access",
        "high",
        "tells the model to hand over secrets or the conversation",
        (
            "history",
            "messages",
            "system prompt",
            "environment",
            "env vars",
            "key",
            "token",
            "secret",
            "password",
            "credential",
            "cookie",
        ),
        r"\b(?:pass|send|include|attach|forward|append|embed|leak|copy|upload|post|paste|exfiltrate|transmit|"
        r"provide)\b[^\n\x00.]{0,60}?\b"
        + _SECRET_THINGS
        + r"\b[^\n\x00.]{0,60}?\b(?:as|in|into|to|inside|within|"
        r"via)\b",
        back=100,
        confirm=_PARAMETER_CUES,
    ),
    _ph(
        "poisoning.tool_shadowing",
        "high",
        "conditions behaviour on other tools being present",
        ("available", "present", "loaded", "installed", "enabled", "connected"),
        r"\b(?:when|whenever|if|once|while)\s+"
        + _W
        + r"{0,3}(?:this\s+(?:mcp\s+)?(?:tool|server|plugin))\s+is\s+"
        r"(?:available|present|loaded|installed|enabled|connected)\b",
        back=60,
    ),
    _ph(
        "poisoning.tool_shadowing",
        "high",
        "claims side effects on other tools",
        ("side effect", "side-effect"),
        r"\bside[\s-]effects?\s+on\s+(?:the\s+)?" + _W + r"{0,4}(?:tools?|servers?|functions?)\b",
    ),
    _ph(
        "poisoning.tool_shadowing",
        "high",
        "redirects other tools' data",
        ("must", "should", "shall", "need to", "are to", "always"),
        r"\b(?:all|any|every)\s+"
        + _W
        + r"{0,2}(?:e-?mails?|messages?|requests?|calls?|transactions?|payments?|"
        r"transfers?|files?|data|queries|invoices?)\s+"
        + _W
        + r"{0,4}(?:must|should|shall|need\s+to|are\s+to)"
        r"\s+" + _W + r"{0,2}(?:be\s+)?(?:sent|forwarded|redirected|routed|cc'?d|bcc'?d|copied|mirrored|go)"
        r"\s+" + _W + r"{0,3}to\b"
        r"|\b(?:must|should|shall|always)\s+(?:\w+\s+)?(?:send|forward|route|redirect|cc|bcc|copy|mirror)\s+"
        r"(?:all|any|every)\s+"
        + _W
        + r"{0,2}(?:e-?mails?|messages?|requests?|transactions?|payments?|transfers?|"
        r"files?|data|invoices?)\s+(?:\w+\s+){0,2}to\b",
        back=120,
    ),
    _ph(
        "poisoning.tool_shadowing",
        "high",
        "gives orders to other tools or servers",
        (
            "other tool",
            "other server",
            "other mcp",
            "other function",
            "another tool",
            "another server",
            "other plugin",
        ),
        r"\b(?:other|another|all\s+other|any\s+other)\s+(?:mcp\s+)?(?:tools?|servers?|plugins?|"
        r"functions?|integrations?)\s+" + _W + r"{0,3}(?:must|should|shall|need\s+to|have\s+to|"
        r"are\s+required)\b",
        back=20,
    ),
    _ph(
        "poisoning.tool_shadowing",
        "high",
        "rewrites where other tools send things",
        ("recipient", "destination", "receiver", "wallet", "iban", "account number", "phone number"),
        r"\b(?:change|replace|modify|swap|set|switch|update)\s+(?:the\s+)?(?:\w+\s+)?(?:recipients?|destinations?|"
        r"receivers?|wallet(?:\s+address)?|iban|account\s+number|phone\s+number)\s+(?:\w+\s+){0,2}to\b",
        back=60,
    ),
    _ph(
        "poisoning.tool_shadowing",
        "high",
        "changes how other tools behave",
        ("behavio", "functionality", "parameter", "argument", "recipient", "output", "result"),
        r"\b(?:modif(?:y|ies|ying)|chang(?:e|es|ing)|alter(?:s|ing)?|overrid(?:e|es|ing)|hijack(?:s|ing)?|"
        r"intercept(?:s|ing)?|redirect(?:s|ing)?)\s+" + _W + r"{0,3}(?:behaviou?r|"
        r"functionality|parameters?|arguments?|recipients?|outputs?|results?)\s+of\s+" + _W + r"{0,3}"
        r"(?:tools?|servers?|functions?)\b",
        back=80,
    ),
)

_CONTENT_PHRASES = tuple(p for p in PHRASES if p.content)

_TAG = re.compile(
    r"<\s*/?\s*(important|system|instructions?|secret|hidden|admin|assistant|override|critical|"
    r"note[_-]?to[_-]?(?:ai|model|assistant|llm)|ai[_-]?instructions?|sudo|system[_-]?prompt|"
    r"system[_-]?instructions?|developer|context[_-]?override|tool[_-]?instructions?|llm|ai)(?=[\s>/])[^>\n\x00]{0,60}>"
    r"|\[/?(?:inst|system|sys)\]|<\|(?:im_start|im_end|system|assistant|endoftext)\|>|<<\s*/?sys\s*>>"
)
_COMMENT = re.compile(r"<!--(.*?)-->", re.DOTALL)
_HIDING_STYLES = ("display", "visibility", "font-size", "opacity", "hidden")
_HIDDEN_ELEMENT = re.compile(
    r"<([a-z][a-z0-9]*)\b[^>\x00]{0,200}?(?:style\s*=\s*[\"'][^\"'\x00]{0,200}?(?:display\s*:\s*none|"
    r"visibility\s*:\s*hidden|font-size\s*:\s*0(?![.\d]*[1-9])|opacity\s*:\s*0(?![.\d]*[1-9]))|\shidden(?=[\s>=/]))"
    r"[^>\x00]{0,200}>([^<\x00]{0,2000})"
)
"""An element hidden when rendered (``display:none``, ``font-size:0``, ``hidden``...) and its text."""
_SHADOW_REF = re.compile(
    r"\b(?:instead\s+of|rather\s+than|do\s+not\s+use|don't\s+use|never\s+use|replaces?|"
    r"replacing|in\s+place\s+of)\s+(?:using\s+|calling\s+)?(?:the\s+)?[`'\"]?([\w.-]+)[`'\"]?"
    r"\s+tool\b"
    r"|\b(?:the\s+)?[`'\"]?([a-z0-9]+(?:[_-][a-z0-9]+)+)[`'\"]?\s+tool\s+(?:must|should|shall|will|"
    r"needs\s+to|has\s+to|is\s+required\s+to)\b"
    r"|\b(mcp_tool_[a-z0-9_]+)"
)


def _norm_name(name: str) -> str:
    return "".join(c for c in name.lower() if c.isalnum())


@dataclass(slots=True)
class _Found:
    rule: str
    severity: Severity
    message: str
    leaf: int
    start: int = 0
    end: int = 0


def _whole_word(low: str, pos: int, length: int) -> bool:
    if pos > 0 and low[pos - 1].isalnum():
        return False
    end = pos + length
    if end < len(low) and low[end] == "s":
        end += 1
    return end >= len(low) or not low[end].isalnum()


_MAX_ANCHOR_HITS = 64
_MAX_HITS = 100
"""Invisible-character runs, escape sequences and tags examined per message (findings are merged per
string anyway; this bounds the cost of adversarial payloads)."""


def _phrase_scan(low: str, phrases: Iterable[_Phrase], out: list[_Found], *, content: bool) -> None:
    positions: dict[tuple[str, bool], list[int]] = {}
    seen: set[tuple[str, int]] = set()
    for p in phrases:
        for anchor in p.content if content else p.anchors:
            found = positions.get((anchor, p.word))
            if found is None:
                found = []
                pos = low.find(anchor)
                while pos != -1 and len(found) < _MAX_ANCHOR_HITS:
                    if not p.word or _whole_word(low, pos, len(anchor)):
                        found.append(pos)
                    pos = low.find(anchor, pos + 1)
                positions[(anchor, p.word)] = found
            done_until = -1
            for pos in found:
                if pos < done_until:
                    continue
                ws = max(0, pos - p.back)
                prev_sep = low.rfind(SEP, ws, pos)
                if prev_sep != -1:
                    ws = prev_sep + 1
                we = low.find(SEP, pos, pos + 400)
                if we == -1:
                    we = min(len(low), pos + 400)
                if p.near:
                    # sliced once: a slice inside the generator was made again for every word
                    around = low[ws : min(we, pos + 60)]
                    if not any(w in around for w in p.near):
                        continue
                # a rule without look-back starts at its anchor: match there instead of searching
                m = p.regex.search(low, ws, we) if p.back else p.regex.match(low, pos, we)
                if m is None:
                    continue
                if p.confirm:
                    sentence = low[max(ws, m.start() - 160) : min(we, m.end() + 160)]
                    if not any(c in sentence for c in p.confirm):
                        continue
                done_until = m.end()
                leaf = low.count(SEP, 0, m.start())
                if (p.rule, leaf) not in seen:
                    seen.add((p.rule, leaf))
                    out.append(_Found(p.rule, p.severity, p.label, leaf))


def _tags(blob: str, low: str, out: list[_Found], comments: bool) -> None:
    if "<" not in blob and "[" not in blob:
        return
    seen: set[int] = set()
    candidates = ("<" in low and _has_tag_word(low)) or "[inst]" in low or "[sys" in low or "[/inst]" in low
    for count, m in enumerate(_TAG.finditer(low) if candidates else ()):
        if count >= _MAX_HITS:
            break
        leaf = low.count(SEP, 0, m.start())
        if leaf not in seen:
            seen.add(leaf)
            tag = blob[m.start() : m.end()][:40]
            out.append(_Found("poisoning.instruction_tag", "high", f"instruction tag {tag!r}", leaf))
    if comments and "<!--" in blob:
        for m in _COMMENT.finditer(blob):
            if sum(c.isalpha() for c in m.group(1)) >= 12:
                leaf = blob.count(SEP, 0, m.start())
                out.append(_Found("poisoning.instruction_tag", "medium", "hidden HTML comment", leaf))
                break
    if comments and any(h in low for h in _HIDING_STYLES):
        for m in _HIDDEN_ELEMENT.finditer(low):
            if sum(c.isalpha() for c in m.group(2)) >= 12:
                leaf = low.count(SEP, 0, m.start())
                out.append(
                    _Found("poisoning.instruction_tag", "medium", "text in a hidden HTML element", leaf)
                )
                break


_TAG_WORDS = (
    "important",
    "system",
    "instruction",
    "secret",
    "hidden",
    "admin",
    "assistant",
    "override",
    "critical",
    "note",
    "ai",
    "sudo",
    "developer",
    "context",
    "llm",
    "im_",
    "endoftext",
    "sys",
)


def _has_tag_word(low: str) -> bool:
    pos = low.find("<")
    while pos != -1:
        head = low[pos + 1 : pos + 16].lstrip(" \t/|")
        if head.startswith(_TAG_WORDS):
            return True
        pos = low.find("<", pos + 1)
    return False


def _normalised(leaves: Leaves, *, strong_only: bool) -> tuple[str, str, list[_Found]]:
    """(blob, lowered blob without invisible characters, invisible-character findings)."""
    blob = leaves.blob
    found: list[_Found] = []
    if blob.isascii():
        return blob, leaves.lower, found
    for start, end, severity, message in _invisible_hits(blob, strong_only=strong_only):
        leaf, local = leaves.locate(start)
        found.append(
            _Found("poisoning.invisible_unicode", severity, message, leaf, local, local + end - start)
        )
    clean = _INVISIBLE.sub("", blob)
    return clean, clean.lower(), found


def _scan(leaves: Leaves, *, listing: bool) -> list[_Found]:
    blob, low, found = _normalised(leaves, strong_only=not listing)
    if has_control(leaves.blob) if listing else "\x1b" in leaves.blob:
        for start, end, severity, message in _control_hits(leaves.blob, strong_only=not listing):
            leaf, local = leaves.locate(start)
            found.append(_Found("poisoning.ansi_escape", severity, message, leaf, local, local + end - start))
    if listing and "\r" in leaves.blob:
        for i, v in enumerate(leaves.values):
            if re.search(r"\r(?!\n)", v):
                found.append(
                    _Found("poisoning.ansi_escape", "medium", "carriage return that can overwrite text", i)
                )
    _phrase_scan(low, PHRASES if listing else _CONTENT_PHRASES, found, content=not listing)
    _tags(blob, low, found, comments=listing)
    if listing and ("   " in blob or "\n\n\n" in blob):
        for m in _PADDING.finditer(blob):
            run = m.group()
            if run.count("\n") < 20 and len(run) < 1000:
                continue
            leaf = blob.count(SEP, 0, m.start())
            found.append(
                _Found(
                    "poisoning.whitespace_padding",
                    "medium",
                    f"{len(m.group())} whitespace characters (can push text out of view)",
                    leaf,
                )
            )
            break
    return found


def _shadowing(leaves: Leaves, own: set[str], out: list[_Found]) -> None:
    low = leaves.lower
    if "tool" not in low and "function" not in low:
        return
    for m in _SHADOW_REF.finditer(low):
        name = next(g for g in m.groups() if g)
        if _norm_name(name) in own or name in ("this", "that", "same", "other", "any", "a", "the"):
            continue
        leaf = low.count(SEP, 0, m.start())
        out.append(
            _Found(
                "poisoning.tool_shadowing", "high", f"refers to a tool not on this server ({name!r})", leaf
            )
        )


def _intents(leaves: Leaves, own: set[str], out: list[_Found]) -> None:
    """Instructions recognised by what a sentence combines (:mod:`kilometers.analysis.instructions`)."""
    low = leaves.lower if leaves.blob.isascii() else _INVISIBLE.sub("", leaves.lower)
    have = {(f.rule, f.leaf) for f in out}
    for intent in instructions.scan(low, own):
        if (intent.rule, intent.leaf) not in have:
            have.add((intent.rule, intent.leaf))
            out.append(_Found(intent.rule, intent.severity, intent.label, intent.leaf))


def _key_hits(obj: Any, path: list[PathPart], out: list[Hit]) -> None:
    if isinstance(obj, dict):
        for k, v in obj.items():
            path.append(k)
            if isinstance(k, str) and not k.isascii():
                for _, _, severity, message in _invisible_hits(k):
                    out.append(
                        Hit(
                            "poisoning.invisible_unicode",
                            severity,
                            f"in a key: {message}",
                            path=pointer(path),
                        )
                    )
                    break
            if isinstance(k, str) and has_control(k):
                out.append(
                    Hit("poisoning.ansi_escape", "high", "control characters in a key", path=pointer(path))
                )
            _key_hits(v, path, out)
            path.pop()
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            path.append(i)
            _key_hits(v, path, out)
            path.pop()


def tool_names(result: Any) -> list[str]:
    tools = result.get("tools") if isinstance(result, dict) else None
    if not isinstance(tools, list):
        return []
    return [t["name"] for t in tools if isinstance(t, dict) and isinstance(t.get("name"), str)]


def scan_listing(message: Any, known_tools: Iterable[str] = ()) -> tuple[Leaves, list[Hit]]:
    """All poisoning rules over a ``*/list`` (or ``initialize``) response message.

    ``known_tools``: tool names this server is known to offer (besides those in the message),
    so that references to them are not taken for shadowing.
    """
    leaves = Leaves(message, min_len=1)
    found = _scan(leaves, listing=True)
    result = message.get("result") if isinstance(message, dict) else None
    own = {_norm_name(n) for n in (*tool_names(result), *known_tools)}
    _shadowing(leaves, own, found)
    _intents(leaves, own, found)
    hits = [Hit(f.rule, f.severity, f.message, f.leaf, f.start, f.end) for f in found]
    _key_hits(message, [], hits)
    return leaves, hits


def scan_arguments(leaves: Leaves) -> list[Hit]:
    """Characters that hide or reorder text in a tool call (bidi overrides, tag characters, runs
    of zero-width characters): a person reviewing the call reads something other than what the
    server receives. Ordinary ones (an emoji's joiner, a stray soft hyphen) are left alone."""
    if leaves.blob.isascii():
        return []
    _blob, _low, found = _normalised(leaves, strong_only=True)
    return [Hit(f.rule, f.severity, f"in a tool call: {f.message}", f.leaf, f.start, f.end) for f in found]


def scan_content(leaves: Leaves, cap: Severity = "medium") -> list[Hit]:
    """Indirect prompt injection in content the model will read (tool results, resources, prompts)."""
    rank = SEVERITY_RANK[cap]
    out: list[Hit] = []
    for f in _scan(leaves, listing=False):
        severity = f.severity if SEVERITY_RANK[f.severity] <= rank else cap
        out.append(Hit(f.rule, severity, f.message, f.leaf, f.start, f.end))
    return out
