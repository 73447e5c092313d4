"""Sign-up, login (password, TOTP or recovery code), logout, sessions,
step-up, password reset."""

from __future__ import annotations

from datetime import timedelta

from aiohttp import web
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import Account, AccountStatus, User
from storage.models.auth import KnownAddress, PasswordReset
from zoneapi import metrics
from zoneapi.access import enforce
from zoneapi.auth import CredentialKind, principal_of, source_address
from zoneapi.clock import aware
from zoneapi.crypto import digest, new_token
from zoneapi.endpoints import Auth, Routes, body_of
from zoneapi.errors import (
    ApiError,
    BadRequest,
    Conflict,
    NotFound,
    TooManyRequests,
    Unauthenticated,
)
from zoneapi.jsonio import as_object, get_str, json_response, opt_str
from zoneapi.keys import CONTEXT, Context
from zoneapi.policy import Operation, can_change_security
from zoneapi.schema import JsonObject, integer, obj, open_object, string
from zoneapi.services import accounts, factors, notices, sessions, throttle

routes = Routes("auth")

LOGIN_FIELD = string(100, min_length=1)
PASSWORD_FIELD = string(1000, min_length=1)
CODE_FIELD = string(20, min_length=1)

SIGNUP = obj({
    "login": LOGIN_FIELD, "password": PASSWORD_FIELD, "email": string(320, min_length=3),
    "name": string(200, min_length=1), "country": string(2, min_length=2, pattern="^[A-Za-z]{2}$"),
    "postal_address": string(1000), "phone": string(32, nullable=True),
}, required=("login", "password", "email", "name", "country"))
LOGIN = obj({"login": LOGIN_FIELD, "password": PASSWORD_FIELD, "totp_code": CODE_FIELD,
             "recovery_code": CODE_FIELD}, required=("login", "password"))
STEP_UP = obj({"totp_code": CODE_FIELD, "sms_code": CODE_FIELD, "operation": string(330)})
SMS_REQUEST = obj({"operation": string(330, min_length=3)}, required=("operation",))
RESET = obj({"login": LOGIN_FIELD, "email": string(320)}, required=("login", "email"))
RESET_CONFIRM = obj({"token": string(200, min_length=10), "password": PASSWORD_FIELD},
                    required=("token", "password"))
SESSION = obj({"id": integer(), "created_at": string(), "last_seen_at": string(),
               "source_ip": string(nullable=True), "user_agent": string(), "current": {}})


@routes.post("/auth/signup", summary="Sign up: a pending client account and its leader",
             auth=Auth.NONE, body=SIGNUP, responses={201: open_object()})
