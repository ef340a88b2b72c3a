//! Payment webhooks under load: a load generator on loopback POSTs signed Stripe `invoice.paid`
//! deliveries (each a distinct event and invoice of a seeded subscriber's linked subscription, so
//! each one really applies a payment) to the real web door, in-process on 127.0.0.1:0, over N
//! concurrent connections, on SQLite and on PostgreSQL. Next to it, in the same run, two limits:
//!
//! - SQLite's raw commit rate: single-row INSERT + COMMIT transactions through a pool opened
//!   exactly as the app opens its own (WAL, synchronous=NORMAL, `BEGIN IMMEDIATE`), at the same
//!   concurrency, measured right before and right after the SQLite webhooks (their mean);
//! - the honest limit of the work: the same statements an `invoice.paid` delivery runs, executed
//!   bare, one delivery after another on ONE connection with the same durability settings: the
//!   service call the web door makes (`payments::process`, the same code, hence the same SQL),
//!   with the event already read, and no HTTP, signature check, JSON parsing or pool contention.
//!   Measured on a fresh database seeded alike: on SQLite right before and right after its
//!   webhooks (their mean, as for raw commits), on PostgreSQL right after. The statements per
//!   delivery are counted (sqlx's statement events) for the door and the bare path, and must be
//!   equal.
//!
//! Prints webhooks/s and p50/p90/p99 latency, then webhooks/s ÷ raw commits/s and webhooks/s ÷
//! bare statements/s (goal ≥ 0.5).
//!
//! Rule kept: a run counts only work done. Every answer must be `200 ok` (not a replay), and at
//! the end the payments applied and the events recorded must equal the deliveries sent, on the
//! door's database and on the bare one, or the benchmark fails.
//!
//! `cargo bench --bench webhooks` (PostgreSQL from `USHER_TEST_DATABASE_URL`, default the local
//! server). `USHER_BENCH_EVENTS` (default 20000), `USHER_BENCH_CONNECTIONS` (default 32) and
//! `USHER_BENCH_SUBSCRIBERS` (default 2000) change the run.

// Benchmarks seed and check the store directly; the wall guards commands/ only.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

mod common;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use hdrhistogram::Histogram;
use serde_json::json;
use tokio_util::sync::CancellationToken;
use usher::App;
use usher::clock::SystemClock;
use usher::config::{Settings, StripeSettings};
use usher::domain::{Currency, Money, Provider};
use usher::integrations::payments::stripe::sign_header;
use usher::services::payments::{self, Paid, PaymentEvent, Processed};
use usher::store::Db;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// What one load run measured.
struct Measured {
    per_second: f64,
    latency: Histogram<u64>,
    /// SQL statements one delivery runs.
    statements: usize,
}

/// What the bare run measured.
struct Bare {
    per_second: f64,
    /// SQL statements one delivery runs.
    statements: usize,
}

