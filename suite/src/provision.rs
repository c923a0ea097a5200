//! Provisioning: one database for the suite, one login role and one private schema per service.
//!
//! Each role may connect to the suite's database and use only its own schema, so a service that
//! reaches into another's tables fails with "permission denied" instead of silently coupling.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr as _;
use std::time::Duration;

use anyhow::{Context as _, bail};
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{ConnectOptions as _, Connection as _, Executor as _};

use crate::text::percent_encode;

/// Every service that owns a schema (and a role of the same name): the whole suite.
pub use saga_shared::suite::NAMES as SERVICES;

/// Advisory-lock key serialising provisioning across processes: roles are cluster-global, and
/// concurrent `CREATE ROLE`/`ALTER ROLE` on one role fail ("tuple concurrently updated").
const PROVISION_LOCK_KEY: i64 = 0x5a6a_c71d;
/// Bounds every statement, including the wait for the advisory lock.
const STATEMENT_TIMEOUT: &str = "60s";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// Where the provisioned database lives and how each service logs in.
#[derive(Clone)]
pub struct Provisioned {
    host: String,
    /// Set when the admin URL reached Postgres through a unix socket directory.
    socket: Option<String>,
    port: u16,
    database: String,
    passwords: BTreeMap<String, String>,
}

impl fmt::Debug for Provisioned {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Passwords stay out of debug output.
        f.debug_struct("Provisioned")
            .field("host", &self.host)
            .field("socket", &self.socket)
            .field("port", &self.port)
            .field("database", &self.database)
            .finish_non_exhaustive()
    }
}

impl Provisioned {
    /// `postgres://<role>:<password>@<host>:<port>/<database>` for one of [`SERVICES`].
    pub fn service_url(&self, service: &str) -> String {
        let password = self.passwords.get(service).cloned().unwrap_or_else(|| default_password(service));
        let mut url = format!(
            "postgres://{}:{}@{}:{}/{}",
            percent_encode(service),
            percent_encode(&password),
            self.host,
            self.port,
            self.database
        );
        if let Some(socket) = &self.socket {
            url.push_str(&format!("?host={}", percent_encode(socket)));
        }
        url
    }

    pub fn database(&self) -> &str {
        &self.database
    }

    /// A value for unit tests elsewhere in the crate, with default passwords.
    #[cfg(test)]
    pub(crate) fn for_tests(host: &str, port: u16, database: &str) -> Self {
        Self { host: host.to_owned(), socket: None, port, database: database.to_owned(), passwords: BTreeMap::new() }
    }
}

/// A superuser pool on `database` of the server `admin_url` names (for audits, benchmarks and
/// tests that read every schema).
pub async fn superuser_pool(admin_url: &str, database: &str, max_connections: u32) -> anyhow::Result<sqlx::PgPool> {
    let options = PgConnectOptions::from_str(admin_url)
        .context("the admin database URL is not a valid postgres:// URL")?
        .database(database);
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(max_connections)
        .connect_with(options)
        .await
        .with_context(|| format!("cannot connect to database {database} as superuser"))
}

/// Creates (if missing) database `database`, the service roles and their schemas, using a
/// superuser URL. Idempotent, and safe to run concurrently from several processes.
pub async fn provision(admin_url: &str, database: &str) -> anyhow::Result<Provisioned> {
    validate_identifier(database)?;
    let admin = PgConnectOptions::from_str(admin_url)
        .context("the admin database URL is not a valid postgres:// URL")?
        .disable_statement_logging();
    let passwords = passwords_from_env()?;

    let mut lock_conn = connect(&admin, "the admin database").await?;
    lock_conn
        .execute(sqlx::query("select pg_advisory_lock($1)").bind(PROVISION_LOCK_KEY))
        .await
        .context("cannot take the provisioning lock")?;
    let result = provision_locked(&mut lock_conn, &admin, database, &passwords).await;
    // Closing the session would release the lock too; unlocking first just frees it sooner.
    let _ = lock_conn.execute(sqlx::query("select pg_advisory_unlock($1)").bind(PROVISION_LOCK_KEY)).await;
    let _ = lock_conn.close().await;
    result?;

    Ok(Provisioned {
        host: admin.get_host().to_owned(),
        socket: admin.get_socket().map(|path| path.to_string_lossy().into_owned()),
        port: admin.get_port(),
        database: database.to_owned(),
        passwords,
    })
}

