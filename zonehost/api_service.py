"""The zone API as a service, with billing's routes configured."""

from __future__ import annotations

from aiohttp import web

from storage.db import Database
from zoneapi.app import create_app
from zoneapi.config import ZoneApiConfig
from zoneapi.routes.billing_common import install_billing
from zonehost.config import Settings, billing_config


async def start_api(settings: Settings, config: ZoneApiConfig, db: Database) -> web.AppRunner:
    """Serve the API on `config.listen`; stop it with `await runner.cleanup()`."""
    app = create_app(config, db)
    install_billing(app, billing_config(settings))
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    host, port = config.listen
    await web.TCPSite(runner, host, port, reuse_address=True).start()
    return runner
