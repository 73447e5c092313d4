"""The authorisation matrix of the endpoints that need a precondition: sign-up,
login, password reset (request and confirmation), step-up (TOTP, and the SMS
code), TOTP confirmation and removal, new recovery codes, mobile verification.

The same world and callers as test_api_matrix.py (built by its `build`; the
account allowlists 127.0.0.0/8, so the security gate passes by address and
what is checked is who may act). Before each (row, caller), `prepare` sets up
the precondition for that caller's own login: TOTP enrolled through the API
and its codes computed with pyotp, a mobile registered and its code read
from the development SMS outbox, a reset link read from the development mail
outbox. A token acts on its user's login, so the leader's narrowed and
subnet-pinned tokens act on the leader's; so does the anonymous caller (the
leader's login is what it would aim at).

Each cell checks the exact status and code, and the effect read back from the
store (TOTP really on or off, recovery codes really replaced or not, a
step-up really granted to that credential or not, a mobile really verified,
a password really changed, a link really mailed): a refusal must change
nothing, an answer that allows must have done its work.

The public endpoints (sign-up, login, password reset) ignore credentials:
every caller kind gets the same answer (ids, logins, addresses and times
masked), so an authenticated caller learns nothing more than an anonymous
one, and a token from a refused subnet is not even looked at.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pyotp
from sqlalchemy import delete, func, select

from storage.db import Database
from storage.models import Account, User
from storage.models.auth import (
    ApiSession,
    ApiToken,
    PasswordReset,
    RecoveryCode,
    StepUp,
)
from tests.integration.test_api_harness import (
    PASSWORD,
    Login,
    Reply,
    api_config,
    outbox,
    running_api,
    seed_account,
    seed_user,
)
from tests.integration.test_api_matrix import CALLERS, NARROW, World, build, report, send
from zoneapi.crypto import digest
from zoneapi.keys import CONTEXT

ANON, SUBNET = "anonymous", "bad_subnet_token"
# Callers whose requests act on the leader's login.
ON_LEADER = {"leader", NARROW, SUBNET, ANON}
NEW_PASSWORD = "a brand new passphrase"
SECURITY_OP = "security:"  # the account-wide sensitive operation, as a 403 names it


@dataclass(frozen=True)
class Expect:
    status: int
    code: str | None = None
    # Whether the request does its work (TOTP on, a mail sent, ...); None: iff 2xx.
    acts: bool | None = None

    @property
    def does(self) -> bool:
        return 200 <= self.status < 300 if self.acts is None else self.acts


@dataclass
class Party:
    """The login a caller's requests act on, and a token of it that may change its
    settings (what a prepare uses)."""

    user_id: int
    manager_token: str
    mobile: str


@dataclass
class AuthWorld:
    base: World
    parties: dict[str, Party]  # caller -> the login it acts on
    credentials: dict[str, str]  # caller -> "token:N" (anonymous: none)
    probes: dict[str, Login]  # caller -> its own login of the probe account (public rows)


@dataclass
class Prep:
    """What a prepare made for one cell."""

    login: str = ""  # the login a public row is about
    secret: str = ""  # the party's TOTP secret
    codes: list[str] = field(default_factory=list)  # its recovery codes
    code: str = ""  # a texted code, or a reset link's token
    mark: int = 0  # a count or highest id read before the request


Prepare = Callable[[AuthWorld, str], Awaitable[Prep]]
Body = Callable[[AuthWorld, str, Prep], Any]
# Did the request do its work? Asserts the details (returned codes = stored ones, ...).
Effect = Callable[[AuthWorld, str, Prep, Reply], Awaitable[bool]]


@dataclass
class AuthCase:
    name: str
    method: str
    path: str
    expect: Callable[[str], Expect]
    prepare: Prepare
    body: Body
    effect: Effect
    public: bool = False  # answers alike whoever asks


def everyone(expect: Expect) -> Callable[[str], Expect]:
    return lambda caller: expect


def signed_in(ok: Expect, narrow: Expect) -> Callable[[str], Expect]:
    """Anonymous: 401; the token from a refused subnet: refused before anything;
    the narrowed token: `narrow`; every other caller acts on its own login."""
    def expect(caller: str) -> Expect:
        if caller == ANON:
            return Expect(401, "unauthenticated")
        if caller == SUBNET:
            return Expect(403, "token_address_refused")
        return narrow if caller == NARROW else ok
    return expect


SCOPE = Expect(403, "token_scope")  # a token narrowed by policies changes no setting


# Reading the store.

async def _user(w: AuthWorld, user_id: int) -> User:
    async with w.base.api.db.read() as session:
        user = await session.get(User, user_id)
    assert user is not None
    return user


async def _recovery_hashes(w: AuthWorld, user_id: int) -> set[str]:
    async with w.base.api.db.read() as session:
        return set((await session.execute(select(RecoveryCode.code_hash).where(
            RecoveryCode.user_id == user_id, RecoveryCode.used_at.is_(None)))).scalars())


async def _count(w: AuthWorld, query: Any) -> int:
    async with w.base.api.db.read() as session:
        return int((await session.execute(query)).scalar_one())


async def _max_id(w: AuthWorld, model: Any) -> int:
    return await _count(w, select(func.coalesce(func.max(model.id), 0)))


async def _sessions(w: AuthWorld, user_id: int) -> int:
    return await _count(w, select(func.count(ApiSession.id)).where(
        ApiSession.user_id == user_id))


def _hashes(codes: list[str]) -> set[str]:
    return {digest(c) for c in codes}


# Preconditions, through the API as the party's own manager token would set them.

async def _call(w: AuthWorld, method: str, path: str, token: str | None,
                body: Any = None) -> Reply:
    reply = await w.base.api.client.call(method, path, token=token, json_body=body)
    assert 200 <= reply.status < 300, (method, path, reply.text)
    return reply


async def _clear_factors(w: AuthWorld, caller: str) -> Party:
    """The party without TOTP, recovery codes or mobile (a fresh login's state)."""
    party = w.parties[caller]
    async with w.base.api.db.write() as session:
        user = await session.get(User, party.user_id, with_for_update=True)
        assert user is not None
        user.totp_secret = user.totp_confirmed_at = user.totp_last_counter = None
        user.mobile, user.mobile_verified = None, False
        await session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == party.user_id))
    return party


