"""DNS data rules of zonehost: names, RRsets, zone rules and master files.

Pure (dnspython only, no I/O): every writer (master-file import, zone API,
billing) goes through these functions, so one set of rules holds everywhere.
`masterfile.from_text`/`to_text` are also exported as `zone_from_text`/
`zone_to_text`, and `names.to_text` as `name_to_text`: the bare names clash.
"""

from storage.dnsdata import masterfile, names
from storage.dnsdata.errors import DnsDataError, InvalidName, InvalidRRset, InvalidZone, Problem
from storage.dnsdata.masterfile import ZoneContent
from storage.dnsdata.masterfile import from_text as zone_from_text
from storage.dnsdata.masterfile import to_text as zone_to_text
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
    "ZoneContent",
    "check_edit",
    "check_zone",
    "masterfile",
    "name_from_text",
    "name_to_text",
    "names",
    "owner_name",
    "parse_rdatatype",
    "parse_rrset",
    "rrset_from_rdatas",
    "subname",
    "to_unicode",
    "zone_from_text",
    "zone_origin",
    "zone_to_text",
]
