"""The caller's own login: profile, password, TOTP, recovery codes, mobile."""

from __future__ import annotations

from aiohttp import web
from sqlalchemy import delete

from storage.models import User, UserRole
from storage.models.auth import RecoveryCode
from zoneapi import totp
from zoneapi.access import audit_row, require_security_change
from zoneapi.auth import principal_of
from zoneapi.endpoints import Routes, body_of
from zoneapi.errors import ApiError, BadRequest, Conflict, Unauthenticated, Unprocessable
from zoneapi.jsonio import as_object, get_str, json_response
from zoneapi.keys import CONTEXT
from zoneapi.routes.auth import CODE_FIELD, PASSWORD_FIELD
from zoneapi.schema import obj, open_object, string
from zoneapi.services import accounts, factors, notices, sessions

routes = Routes("me")

PASSWORD_CHANGE = obj({"current_password": PASSWORD_FIELD, "new_password": PASSWORD_FIELD},
                      required=("current_password", "new_password"))
CODE = obj({"code": CODE_FIELD}, required=("code",))
MOBILE = obj({"mobile": string(32, min_length=3)}, required=("mobile",))


# accounts.user_json()'s fields, read with plain driver SQL (storage.driver)
# like the credential lookup: no ORM session for the most frequent read.
_ME = (
    "SELECT id, login, email, role, business_unit_id, disabled, totp_confirmed_at, mobile,"
    " mobile_verified, created_at FROM users WHERE id = $1"
)


