//! The My Account page under load: `wrk` (a second process, on loopback) requests `/account` with
//! a signed-in subscriber's session cookie among 10,000 subscribers with payments, on SQLite and
//! on PostgreSQL, and reports requests/s and the latency percentiles wrk measured.
//!
//! `cargo bench --bench account_page`; needs `wrk` (`apt-get install wrk`).
//! `USHER_BENCH_SUBSCRIBERS` (default 10000), `USHER_BENCH_SECONDS` (default 10) and
//! `USHER_BENCH_CONNECTIONS` (default 32) change the run.
// Benchmarks seed the store directly; the wall guards commands/ only.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

mod common;

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use usher::App;
use usher::clock::SystemClock;
use usher::config::Settings;
use usher::domain::SubscriberId;
use usher::services::sign_in;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    anyhow::ensure!(
        std::process::Command::new("wrk")
            .arg("--version")
            .output()
            .is_ok(),
        "this benchmark needs wrk: apt-get install wrk"
    );
    let n = i64::try_from(env_or("USHER_BENCH_SUBSCRIBERS", 10_000))?;
    let dir = tempfile::tempdir()?;
    let sqlite = Settings {
        data_dir: dir.path().join("sqlite"),
        ..Settings::default()
    };
    measure("sqlite", sqlite, n).await?;

    let (url, name) = common::fresh_postgres().await?;
    let mut postgres = Settings {
        data_dir: dir.path().join("pg"),
        ..Settings::default()
    };
    postgres.database.url = Some(url.into());
    measure("postgres", postgres, n).await?;
    common::drop_postgres(&name).await
}

async fn measure(label: &str, settings: Settings, n: i64) -> anyhow::Result<()> {
    let app = App::build(settings, Arc::new(SystemClock)).await?;
    let mut tx = app.db.begin().await?;
    common::seed_subscribers(&mut tx, n).await?;
    common::seed_payments(&mut tx).await?;
    tx.commit().await?;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(usher::web::serve(app.clone(), listener, shutdown.clone()));

    // Sign in as a subscriber in the middle of the table, the way a browser does.
    let link = sign_in::issue_link(&app, SubscriberId::new(n / 2)).await?;
    let login = format!(
        "http://{addr}{}?{}",
        link.url.path(),
        link.url.query().unwrap_or("")
    );
    let response = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?
        .get(&login)
        .send()
        .await?;
    anyhow::ensure!(
        response.status() == 303,
        "sign-in answered {}",
        response.status()
    );
    let cookie = response
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .ok_or_else(|| anyhow::anyhow!("no session cookie"))?
        .to_owned();
    let page = reqwest::Client::new()
        .get(format!("http://{addr}/account"))
        .header("cookie", &cookie)
        .send()
        .await?
        .text()
        .await?;
    anyhow::ensure!(
        page.contains(&format!("Hello, user{}", n / 2)),
        "the page is the subscriber's"
    );

    let seconds = env_or("USHER_BENCH_SECONDS", 10);
    let connections = env_or("USHER_BENCH_CONNECTIONS", 32);
    // wrk blocks its thread for the whole run; the server keeps the runtime's workers.
    let args = vec![
        "-t2".to_owned(),
        format!("-c{connections}"),
        format!("-d{seconds}s"),
        "--latency".to_owned(),
        "-H".to_owned(),
        format!("Cookie: {cookie}"),
        format!("http://{addr}/account"),
    ];
    let output =
        tokio::task::spawn_blocking(move || std::process::Command::new("wrk").args(args).output())
            .await??;
    anyhow::ensure!(output.status.success(), "wrk failed");
    let text = String::from_utf8_lossy(&output.stdout);
    anyhow::ensure!(
        !text.contains("Non-2xx"),
        "some answers were not 200:\n{text}"
    );
    shutdown.cancel();
    let _ = server.await;

    println!("{label}: {n} subscribers, GET /account, {connections} connections, {seconds} s");
    for row in text.lines().map(str::trim) {
        if ["50%", "90%", "99%", "Requests/sec"]
            .iter()
            .any(|p| row.starts_with(p))
        {
            println!("  {row}");
        }
    }
    Ok(())
}