/// Deliveries whose statements are counted, one at a time.
const COUNTED: usize = 20;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let events = env_or("USHER_BENCH_EVENTS", 20_000);
    let connections = env_or("USHER_BENCH_CONNECTIONS", 32);
    let subscribers = env_or("USHER_BENCH_SUBSCRIBERS", 2_000);
    anyhow::ensure!(
        events > 0 && connections > 0 && subscribers > 0,
        "events, connections and subscribers must be positive"
    );
    statements::install();
    let dir = tempfile::tempdir()?;

    let sqlite = |name: &str| Settings {
        data_dir: dir.path().join(name),
        ..Settings::default()
    };
    let pool_size = sqlite("sqlite").database.max_connections;
    // Raw commits right before and right after the SQLite webhooks, so a neighbour's load that
    // comes or goes during the run weighs on both sides of the ratio alike.
    // The same for the bare statements.
    let raw_before =
        raw_sqlite_commits(&dir.path().join("raw1"), pool_size, events, connections).await?;
    let bare_before = bare(sqlite("bare1"), events, subscribers).await?;
    let on_sqlite = measure(sqlite("sqlite"), events, connections, subscribers).await?;
    let bare_after = bare(sqlite("bare2"), events, subscribers).await?;
    let raw_after =
        raw_sqlite_commits(&dir.path().join("raw2"), pool_size, events, connections).await?;
    let raw = f64::midpoint(raw_before, raw_after);
    let bare_sqlite = Bare {
        per_second: f64::midpoint(bare_before.per_second, bare_after.per_second),
        statements: bare_before.statements.min(bare_after.statements),
    };

    let postgres = async |dir: &Path| -> anyhow::Result<(Settings, String)> {
        let (url, name) = common::fresh_postgres().await?;
        let mut settings = Settings {
            data_dir: dir.to_path_buf(),
            ..Settings::default()
        };
        settings.database.url = Some(url.into());
        Ok((settings, name))
    };
    let (settings, name) = postgres(&dir.path().join("pg")).await?;
    let on_postgres = measure(settings, events, connections, subscribers).await;
    common::drop_postgres(&name).await?;
    let on_postgres = on_postgres?;
    let (settings, name) = postgres(&dir.path().join("pg-bare")).await?;
    let bare_postgres = bare(settings, events, subscribers).await;
    common::drop_postgres(&name).await?;
    let bare_postgres = bare_postgres?;

    for (backend, door, bare) in [
        ("sqlite", &on_sqlite, &bare_sqlite),
        ("postgres", &on_postgres, &bare_postgres),
    ] {
        anyhow::ensure!(
            door.statements == bare.statements,
            "{backend}: a delivery through the door runs {} statements, the bare path {}",
            door.statements,
            bare.statements
        );
    }
    println!(
        "webhooks: {events} Stripe invoice.paid deliveries, {connections} connections, \
         {subscribers} subscribers, pool of {pool_size}; statements per delivery: {} on SQLite, \
         {} on PostgreSQL (row and advisory locks)",
        on_sqlite.statements, on_postgres.statements
    );
    println!(
        "  {:<34} {:>10} {:>9} {:>9} {:>9}",
        "", "per second", "p50 ms", "p90 ms", "p99 ms"
    );
    for (label, m) in [
        ("sqlite webhooks", &on_sqlite),
        ("postgres webhooks", &on_postgres),
    ] {
        println!(
            "  {label:<34} {:>10.0} {:>9.2} {:>9.2} {:>9.2}",
            m.per_second,
            ms(&m.latency, 50.0),
            ms(&m.latency, 90.0),
            ms(&m.latency, 99.0)
        );
    }
    println!(
        "  {:<34} {raw:>10.0}   (before {raw_before:.0}, after {raw_after:.0})",
        "sqlite raw one-row commits"
    );
    println!(
        "  {:<34} {:>10.0}   (before {:.0}, after {:.0})",
        "sqlite same statements, bare",
        bare_sqlite.per_second,
        bare_before.per_second,
        bare_after.per_second
    );
    println!(
        "  {:<34} {:>10.0}",
        "postgres same statements, bare", bare_postgres.per_second
    );
    let met = |ratio: f64| if ratio >= 0.5 { "met" } else { "NOT met" };
    let to_raw = on_sqlite.per_second / raw;
    println!("  sqlite webhooks/s ÷ raw one-row commits/s      = {to_raw:.2}");
    let honest = on_sqlite.per_second / bare_sqlite.per_second;
    println!(
        "  sqlite webhooks/s ÷ same statements bare/s     = {honest:.2} (goal ≥ 0.5, {})",
        met(honest)
    );
    let honest_pg = on_postgres.per_second / bare_postgres.per_second;
    println!(
        "  postgres webhooks/s ÷ same statements bare/s   = {honest_pg:.2} (goal ≥ 0.5, {})",
        met(honest_pg)
    );
    Ok(())
}

/// Counts the SQL statements sqlx runs while counting is on (sqlx reports each one as a tracing
/// event with the target `sqlx::query`). Off, the check costs one atomic load per statement.
mod statements {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    use tracing::subscriber::Interest;
    use tracing::{Event, Metadata};
    use tracing_subscriber::layer::{Context, Layer, SubscriberExt as _};

    static ON: AtomicBool = AtomicBool::new(false);
    static SEEN: AtomicUsize = AtomicUsize::new(0);

    struct Count;

