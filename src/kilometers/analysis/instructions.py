"""What an instruction in a listing asks the model to do, judged sentence by sentence.

The phrase rules of :mod:`kilometers.analysis.poisoning` recognise known wordings; this module
recognises intents by what a sentence combines, so that rephrasing does not hide them:

* ``poisoning.exfiltration`` (high): an imperative to send, include or forward *the
  conversation* (chat history, transcript, the user's earlier messages), *the model's
  instructions* (system prompt, developer message) or *other tools' output*, into a parameter,
  a URL, an address or "this tool". "Sends the transcript to an agent" (what a tool does) and
  "do not include the conversation" (negated) are not instructions to do it.
* ``poisoning.secret_access`` (critical): an imperative to read or hand over a credential
  (a credential file such as ``~/.ssh/id_rsa``, a credential variable such as
  ``GITHUB_TOKEN``, API keys, private keys, passwords), e.g. "first read … and pass it as".
  "The token is read from GITHUB_TOKEN" (passive, a description) is not one.
* ``poisoning.tool_shadowing`` (high): text that takes over another server's tools: "instead
  of/overrides/supersedes X", "the X tool must…", "whenever X is called, call this tool",
  "tools from other servers are deprecated, use this one". Tools of the same server are not
  "other"; "use X instead" (sending the model elsewhere) is not a takeover.
* ``poisoning.concealment`` (high): keeping actions or text from the user, also in German,
  French, Spanish, Portuguese and Italian ("never mention it in your answer", "act as if this
  never happened", "erwähne … nicht", "ne dites pas à l'utilisateur", "no le digas al usuario").

Sentences are short and few (tool listings); each is examined only when it holds a cue word.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from functools import lru_cache
from typing import NamedTuple

from .findings import Severity
from .leaves import SEP
from .locations import credential
from .text import credential_key_kind

_MAX_LEAF_CHARS = 20_000
"""Characters of one string examined (descriptions are short; a longer text is judged by its start)."""


class Intent(NamedTuple):
    rule: str
    severity: Severity
    label: str
    leaf: int


def _rx(pattern: str) -> re.Pattern[str]:
    """Patterns run on lowered text: no IGNORECASE (several times slower with non-ASCII literals)."""
    return re.compile(pattern)


_SENTENCES = re.compile(r"(?<=[.!?;])\s+|\n+|(?<=\))\s+(?=[A-Z])")
_OBJECT_CUES = (
    "conversa",
    "chat",
    "transcript",
    "dialog",
    "message",
    "histor",
    "verlauf",
    "gespräch",
    "unterhaltung",
    "échange",
    "cronolog",
    "prompt",
    "instruction",
    "anweisung",
    "instrucci",
    "request",
    "question",
    "input",
    "output",
    "result",
    "response",
    "repl",
    "return value",
    "user",
    "context",
    "session",
)
"""Substrings without which a sentence cannot ask for the conversation, instructions or outputs."""
_SECRET_CUES = (
    "key",
    "token",
    "passw",
    "passphrase",
    "secret",
    "credential",
    "cookie",
    "contrase",
    "clave",
    "clé",
    "mot de passe",
    "zugangsdaten",
    "ssh",
    ".env",
    "aws",
    "netrc",
    "npmrc",
    "pypirc",
    "mcp.json",
    "claude",
    "kube",
    "docker",
    "gnupg",
    "keychain",
    "gcloud",
    "azure",
    "environ",
    "_",
)
_TOOL_CUES = ("tool", "server", "function", "plugin", "integration")
_AUDIENCE_CUES = (
    "user",
    "answer",
    "response",
    "reply",
    "output",
    "summary",
    "as if",
    "as though",
    "utilisat",
    "usuari",
    "usuári",
    "benutzer",
    "nutzer",
    "anwender",
    "utent",
)

_NEGATED = _rx(
    r"\b(?:do not|don't|dont|never|must not|mustn't|should not|shouldn't|avoid|no need to|not to|without|"
    r"nicht|jamais|ne pas|nunca|no)\b[^.]{0,40}$"
)
"""A negation shortly before a verb (matched on the text that precedes the verb)."""

_TRANSFER = _rx(
    r"\b(?:send|pass|include|append|attach|forward|copy|submit|transmit|upload|post|put|embed|paste|provide|"
    r"supply|share|echo|add|insert|place|write|report|relay|leak|exfiltrate|mirror|dump|return|"
    r"sende|senden|schicke|schicken|füge|übermittle|übertrage|kopiere|gib|"
    r"incluez|inclure|inclus|envoie|envoyez|envoyer|transmettez|transmets|copiez|ajoutez|joignez|"
    r"incluye|incluir|envía|envia|enviar|manda|copia|adjunta|pasa|pásalo|pasalo|pásala|"
    r"inclua|envie|invia|includi|inserisci)\b"
)
_CONVERSATION = _rx(
    r"\b(?:conversations?|chat[\s-]?(?:history|log|logs|transcripts?|messages)|transcripts?|dialogue|dialog|"
    r"message history|(?:previous|earlier|prior|past|all(?: the)?|every|recent) (?:user )?messages?|"
    r"messages? (?:the user|from the user)|(?:the )?user'?s? (?:previous |earlier |prior |past |recent )?"
    r"(?:messages|requests|questions|prompts|inputs)|everything the user|"
    r"what the user (?:said|wrote|typed|asked)|"
    r"context window|session history|chat so far|"
    r"gesprächsverlauf|chatverlauf|unterhaltung|verlauf|historique|échanges|conversación|conversacion|"
    r"historial|conversa|conversazione|cronologia)\b"
)
_PROMPT = _rx(
    r"\b(?:system[\s-]?prompt|system message|system instructions?|developer (?:message|prompt|instructions)|"
    r"(?:your|its|hidden|initial|original|secret|internal) (?:system )?instructions|"
    r"(?:your|its) system prompt|(?:hidden|initial|original|secret|internal|full) prompt|"
    r"instructions (?:you|the model|the assistant|the ai) (?:were|was|have been|received|got)|"
    r"prompt système|instructions système|invite système|instrucciones del sistema|prompt del sistema|"
    r"systemanweisungen?|systemprompt|prompt di sistema)\b"
)
_TOOL_OUTPUT = _rx(
    r"\b(?:outputs?|results?|responses?|return values?|replies)\b[^.]{0,60}?\b"
    r"(?:(?:other|previous|previously|"
    r"prior|earlier|all|any|every)\s+(?:\w+\s+){0,2}(?:tools?|functions?|calls?|servers?)|from (?:the )?"
    r"[\w.-]+ tool)\b"
    r"|\b(?:other|previous|prior|earlier|all|any|every)\s+(?:\w+\s+){0,2}(?:tools?|functions?)\b[^.]{0,60}?"
    r"\b(?:outputs?|results?|responses?|returns?)\b"
)
_SINK = _rx(
    r"`[^`\s]{1,40}`|'[\w.-]{1,40}'|\"[\w.-]{1,40}\"|\b(?:parameter|param|argument|field|arg|input|"
    r"this (?:tool|function)|via|url|endpoint|webhook|e-?mail)\b|https?://|[\w.+-]+@[\w-]+\.[\w.]+|"
    r"\bto (?:the )?(?:admin|server|developer|us|support)\b|"
    r"\b(?:parameter|paramètre|champ|campo|feld|parametro)\b"
)
_MODAL = _rx(
    r"\b(?:must|should|always|make sure|be sure|ensure|mandatory|required|requires you|need to|needs to|"
    r"have to|has to|please|remember to|don't forget|do not forget|first|before|step \d|prior to|"
    r"muss|müssen|immer|zuerst|toujours|devez|d'abord|siempre|debes|primero|sempre|deve|prima)\b"
)
"""Words that make a sentence an order (not a description of what the tool does)."""
_READ = _rx(
    r"(?:^|[\s:,(;]|\b(?:then|and|first|also|please|to)\s)(?:read|open|cat|load|look\s+up|retrieve|get|fetch|"
    r"access|collect|grab|obtain|check|print|dump|export|extract|copy|type|view|lies|lese|öffne|lade|lis|lisez|"
    r"ouvre|ouvrez|lee|leer|abre|obtén|obten|leggi|apri)(?:_\w+)?\b"
)
_SECRET_WORDS = _rx(
    r"\b(?:api[\s_-]?keys?|private[\s_-]?keys?|ssh[\s_-]?keys?|secret[\s_-]?keys?|access[\s_-]?tokens?|"
    r"auth(?:entication)?[\s_-]?tokens?|bearer tokens?|passwords?|passphrases?|credentials|session cookies?|"
    r"secrets|clés? api|mots? de passe|contraseñas?|claves? api|passwörter|zugangsdaten)\b"
)
_ENV_NAME = re.compile(r"\$?\{?\b([A-Z][A-Z0-9]*_[A-Z0-9_]+)\b")
_LEAD_IN = _rx(r"^(?:\W*(?:step \d+\s*[:.)-]?|note|important|first|then|also|please)\W*)*")
"""Words that may precede an order: ``Step 1: read …``, ``Note: first read …``."""

_IDENT = r"[`'\"]?([a-z][a-z0-9]*(?:[_.-][a-z0-9]+)+)[`'\"]?"
"""A tool name as descriptions write them (``send_email``, ``github.create_issue``); text is lowered."""
_SHADOW = (
    re.compile(
        r"\b(?:supersed(?:e|es|ing)|overrid(?:e|es|ing)|shadow(?:s|ing)?|hijack(?:s|ing)?|intercept(?:s|ing)?)\s+"
        r"(?:the\s+)?" + _IDENT
    ),
    re.compile(
        r"\b(?:instead of|rather than|in place of|replac(?:e|es|ing)|ignor(?:e|es|ing)|"
        r"deprecat(?:e|es|ed|ing)|"
        r"do not use|don't use|never use|stop using)\s+(?:using\s+|calling\s+)?(?:the\s+)?"
        + _IDENT
        + r"\s+(?:tool|function)\b"
    ),
    re.compile(
        _IDENT + r"\s+(?:tool|function)\b[^.]{0,60}?\b(?:must|should|shall|needs? to|has to|is deprecated|"
        r"are deprecated|is unsafe|always)\b"
    ),
    re.compile(
        r"\b(?:whenever|when|each time|every time|before|after|if)\s+(?:the\s+)?(?:user\s+(?:asks?|wants?)\s+"
        r"(?:for|to)\s+)?" + _IDENT + r"(?:\s+tool)?\s*(?:is|gets|was|,|\s)\s*(?:called|used|invoked|run|"
        r"requested)?[^.]{0,80}?\b(?:call|use|invoke|run)\s+this\b"
    ),
    re.compile(
        r"\b(?:when|whenever|each time|every time)\s+(?:the\s+)?" + _IDENT + r"\s+(?:tool\s+)?(?:is|gets)\s+"
        r"(?:called|used|invoked)\b[^.]{0,80}?\b(?:always|must|add|bcc|cc|send|copy|include|set|change)\b"
    ),
)
_OTHER_SERVERS = _rx(
    r"\b(?:other|another|any|every|all other)\s+(?:mcp\s+)?(?:servers?|tools?|plugins?|integrations?)\b"
    r"|\b(?:tools?|calls?)\s+(?:from|of|on)\s+(?:the\s+)?(?!this\b|our\b|same\b)\w+\s+server\b"
    r"|\b(?:the\s+)?(?!this\b|our\b|same\b|upstream\b|remote\b|local\b|mcp\b|api\b|web\b|http\b|smtp\b)"
    r"[a-z][\w-]+\s+server'?s?\b"
)
_TAKEOVER = _rx(
    r"\b(?:rather than|prefer this|ignore (?:it|them|that|those)|overrid\w*|supersed\w*|deprecated|unsafe|"
    r"untrusted|do not use (?:it|them|that|those)|don't use (?:it|them|that)|"
    r"route (?:all|every|its|their|them)|"
    r"redirect|intercept|hijack|must be (?:copied|sent|forwarded|cc'?d|bcc'?d)|change the recipient|"
    r"come here|"
    r"through this (?:tool|function|server)|use this (?:one|tool) instead|"
    r"instead of (?:it|them|that|those|the one|theirs))\b"
)
_THIS_SERVER = _rx(r"\b(?:this|our|the same)\s+(?:mcp\s+)?server\b|\bof this server\b")

_CONCEAL = (
    _rx(
        r"\b(?:never|do not|don't|must not|mustn't|should not|shouldn't|under no circumstances|avoid)\s+"
        r"(?:\w+\s+){0,3}(?:mention|tell|reveal|disclose|report|say|inform|notify|admit|acknowledge)\w*\b"
        r"[^.]{0,50}?\b(?:(?:your|the|in the|in your)\s+(?:final\s+)?(?:answer|response|reply|output|summary|"
        r"message to the user)|(?:to\s+)?(?:the\s+)?users?)\b"
    ),
    _rx(
        r"\bkeep\s+(?:\S+\s+){0,6}?(?:out of|from|away from|hidden from|secret from)\s+(?:your\s+|the\s+)?"
        r"(?:answer|response|reply|output|summary|users?)\b"
    ),
    _rx(
        r"\busers?\s+(?:doesn't|does not|don't|do not|shouldn't|should not|must not|mustn't|need not|"
        r"needn't|needs not|never)\s+(?:need\s+to\s+|have\s+to\s+)?(?:know|see|notice|find out|learn|be told|"
        r"be informed|be aware|hear)\b"
    ),
    _rx(
        r"\b(?:act|behave|pretend|respond|answer|reply)\s+as\s+(?:if|though)\s+(?:\w+\s+){0,6}?(?:never|didn't|"
        r"did not|had not|hadn't|not)\b"
    ),
    _rx(r"\bwithout\s+(?:the\s+)?users?'?s?\s+(?:knowing|knowledge|noticing|consent|being aware|seeing)\b"),
    _rx(
        r"^(?=.*\b(?:nicht|niemals|keinesfalls)\b)(?=.*\b(?:benutzer|nutzer|anwender)\w*)(?=.*\b(?:erwähn|sag|"
        r"mitteil|verrat|zeig|informier|wissen|erfahr)\w*)"
    ),
    _rx(
        r"\bne\s+(?:\w+\s+){0,2}(?:dites|dis|mentionnez|mentionne|révélez|révèle|montrez|montre|informez|"
        r"informe|signalez|signale|parlez|parle)\w*\s+(?:\w+\s+){0,2}pas\b[^.]{0,40}\butilisat(?:eur|rice)s?"
        r"|\bsans\s+(?:en\s+)?(?:informer|prévenir|avertir|le dire)\b[^.]{0,30}\butilisat"
    ),
    _rx(
        r"\bno\s+(?:le\s+|les\s+|se\s+lo\s+)?(?:digas|diga|menciones|mencione|reveles|revele|muestres|muestre|"
        r"informes|informe|avises|avise|cuentes|cuente)\b[^.]{0,40}\busuari[oa]s?"
        r"|\bsin\s+(?:avisar|informar|decir)\w*\b[^.]{0,30}\busuari"
    ),
    _rx(
        r"\bnão\s+(?:\w+\s+){0,2}(?:conte|diga|mencione|revele|mostre|informe)\b[^.]{0,40}\busuári"
        r"|\bnon\s+(?:\w+\s+){0,2}(?:dire|dirlo|dirglielo|menzionare|rivelare|mostrare|informare)\b[^.]{0,40}"
        r"\butent[ei]"
    ),
)


def scan(low: str, own_tools: Iterable[str] = ()) -> list[Intent]:
    """Intents in a lowered listing blob (leaves separated by ``SEP``); one per rule and leaf."""
    own = frozenset(_norm(n) for n in own_tools)
    out: list[Intent] = []
    for leaf, text in enumerate(low.split(SEP)):
        if len(text) >= 16:
            out.extend(Intent(rule, severity, label, leaf) for rule, severity, label in _leaf(text, own))
    return out


@lru_cache(maxsize=4096)
def _leaf(text: str, own: frozenset[str]) -> tuple[tuple[str, Severity, str], ...]:
    """One string's intents, one per rule (cached: servers list the same tools in every session)."""
    found: dict[str, tuple[str, Severity, str]] = {}
    for sentence in _SENTENCES.split(text[:_MAX_LEAF_CHARS]):
        if len(sentence) >= 12:
            for verdict in _judge(sentence, own):
                found.setdefault(verdict[0], verdict)
    return tuple(found.values())