async fn provision_locked(
    admin_conn: &mut PgConnection,
    admin: &PgConnectOptions,
    database: &str,
    passwords: &BTreeMap<String, String>,
) -> anyhow::Result<()> {
    create_database(admin_conn, database).await?;
    for service in SERVICES {
        upsert_role(admin_conn, service, &passwords[service]).await?;
    }

    let db = quote_ident(database);
    let mut conn = connect(&admin.clone().database(database), database).await?;
    // Nobody but the service roles may connect, and nobody may use `public`: each service keeps
    // to its own schema.
    run(&mut conn, &format!("revoke all on database {db} from public")).await?;
    run(&mut conn, "revoke all on schema public from public").await?;
    for service in SERVICES {
        let role = quote_ident(service);
        run(&mut conn, &format!("grant connect on database {db} to {role}")).await?;
        run(&mut conn, &format!("create schema if not exists {role} authorization {role}")).await?;
        // A schema that already existed (created by hand, say) must still belong to the service.
        run(&mut conn, &format!("alter schema {role} owner to {role}")).await?;
    }
    conn.close().await.context("cannot close the provisioning connection")?;
    Ok(())
}

async fn create_database(conn: &mut PgConnection, database: &str) -> anyhow::Result<()> {
    let exists: bool = sqlx::query_scalar("select exists(select 1 from pg_database where datname = $1)")
        .bind(database)
        .fetch_one(&mut *conn)
        .await
        .context("cannot look up existing databases")?;
    if !exists {
        let sql = format!("create database {}", quote_ident(database));
        // 42P04 duplicate_database: another provisioner without our lock won the race.
        tolerate(run(conn, &sql).await, &["42P04"])?;
    }
    Ok(())
}

/// Creates the login role or, if it exists, resets its password so the URLs we hand out work.
async fn upsert_role(conn: &mut PgConnection, role: &str, password: &str) -> anyhow::Result<()> {
    let ident = quote_ident(role);
    let literal = quote_literal(password)?;
    let exists: bool = sqlx::query_scalar("select exists(select 1 from pg_roles where rolname = $1)")
        .bind(role)
        .fetch_one(&mut *conn)
        .await
        .context("cannot look up existing roles")?;
    if !exists {
        let create = format!("create role {ident} login password {literal}");
        // 42710 duplicate_object / 23505 unique_violation: created concurrently; fall through.
        tolerate(run(conn, &create).await, &["42710", "23505"])?;
    }
    run(conn, &format!("alter role {ident} with login password {literal}")).await?;
    run(conn, &format!("alter role {ident} set search_path = {ident}")).await?;
    Ok(())
}

async fn connect(options: &PgConnectOptions, what: &str) -> anyhow::Result<PgConnection> {
    let mut conn = tokio::time::timeout(CONNECT_TIMEOUT, options.connect())
        .await
        .with_context(|| format!("timed out connecting to {what}"))?
        .with_context(|| format!("cannot connect to {what}"))?;
    run(&mut conn, &format!("set statement_timeout = '{STATEMENT_TIMEOUT}'")).await?;
    Ok(conn)
}

/// Runs one DDL statement over the simple protocol (DDL takes no bind parameters). Every
/// name in it went through `quote_ident` and every password through `quote_literal`.
async fn run(conn: &mut PgConnection, sql: &str) -> anyhow::Result<()> {
    conn.execute(sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned())))
        .await
        .with_context(|| format!("provisioning statement failed: {}", redact(sql)))?;
    Ok(())
}

