"""The zone API as a service, with billing's routes configured."""

from __future__ import annotations

from aiohttp import web

from storage.db import Database
from zoneapi.app import create_app
from zoneapi.config import ZoneApiConfig
from zoneapi.ratelimit import Limiter
from zoneapi.routes.billing_common import install_billing
from zonehost.config import Settings, billing_config


async def start_api(settings: Settings, config: ZoneApiConfig, db: Database, *,
                    limiters: tuple[Limiter, Limiter] | None = None,
                    reuse_port: bool = False) -> web.AppRunner:
    """Serve the API on `config.listen`; stop it with `await runner.cleanup()`.

    `limiters`: the address and token limiters (default: this process's own);
    `reuse_port`: bind with SO_REUSEPORT, beside the other workers."""
    address_limiter, token_limiter = limiters or (None, None)
    app = create_app(config, db, address_limiter=address_limiter, token_limiter=token_limiter)
    install_billing(app, billing_config(settings))
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    host, port = config.listen
    await web.TCPSite(runner, host, port, reuse_address=True,
                      reuse_port=reuse_port or None).start()
    return runner