def _norm(name: str) -> str:
    return "".join(c for c in name.lower() if c.isalnum())


def _has(sentence: str, cues: tuple[str, ...]) -> bool:
    return any(c in sentence for c in cues)


def _judge(sentence: str, own: frozenset[str]) -> Iterator[tuple[str, Severity, str]]:
    exfil = _exfiltration(sentence) if _has(sentence, _OBJECT_CUES) else None
    if exfil:
        yield "poisoning.exfiltration", "high", exfil
    if _has(sentence, _SECRET_CUES) and _secret_access(sentence):
        yield "poisoning.secret_access", "critical", "tells the model to read or hand over a credential"
    if _has(sentence, _TOOL_CUES) and _shadowing(sentence, own):
        yield "poisoning.tool_shadowing", "high", "takes over another server's tools"
    if _has(sentence, _AUDIENCE_CUES) and any(p.search(sentence) for p in _CONCEAL):
        yield "poisoning.concealment", "high", "tells the model to keep something from the user"


def _not_negated(sentence: str, verb: re.Match[str]) -> bool:
    """The verb is not negated ("do not include …", "never send …")."""
    return not _NEGATED.search(sentence[: verb.start()])


def _exfiltration(sentence: str) -> str | None:
    what = (
        "the conversation"
        if _CONVERSATION.search(sentence)
        else "the model's instructions"
        if _PROMPT.search(sentence)
        else "other tools' output"
        if _TOOL_OUTPUT.search(sentence)
        else None
    )
    if what is None:
        return None
    for verb in _TRANSFER.finditer(sentence):
        if _not_negated(sentence, verb) and (_SINK.search(sentence) or _MODAL.search(sentence)):
            return f"tells the model to send {what} somewhere"
    return None