/// Turns an error with one of `codes` (SQLSTATE) into success.
fn tolerate(result: anyhow::Result<()>, codes: &[&str]) -> anyhow::Result<()> {
    match result {
        Err(err) if sqlstate(&err).is_some_and(|code| codes.contains(&code.as_str())) => Ok(()),
        other => other,
    }
}

fn sqlstate(err: &anyhow::Error) -> Option<String> {
    let db_err = err.downcast_ref::<sqlx::Error>()?.as_database_error()?;
    db_err.code().map(|code| code.into_owned())
}

/// Keeps passwords out of error messages.
fn redact(sql: &str) -> String {
    match sql.find(" password ") {
        Some(at) => format!("{} password '…'", &sql[..at]),
        None => sql.to_owned(),
    }
}

/// `<service>-secret`, unless `SAGA_DB_PASSWORD_<SERVICE>` says otherwise.
fn passwords_from_env() -> anyhow::Result<BTreeMap<String, String>> {
    SERVICES
        .iter()
        .map(|&service| {
            let key = format!("SAGA_DB_PASSWORD_{}", service.to_uppercase());
            let password = match std::env::var(&key) {
                Ok(value) if !value.is_empty() => value,
                Ok(_) | Err(std::env::VarError::NotPresent) => default_password(service),
                Err(std::env::VarError::NotUnicode(_)) => bail!("{key} is not valid UTF-8"),
            };
            Ok((service.to_owned(), password))
        })
        .collect()
}

fn default_password(service: &str) -> String {
    format!("{service}-secret")
}

/// Database names come from our code, but are still checked: lowercase letters, digits and `_`,
/// not starting with a digit, at most 63 bytes (Postgres' identifier limit).
pub fn validate_identifier(name: &str) -> anyhow::Result<()> {
    let valid_chars = name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    let starts_ok = name.bytes().next().is_some_and(|b| !b.is_ascii_digit());
    if !valid_chars || !starts_ok || name.len() > 63 {
        bail!(
            "invalid database name {name:?}: use 1-63 characters from [a-z0-9_], not starting \
             with a digit"
        );
    }
    Ok(())
}

fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A SQL string literal. Relies on `standard_conforming_strings` (on by default since 9.1), so
/// only quotes need doubling.
fn quote_literal(value: &str) -> anyhow::Result<String> {
    if value.contains('\0') {
        bail!("a password must not contain a NUL character");
    }
    Ok(format!("'{}'", value.replace('\'', "''")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_accept_lowercase_digits_and_underscores() {
        assert!(validate_identifier("saga").is_ok());
        assert!(validate_identifier("t_0123abc").is_ok());
        assert!(validate_identifier(&"a".repeat(63)).is_ok());
    }

    #[test]
    fn identifiers_reject_everything_else() {
        for bad in ["", "Saga", "saga-db", "1saga", "sa ga", "x\"y", "ü"] {
            assert!(validate_identifier(bad).is_err(), "{bad:?} accepted");
        }
        assert!(validate_identifier(&"a".repeat(64)).is_err());
    }

    #[test]
    fn quoting_doubles_embedded_quotes() -> anyhow::Result<()> {
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(quote_literal("it's")?, "'it''s'");
        assert!(quote_literal("a\0b").is_err());
        Ok(())
    }

    #[test]
    fn service_urls_encode_credentials() {
        let provisioned = Provisioned {
            host: "127.0.0.1".into(),
            socket: None,
            port: 5433,
            database: "saga".into(),
            passwords: BTreeMap::from([("payment".to_owned(), "p@ss/word".to_owned())]),
        };
        assert_eq!(provisioned.service_url("payment"), "postgres://payment:p%40ss%2Fword@127.0.0.1:5433/saga");
        assert_eq!(provisioned.service_url("inventory"), "postgres://inventory:inventory-secret@127.0.0.1:5433/saga");
    }

    #[test]
    fn redaction_hides_passwords() {
        assert_eq!(redact("create role \"x\" login password 'secret'"), "create role \"x\" login password '…'");
        assert_eq!(redact("create schema x"), "create schema x");
    }
}
