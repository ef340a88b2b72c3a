//! Adopting an existing server at scale: 2,000 Plex users over 10 servers (two owner accounts)
//! imported from the fake plex.tv with the rate limit off, on SQLite and PostgreSQL. Times the
//! preview (plex.tv read and every person decided) and the confirm (one transaction: subscribers,
//! identities, shares, manual payments through the payments service, audit), and beside it, in the
//! same run, a bare `INSERT … SELECT` copying the same rows (subscribers, identities, shares,
//! payments) in one transaction: the floor the confirm is compared with.
//!
//! `cargo bench --bench import`; `USHER_BENCH_USERS` changes the size (default 2000).
//!
//! Measured once (2 shared cores, 2026-12-02): SQLite preview 644 ms, confirm→done 2,698 ms, bare
//! 2,071 ms (its copy joins on an unindexed name); PostgreSQL preview 616 ms, confirm→done
//! 10,521 ms, bare 100 ms. The confirm runs each person through the payments service (about
//! twenty statements, each a round trip on PostgreSQL); batching them is the next step if 2,000
//! people in ten seconds is too slow.
// Benchmarks seed the store directly; the wall guards commands/ only.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use secrecy::SecretString;
use usher::App;
use usher::clock::SystemClock;
use usher::config::Settings;
use usher::domain::{Actor, BillingPeriod, Currency, DiscordId, Money};
use usher::fakes::plex::FakePlex;
use usher::services::import::{self, PlexImportOptions};
use usher::services::members::Standing;
use usher::services::plex_admin::{self, PlanSpec};
use usher::store::servers;

const SERVERS: usize = 10;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let n: usize = std::env::var("USHER_BENCH_USERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
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

async fn measure(label: &str, mut settings: Settings, n: usize) -> anyhow::Result<()> {
    let plex = FakePlex::start().await;
    settings.plex.base_url = plex.base_url();
    // The rate limit off: plex.tv calls are not what is measured.
    settings.plex.requests_per_second = 1_000_000.0;
    let app = App::build(settings, Arc::new(SystemClock)).await?;
    let admin = Actor::Admin(DiscordId::new(1)?);
    let group = plex_admin::create_group(&app, &admin, "Standard", false).await?;
    plex_admin::create_plan(
        &app,
        &admin,
        &PlanSpec {
            name: "Standard".into(),
            price: Money::parse("5", Currency::parse("USD")?)?,
            period: BillingPeriod::Month,
            max_streams: 1,
            trial: false,
            groups: vec![group.into()],
        },
    )
    .await?;
    let mut machines = Vec::new();
    for o in 0..2 {
        let token = plex.add_owner(&format!("owner{o}@example.com"));
        let owner = plex_admin::add_owner_account(&app, &admin, &SecretString::from(token.clone()))
            .await?
            .id;
        for s in 0..SERVERS / 2 {
            let name = format!("Server {o}-{s}");
            let fake = plex.add_server(&token, &name, &[("Movies", "movie"), ("TV", "show")]);
            let server = plex_admin::add_server(&app, &admin, owner, &name).await?.id;
            let mut tx = app.db.begin().await?;
            let libraries = servers::find_libraries(&mut tx, server).await?;
            drop(tx);
            for library in libraries {
                plex_admin::assign_library(&app, &admin, library.id, Some(group)).await?;
            }
            machines.push(fake.machine_identifier);
        }
    }
    for i in 0..n {
        let machine = &machines[i % SERVERS];
        plex.seed_share(
            machine,
            &format!("viewer{i}@example.com"),
            None,
            i % 10 != 0,
        );
    }

    let options = PlexImportOptions {
        owner: None,
        server: None,
        default_plan: None,
        standing: Standing::Days(30),
    };
    let start = Instant::now();
    let preview = import::preview_plex_import(&app, &admin, &options).await?;
    let preview_time = start.elapsed();
    anyhow::ensure!(
        preview.new_people == n,
        "preview saw {} of {n}",
        preview.new_people
    );
    let start = Instant::now();
    let done = import::confirm_import(&app, &admin, &preview.token, &|_| {}).await?;
    let confirm_time = start.elapsed();
    anyhow::ensure!(done.added == n, "confirm added {} of {n}", done.added);

    let bare_time = bare_insert_select(&app).await?;
    #[allow(clippy::cast_precision_loss)]
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{label}: {n} users over {SERVERS} servers: preview {:.0} ms, confirm→done {:.0} ms, bare INSERT…SELECT {:.0} ms, confirm ÷ bare {:.1}",
        ms(preview_time),
        ms(confirm_time),
        ms(bare_time),
        confirm_time.as_secs_f64() / bare_time.as_secs_f64()
    );
    app.db.close().await;
    Ok(())
}

/// Times copying the imported rows (subscribers, identities, shares, payments) with one
/// `INSERT … SELECT` each, in one committed transaction.
async fn bare_insert_select(app: &App) -> anyhow::Result<Duration> {
    const STATEMENTS: [&str; 4] = [
        "INSERT INTO subscriber (display_name, contact_email, plan_id, notes, created_at, updated_at) \
         SELECT 'copy-' || display_name, contact_email, plan_id, notes, created_at, updated_at \
         FROM subscriber WHERE discord_id IS NULL",
        "INSERT INTO plex_identity (subscriber_id, email_norm, plex_user_id, plex_username, state, created_at) \
         SELECT c.id, 'copy-' || i.email_norm, NULL, NULL, 'active', i.created_at FROM plex_identity i \
         JOIN subscriber s ON s.id = i.subscriber_id JOIN subscriber c ON c.display_name = 'copy-' || s.display_name \
         WHERE s.discord_id IS NULL",
        "INSERT INTO share (subscriber_id, server_id, plex_identity_id, plex_share_id, state, imported_libraries, \
         created_at, updated_at, invited_at) \
         SELECT c.id, sh.server_id, ci.id, sh.plex_share_id, sh.state, sh.imported_libraries, sh.created_at, \
         sh.updated_at, sh.invited_at FROM share sh JOIN subscriber s ON s.id = sh.subscriber_id \
         JOIN subscriber c ON c.display_name = 'copy-' || s.display_name \
         JOIN plex_identity ci ON ci.subscriber_id = c.id WHERE s.discord_id IS NULL",
        "INSERT INTO payment (subscriber_id, plan_id, provider, provider_txn_id, amount_minor, currency, \
         paid_from, paid_to, status, created_at, reference, provider_time, applied_at, cover_secs) \
         SELECT c.id, p.plan_id, p.provider, 'copy-' || p.provider_txn_id, p.amount_minor, p.currency, \
         p.paid_from, p.paid_to, p.status, p.created_at, p.reference, p.provider_time, p.applied_at, p.cover_secs \
         FROM payment p JOIN subscriber s ON s.id = p.subscriber_id \
         JOIN subscriber c ON c.display_name = 'copy-' || s.display_name WHERE p.reference = 'import'",
    ];
    let start = Instant::now();
    let mut tx = app.db.begin().await?;
    for sql in STATEMENTS {
        usher::on_tx!(&mut tx, |c| sqlx::query(sql).execute(c).await.map(drop))?;
    }
    tx.commit().await?;
    Ok(start.elapsed())
}