def _code(w: AuthWorld, secret: str, later_s: int = 0) -> str:
    """The TOTP code of `secret` `later_s` from now on the server's clock (pyotp)."""
    return pyotp.TOTP(secret).at(w.base.api.clock.now() + timedelta(seconds=later_s))


async def _enrolment(w: AuthWorld, caller: str) -> Prep:
    """A TOTP enrolment of the party, started and not confirmed: its secret."""
    party = await _clear_factors(w, caller)
    enrol = await _call(w, "POST", "/api/v1/me/totp", party.manager_token)
    return Prep(secret=enrol.body["secret"])


async def _totp_on(w: AuthWorld, caller: str) -> Prep:
    """TOTP enabled on the party: its secret and recovery codes."""
    prep = await _enrolment(w, caller)
    confirm = await _call(w, "POST", "/api/v1/me/totp/confirm",
                          w.parties[caller].manager_token, {"code": _code(w, prep.secret)})
    prep.codes = confirm.body["recovery_codes"]
    assert _hashes(prep.codes) == await _recovery_hashes(w, w.parties[caller].user_id)
    return prep


async def _texted(w: AuthWorld, mobile: str) -> list[str]:
    return [b for _, b in await outbox(w.base.api, mobile, "sms")]


def _sms_code(text: str) -> str:
    found = re.search(r"code (\d{6})", text)
    assert found is not None, text
    return found.group(1)


async def _mobile_texted(w: AuthWorld, caller: str) -> Prep:
    """A mobile registered on the party: the code texted to verify it."""
    party = await _clear_factors(w, caller)
    await _call(w, "PUT", "/api/v1/me/mobile", party.manager_token, {"mobile": party.mobile})
    return Prep(code=_sms_code((await _texted(w, party.mobile))[-1]))


async def _mobile_verified(w: AuthWorld, caller: str) -> Prep:
    """A verified mobile on the party; `mark`: the texts it received so far."""
    prep = await _mobile_texted(w, caller)
    party = w.parties[caller]
    await _call(w, "POST", "/api/v1/me/mobile/verify", party.manager_token, {"code": prep.code})
    return Prep(mark=len(await _texted(w, party.mobile)))


async def _step_up_mark(w: AuthWorld, caller: str) -> Prep:
    prep = await _totp_on(w, caller)
    prep.mark = await _max_id(w, StepUp)
    return prep


async def _new_step_ups(w: AuthWorld, mark: int) -> list[tuple[str, str | None]]:
    async with w.base.api.db.read() as session:
        rows = await session.execute(select(StepUp.credential, StepUp.operation).where(
            StepUp.id > mark))
        return [(c, o) for c, o in rows]


# The effects.

