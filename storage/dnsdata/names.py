"""Domain names: zone origins and record owners, text at the edges only.

Every name leaves this module absolute and canonical: A-labels (IDNA 2008
with the UTS 46 mapping), lower case. Two rules exist:

- a zone origin (what a customer registers) is a host name: letters, digits
  and hyphens, at least two labels besides the root;
- a record owner is at or below its zone; with `strict` (the API) its labels
  are letters, digits, hyphens and underscores, '*' only as the whole leftmost
  label; without it (imports) any legal DNS name is kept, escapes included.
"""

from __future__ import annotations

import re

import dns.exception
import dns.name
import idna

from storage.dnsdata.errors import InvalidName, quote

# Labels without a U-label pass as they are (underscores, '*'): IDNA 2008
# proper would refuse '_sip._tcp.bücher.example'.
IDNA_CODEC = dns.name.IDNA_2008_Practical
MAX_LABEL_OCTETS = 63
MAX_NAME_OCTETS = 255  # wire form, root label included
_MAX_INPUT_CHARS = 1024  # longer text cannot be a name; refuse before any work
_BAD_CHARS = re.compile(r"[\s\x00-\x1f\x7f\\]")  # whitespace, control, escapes
_RAW_BLANK = re.compile(r"[\s\x00-\x1f\x7f]")
_ESCAPE = re.compile(r"\\.", re.DOTALL)
_NOT_LDH = re.compile(r"[^a-z0-9-]")
_NOT_OWNER = re.compile(rb"[^a-z0-9_-]")


def zone_origin(text: str, *, min_labels: int = 2) -> dns.name.Name:
    """The zone named `text` ('bücher.example' -> xn--bcher-kva.example.).

    Raises InvalidName unless every label is a host name label (LDH, 1-63
    octets, no leading or trailing hyphen, no reserved '??--' label except a
    valid 'xn--' A-label) and the name has at least `min_labels` labels
    besides the root: customers get no root or top-level zones.
    """
    labels = _host_labels(text, "zone name")
    if len(labels) < min_labels:
        raise InvalidName(
            text, f"a zone name needs at least {min_labels} labels, e.g. 'example.com'"
        )
    for label in labels:
        if label.startswith(b"xn--"):
            _check_a_label(text, label)
        elif label[2:4] == b"--":
            raise InvalidName(
                text,
                f"label {quote(label.decode())} has '--' in the 3rd and 4th positions, "
                "which is reserved for IDNA (RFC 5891 section 4.2.3.1)",
            )
    return _make_name(text, labels)


def owner_name(
    text: str | dns.name.Name, origin: dns.name.Name, *, strict: bool = True
) -> dns.name.Name:
    """The absolute, canonical owner name of a record of zone `origin`.

    Text is relative to `origin` unless it ends with a dot; '@' and '' are the
    apex. Unicode becomes A-labels. The name must be at or below `origin`.
    With `strict`, labels are [a-z0-9_-] (after lower-casing) and '*' only as
    the whole leftmost label; without it any legal name is kept.
    """
    if isinstance(text, dns.name.Name):
        name = text if text.is_absolute() else _join(text.to_text(), text, origin)
    else:
        name = name_from_text(text, origin, strict=strict)
    name = canonical(name)
    suffix = name.labels[len(name.labels) - len(origin.labels):]
    if suffix != origin.labels and not name.is_subdomain(origin):  # tuples first: cheap
        raise InvalidName(_shown(text), f"not inside the zone {origin.to_text()}")
    if strict:
        own = name.labels[: len(name.labels) - len(origin.labels)]
        for i, label in enumerate(own):
            reason = _strict_owner_label(label, leftmost=i == 0)
            if reason:
                raise InvalidName(_shown(text), reason)
    return name


def _shown(text: str | dns.name.Name) -> str:
    return text if isinstance(text, str) else str(text.to_text())


def subname(name: dns.name.Name, origin: dns.name.Name) -> str:
    """`name` relative to `origin`: '' for the apex, 'www', '*.foo'."""
    if not name.is_subdomain(origin):
        raise InvalidName(name.to_text(), f"not inside the zone {origin.to_text()}")
    if name == origin:
        return ""
    return str(name.canonicalize().relativize(origin).to_text())


def to_text(name: dns.name.Name) -> str:
    """Canonical text of an absolute name: lower case, A-labels, trailing dot."""
    if not name.is_absolute():
        raise ValueError(f"relative name {name}")
    return str(name.canonicalize().to_text())


def to_unicode(name: dns.name.Name) -> str:
    """`name` for display: U-labels where valid, trailing dot."""
    return str(name.to_unicode(idna_codec=IDNA_CODEC))


def _host_labels(text: str, what: str) -> list[bytes]:
    """Labels of a host name in text, LDH only, A-labels, lower case."""
    name = _prepare(text, what)
    if name in ("", "."):
        raise InvalidName(text, "the root is not allowed")
    name = name.removesuffix(".")
    labels: list[bytes] = []
    for label in name.split("."):
        if not label:
            raise InvalidName(text, "empty label (leading dot or '..')")
        if label.isascii():
            label = label.lower()
            bad = _NOT_LDH.search(label)
            if bad:
                raise InvalidName(
                    text,
                    f"{quote(bad.group())} is not allowed in a {what}: "
                    "only letters, digits and hyphens",
                )
            encoded = label.encode()
        else:
            encoded = _a_label(text, label)
        _check_length(text, encoded)
        if encoded.startswith(b"-") or encoded.endswith(b"-"):
            raise InvalidName(
                text, f"label {quote(encoded.decode())} starts or ends with a hyphen"
            )
        labels.append(encoded)
    return labels


