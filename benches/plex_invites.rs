//! Invite throughput against the fake plex.tv under the per-owner-account rate limit: 10,000
//! invite jobs over two owner accounts, each limited to R requests/s. Reports the achieved rate
//! of invite requests per account ÷ R (goal ≥ 0.95), then again with 20% injected 429/500
//! (goal ≥ 0.80). Rates are given over the steady state (until 95% of the invites exist) and over
//! the whole run: with faults, the last few invites wait out exponential backoff after repeated
//! failures, a tail that measures the retry policy rather than use of the rate limit.
//!
//! `cargo bench --bench plex_invites`; `USHER_BENCH_INVITES` (default 10000) and
//! `USHER_BENCH_RATE` (R, default 50) change the size.
// Benchmarks set up state through the store directly; the wall guards commands/ only.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use secrecy::SecretString;
use tokio_util::sync::CancellationToken;
use usher::App;
use usher::clock::SystemClock;
use usher::config::Settings;
use usher::domain::{Actor, BillingPeriod, Currency, DiscordId, Money, PlexEmail, ShareState};
use usher::fakes::plex::{FakePlex, Faults};
use usher::jobs::AppDispatch;
use usher::services::plex_admin::{self, PlanSpec};
use usher::store::{self, servers, shares, subscribers};

const INVITE_ROUTE: &str = "POST /api/v2/shared_servers";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let invites: u64 = env("USHER_BENCH_INVITES", 10_000);
    let rate = u32::try_from(env("USHER_BENCH_RATE", 50))?;
    for (label, faults) in [("clean", 0.0), ("20% faults", 0.10)] {
        let run = run(invites, rate, faults).await?;
        #[allow(clippy::cast_precision_loss)]
        let ratio = |n: usize, secs: f64| n as f64 / secs / 2.0 / f64::from(rate);
        let (steady, all) = (run.steady.as_secs_f64(), run.elapsed.as_secs_f64());
        println!(
            "{label}: steady state ({} invites in {steady:.1} s): requests ratio {:.3}, completed \
             ratio {:.3}; whole run ({invites} in {all:.1} s): requests ratio {:.3}, completed ratio {:.3}",
            run.steady_completed,
            ratio(run.steady_requests, steady),
            ratio(run.steady_completed, steady),
            ratio(run.requests, all),
            ratio(run.completed, all),
        );
    }
    Ok(())
}

struct Run {
    steady: Duration,
    steady_requests: usize,
    steady_completed: usize,
    elapsed: Duration,
    requests: usize,
    completed: usize,
}

async fn run(invites: u64, rate: u32, fault_each: f64) -> anyhow::Result<Run> {
    let dir = tempfile::tempdir()?;
    let plex = FakePlex::start().await;
    let mut settings = Settings {
        data_dir: dir.path().to_path_buf(),
        ..Settings::default()
    };
    settings.plex.base_url = plex.base_url();
    settings.plex.requests_per_second = f64::from(rate);
    settings.jobs.workers = 8;
    settings.jobs.backoff_base_secs = 1;
    settings.jobs.poll_interval_ms = 50;
    let app = App::build(settings, Arc::new(SystemClock)).await?;
    let admin = Actor::Admin(DiscordId::new(1)?);

    let group = plex_admin::create_group(&app, &admin, "Standard", false).await?;
    let plan = plex_admin::create_plan(
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
    let mut targets = Vec::new();
    for n in 0..2 {
        let token = plex.add_owner(&format!("owner{n}@example.com"));
        let fake = plex.add_server(&token, &format!("Server {n}"), &[("Movies", "movie")]);
        plex.set_share_limit(&fake.machine_identifier, usize::try_from(invites)?);
        plex.set_seats_per_account(usize::try_from(invites)? + 1);
        let owner = plex_admin::add_owner_account(&app, &admin, &SecretString::from(token))
            .await?
            .id;
        let server = plex_admin::add_server(&app, &admin, owner, &fake.name)
            .await?
            .id;
        let mut tx = app.db.begin().await?;
        let library = servers::find_libraries(&mut tx, server).await?[0].id;
        drop(tx);
        plex_admin::assign_library(&app, &admin, library, Some(group)).await?;
        targets.push((owner, server));
    }

    let now = app.clock.now();
    let mut tx = app.db.begin().await?;
    for i in 0..invites {
        let email = format!("viewer{i}@example.com");
        plex.add_user_account(&email);
        let (owner, server) = targets[usize::try_from(i % 2)?];
        let sub = subscribers::insert_subscriber(&mut tx, DiscordId::new(1000 + i)?, "viewer", now)
            .await?;
        subscribers::update_subscriber_plan(&mut tx, sub, Some(plan), now).await?;
        let identity = subscribers::insert_identity(
            &mut tx,
            sub,
            &usher::store::subscribers::AccountKeys::email(&PlexEmail::parse(&email)?),
            now,
        )
        .await?;
        let share =
            shares::insert_share(&mut tx, sub, server, identity, ShareState::Pending, now).await?;
        app.queue
            .enqueue(&mut tx, &usher::jobs::InviteShare::new(share, owner, "1"))
            .await?;
    }
    tx.commit().await?;
    plex.set_faults(Faults {
        rate_limited: fault_each,
        server_error: fault_each,
        retry_after_secs: Some(1),
        seed: 3,
        ..Faults::default()
    });

    let shutdown = CancellationToken::new();
    let start = Instant::now();
    let workers = tokio::spawn({
        let (app, shutdown) = (app.clone(), shutdown.clone());
        async move {
            app.queue
                .run_workers(Arc::new(AppDispatch::new(app.clone())), shutdown)
                .await;
        }
    });
    let expected = usize::try_from(invites)?;
    let mut steady = None;
    loop {
        let made = plex.all_shares().len();
        if steady.is_none() && made * 100 >= expected * 95 {
            steady = Some((start.elapsed(), plex.calls(INVITE_ROUTE), made));
        }
        if made >= expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (steady, steady_requests, steady_completed) = steady.expect("set before the loop ends");
    let elapsed = start.elapsed();
    shutdown.cancel();
    workers.await?;
    let done = store::jobs::count_by_state(&app.db).await?;
    anyhow::ensure!(
        plex.all_shares().len() == expected,
        "every invite exactly once: {done:?}"
    );
    Ok(Run {
        steady,
        steady_requests,
        steady_completed,
        elapsed,
        requests: plex.calls(INVITE_ROUTE),
        completed: expected,
    })
}

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