async def _totp_confirmed(w: AuthWorld, caller: str, prep: Prep, reply: Reply) -> bool:
    party = w.parties[caller]
    on = (await _user(w, party.user_id)).totp_confirmed_at is not None
    stored = await _recovery_hashes(w, party.user_id)
    if on:
        assert stored == _hashes(reply.body["recovery_codes"]) and len(stored) == 10
    else:
        assert not stored, "recovery codes without TOTP"
    return on


async def _totp_removed(w: AuthWorld, caller: str, prep: Prep, reply: Reply) -> bool:
    party = w.parties[caller]
    user = await _user(w, party.user_id)
    stored = await _recovery_hashes(w, party.user_id)
    if user.totp_confirmed_at is None:
        assert user.totp_secret is None and not stored, "TOTP half removed"
        return True
    assert stored == _hashes(prep.codes), "recovery codes changed, TOTP kept"
    assert user.totp_secret is not None
    assert w.base.api.app[CONTEXT].box.open(user.totp_secret) == prep.secret
    return False


async def _codes_replaced(w: AuthWorld, caller: str, prep: Prep, reply: Reply) -> bool:
    stored = await _recovery_hashes(w, w.parties[caller].user_id)
    if stored == _hashes(prep.codes):
        return False
    fresh = _hashes(reply.body["recovery_codes"])
    assert stored == fresh and not fresh & _hashes(prep.codes) and len(fresh) == 10
    return True


async def _stepped_up(w: AuthWorld, caller: str, prep: Prep, reply: Reply) -> bool:
    granted = await _new_step_ups(w, prep.mark)
    if granted:
        assert granted == [(w.credentials[caller], None)], granted
    return bool(granted)


async def _mobile_is_verified(w: AuthWorld, caller: str, prep: Prep, reply: Reply) -> bool:
    user = await _user(w, w.parties[caller].user_id)
    assert user.mobile == w.parties[caller].mobile
    return user.mobile_verified


async def _code_texted(w: AuthWorld, caller: str, prep: Prep, reply: Reply) -> bool:
    """A step-up code was texted; it steps up this caller's credential for that
    operation, and only it."""
    texts = await _texted(w, w.parties[caller].mobile)
    if len(texts) == prep.mark:
        return False
    assert len(texts) == prep.mark + 1 and f"approve {SECURITY_OP}" in texts[-1], texts
    mark = await _max_id(w, StepUp)
    token = w.base.tokens[caller]
    assert token is not None
    up = await send(w.base.api, "POST", "/api/v1/auth/step-up", token,
                    {"sms_code": _sms_code(texts[-1]), "operation": SECURITY_OP}, {})
    assert up.status == 200, up.text
    assert await _new_step_ups(w, mark) == [(w.credentials[caller], SECURITY_OP)]
    return True


# The public rows: about the caller's own probe login (each caller kind has one, so
# no login or hourly reset limit is shared between them).

async def _probe(w: AuthWorld, caller: str) -> Prep:
    login = w.probes[caller]
    return Prep(login=login.login, mark=await _sessions(w, login.user_id))


async def _signup_mark(w: AuthWorld, caller: str) -> Prep:
    return Prep(login=f"newco-{CALLERS.index(caller)}",
                mark=await _count(w, select(func.count(Account.id))))


def _signup_body(login: str) -> dict[str, str]:
    return {"login": login, "password": PASSWORD, "email": f"{login}@example.net",
            "name": "NewCo", "country": "DE"}


async def _signed_up(w: AuthWorld, caller: str, prep: Prep, reply: Reply) -> bool:
    accounts = await _count(w, select(func.count(Account.id)))
    if accounts == prep.mark:
        return False
    assert accounts == prep.mark + 1
    async with w.base.api.db.read() as session:
        user, account = (await session.execute(
            select(User, Account).join(Account, Account.id == User.account_id)
            .where(User.login == prep.login))).one()
    assert account.status.value == "pending" and user.role.value == "leader"
    assert reply.body["account"]["id"] == account.id and reply.body["user"]["id"] == user.id
    assert account.id not in {w.base.leader.account_id, *(p.account_id for p in w.probes.values())}
    return True


async def _logged_in(w: AuthWorld, caller: str, prep: Prep, reply: Reply) -> bool:
    """A new session of the probe login, and the cookie answered is that session."""
    probe = w.probes[caller]
    if await _sessions(w, probe.user_id) == prep.mark:
        return False
    name, _, rest = reply.headers["Set-Cookie"].partition("=")
    me = await w.base.api.client.call("GET", "/api/v1/me", cookie=(name, rest.split(";")[0]))
    assert me.status == 200 and me.body["id"] == probe.user_id, me.text
    return True


