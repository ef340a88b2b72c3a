//! What the benchmarks share: a throwaway PostgreSQL database on the server named by
//! `USHER_TEST_DATABASE_URL` (default: the local server), created per run and dropped after.

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