    impl<S: tracing::Subscriber> Layer<S> for Count {
        fn register_callsite(&self, metadata: &'static Metadata<'static>) -> Interest {
            if metadata.target() == "sqlx::query" {
                Interest::sometimes()
            } else {
                Interest::never()
            }
        }
        fn enabled(&self, metadata: &Metadata<'_>, _: Context<'_, S>) -> bool {
            metadata.target() == "sqlx::query" && ON.load(Ordering::Relaxed)
        }
        fn on_event(&self, _: &Event<'_>, _: Context<'_, S>) {
            SEEN.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Installs the counter as the process's subscriber.
    pub fn install() {
        let subscriber = tracing_subscriber::registry().with(Count);
        tracing::subscriber::set_global_default(subscriber).expect("one subscriber");
    }

    /// Statements run by `work`.
    pub async fn during<T>(work: impl Future<Output = T>) -> (T, usize) {
        SEEN.store(0, Ordering::Relaxed);
        ON.store(true, Ordering::Relaxed);
        let out = work.await;
        ON.store(false, Ordering::Relaxed);
        (out, SEEN.load(Ordering::Relaxed))
    }
}

fn ms(histogram: &Histogram<u64>, percentile: f64) -> f64 {
    #[allow(clippy::cast_precision_loss)] // microseconds far below 2^52
    let micros = histogram.value_at_percentile(percentile) as f64;
    micros / 1000.0
}

fn histogram() -> Histogram<u64> {
    // 1 µs to 60 s at 3 significant digits.
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

#[allow(clippy::cast_precision_loss)] // counts far below 2^52
fn rate(n: usize, elapsed: Duration) -> f64 {
    n as f64 / elapsed.as_secs_f64()
}

/// Single-row INSERT + COMMIT transactions, `n` in all, from `concurrency` tasks sharing a pool of
/// `pool_size` opened as the app opens its SQLite file, each transaction begun as the app begins
/// its writes.
async fn raw_sqlite_commits(
    dir: &Path,
    pool_size: u32,
    n: usize,
    concurrency: usize,
) -> anyhow::Result<f64> {
    std::fs::create_dir_all(dir)?;
    let url = format!("sqlite://{}", dir.join("usher.db").display());
    let db = Db::connect_url(&url, pool_size).await?;
    let mut tx = db.begin().await?;
    usher::on_tx!(&mut tx, |c| sqlx::query(
        "CREATE TABLE bench (id INTEGER PRIMARY KEY, payload TEXT NOT NULL)"
    )
    .execute(c)
    .await
    .map(|_| ()))?;
    tx.commit().await?;

    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let (db, next) = (db.clone(), next.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        return Ok::<_, sqlx::Error>(());
                    }
                    let mut tx = db.begin().await?;
                    usher::on_tx!(&mut tx, |c| sqlx::query(
                        "INSERT INTO bench (payload) VALUES ($1)"
                    )
                    .bind(format!("row {i}"))
                    .execute(c)
                    .await
                    .map(|_| ()))?;
                    tx.commit().await?;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await??;
    }
    let per_second = rate(n, start.elapsed());
    let mut tx = db.read().await?;
    let rows: i64 = usher::on_tx!(&mut tx, |c| sqlx::query_scalar(
        "SELECT COUNT(*) FROM bench"
    )
    .fetch_one(c)
    .await)?;
    drop(tx);
    db.close().await;
    anyhow::ensure!(
        usize::try_from(rows)? == n,
        "raw commits: {rows} rows for {n} commits"
    );
    Ok(per_second)
}

/// One backend: seed, serve, send every delivery, check every payment was applied.
async fn measure(
    mut settings: Settings,
    events: usize,
    connections: usize,
    subscribers: usize,
) -> anyhow::Result<Measured> {
    let secret = format!("whsec_{}", uuid::Uuid::new_v4().simple());
    settings.payments.stripe = Some(StripeSettings {
        secret_key: "sk_test_bench_unused".to_owned().into(),
        webhook_secret: secret.clone().into(),
        // Never called: webhooks need only the signing secret.
        api_base_url: url::Url::parse("http://127.0.0.1:9/")?,
    });
    let app = App::build(settings, Arc::new(SystemClock)).await?;
    let subscriptions = seed(&app, subscribers).await?;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/webhooks/stripe", listener.local_addr()?);
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(usher::web::serve(app.clone(), listener, shutdown.clone()));

    // Signed now, sent within Stripe's five-minute tolerance.
    let now = chrono::Utc::now();
    let signed = |i: usize| {
        let subscription = &subscriptions[i % subscriptions.len()];
        let body = invoice_paid(i, subscription, now);
        let header = sign_header(&body, &secret, now.timestamp());
        (Bytes::from(body), header)
    };
    let deliveries: Arc<Vec<(Bytes, String)>> = Arc::new((0..events).map(signed).collect());

    // A few deliveries first, one at a time, counting the statements each runs (the fewest: a
    // connection the pool opens on the way runs its own setup statements once).
    let one_by_one = reqwest::Client::new();
    let mut counted = usize::MAX;
    for i in events..events + COUNTED {
        let (body, header) = signed(i);
        let (status, statements) = statements::during(async {
            one_by_one
                .post(&url)
                .header("stripe-signature", header)
                .body(body)
                .send()
                .await
                .map(|r| r.status())
        })
        .await;
        anyhow::ensure!(status? == 200, "counted delivery {i} was not applied");
        counted = counted.min(statements);
    }

    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let workers: Vec<_> = (0..connections)
        .map(|_| {
            let (deliveries, next, url) = (deliveries.clone(), next.clone(), url.clone());
            tokio::spawn(async move {
                // One client per connection, one connection per client, kept alive.
                let client = reqwest::Client::builder()
                    .pool_max_idle_per_host(1)
                    .build()?;
                let mut latency = histogram();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some((body, header)) = deliveries.get(i) else {
                        return Ok::<_, anyhow::Error>(latency);
                    };
                    let sent = Instant::now();
                    let response = client
                        .post(&url)
                        .header("stripe-signature", header)
                        .header("content-type", "application/json")
                        .body(body.clone())
                        .send()
                        .await?;
                    let status = response.status();
                    let text = response.text().await?;
                    let micros = u64::try_from(sent.elapsed().as_micros()).unwrap_or(u64::MAX);
                    latency.saturating_record(micros);
                    anyhow::ensure!(
                        status == 200 && text == "ok\n",
                        "delivery {i} answered {status}: {text:?}"
                    );
                }
            })
        })
        .collect();
    let mut latency = histogram();
    for worker in workers {
        latency.add(worker.await??)?;
    }
    let per_second = rate(events, start.elapsed());
    shutdown.cancel();
    let _ = server.await;