async def _mails(w: AuthWorld, caller: str) -> list[str]:
    return [b for _, b in await outbox(w.base.api, f"{w.probes[caller].login}@example.net")]


async def _mail_mark(w: AuthWorld, caller: str) -> Prep:
    prep = await _probe(w, caller)
    prep.mark = len(await _mails(w, caller))
    return prep


async def _link_mailed(w: AuthWorld, caller: str, prep: Prep, reply: Reply) -> bool:
    mails = await _mails(w, caller)
    if len(mails) == prep.mark:
        return False
    assert len(mails) == prep.mark + 1
    found = re.search(r"#token=(\S+)", mails[-1])
    assert found is not None, mails[-1]
    live = await _count(w, select(func.count(PasswordReset.id)).where(
        PasswordReset.token_hash == digest(found.group(1)), PasswordReset.used_at.is_(None)))
    assert live == 1
    return True


async def _reset_link(w: AuthWorld, caller: str) -> Prep:
    """A reset link of the probe login, asked for anonymously and read from the mail."""
    prep = await _mail_mark(w, caller)
    await _call(w, "POST", "/api/v1/auth/password-reset", None,
                {"login": prep.login, "email": f"{prep.login}@example.net"})
    mails = await _mails(w, caller)
    assert len(mails) == prep.mark + 1
    found = re.search(r"#token=(\S+)", mails[-1])
    assert found is not None
    prep.code = found.group(1)
    return prep


async def _password_reset(w: AuthWorld, caller: str, prep: Prep, reply: Reply) -> bool:
    user = await _user(w, w.probes[caller].user_id)
    changed = await w.base.api.app[CONTEXT].passwords.verify(user.password_hash, NEW_PASSWORD)
    used = await _count(w, select(func.count(PasswordReset.id)).where(
        PasswordReset.token_hash == digest(prep.code), PasswordReset.used_at.is_not(None)))
    assert used == int(changed)
    return changed


def auth_cases() -> list[AuthCase]:
    def fixed(body: Any) -> Body:
        return lambda w, caller, prep: body

    def probe(**extra: str) -> Body:
        return lambda w, caller, prep: {"login": prep.login, **extra}

    ok, created, done = Expect(200), Expect(201), Expect(204)
    public: dict[str, Any] = {"public": True}
    return [
        AuthCase("sign-up", "POST", "/api/v1/auth/signup", everyone(created), _signup_mark,
                 lambda w, caller, prep: _signup_body(prep.login), _signed_up, **public),
        AuthCase("sign-up, login taken", "POST", "/api/v1/auth/signup",
                 everyone(Expect(409, "login_taken")), _signup_mark,
                 fixed(_signup_body("lead")), _signed_up, **public),
        AuthCase("login", "POST", "/api/v1/auth/login", everyone(ok), _probe,
                 probe(password=PASSWORD), _logged_in, **public),
        AuthCase("login, wrong password", "POST", "/api/v1/auth/login",
                 everyone(Expect(401, "invalid_credentials")), _probe,
                 probe(password="not the password at all"), _logged_in, **public),
        AuthCase("password reset", "POST", "/api/v1/auth/password-reset",
                 everyone(Expect(202)), _mail_mark,
                 lambda w, caller, prep: {"login": prep.login,
                                          "email": f"{prep.login}@example.net"},
                 _link_mailed, **public),
        # The same answer, and no mail, when the address is not the login's.
        AuthCase("password reset, wrong address", "POST", "/api/v1/auth/password-reset",
                 everyone(Expect(202, acts=False)), _mail_mark,
                 probe(email="someone@elsewhere.example"), _link_mailed, **public),
        AuthCase("password reset confirm", "POST", "/api/v1/auth/password-reset/confirm",
                 everyone(done), _reset_link,
                 lambda w, caller, prep: {"token": prep.code, "password": NEW_PASSWORD},
                 _password_reset, **public),
        AuthCase("totp confirm", "POST", "/api/v1/me/totp/confirm", signed_in(ok, SCOPE),
                 _enrolment, lambda w, caller, prep: {"code": _code(w, prep.secret)},
                 _totp_confirmed),
        AuthCase("totp remove", "DELETE", "/api/v1/me/totp", signed_in(done, SCOPE), _totp_on,
                 fixed(None), _totp_removed),
        AuthCase("recovery codes", "POST", "/api/v1/me/recovery-codes", signed_in(ok, SCOPE),
                 _totp_on, fixed(None), _codes_replaced),
        # A step-up vouches for the credential that made it, within that token's scope:
        # a narrowed token may step up (its edits need it like any token's).
        AuthCase("step-up", "POST", "/api/v1/auth/step-up", signed_in(ok, ok), _step_up_mark,
                 lambda w, caller, prep: {"totp_code": _code(w, prep.secret, 30)}, _stepped_up),
        # The code is texted for the credential that registered the number, which a
        # narrowed token cannot be (PUT /me/mobile refuses it): the code fails for it.
        AuthCase("mobile verify", "POST", "/api/v1/me/mobile/verify",
                 signed_in(done, Expect(422, "invalid_code")), _mobile_texted,
                 lambda w, caller, prep: {"code": prep.code}, _mobile_is_verified),
        AuthCase("step-up sms", "POST", "/api/v1/auth/step-up/sms",
                 signed_in(Expect(202), Expect(202)), _mobile_verified,
                 fixed({"operation": SECURITY_OP}), _code_texted),
    ]


