"""Our Authentication-Results parse as RFC 8601 whatever went into them
(the ARC seal reads them back)."""

from __future__ import annotations

import authres

from mx_forwarder.authres import AuthResults


def test_header_parses_with_odd_values() -> None:
    results = AuthResults(spf="none", spf_domain="", dkim=(("permerror", ""),
                                                           ("pass", "a.test")),
                          dmarc="none", from_domain='we"ird\\.test', arc="pass")
    header = results.to_header("mx.test").decode()
    parsed = authres.AuthenticationResultsHeader.parse(header.replace("\r\n\t", " ").strip())
    assert parsed.authserv_id == "mx.test"
    assert [str(r) for r in parsed.results][:4] == [
        'spf=none smtp.mailfrom="<>"', "dkim=permerror", "dkim=pass header.d=a.test", "arc=pass",
    ]
    assert str(parsed.results[4]).startswith("dmarc=none header.from=")
    helo = AuthResults("pass", "[192.0.2.1]", (), "none", None).to_header("mx.test").decode()
    assert 'smtp.mailfrom="[192.0.2.1]"' in helo and "\tarc=" not in helo


def test_header_is_ascii_whatever_the_domains() -> None:
    results = AuthResults("pass", "s\u00e9nder.test", (("permerror", "\ufffd\ufffd.test"),),
                          "none", "s\u00e9nder.test")
    header = results.to_header("mx.test").decode("ascii")
    assert "smtp.mailfrom=xn--snder-bsa.test" in header  # a U-label as its A-label
    assert 'header.d="??.test"' in header and "header.from=xn--snder-bsa.test" in header
    authres.AuthenticationResultsHeader.parse(header.replace("\r\n\t", " ").strip())