async def signup(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    if not ctx.config.signup_enabled:
        raise ApiError(403, "signup_closed", "sign-up is closed")
    body = as_object(body_of(request))
    async with ctx.db.write() as session:
        account, user = await accounts.sign_up(
            session, ctx, login=get_str(body, "login"), password=get_str(body, "password"),
            email=get_str(body, "email"), name=get_str(body, "name"),
            country=get_str(body, "country"), postal_address=get_str(body, "postal_address"),
            phone=opt_str(body, "phone"),
        )
    return json_response({"account": accounts.account_json(account),
                          "user": accounts.user_json(user)}, status=201)


@routes.post("/auth/login", summary="Log in; sets the session cookie and returns a CSRF token",
             auth=Auth.NONE, body=LOGIN, responses={200: open_object()})
async def login(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    body = as_object(body_of(request))
    name = accounts.normalise_login(get_str(body, "login"))
    address = str(source_address(request))
    keys = [throttle.login_key(name), throttle.address_key(address)]
    now = ctx.clock.now()
    async with ctx.db.read() as session:
        wait_s = await throttle.locked_for_s(session, keys, now)
        row = (await session.execute(
            select(User, Account).join(Account, Account.id == User.account_id)
            .where(func.lower(User.login) == name)
        )).first()
    if wait_s:
        metrics.LOGINS.labels("locked").inc()
        raise TooManyRequests(wait_s, "too_many_attempts", "too many failed logins; wait")
    password = get_str(body, "password")
    ok = await ctx.passwords.verify(row[0].password_hash if row else None, password)
    if not ok or row is None or row[0].disabled or row[1].status == AccountStatus.CLOSED:
        metrics.LOGINS.labels("invalid").inc()
        async with ctx.db.write() as session:
            await _record_failure(session, ctx, keys)
        raise Unauthenticated("invalid_credentials", "wrong login or password")
    failure: ApiError | None = None
    async with ctx.db.write() as session:
        user = await session.get(User, row[0].id, with_for_update=True)
        assert user is not None
        if user.totp_confirmed_at is not None and not await _second_factor(
            session, ctx, user, body
        ):
            await _record_failure(session, ctx, keys)  # committed with the replay counter
            failure = Unauthenticated("invalid_second_factor",
                                      "wrong, expired or already used code")
        else:
            new, first_seen = await _open_session(session, ctx, request, user, address, keys)
            if ctx.passwords.needs_rehash(user.password_hash or ""):
                user.password_hash = await ctx.passwords.hash(password)
    if failure is not None:
        metrics.LOGINS.labels("bad_second_factor").inc()
        raise failure
    if first_seen:
        notices.new_address_login(ctx, user.email, user.login, address)
    metrics.LOGINS.labels("ok").inc()
    response = json_response({"user": accounts.user_json(user), "csrf_token": new.csrf_token,
                              "expires_at": new.expires_at, "session_id": new.id})
    sessions.set_cookie(response, ctx, new)
    return response


async def _second_factor(session: AsyncSession, ctx: Context, user: User,
                         body: JsonObject) -> bool:
    totp_code, recovery = opt_str(body, "totp_code"), opt_str(body, "recovery_code")
    if totp_code is None and recovery is None:
        raise Unauthenticated("second_factor_required",
                              "this account needs a TOTP code (or a recovery code)")
    if totp_code is not None:
        return factors.check_totp(ctx, user, totp_code)
    return await factors.use_recovery_code(session, ctx, user.id, recovery or "")


async def _open_session(session: AsyncSession, ctx: Context, request: web.Request, user: User,
                        address: str, keys: list[str]) -> tuple[sessions.NewSession, bool]:
    """A new session (revoking any presented one); True if the address is new (not the first)."""
    await throttle.clear(session, keys[0])
    old_sid = request.cookies.get(ctx.config.cookie_name)
    if old_sid:
        await sessions.revoke_by_sid(session, ctx, old_sid)
    new = await sessions.create_session(session, ctx, user.id, address,
                                        request.headers.get("User-Agent", ""))
    known = (await session.execute(
        select(KnownAddress.address).where(KnownAddress.user_id == user.id)
    )).scalars().all()
    if address not in known:
        session.add(KnownAddress(user_id=user.id, address=address, first_seen=ctx.clock.now()))
    return new, bool(known) and address not in known


async def _record_failure(session: AsyncSession, ctx: Context, keys: list[str]) -> None:
    now, config = ctx.clock.now(), ctx.config
    await throttle.record_failure(session, config, keys[0], config.login_max_failures, now)
    await throttle.record_failure(session, config, keys[1], config.address_max_failures, now)


@routes.post("/auth/logout", summary="End the current session", responses={204: None})
async def logout(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    principal = principal_of(request)
    if principal.credential_kind is CredentialKind.SESSION:
        async with ctx.db.write() as session:
            await sessions.revoke_session(session, ctx, principal.user_id, principal.credential_id)
    response = web.Response(status=204)
    sessions.clear_cookie(response, ctx)
    return response


@routes.get("/auth/sessions", summary="Your active sessions",
            responses={200: {"type": "array", "items": SESSION}})
async def list_sessions(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    principal = principal_of(request)
    async with ctx.db.read() as session:
        rows = await sessions.active_sessions(session, ctx, principal.user_id)
    current = (principal.credential_id
               if principal.credential_kind is CredentialKind.SESSION else None)
    return json_response([
        {"id": r.id, "created_at": aware(r.created_at), "last_seen_at": aware(r.last_seen_at),
         "source_ip": r.source_ip, "user_agent": r.user_agent, "current": r.id == current}
        for r in rows
    ])


@routes.delete("/auth/sessions/{session_id:[0-9]{1,18}}", summary="Revoke one of your sessions",
               responses={204: None})
async def revoke_session(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    principal = principal_of(request)
    # As for revoking a token: not with a token narrowed to some records.
    enforce(can_change_security(principal.token))
    async with ctx.db.write() as session:
        found = await sessions.revoke_session(session, ctx, principal.user_id,
                                              int(request.match_info["session_id"]))
    if not found:
        raise NotFound("session not found", code="session_not_found")
    return web.Response(status=204)


@routes.post("/auth/step-up/sms", summary="Text a code approving one sensitive operation",
             body=SMS_REQUEST, responses={202: open_object()}, errors=(502,))
async def step_up_sms(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    principal = principal_of(request)
    operation = _operation(get_str(as_object(body_of(request)), "operation"))
    if principal.mobile is None:
        raise Conflict("no_verified_mobile", "register and verify a mobile number first",
                       how=["register_mobile"])
    async with ctx.db.write() as session:
        sms = await factors.new_code(session, ctx, principal.user_id, principal.mobile,
                                     factors.CodePurpose.STEP_UP, principal.credential,
                                     operation.key)
    await factors.send_sms(ctx, sms)
    return json_response({"operation": operation.key, "expires_at": sms.expires_at},
                         status=202)


def _operation(key: str) -> Operation:
    operation = Operation.from_key(key)
    if operation is None:
        raise BadRequest("invalid_operation",
                         "operation is '<kind>:<target>' as given in the 403 answer")
    return operation


@routes.post("/auth/step-up", summary="Prove a second factor (TOTP, or an SMS code for its "
             "operation) for a few minutes", body=STEP_UP, responses={200: open_object()})
async def step_up(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    principal = principal_of(request)
    body = as_object(body_of(request))
    totp_code, sms_code = opt_str(body, "totp_code"), opt_str(body, "sms_code")
    if (totp_code is None) == (sms_code is None):
        raise BadRequest("invalid_request", "give either totp_code or sms_code (with operation)")
    async with ctx.db.write() as session:
        if totp_code is not None:
            user = await session.get(User, principal.user_id, with_for_update=True)
            assert user is not None
            passed = user.totp_confirmed_at is not None and await factors.check_totp_throttled(
                session, ctx, user, totp_code)
            operation = None
        else:
            op = _operation(opt_str(body, "operation") or "")
            passed = await factors.check_code(
                session, ctx, principal.user_id, factors.CodePurpose.STEP_UP,
                principal.credential, op.key, sms_code or "")
            operation = op.key
        if passed:
            expires = await sessions.grant_step_up(session, ctx, principal, operation)
            new = (await sessions.rotate_session(session, ctx, principal.credential_id)
                   if principal.credential_kind is CredentialKind.SESSION else None)
    if not passed:
        raise ApiError(403, "invalid_second_factor", "wrong, expired or already used code")
    answer: dict[str, object] = {"expires_at": expires, "operation": operation}
    if new is not None:
        answer["csrf_token"] = new.csrf_token
    response = json_response(answer)
    if new is not None:
        sessions.set_cookie(response, ctx, new)
    return response


@routes.post("/auth/password-reset", summary="Mail a single-use password reset link "
             "(answers the same whether or not the account exists)", auth=Auth.NONE,
             body=RESET, responses={202: open_object()})
async def password_reset(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    body = as_object(body_of(request))
    name = accounts.normalise_login(get_str(body, "login"))
    email = get_str(body, "email").strip().lower()
    now = ctx.clock.now()
    async with ctx.db.write() as session:
        user = (await session.execute(
            select(User).where(func.lower(User.login) == name)
        )).scalar_one_or_none()
        token = None
        if user is not None and not user.disabled and user.email.lower() == email:
            recent = (await session.execute(
                select(func.count(PasswordReset.id)).where(
                    PasswordReset.user_id == user.id,
                    PasswordReset.created_at > now - timedelta(hours=1))
            )).scalar_one()
            if recent < 3:
                token = new_token()
                session.add(PasswordReset(
                    token_hash=digest(token), user_id=user.id, created_at=now,
                    expires_at=now + timedelta(seconds=ctx.config.password_reset_ttl_s)))
    if token is not None and user is not None:
        notices.password_reset_link(ctx, user.email, user.login, token)
    return json_response({"detail": "if the login and e-mail match an account, a link was sent"},
                         status=202)


@routes.post("/auth/password-reset/confirm", summary="Set a new password with a reset link; "
             "ends every session", auth=Auth.NONE, body=RESET_CONFIRM, responses={204: None})
async def password_reset_confirm(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    body = as_object(body_of(request))
    now = ctx.clock.now()
    async with ctx.db.write() as session:
        reset = (await session.execute(
            select(PasswordReset).where(PasswordReset.token_hash == digest(get_str(body, "token")))
            .with_for_update()
        )).scalar_one_or_none()
        if reset is None or reset.used_at is not None or aware(reset.expires_at) <= now:
            raise BadRequest("invalid_reset_token", "the link is unknown, used or expired")
        user = await session.get(User, reset.user_id, with_for_update=True)
        assert user is not None
        password = get_str(body, "password")
        await accounts.check_password(ctx, password, user.login)
        user.password_hash = await ctx.passwords.hash(password)
        await session.execute(
            update(PasswordReset).where(PasswordReset.user_id == user.id,
                                        PasswordReset.used_at.is_(None)).values(used_at=now))
        await sessions.revoke_all(session, ctx, user.id)
        await throttle.clear(session, throttle.login_key(user.login))
        session.add(accounts.audit(user.account_id, user.id, f"user:{user.id}", None, None,
                                   "user.password_reset", "user", user.login, None, None))
        email, login_name = user.email, user.login
    notices.password_changed(ctx, email, login_name)
    return web.Response(status=204)


def setup(app: web.Application) -> None:
    routes.install(app)