    // The work was done: one applied payment and one recorded event per delivery.
    let mut tx = app.db.read().await?;
    let (applied, recorded): (i64, i64) = usher::on_tx!(&mut tx, |c| {
        sqlx::query_as(
        "SELECT (SELECT COUNT(*) FROM payment WHERE provider = 'stripe' AND status = 'applied'), \
                (SELECT COUNT(*) FROM webhook_event WHERE provider = 'stripe')"
    )
    .fetch_one(c)
    .await
    })?;
    drop(tx);
    app.db.close().await;
    let sent = events + COUNTED;
    anyhow::ensure!(
        usize::try_from(applied)? == sent && usize::try_from(recorded)? == sent,
        "{sent} deliveries sent but {applied} payments applied and {recorded} events recorded"
    );
    Ok(Measured {
        per_second,
        latency,
        statements: counted,
    })
}

/// The same work bare: on a database seeded alike, with ONE connection, each delivery is the
/// service call the web door makes for it (`payments::process` with the event already read),
/// one after another. No HTTP, no signature, no JSON, no waiting for a pooled connection.
async fn bare(mut settings: Settings, events: usize, subscribers: usize) -> anyhow::Result<Bare> {
    settings.database.max_connections = 1;
    let app = App::build(settings, Arc::new(SystemClock)).await?;
    let subscriptions = seed(&app, subscribers).await?;
    let now = chrono::Utc::now();
    let usd = Currency::parse("USD")?;
    let delivery = |i: usize| {
        let subscription = &subscriptions[i % subscriptions.len()];
        let mut paid = Paid::new(format!("in_bench_{i:08}"), Money::new(800, usd), now);
        paid.subscription = Some(subscription.clone());
        paid.customer = Some(subscription.replace("sub_", "cus_"));
        paid.payer_email = Some(format!(
            "{}@example.com",
            subscription.replace("sub_", "cus_")
        ));
        (format!("evt_bench_{i:08}"), vec![PaymentEvent::Paid(paid)])
    };
    let deliver = async |(event_id, events): (String, Vec<PaymentEvent>)| {
        let done = payments::process(&app, Provider::Stripe, &event_id, "invoice.paid", events)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        anyhow::ensure!(done == Processed::Applied, "delivery {event_id}: {done:?}");
        Ok(())
    };
    let mut statements = usize::MAX;
    for i in events..events + COUNTED {
        let (done, counted) = statements::during(deliver(delivery(i))).await;
        done?;
        statements = statements.min(counted);
    }
    let prepared: Vec<_> = (0..events).map(delivery).collect();
    let start = Instant::now();
    for one in prepared {
        deliver(one).await?;
    }
    let per_second = rate(events, start.elapsed());
    let mut tx = app.db.read().await?;
    let applied: i64 = usher::on_tx!(&mut tx, |c| sqlx::query_scalar(
        "SELECT COUNT(*) FROM payment WHERE provider = 'stripe' AND status = 'applied'"
    )
    .fetch_one(c)
    .await)?;
    drop(tx);
    app.db.close().await;
    anyhow::ensure!(
        usize::try_from(applied)? == events + COUNTED,
        "bare: {applied} payments applied of {}",
        events + COUNTED
    );
    Ok(Bare {
        per_second,
        statements,
    })
}

/// A monthly plan, `n` subscribers on it, and a linked Stripe subscription for each; returns the
/// subscription ids.
async fn seed(app: &App, n: usize) -> anyhow::Result<Vec<String>> {
    let now = chrono::Utc::now();
    let mut tx = app.db.begin().await?;
    usher::on_tx!(&mut tx, |c| sqlx::query(
        "INSERT INTO plan (name, price_minor, currency, period, max_streams, stripe_price_id, \
         created_at) VALUES ('Bench', 800, 'USD', 'month', 2, 'price_bench', $1)"
    )
    .bind(now)
    .execute(c)
    .await
    .map(|_| ()))?;
    common::seed_subscribers(&mut tx, i64::try_from(n)?).await?;
    usher::on_tx!(&mut tx, |c| sqlx::query(
        "UPDATE subscriber SET plan_id = (SELECT id FROM plan WHERE name = 'Bench')"
    )
    .execute(c)
    .await
    .map(|_| ()))?;
    usher::on_tx!(&mut tx, |c| sqlx::query(
        "INSERT INTO provider_subscription (provider, provider_subscription_id, subscriber_id, \
         plan_id, customer_id, status, renewing, updated_at) \
         SELECT 'stripe', 'sub_bench_' || id, id, plan_id, 'cus_bench_' || id, 'active', TRUE, $1 \
         FROM subscriber"
    )
    .bind(now)
    .execute(c)
    .await
    .map(|_| ()))?;
    let subscriptions: Vec<String> = usher::on_tx!(&mut tx, |c| sqlx::query_scalar(
        "SELECT provider_subscription_id FROM provider_subscription ORDER BY id"
    )
    .fetch_all(c)
    .await)?;
    tx.commit().await?;
    anyhow::ensure!(subscriptions.len() == n, "seeded {n} subscriptions");
    Ok(subscriptions)
}

/// `invoice.paid` in Stripe's current (basil) shape for one period of `subscription`, without
/// Usher's reference, so it is matched by the linked subscription as a renewal is.
fn invoice_paid(i: usize, subscription: &str, now: chrono::DateTime<chrono::Utc>) -> Vec<u8> {
    let customer = subscription.replace("sub_", "cus_");
    let (start, end) = (
        now.timestamp(),
        (now + chrono::Duration::days(30)).timestamp(),
    );
    let invoice_id = format!("in_bench_{i:08}");
    let event = json!({
        "id": format!("evt_bench_{i:08}"),
        "object": "event",
        "api_version": "2025-03-31.basil",
        "created": start,
        "data": {"object": {
            "id": invoice_id,
            "object": "invoice",
            "amount_due": 800,
            "amount_paid": 800,
            "amount_remaining": 0,
            "attempt_count": 1,
            "billing_reason": "subscription_cycle",
            "collection_method": "charge_automatically",
            "created": start,
            "currency": "usd",
            "customer": customer,
            "customer_email": format!("{customer}@example.com"),
            "lines": {"object": "list", "has_more": false,
                "url": format!("/v1/invoices/{invoice_id}/lines"),
                "data": [{
                    "id": format!("il_bench_{i:08}"),
                    "object": "line_item",
                    "amount": 800,
                    "currency": "usd",
                    "description": "1 × Plex access",
                    "metadata": {},
                    "period": {"start": start, "end": end},
                    "quantity": 1,
                }]},
            "livemode": false,
            "metadata": {},
            "parent": {
                "type": "subscription_details",
                "quote_details": null,
                "subscription_details": {"metadata": {}, "subscription": subscription},
            },
            "period_start": start,
            "period_end": start,
            "status": "paid",
            "total": 800,
        }},
        "livemode": false,
        "pending_webhooks": 1,
        "request": {"id": null, "idempotency_key": null},
        "type": "invoice.paid",
    });
    serde_json::to_vec(&event).expect("an event serialises")
}
