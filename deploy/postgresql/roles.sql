-- zonehost's database and roles, least privilege. Run once on the primary, as
-- the PostgreSQL superuser:
--   sudo -u postgres psql -v ON_ERROR_STOP=1 -f roles.sql
-- Names can be changed with -v db=... -v owner=... -v app=... -v ns=... -v ro=...
--
--   owner  owns the schema: only `zonehost db upgrade` (and `zonehost serve`) use it
--   app    the zone API, the mail forwarder, billing and the operator's CLI
--   ns     nameservers on the primary: read everything, write their own status
--   ro     nameservers on a streaming replica: read only
-- Then give each role a password (psql: \password zonehost_app), run
-- `zonehost db upgrade` as the owner, and grants.sql.

\if :{?db}
\else
  \set db zonehost
\endif
\if :{?owner}
\else
  \set owner zonehost_owner
\endif
\if :{?app}
\else
  \set app zonehost_app
\endif
\if :{?ns}
\else
  \set ns zonehost_ns
\endif
\if :{?ro}
\else
  \set ro zonehost_ro
\endif

CREATE ROLE :"owner" LOGIN;
CREATE ROLE :"app" LOGIN;
CREATE ROLE :"ns" LOGIN;
CREATE ROLE :"ro" LOGIN;
CREATE DATABASE :"db" OWNER :"owner" ENCODING 'UTF8' TEMPLATE template0;
REVOKE ALL ON DATABASE :"db" FROM PUBLIC;
GRANT CONNECT ON DATABASE :"db" TO :"app", :"ns", :"ro";

\connect :"db"
-- Only the owner creates objects (PostgreSQL 15 does this by default; 14 and older do not).
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO :"app", :"ns", :"ro";
-- Every table the migrations create: rows for app, reading for ns and ro.
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA public
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO :"app";
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA public
    GRANT USAGE, SELECT ON SEQUENCES TO :"app";
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA public
    GRANT SELECT ON TABLES TO :"ns", :"ro";
