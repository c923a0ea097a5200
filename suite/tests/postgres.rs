//! A real throwaway cluster: provisioning is idempotent and concurrency-safe, each service role
//! is confined to its own schema, and dropping the cluster stops it and removes its files.

use std::time::Duration;

use anyhow::Context as _;
use saga_suite::postgres::{TempPostgres, TempPostgresOptions};
use saga_suite::process::is_alive;
use saga_suite::provision::{Provisioned, provision};
use sqlx::{Connection as _, PgConnection};

fn unique_database() -> String {
    format!("t_{:016x}", rand::random::<u64>())
}

fn fast() -> TempPostgresOptions {
    TempPostgresOptions { fast: true, ..TempPostgresOptions::default() }
}

fn sqlstate(err: &sqlx::Error) -> Option<String> {
    err.as_database_error()?.code().map(|code| code.into_owned())
}

async fn connect_as(provisioned: &Provisioned, service: &str) -> anyhow::Result<PgConnection> {
    PgConnection::connect(&provisioned.service_url(service))
        .await
        .with_context(|| format!("cannot connect as {service}"))
}

#[tokio::test]
async fn provisioning_twice_and_concurrently_confines_each_role_to_its_schema() -> anyhow::Result<()> {
    // Arrange: one cluster, two databases provisioned at the same time, the first one twice.
    let pg = TempPostgres::start(fast()).await?;
    let admin_url = pg.admin_url();
    let (database, other) = (unique_database(), unique_database());
    let (first, second) = tokio::join!(provision(&admin_url, &database), provision(&admin_url, &other));
    let provisioned = first?;
    let other_provisioned = second?;
    let again = provision(&admin_url, &database).await?;
    assert_eq!(again.service_url("inventory"), provisioned.service_url("inventory"));
    assert_eq!(provisioned.database(), database);

    // The payment role owns a table in its own schema, reached through its search_path.
    let mut payment = connect_as(&provisioned, "payment").await?;
    let schema: String = sqlx::query_scalar("select current_schema()").fetch_one(&mut payment).await?;
    assert_eq!(schema, "payment");
    sqlx::raw_sql("create table payments (id bigint primary key)").execute(&mut payment).await?;

    // Act + assert: inventory works in its schema…
    let mut inventory = connect_as(&provisioned, "inventory").await?;
    let one: i32 = sqlx::query_scalar("select 1").fetch_one(&mut inventory).await?;
    assert_eq!(one, 1);
    sqlx::raw_sql("create table inventory.products (sku text primary key)").execute(&mut inventory).await?;
    sqlx::raw_sql("create table stock (sku text primary key)").execute(&mut inventory).await?;

    // …and is refused anything in payment's schema or in public.
    let err = sqlx::raw_sql("select * from payment.payments")
        .execute(&mut inventory)
        .await
        .err()
        .context("inventory could read payment.payments")?;
    assert_eq!(sqlstate(&err).as_deref(), Some("42501"), "{err}");
    let err = sqlx::raw_sql("create table public.sneaky (id int)")
        .execute(&mut inventory)
        .await
        .err()
        .context("inventory could create a table in public")?;
    assert_eq!(sqlstate(&err).as_deref(), Some("42501"), "{err}");

    // The concurrently provisioned database is usable too.
    let mut shipping = connect_as(&other_provisioned, "shipping").await?;
    sqlx::raw_sql("create table shipments (id bigint primary key)").execute(&mut shipping).await?;

    for conn in [payment, inventory, shipping] {
        conn.close().await?;
    }
    Ok(())
}

#[tokio::test]
async fn dropping_temp_postgres_stops_the_server_and_removes_its_files() -> anyhow::Result<()> {
    let pg = TempPostgres::start(fast()).await?;
    let (pid, port) = (pg.pid(), pg.port());
    let (root, log) = (pg.root_dir().to_owned(), pg.log_path().to_owned());
    assert!(is_alive(pid));
    assert!(pg.data_dir().join("PG_VERSION").exists());
    assert!(log.starts_with(&root));

    drop(pg);

    assert!(!is_alive(pid), "postgres pid {pid} still running");
    let refused = tokio::time::timeout(Duration::from_secs(2), tokio::net::TcpStream::connect(("127.0.0.1", port)))
        .await
        .map_or(true, |connect| connect.is_err());
    assert!(refused, "port {port} still accepts connections");
    assert!(!root.exists(), "{} was not removed", root.display());
    Ok(())
}
