//! The Discord door's latency over the fake Discord: interaction received → first callback sent,
//! p50/p99, for `/account` and for the bulk-flag preview on 10,000 subscribers (its first callback
//! is the deferral; the preview itself follows as a followup, timed too). The real bot (serenity +
//! poise) runs against the local fake on SQLite and on PostgreSQL.
//!
//! `cargo bench --bench discord`; `USHER_BENCH_SUBSCRIBERS` changes the size (default 10000).
// Benchmarks seed the store directly; the wall guards commands/ only.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio_util::sync::CancellationToken;
use usher::App;
use usher::clock::SystemClock;
use usher::config::Settings;
use usher::fakes::discord::{FakeDiscord, FakeUser};

const GUILD: u64 = 1_200_000_000_000_000_001;
const ADMIN_ROLE: u64 = 4242;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let n: i64 = std::env::var("USHER_BENCH_SUBSCRIBERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
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

async fn measure(label: &str, mut settings: Settings, n: i64) -> anyhow::Result<()> {
    let discord = FakeDiscord::start().await;
    settings.discord.token = Some(discord.token().into());
    settings.discord.api_base_url = Some(discord.api_base());
    settings.discord.guild_ids = vec![GUILD];
    settings.discord.admin_role_ids = vec![ADMIN_ROLE];
    let app = App::build(settings, Arc::new(SystemClock)).await?;
    let mut tx = app.db.begin().await?;
    common::seed_subscribers(&mut tx, n).await?;
    tx.commit().await?;

    let shutdown = CancellationToken::new();
    let token = app.settings.discord.token.clone().expect("set above");
    let bot = tokio::spawn(usher::bot::run(app.clone(), token, shutdown.clone()));
    anyhow::ensure!(
        discord.wait_registered(Duration::from_secs(30)).await,
        "the bot did not register its commands"
    );

    // `/account` for a subscriber (Discord id 1001 is the first seeded one).
    let member = FakeUser::new(1001, "user1");
    let mut account = Vec::new();
    for i in 0..520 {
        let start = Instant::now();
        let handle = discord.slash(&member, Some(GUILD), "account", serde_json::Value::Null);
        let callback = handle.response().await;
        if i >= 20 {
            account.push(start.elapsed());
        }
        anyhow::ensure!(
            callback.kind == 4,
            "/account answered with {}",
            callback.kind
        );
    }

    // Bulk-flag preview of everyone: each records the exact 10,000-member set.
    let admin = FakeUser::new(900, "owner").with_roles(&[ADMIN_ROLE]);
    let options = json!([{"type": 2, "name": "users", "options": [
        {"type": 1, "name": "flag", "options": [{"type": 5, "name": "everyone", "value": true}]}
    ]}]);
    let (mut deferred, mut shown) = (Vec::new(), Vec::new());
    for i in 0..105 {
        let start = Instant::now();
        let handle = discord.slash(&admin, Some(GUILD), "admin", options.clone());
        let callback = handle.response().await;
        let first = start.elapsed();
        let reply = handle.next_message().await;
        let whole = start.elapsed();
        anyhow::ensure!(callback.kind == 5, "the preview defers");
        let title = reply.body["embeds"][0]["title"]
            .as_str()
            .unwrap_or_default();
        anyhow::ensure!(
            title == format!("Flag {n} subscribers?"),
            "preview said {title:?}"
        );
        if i >= 5 {
            deferred.push(first);
            shown.push(whole);
        }
    }
    shutdown.cancel();
    let _ = bot.await;

    println!("{label}: {n} subscribers");
    report("  /account: interaction → callback", &mut account);
    report(
        "  /admin users flag: interaction → callback (defer)",
        &mut deferred,
    );
    report(
        "  /admin users flag: interaction → preview followup",
        &mut shown,
    );
    Ok(())
}

fn report(what: &str, samples: &mut [Duration]) {
    samples.sort();
    // Nearest-rank percentile, in whole percent.
    let at = |percent: usize| {
        let rank = (samples.len() * percent).div_ceil(100).max(1);
        samples[rank - 1].as_secs_f64() * 1000.0
    };
    println!(
        "{what}: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({} samples)",
        at(50),
        at(99),
        at(100),
        samples.len()
    );
}