def _secret_access(sentence: str) -> bool:
    specific = _names_credential(sentence)
    if not specific and not _SECRET_WORDS.search(sentence):
        return False
    for verb in _READ.finditer(sentence):
        # "Read ~/.ssh/id_rsa …" is an order; "Fetch a secret by name" describes a secrets tool
        if _not_negated(sentence, verb) and (
            _MODAL.search(sentence) or _SINK.search(sentence) or (specific and _clause_start(sentence, verb))
        ):
            return True
    for verb in _TRANSFER.finditer(sentence):
        if _not_negated(sentence, verb) and (_MODAL.search(sentence) or _SINK.search(sentence)):
            return True
    return False


def _clause_start(sentence: str, verb: re.Match[str]) -> bool:
    head = sentence[: verb.start()].rstrip()
    if not head:
        return True
    head = _LEAD_IN.sub("", head)
    return not head or head.endswith((":", ",", ";", "(", "then", "and", "first", "also", "please"))


def _names_credential(sentence: str) -> bool:
    """A credential file (``~/.aws/credentials``) or variable (``GITHUB_TOKEN``) is named."""
    for word in sentence.split():
        if "/" in word or "\\" in word or word.startswith((".", "~", "`.", "'.", "`~")):
            place = credential(word.strip("`'\"()[],;:!?").rstrip("."))
            if place is not None and place.severity == "high":
                return True
    if "_" in sentence:
        for m in _ENV_NAME.finditer(sentence.upper()):
            if credential_key_kind(m.group(1)):
                return True
    return False


def _shadowing(sentence: str, own: frozenset[str]) -> bool:
    for pattern in _SHADOW:
        for m in pattern.finditer(sentence):
            name = m.group(1)
            if name and _norm(name) not in own and name not in ("this", "that", "the", "same"):
                return True
    if _OTHER_SERVERS.search(sentence) and _TAKEOVER.search(sentence):
        return not (_THIS_SERVER.search(sentence) and not re.search(r"\b(?:other|another|any)\b", sentence))
    return False
