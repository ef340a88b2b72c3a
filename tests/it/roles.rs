//! Two `usher run` processes on one PostgreSQL database, one with every role (the bot included),
//! one with web, jobs and scheduler: 1,000 signed webhooks split over both web doors pay 500
//! subscribers twice each and cause 500 invites; every payment, every invite and every job
//! happens once, and only one bot connects.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use usher::clock::Clock as _;
use usher::domain::{BillingPeriod, Currency, DiscordId, Money, PlexEmail};
use usher::fakes::discord::{FakeDiscord, FakeUser};
use usher::services::plex_admin::{self, PlanSpec};
use usher::store::{Db, subscribers};

use crate::helpers::bin::{Usher, free_port};
use crate::helpers::world::{admin, owner_with_servers};
use crate::helpers::{Backend, TestApp, load};

const SUBSCRIBERS: u64 = 500;
const SECRET: &str = "whsec_two_processes";

/// 500 subscribers on a plan with the one server's libraries, each with a Plex account plex.tv
/// knows and a linked Stripe subscription; returns the subscription ids, subscriber order.
async fn seed(app: &TestApp) -> Vec<String> {
    let group = plex_admin::create_group(&app.app, &admin(), "Standard", false)
        .await
        .unwrap();
    let plan = plex_admin::create_plan(
        &app.app,
        &admin(),
        &PlanSpec {
            name: "Standard".into(),
            price: Money::parse("8", Currency::parse("USD").unwrap()).unwrap(),
            period: BillingPeriod::Month,
            max_streams: 2,
            trial: false,
            groups: vec![group.into()],
        },
    )
    .await
    .unwrap();
    owner_with_servers(app, "owner@example.com", &["Main"], group).await;
    // Plex refuses shares past about 99 people on one server: room for all of them here.
    usher::on_db!(&app.app.db, |pool| sqlx::query(
        "UPDATE server SET max_users = 1000"
    )
    .execute(pool)
    .await
    .map(drop)
    .unwrap());
    let machine: String = usher::on_db!(&app.app.db, |pool| sqlx::query_scalar(
        "SELECT machine_id FROM server"
    )
    .fetch_one(pool)
    .await
    .unwrap());
    app.plex.set_share_limit(&machine, 1000);
    app.plex.set_seats_per_account(1000);
    let now = app.clock.now();
    let mut tx = app.app.db.begin().await.unwrap();
    for i in 0..SUBSCRIBERS {
        let email = format!("viewer{i}@example.com");
        app.plex.add_user_account(&email);
        let sub = subscribers::insert_subscriber(
            &mut tx,
            DiscordId::new(5000 + i).unwrap(),
            &format!("viewer{i}"),
            now,
        )
        .await
        .unwrap();
        subscribers::update_subscriber_plan(&mut tx, sub, Some(plan), now)
            .await
            .unwrap();
        subscribers::insert_identity(
            &mut tx,
            sub,
            &usher::store::subscribers::AccountKeys::email(&PlexEmail::parse(&email).unwrap()),
            now,
        )
        .await
        .unwrap();
    }
    usher::on_tx!(&mut tx, |c| sqlx::query(
        "INSERT INTO provider_subscription (provider, provider_subscription_id, subscriber_id, \
         plan_id, customer_id, status, renewing, updated_at) \
         SELECT 'stripe', 'sub_two_' || id, id, plan_id, 'cus_two_' || id, 'active', TRUE, $1 \
         FROM subscriber"
    )
    .bind(now)
    .execute(c)
    .await
    .map(drop)
    .unwrap());
    let ids: Vec<String> = usher::on_tx!(&mut tx, |c| sqlx::query_scalar(
        "SELECT provider_subscription_id FROM provider_subscription ORDER BY subscriber_id"
    )
    .fetch_all(c)
    .await
    .unwrap());
    tx.commit().await.unwrap();
    ids
}

