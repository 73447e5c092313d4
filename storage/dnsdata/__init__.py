"""DNS data rules of zonehost: names, RRsets, zone rules and master files.

Pure (dnspython only, no I/O): every writer (master-file import, zone API,
billing) goes through these functions, so one set of rules holds everywhere.
"""

from storage.dnsdata import names
from storage.dnsdata.errors import DnsDataError, InvalidName, InvalidRRset, InvalidZone, Problem
from storage.dnsdata.names import name_from_text, owner_name, subname, to_unicode, zone_origin
from storage.dnsdata.names import to_text as name_to_text
from storage.dnsdata.rrsets import (
    RRsetData,
    RRsetKey,
    parse_rdatatype,
    parse_rrset,
    rrset_from_rdatas,
)
from storage.dnsdata.rules import API_RULES, IMPORT_RULES, DnsRules
from storage.dnsdata.zonecheck import check_edit, check_zone

__all__ = [
    "API_RULES",
    "IMPORT_RULES",
    "DnsDataError",
    "DnsRules",
    "InvalidName",
    "InvalidRRset",
    "InvalidZone",
    "Problem",
    "RRsetData",
    "RRsetKey",
    "check_edit",
    "check_zone",
    "name_from_text",
    "name_to_text",
    "names",
    "owner_name",
    "parse_rdatatype",
    "parse_rrset",
    "rrset_from_rdatas",
    "subname",
    "to_unicode",
    "zone_origin",
]