VOLATILE = {"id", "login", "email", "primary_email", "created_at", "approved_at",
            "csrf_token", "session_id", "expires_at"}


def masked(value: Any) -> Any:
    """The answer with what differs between probe logins (ids, names, times) masked."""
    if isinstance(value, dict):
        return {k: "*" if k in VOLATILE else masked(v) for k, v in value.items()}
    if isinstance(value, list):
        return [masked(v) for v in value]
    return value


def answer_shape(reply: Reply) -> tuple[int, Any, frozenset[str]]:
    headers = frozenset(h.lower() for h in reply.headers) - {"date", "content-length"}
    return reply.status, masked(reply.body), headers


@dataclass
class Outcome:
    checked: int
    problems: dict[tuple[str, str], str]


async def run_auth_matrix(w: AuthWorld, table: list[AuthCase]) -> Outcome:
    problems: dict[tuple[str, str], str] = {}
    checked = 0
    for case in table:
        shapes: dict[str, tuple[int, Any, frozenset[str]]] = {}
        for caller in CALLERS:
            checked += 1
            expected = case.expect(caller)
            prep = await case.prepare(w, caller)
            reply = await send(w.base.api, case.method, case.path, w.base.tokens[caller],
                               case.body(w, caller, prep), {})
            got = (reply.status, reply.code)
            try:
                acted = await case.effect(w, caller, prep, reply)
            except (AssertionError, KeyError, TypeError) as exc:
                problems[(case.name, caller)] = f"{got}: wrong effect: {exc!r} {reply.text[:120]}"
                continue
            if got != (expected.status, expected.code) or acted != expected.does:
                problems[(case.name, caller)] = (
                    f"expected {expected.status} {expected.code} "
                    f"{'acting' if expected.does else 'changing nothing'}, got {got} "
                    f"{'acting' if acted else 'changing nothing'}: {reply.text[:120]}")
            if case.public:
                shapes[caller] = answer_shape(reply)
        for caller, shape in shapes.items():
            if shape != shapes[ANON]:
                problems[(case.name, caller)] = (
                    f"answers otherwise than to an anonymous caller: {shape} vs {shapes[ANON]}")
    return Outcome(checked, problems)


async def build_auth(base: World) -> AuthWorld:
    api = base.api
    tokens = {c: t for c, t in base.tokens.items() if t is not None}
    async with api.db.read() as session:
        rows = (await session.execute(select(ApiToken.token_hash, ApiToken.id,
                                             ApiToken.user_id))).all()
    by_hash = {h: (token_id, user_id) for h, token_id, user_id in rows}
    credentials = {c: f"token:{by_hash[digest(t)][0]}" for c, t in tokens.items()}
    leader = base.tokens["leader"]
    assert leader is not None
    parties: dict[str, Party] = {}
    for caller in CALLERS:
        own = "leader" if caller in ON_LEADER else caller
        token = tokens[own]
        user_id = by_hash[digest(token)][1]
        parties[caller] = Party(user_id, token, f"+3361{user_id:07d}")
    assert parties[NARROW].user_id == parties["leader"].user_id == base.leader.user_id
    owner = await seed_account(api, "probes")
    probes = {c: await seed_user(api, owner, f"probe-{i}", "user")
              for i, c in enumerate(CALLERS)}
    return AuthWorld(base, parties, credentials, probes)


async def test_auth_endpoints_matrix(db: Database) -> None:
    # Every caller asks for texts on the leader's login within minutes.
    async with running_api(db, api_config(sms_per_hour=1000)) as api:
        world = await build_auth(await build(api))
        table = auth_cases()
        outcome = await run_auth_matrix(world, table)
        assert outcome.checked == len(table) * len(CALLERS) > 200
        assert not outcome.problems, report(outcome.problems)