async fn scalar(db: &Db, sql: &str) -> i64 {
    usher::on_db!(db, |pool| sqlx::query_scalar::<_, i64>(sql)
        .fetch_one(pool)
        .await
        .unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_processes_on_one_postgresql_do_every_effect_once() {
    let discord = FakeDiscord::start().await;
    let app = TestApp::spawn(Backend::Postgres).await;
    let subscriptions = seed(&app).await;
    for i in 0..SUBSCRIBERS {
        discord.add_user(&FakeUser::new(5000 + i, &format!("viewer{i}")));
    }
    let key = std::fs::read_to_string(app.app.settings.data_dir.join("secret.key")).unwrap();
    let database_url = match &app.app.db {
        Db::Postgres(pool) => {
            let options = pool.connect_options();
            format!(
                "postgres://postgres@127.0.0.1:{}/{}",
                options.get_port(),
                options.get_database().unwrap()
            )
        }
        Db::Sqlite(_) => unreachable!("a PostgreSQL test app"),
    };

    let dirs = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let ports = (free_port(), free_port());
    let process = |dir: &std::path::Path, port: u16| {
        Usher::new(dir)
            .env("USHER_DATABASE__URL", database_url.clone())
            .env("USHER_SECRET_KEY", key.trim())
            .env("USHER_WEB__ADDR", format!("127.0.0.1:{port}"))
            .env("USHER_PLEX__BASE_URL", app.plex.base_url().as_str())
            .env("USHER_PLEX__REQUESTS_PER_SECOND", "1000")
            // One owner account seats all of them here (plex.tv's own ceiling is about 100).
            .env("USHER_PLEX__SEATS_PER_ACCOUNT", "1000")
            .env("USHER_JOBS__POLL_INTERVAL_MS", "50")
            .env("USHER_DISCORD__TOKEN", discord.token())
            .env("USHER_DISCORD__API_BASE_URL", discord.api_base())
            .env("USHER_PAYMENTS__STRIPE__SECRET_KEY", "sk_test_unused")
            .env("USHER_PAYMENTS__STRIPE__WEBHOOK_SECRET", SECRET)
            .env(
                "USHER_PAYMENTS__STRIPE__API_BASE_URL",
                "http://127.0.0.1:9/",
            )
    };
    let with_bot = process(dirs.0.path(), ports.0).spawn(&[]);
    let without_bot = process(dirs.1.path(), ports.1).spawn(&["--roles", "web,jobs,scheduler"]);
    with_bot.wait_healthy(ports.0).await;
    without_bot.wait_healthy(ports.1).await;
    with_bot
        .wait_for_log("registered commands globally", Duration::from_secs(20))
        .await;
    without_bot
        .wait_for_log("Discord bot is off in this process", Duration::from_secs(5))
        .await;

    // Two renewals per subscriber, alternating doors, over eight connections.
    let deliveries: Arc<Vec<(Vec<u8>, String, u16)>> = Arc::new(
        (0..2 * subscriptions.len())
            .map(|i| {
                let (body, signature) =
                    load::invoice_paid(i, &subscriptions[i % subscriptions.len()], SECRET);
                (body, signature, if i % 2 == 0 { ports.0 } else { ports.1 })
            })
            .collect(),
    );
    let next = Arc::new(AtomicUsize::new(0));
    let senders: Vec<_> = (0..8)
        .map(|_| {
            let (deliveries, next) = (deliveries.clone(), next.clone());
            tokio::spawn(async move {
                let client = reqwest::Client::new();
                while let Some((body, signature, port)) =
                    deliveries.get(next.fetch_add(1, Ordering::SeqCst))
                {
                    let response = client
                        .post(format!("http://127.0.0.1:{port}/webhooks/stripe"))
                        .header("stripe-signature", signature)
                        .header("content-type", "application/json")
                        .body(body.clone())
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(response.status(), 200);
                    assert_eq!(response.text().await.unwrap(), "ok\n", "never a replay");
                }
            })
        })
        .collect();
    for sender in senders {
        sender.await.unwrap();
    }

    // Wait for both processes' workers to finish the jobs the payments caused.
    let db = &app.app.db;
    let started = Instant::now();
    loop {
        let invites = scalar(db, "SELECT COUNT(*) FROM job WHERE kind = 'plex.invite'").await;
        let open = scalar(
            db,
            "SELECT COUNT(*) FROM job WHERE state IN ('queued', 'running')",
        )
        .await;
        if invites == i64::try_from(SUBSCRIBERS).unwrap() && open == 0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "{invites} invites, {open} jobs open after 2 minutes"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (status, log_a) = with_bot.stop().await;
    assert!(status.success(), "{log_a}");
    let (status, log_b) = without_bot.stop().await;
    assert!(status.success(), "{log_b}");

    let subscribers = i64::try_from(SUBSCRIBERS).unwrap();
    assert_eq!(
        scalar(db, "SELECT COUNT(*) FROM webhook_event").await,
        2 * subscribers
    );
    assert_eq!(
        scalar(db, "SELECT COUNT(*) FROM payment WHERE status = 'applied'").await,
        2 * subscribers
    );
    assert_eq!(
        scalar(
            db,
            "SELECT COUNT(*) FROM (SELECT subscriber_id FROM payment GROUP BY subscriber_id \
             HAVING COUNT(*) = 2) AS twice"
        )
        .await,
        subscribers,
        "two payments for every subscriber"
    );
    assert_eq!(
        scalar(
            db,
            "SELECT COUNT(*) FROM job WHERE state <> 'done' OR attempts <> 1"
        )
        .await,
        0,
        "every job ran once, and succeeded"
    );
    assert_eq!(
        app.plex.calls("POST /api/v2/shared_servers"),
        usize::try_from(SUBSCRIBERS).unwrap(),
        "one invite call per subscriber"
    );
    assert_eq!(
        app.plex.all_shares().len(),
        usize::try_from(SUBSCRIBERS).unwrap()
    );
    assert_eq!(discord.identifies(), 1, "one bot for the installation");
    assert!(
        log_a.contains("roles=\"web,jobs,bot,scheduler\""),
        "{log_a}"
    );
    assert!(log_b.contains("roles=\"web,jobs,scheduler\""), "{log_b}");
}
