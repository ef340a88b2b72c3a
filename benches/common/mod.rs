//! What the benchmarks share: a throwaway PostgreSQL database on the server named by
//! `USHER_TEST_DATABASE_URL` (default: the local server), created per run and dropped after, and
//! a fast seed of subscribers.

// Each benchmark uses only part of this module.
#![allow(dead_code)]

use sqlx::Connection as _;

fn admin_url() -> String {
    std::env::var("USHER_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// Creates an empty database; returns its URL and name.
pub async fn fresh_postgres() -> anyhow::Result<(String, String)> {
    let mut conn = sqlx::PgConnection::connect(&admin_url()).await?;
    let name = format!("usher_bench_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(&format!("CREATE DATABASE \"{name}\""))
        .execute(&mut conn)
        .await?;
    let mut url = url::Url::parse(&admin_url())?;
    url.set_path(&name);
    Ok((url.to_string(), name))
}

/// Drops a database made by [`fresh_postgres`].
pub async fn drop_postgres(name: &str) -> anyhow::Result<()> {
    let mut conn = sqlx::PgConnection::connect(&admin_url()).await?;
    sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .execute(&mut conn)
        .await?;
    Ok(())
}

/// `n` subscribers in one statement per backend.
pub async fn seed_subscribers(tx: &mut usher::store::Tx, n: i64) -> anyhow::Result<()> {
    let now = chrono::Utc::now();
    match tx {
        usher::store::Tx::Sqlite(t) => {
            sqlx::query(
                "WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM k WHERE i < $1) \
                 INSERT INTO subscriber (discord_id, display_name, created_at, updated_at) \
                 SELECT 1000 + i, 'user' || i, $2, $2 FROM k",
            )
            .bind(n)
            .bind(now)
            .execute(&mut **t)
            .await?;
        }
        usher::store::Tx::Postgres(t) => {
            sqlx::query(
                "INSERT INTO subscriber (discord_id, display_name, created_at, updated_at) \
                 SELECT 1000 + i, 'user' || i, $2, $2 FROM generate_series(1, $1) AS i",
            )
            .bind(n)
            .bind(now)
            .execute(&mut **t)
            .await?;
        }
    }
    Ok(())
}

/// One applied payment per subscriber, covering the month around now (same SQL on both backends).
pub async fn seed_payments(tx: &mut usher::store::Tx) -> anyhow::Result<()> {
    let now = chrono::Utc::now();
    let (from, to) = (
        now - chrono::Duration::days(3),
        now + chrono::Duration::days(27),
    );
    usher::on_tx!(tx, |c| sqlx::query(
        "INSERT INTO payment (subscriber_id, provider, provider_txn_id, amount_minor, currency, \
         paid_from, paid_to, status, created_at) \
         SELECT id, 'manual', 'seed-' || id, 800, 'USD', $1, $2, 'applied', $3 FROM subscriber"
    )
    .bind(from)
    .bind(to)
    .bind(now)
    .execute(c)
    .await
    .map(|_| ()))?;
    Ok(())
}
