#!/usr/bin/env bash
# Postgres init script for docker-compose.yml (mounted into /docker-entrypoint-initdb.d; the
# postgres image runs it once, on an empty data directory, as the superuser).
#
# Provisions exactly what `sagactl` does (suite/src/provision.rs): database `saga`, and per service
# a LOGIN role with search_path set to a schema of the same name that the role owns. Nobody else
# may connect to `saga` or use its `public` schema. Each service then runs its own migrations at
# start-up. Passwords: SAGA_DB_PASSWORD_<SERVICE>, default `<service>-secret` (as in provision.rs);
# the services' DATABASE_URL in docker-compose.yml must carry the same ones.
set -euo pipefail

services=(orchestrator inventory payment shipping notification)

psql_vars=()
for service in "${services[@]}"; do
    var="SAGA_DB_PASSWORD_${service^^}"
    psql_vars+=(-v "${service}_password=${!var:-${service}-secret}")
done

psql -v ON_ERROR_STOP=1 --quiet --no-psqlrc --username "${POSTGRES_USER:-postgres}" --dbname postgres \
    "${psql_vars[@]}" <<'SQL'
create database saga;

create role orchestrator login password :'orchestrator_password';
alter role orchestrator set search_path = orchestrator;
create role inventory login password :'inventory_password';
alter role inventory set search_path = inventory;
create role payment login password :'payment_password';
alter role payment set search_path = payment;
create role shipping login password :'shipping_password';
alter role shipping set search_path = shipping;
create role notification login password :'notification_password';
alter role notification set search_path = notification;

\connect saga

revoke all on database saga from public;
revoke all on schema public from public;

grant connect on database saga to orchestrator;
create schema orchestrator authorization orchestrator;
grant connect on database saga to inventory;
create schema inventory authorization inventory;
grant connect on database saga to payment;
create schema payment authorization payment;
grant connect on database saga to shipping;
create schema shipping authorization shipping;
grant connect on database saga to notification;
create schema notification authorization notification;
SQL
echo "saga: database saga with one role and schema per service: ${services[*]}"