@routes.get("/me", summary="Who you are", responses={200: open_object()})
async def me(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    principal = principal_of(request)
    row = await ctx.db.fetchrow(_ME, principal.user_id)
    if row is None:  # deleted since the credential was looked up
        raise Unauthenticated()
    answer: dict[str, object] = {
        "id": row[0], "login": row[1], "email": row[2], "role": UserRole(row[3]).value,
        "business_unit_id": row[4], "disabled": bool(row[5]), "totp_enabled": row[6] is not None,
        "mobile": row[7], "mobile_verified": bool(row[8]),
        "created_at": ctx.db.sql.time_out(row[9]),
    }
    answer["account_status"] = principal.account_status.value
    answer["credential"] = principal.credential
    answer["source_ip"] = str(principal.source_ip)
    return json_response(answer)


@routes.put("/me/password", summary="Change your password (sensitive; ends other sessions)",
            body=PASSWORD_CHANGE, responses={204: None})
async def change_password(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    principal = principal_of(request)
    body = as_object(body_of(request))
    async with ctx.db.read() as session:
        # The gate first: whoever may not change the password learns nothing about it.
        await require_security_change(session, ctx, principal)
        user = await session.get(User, principal.user_id)
    assert user is not None
    if not await ctx.passwords.verify(user.password_hash, get_str(body, "current_password")):
        raise ApiError(403, "invalid_credentials", "the current password is wrong")
    new_password = get_str(body, "new_password")
    await accounts.check_password(ctx, new_password, user.login)
    hashed = await ctx.passwords.hash(new_password)
    async with ctx.db.write() as session:
        await require_security_change(session, ctx, principal)
        user = await session.get(User, principal.user_id, with_for_update=True)
        assert user is not None
        user.password_hash = hashed
        await sessions.revoke_all(session, ctx, user.id)
        session.add(audit_row(principal, "user.password", "user", user.login))
    notices.password_changed(ctx, user.email, user.login)
    return web.Response(status=204)


@routes.post("/me/totp", summary="Start TOTP enrolment: secret, otpauth URI and QR code (SVG)",
             responses={200: open_object()})
async def enrol_totp(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    principal = principal_of(request)
    async with ctx.db.write() as session:
        await require_security_change(session, ctx, principal, first_factor=True)
        user = await session.get(User, principal.user_id, with_for_update=True)
        assert user is not None
        if user.totp_confirmed_at is not None:
            raise Conflict("totp_enabled", "TOTP is already enabled; remove it first")
        secret = totp.new_secret()
        user.totp_secret = ctx.box.seal(secret)
        user.totp_last_counter = None
    uri = totp.provisioning_uri(secret, user.login, ctx.config.totp_issuer)
    return json_response({"secret": secret, "otpauth_uri": uri, "qr_svg": factors.qr_svg(uri)})


@routes.post("/me/totp/confirm", summary="Confirm TOTP with a first code; returns recovery codes",
             body=CODE, responses={200: open_object()})
async def confirm_totp(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    principal = principal_of(request)
    code = get_str(as_object(body_of(request)), "code")
    async with ctx.db.write() as session:
        await require_security_change(session, ctx, principal, first_factor=True)
        user = await session.get(User, principal.user_id, with_for_update=True)
        assert user is not None
        if user.totp_confirmed_at is not None or user.totp_secret is None:
            raise Conflict("no_totp_enrolment", "start the enrolment first (POST /me/totp)")
        confirmed = await factors.check_totp_throttled(session, ctx, user, code)
        if confirmed:  # else the failure is committed, then refused below
            user.totp_confirmed_at = ctx.clock.now()
            codes = await factors.new_recovery_codes(session, ctx, user.id)
            session.add(audit_row(principal, "user.totp_enabled", "user", user.login))
    if not confirmed:
        raise Unprocessable("invalid_second_factor", "wrong or expired code")
    notices.factor_added(ctx, user.email, user.login, "TOTP")
    return json_response({"recovery_codes": codes})


@routes.delete("/me/totp", summary="Remove TOTP (sensitive)", responses={204: None})
async def remove_totp(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    principal = principal_of(request)
    async with ctx.db.write() as session:
        await require_security_change(session, ctx, principal)
        user = await session.get(User, principal.user_id, with_for_update=True)
        assert user is not None
        if user.totp_secret is None:
            raise Conflict("totp_disabled", "TOTP is not enabled")
        user.totp_secret, user.totp_confirmed_at, user.totp_last_counter = None, None, None
        await session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
        session.add(audit_row(principal, "user.totp_removed", "user", user.login))
    notices.factor_removed(ctx, user.email, user.login, "TOTP")
    return web.Response(status=204)


@routes.post("/me/recovery-codes", summary="New recovery codes, the old ones void (sensitive)",
             responses={200: open_object()})
async def regenerate_recovery_codes(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    principal = principal_of(request)
    if not principal.totp_enabled:
        raise Conflict("totp_disabled", "recovery codes come with TOTP")
    async with ctx.db.write() as session:
        await require_security_change(session, ctx, principal)
        codes = await factors.new_recovery_codes(session, ctx, principal.user_id)
        session.add(audit_row(principal, "user.recovery_codes", "user", principal.login))
    return json_response({"recovery_codes": codes})


@routes.put("/me/mobile", summary="Register a mobile number (E.164) and text it a code",
            body=MOBILE, responses={202: open_object()}, errors=(502,))
async def register_mobile(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    principal = principal_of(request)
    mobile = get_str(as_object(body_of(request)), "mobile").replace(" ", "")
    if not factors.E164.match(mobile):
        raise BadRequest("invalid_mobile", "a mobile number is E.164: '+' and 7 to 15 digits")
    async with ctx.db.write() as session:
        await require_security_change(session, ctx, principal, first_factor=True)
        user = await session.get(User, principal.user_id, with_for_update=True)
        assert user is not None
        user.mobile, user.mobile_verified = mobile, False
        session.add(audit_row(principal, "user.mobile", "user", user.login, None, mobile))
        sms = await factors.new_code(session, ctx, user.id, mobile,
                                     factors.CodePurpose.VERIFY_MOBILE, principal.credential, "")
    await factors.send_sms(ctx, sms)
    return json_response({"mobile": mobile, "expires_at": sms.expires_at}, status=202)


@routes.post("/me/mobile/verify", summary="Verify the mobile number with the texted code",
             body=CODE, responses={204: None})
async def verify_mobile(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    principal = principal_of(request)
    code = get_str(as_object(body_of(request)), "code")
    async with ctx.db.write() as session:
        user = await session.get(User, principal.user_id, with_for_update=True)
        assert user is not None
        ok = user.mobile is not None and await factors.check_code(
            session, ctx, user.id, factors.CodePurpose.VERIFY_MOBILE, principal.credential, "",
            code)
        if ok:
            user.mobile_verified = True
            session.add(audit_row(principal, "user.mobile_verified", "user", user.login))
    if not ok:
        raise Unprocessable("invalid_code", "wrong, expired or already used code")
    notices.factor_added(ctx, user.email, user.login, f"mobile {user.mobile}")
    return web.Response(status=204)


def setup(app: web.Application) -> None:
    routes.install(app)