def name_from_text(text: str, origin: dns.name.Name, *, strict: bool) -> dns.name.Name:
    """`text` as an absolute name, relative to `origin` unless it ends with a dot.

    Only the syntax is checked (owner_name() adds the zone rules). With
    `strict`, escapes are refused; without, they are read as in master files.
    """
    if text in ("", "@"):
        return origin
    if text.isascii() and "\\" not in text and not _RAW_BLANK.search(text):
        return _ascii_name(text, origin)
    if strict:
        prepared = _prepare(text, "record name")
        absolute = prepared.endswith(".")
        body = prepared[:-1] if absolute else prepared
        labels: list[bytes] = []
        for label in body.split("."):
            if not label:
                raise InvalidName(text, "empty label (leading dot or '..')")
            encoded = label.lower().encode() if label.isascii() else _a_label(text, label)
            _check_length(text, encoded)
            labels.append(encoded)
        if absolute:
            return _make_name(text, labels)
        return _join(text, dns.name.Name(labels), origin)
    if len(text) > _MAX_INPUT_CHARS:
        raise InvalidName(text, "too long to be a domain name")
    if _RAW_BLANK.search(_ESCAPE.sub("", text) if "\\" in text else text):
        raise InvalidName(text, "contains a raw space or control character (write \\DDD)")
    try:
        return dns.name.from_text(text, origin, IDNA_CODEC)
    except dns.name.LabelTooLong:
        raise InvalidName(text, f"a label is longer than {MAX_LABEL_OCTETS} octets") from None
    except dns.name.NameTooLong:
        raise InvalidName(text, f"longer than {MAX_NAME_OCTETS} octets") from None
    except dns.name.EmptyLabel:
        raise InvalidName(text, "empty label (leading dot or '..')") from None
    except dns.name.BadEscape:
        raise InvalidName(text, "bad escape (use \\DDD with DDD <= 255 or \\X)") from None
    except (dns.exception.DNSException, idna.IDNAError, UnicodeError) as exc:
        raise InvalidName(text, f"not a valid internationalized name: {exc}") from None


def _prepare(text: str, what: str) -> str:
    """`text` mapped by UTS 46 when it is not ASCII, after the cheap refusals."""
    if not isinstance(text, str):
        raise InvalidName(repr(text), f"a {what} must be text")
    if len(text) > _MAX_INPUT_CHARS:
        raise InvalidName(text, "too long to be a domain name")
    if not text:
        raise InvalidName(text, f"empty {what}")
    bad = _BAD_CHARS.search(text)
    if bad:
        char = bad.group()
        if char == "\\":
            raise InvalidName(text, "contains a backslash (escapes are not allowed)")
        if char.isspace():
            raise InvalidName(text, "contains a space or line break")
        raise InvalidName(text, "contains a control character")
    if text.isascii():
        return text
    try:
        # std3_rules off: the label checks below word their own refusals.
        return idna.uts46_remap(text, std3_rules=False, transitional=False)
    except idna.IDNAError as exc:
        raise InvalidName(text, f"not a valid internationalized name: {exc}") from None


def _a_label(text: str, label: str) -> bytes:
    try:
        return bytes(idna.alabel(label))
    except idna.IDNAError as exc:
        raise InvalidName(
            text, f"label {quote(label)} is not a valid internationalized label: {exc}"
        ) from None


def _check_a_label(text: str, label: bytes) -> None:
    try:
        idna.ulabel(label)
    except (idna.IDNAError, UnicodeError) as exc:
        raise InvalidName(
            text, f"label {quote(label.decode())} is not a valid IDNA A-label: {exc}"
        ) from None


def _check_length(text: str, label: bytes) -> None:
    if len(label) > MAX_LABEL_OCTETS:
        raise InvalidName(
            text,
            f"label {quote(label.decode(errors='replace'))} is {len(label)} octets long "
            f"(at most {MAX_LABEL_OCTETS})",
        )


def _make_name(text: str, labels: list[bytes]) -> dns.name.Name:
    wire = sum(len(label) + 1 for label in labels) + 1
    if wire > MAX_NAME_OCTETS:
        raise InvalidName(text, f"{wire} octets long in wire form (at most {MAX_NAME_OCTETS})")
    return dns.name.Name([*labels, b""])


def _join(text: str, relative: dns.name.Name, origin: dns.name.Name) -> dns.name.Name:
    return _make_name(text, [*relative.labels, *origin.labels[:-1]])


def _strict_owner_label(label: bytes, *, leftmost: bool) -> str | None:
    if label == b"*":
        return None if leftmost else "'*' is only allowed as the whole leftmost label"
    bad = _NOT_OWNER.search(label)
    if bad is None:
        return None
    char = bad.group()
    if char == b"*":
        return "'*' is only allowed as the whole leftmost label"
    shown = char.decode("latin-1")
    return (
        f"{quote(shown)} is not allowed in a record name: "
        "only letters, digits, hyphens and underscores"
    )


def _ascii_name(text: str, origin: dns.name.Name) -> dns.name.Name:
    """The common case of name_from_text(), without escapes or IDNA: one Name built."""
    absolute = text.endswith(".")
    body = text[:-1] if absolute else text
    if not body:
        return dns.name.root
    labels = body.lower().encode().split(b".")
    for label in labels:
        if not label:
            raise InvalidName(text, "empty label (leading dot or '..')")
        if len(label) > MAX_LABEL_OCTETS:
            _check_length(text, label)
    if absolute:
        return _make_name(text, labels)
    return _make_name(text, [*labels, *origin.labels[:-1]])


def canonical(name: dns.name.Name) -> dns.name.Name:
    """`name` in lower case; itself when it already is (most are): cheaper
    than dns.name.Name.canonicalize(), which always builds a new name."""
    joined = b".".join(name.labels)
    return name if joined.lower() == joined else name.canonicalize()
