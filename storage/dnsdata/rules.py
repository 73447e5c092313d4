"""Which DNS data a writer may store: one value per kind of writer.

The master-file import takes what an authoritative server such as NSD would
serve from a zone file (IMPORT_RULES); the customer API is stricter
(API_RULES).
"""

from __future__ import annotations

from dataclasses import dataclass

import dns.rdatatype

T = dns.rdatatype.RdataType


@dataclass(frozen=True, slots=True)
class DnsRules:
    """Limits and switches applied to every RRset a writer stores.

    - `allow_soa`: the SOA is system-owned (zonehost manages the serial), so an
      SOA RRset is refused; the master-file import reads the SOA separately.
    - `allow_dnssec_data`: RRSIG/NSEC/NSEC3/NSEC3PARAM (and the obsolete
      SIG/NXT) as plain data, as NSD serves them from a pre-signed zone file.
      DNSKEY, CDS, CDNSKEY and DS are always allowed: they are published, not
      produced by signing.
    - `strict_names`: owner names are host-like (letters, digits, hyphen,
      underscore; '*' only as the whole leftmost label; no escapes), host
      targets (NS, MX, SRV, ...) are host names, and a few nonsense shapes are
      refused (CNAME to itself, NS or DNAME at a wildcard, NS to the root).
      Off for imports, which keep any legal DNS name (e.g. '\\032' in a label).
    """

    min_ttl_s: int = 0
    max_ttl_s: int = 2**31 - 1  # RFC 2181 section 8
    allow_soa: bool = False
    allow_dnssec_data: bool = True
    max_rdatas_per_rrset: int = 1000
    strict_names: bool = False


API_RULES = DnsRules(min_ttl_s=60, max_ttl_s=604800, allow_dnssec_data=False, strict_names=True)
IMPORT_RULES = DnsRules()

# Types that only exist in messages (RFC 6895 section 3.1 meta and q-types,
# plus NONE and the reserved 65535): never data.
_RESERVED = frozenset({T.NONE, T.make(65535)})
# Produced by signing a zone; we do not sign, so only imports keep them.
SIGNING_TYPES = frozenset({T.RRSIG, T.NSEC, T.NSEC3, T.NSEC3PARAM, T.SIG, T.NXT})
# At most one rdata per RRset (RFC 2181 section 10.1, RFC 6672 section 2.4).
SINGLETON_TYPES = frozenset({T.CNAME, T.DNAME, T.SOA})


def type_refusal(rdtype: dns.rdatatype.RdataType, rules: DnsRules) -> str | None:
    """Why `rules` refuse RRsets of `rdtype`, or None when they are allowed."""
    if rdtype in _RESERVED or dns.rdatatype.is_metatype(rdtype):
        return f"{dns.rdatatype.to_text(rdtype)} is a meta type, not zone data"
    if rdtype == T.SOA and not rules.allow_soa:
        return "the SOA record is managed by the system and cannot be set here"
    if rdtype in SIGNING_TYPES and not rules.allow_dnssec_data:
        return f"{dns.rdatatype.to_text(rdtype)} records are produced by signing and cannot be set"
    return None
