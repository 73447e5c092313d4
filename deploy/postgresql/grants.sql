-- After `zonehost db upgrade`: what the default privileges of roles.sql cannot
-- say, table by table. Idempotent; run after every upgrade, as the superuser:
--   sudo -u postgres psql -v ON_ERROR_STOP=1 -d zonehost -f grants.sql
-- (-v ns=... if roles.sql was given another name.)

\if :{?ns}
\else
  \set ns zonehost_ns
\endif

-- Nameservers report the feed position they serve (the API's propagation
-- status) and flush per-zone query counters.
GRANT SELECT, INSERT, UPDATE, DELETE ON nameserver_instances, query_counts TO :"ns";
