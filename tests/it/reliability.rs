//! Usher under load, in any order, and through crashes (issue 19), on both databases: the account
//! change after "flag everyone" on healthy and banned servers, a queued invite meeting a flag, a
//! reconcile racing hundreds of invites, a 429 storm with 502s after writes, two change requests
//! racing for one subscriber, a retired account's plex.tv username, and a real `usher` process
//! killed with SIGKILL during hundreds of invites. Each ends in the fake plex.tv's state and
//! Usher's rows agreeing: one live share per subscriber, nothing doubled, no job lost or stuck.
//!
//! Provider events in random orders are `payments_order.rs`; signed deliveries Usher cannot store
//! are `payments_rejected.rs`.

use std::time::{Duration, Instant};

use usher::clock::Clock as _;
use usher::domain::{
    Actor, BillingPeriod, Currency, DiscordId, Money, PlanId, PlexEmail, ServerId, SubscriberId,
};
use usher::fakes::plex::Faults;
use usher::services::account_change;
use usher::services::members::{self, NewMember, Standing};
use usher::services::payments::Coverage;
use usher::services::plex_admin::{self, PlanSpec};
use usher::services::plex_sync::{self, Drift};
use usher::services::proofs::ProofError;
use usher::store::Db;
use usher::store::bulk_flags::FlagFilter;

use crate::helpers::bin::{Usher, free_port};
use crate::helpers::world::{
    admin, banned_world, code_for, drain, make_permanent, owner_with_servers,
};
use crate::helpers::{Backend, TestApp};

const INVITE_ROUTE: &str = "POST /api/v2/shared_servers";
const PENDING_ROUTE: &str = "GET /api/v2/shared_servers/invites/owned/pending";

async fn scalar(db: &Db, sql: &str) -> i64 {
    usher::on_db!(db, |pool| sqlx::query_scalar::<_, i64>(sql)
        .fetch_one(pool)
        .await
        .unwrap())
}

/// Every live share Usher holds: (subscriber, plex.tv share id, the identity's email, machine id).
async fn live_shares(db: &Db) -> Vec<(i64, Option<i64>, String, String)> {
    const SQL: &str = "SELECT s.subscriber_id, s.plex_share_id, i.email_norm, v.machine_id \
                       FROM share s JOIN plex_identity i ON i.id = s.plex_identity_id \
                       JOIN server v ON v.id = s.server_id \
                       WHERE s.state <> 'removed' ORDER BY s.subscriber_id, s.id";
    usher::on_db!(db, |pool| sqlx::query_as(SQL)
        .fetch_all(pool)
        .await
        .unwrap())
}

/// Each subscriber has exactly one live share, for `email`, recorded with the id of the one share
/// plex.tv holds for that account on that server; plex.tv holds nothing else.
async fn assert_one_live_share_each(app: &TestApp, people: &[(SubscriberId, String)]) {
    let live = live_shares(&app.app.db).await;
    for (who, email) in people {
        let mine: Vec<_> = live.iter().filter(|s| s.0 == who.get()).collect();
        assert_eq!(mine.len(), 1, "{email}: one live share, not {mine:?}");
        let (_, plex_id, share_email, machine) = mine[0];
        assert_eq!(
            share_email, email,
            "the live share is the current account's"
        );
        let on_plex = app.plex.shares_for_email(email);
        assert_eq!(on_plex.len(), 1, "{email}: one share on plex.tv");
        assert_eq!(
            (*plex_id, &on_plex[0].machine_identifier),
            (Some(i64::try_from(on_plex[0].id).unwrap()), machine),
            "{email}: Usher records the share plex.tv holds"
        );
    }
    assert_eq!(live.len(), people.len(), "no other live share");
    assert_eq!(
        app.plex.all_shares().len(),
        people.len(),
        "plex.tv holds one share per subscriber and nothing else"
    );
}

async fn standard_plan(app: &TestApp) -> (usher::domain::LibraryGroupId, PlanId) {
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
    (group, plan)
}

/// One owner account seats hundreds here, on Usher and on the fake plex.tv (plex.tv's own
/// ceiling is about 100 people per account; these tests are about jobs, not seats).
fn roomy(settings: &mut usher::config::Settings) {
    settings.plex.seats_per_account = 10_000;
}

/// One owner with enough servers for `people` subscribers and some room to spare (a Plex
/// server takes fewer than a hundred users; Usher's default is 95 each), on Usher and plex.tv.
async fn servers_for(app: &TestApp, people: u64) -> (Vec<ServerId>, PlanId) {
    let (group, plan) = standard_plan(app).await;
    let names: Vec<String> = (1..=people.div_ceil(95) + 1)
        .map(|i| format!("Main {i}"))
        .collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    app.plex.set_seats_per_account(10_000);
    owner_with_servers(app, "owner@example.com", &names, group).await;
    let servers = (1..=names.len())
        .map(|i| ServerId::new(i64::try_from(i).unwrap()))
        .collect();
    (servers, plan)
}

/// Adds `n` members by hand as an admin does (`/admin user add`): each with a plex.tv account
/// `{prefix}{i}@example.com`, the plan, and the given standing; each is placed and their invite
/// queued. Returns them with their emails.
async fn add_members(
    app: &TestApp,
    plan: PlanId,
    prefix: &str,
    first_discord_id: u64,
    n: u64,
    standing: Standing,
) -> Vec<(SubscriberId, String)> {
    let mut people = Vec::new();
    for i in 0..n {
        let email = format!("{prefix}{i}@example.com");
        app.plex.add_user_account(&email);
        let added = members::add_member(
            &app.app,
            &admin(),
            &NewMember {
                member: DiscordId::new(first_discord_id + i).unwrap(),
                name: format!("{prefix}{i}"),
                plex_email: PlexEmail::parse(&email).unwrap(),
                contact_email: None,
                plan,
                standing,
                transaction: None,
                amount: None,
                note: None,
            },
        )
        .await
        .unwrap();
        assert!(added.server.is_some(), "{email} placed");
        people.push((added.subscriber, email));
    }
    people
}

async fn wait_until(what: &str, timeout: Duration, mut done: impl AsyncFnMut() -> bool) {
    let started = Instant::now();
    while !done().await {
        assert!(
            started.elapsed() < timeout,
            "{what}: not within {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// 1. "Flag everyone" with subscribers on a banned server and on healthy ones.
async fn after_flag_everyone_every_change_ends_with_one_share_for_the_new_account(
    backend: Backend,
) {
    let app = TestApp::spawn_with(backend, roomy).await;
    // Ten on a banned owner's server; New A and New B are healthy.
    let world = banned_world(&app, 10).await;
    make_permanent(&app, &world).await;
    // Ten more on the healthy servers, added by an admin and invited there.
    let healthy = add_members(
        &app,
        PlanId::new(1),
        "healthy",
        200,
        10,
        Standing::Permanent,
    )
    .await;
    drain(&app).await;
    let mut before = std::collections::BTreeMap::new();
    for (who, email) in &healthy {
        let on_plex = app.plex.shares_for_email(email);
        assert_eq!(on_plex.len(), 1, "{email} invited on a healthy server");
        before.insert(*who, on_plex[0].machine_identifier.clone());
    }

    let preview = account_change::preview_bulk_flag(&app.app, &admin(), FlagFilter::Everyone)
        .await
        .unwrap();
    assert_eq!(preview.count, 20);
    assert_eq!(
        account_change::confirm_bulk_flag(&app.app, &admin(), &preview.token)
            .await
            .unwrap(),
        20
    );
    drain(&app).await;

    let everyone: Vec<(SubscriberId, String)> = world
        .subscribers
        .iter()
        .cloned()
        .chain(healthy.iter().cloned())
        .collect();
    let mut moved = Vec::new();
    for (i, (who, old_email)) in everyone.iter().enumerate() {
        let new_email = format!("changed{i}@example.com");
        app.plex.add_user_account(&new_email);
        let me = Actor::Subscriber(*who);
        account_change::request_change(&app.app, &me, *who, &PlexEmail::parse(&new_email).unwrap())
            .await
            .unwrap_or_else(|err| panic!("{old_email}: the request is refused: {err}"));
        let code = code_for(&app, &new_email);
        let applied = account_change::verify_change(&app.app, &me, *who, &code)
            .await
            .unwrap_or_else(|err| panic!("{old_email}: the right code is refused: {err}"));
        assert!(
            applied.paid_up && applied.server.is_some(),
            "{old_email}: {applied:?}"
        );
        moved.push((*who, new_email));
    }
    drain(&app).await;

    assert_one_live_share_each(&app, &moved).await;
    for (_, old_email) in &everyone {
        assert!(
            app.plex.shares_for_email(old_email).is_empty(),
            "{old_email}: the old account keeps no share"
        );
    }
    for (who, new_email) in &moved {
        if let Some(machine) = before.get(who) {
            assert_eq!(
                &app.plex.shares_for_email(new_email)[0].machine_identifier,
                machine,
                "{new_email}: the share is replaced on the same healthy server"
            );
        }
    }
    assert_eq!(
        app.plex.calls(INVITE_ROUTE),
        40,
        "20 first invites and 20 for the new accounts, none doubled"
    );
    assert_eq!(
        scalar(
            &app.app.db,
            "SELECT COUNT(*) FROM job WHERE kind LIKE 'plex.%' AND state <> 'done'"
        )
        .await,
        0,
        "every share job finished"
    );
    let board = usher::services::recovery::board(&app.app).await.unwrap();
    assert_eq!((board.flagged, board.code_sent, board.verified), (0, 0, 20));
}

// 2. A renewal's invite queued, then a flag.
async fn an_invite_queued_before_a_flag_never_reaches_plex(backend: Backend) {
    let app = TestApp::spawn_with(backend, roomy).await;
    let (group, plan) = standard_plan(&app).await;
    owner_with_servers(&app, "owner@example.com", &["Alpha"], group).await;
    let people = add_members(&app, plan, "renewer", 300, 1, Standing::Days(30)).await;
    let (who, email) = people[0].clone();
    drain(&app).await;
    assert_eq!(app.plex.shares_for_email(&email).len(), 1);

    // The paid month ends: access is removed on plex.tv.
    app.clock.advance(chrono::Duration::days(31));
    usher::services::lifecycle::sweep(&app.app).await.unwrap();
    drain(&app).await;
    assert!(
        app.plex.shares_for_email(&email).is_empty(),
        "access removed"
    );
    let invites_sent = app.plex.calls(INVITE_ROUTE);

    // The renewal queues the invite back; before a worker takes it, the admin flags them.
    members::record_payment(
        &app.app,
        &admin(),
        who,
        Coverage::Days(30),
        Some("renewal-1".into()),
        None,
    )
    .await
    .unwrap();
    assert_eq!(
        scalar(
            &app.app.db,
            "SELECT COUNT(*) FROM job WHERE kind = 'plex.invite' AND state = 'queued'"
        )
        .await,
        1,
        "the renewal queued an invite"
    );
    // And a new member's first invite meets the same flag.
    let late = add_members(&app, plan, "newcomer", 400, 1, Standing::Days(30)).await;
    for (flagged, _) in [(who, &email), (late[0].0, &late[0].1)] {
        assert!(
            account_change::set_flag(&app.app, &admin(), flagged, true)
                .await
                .unwrap()
        );
    }
    drain(&app).await;

    assert!(
        app.plex.shares_for_email(&email).is_empty(),
        "not re-invited"
    );
    assert!(
        app.plex.shares_for_email(&late[0].1).is_empty(),
        "not invited"
    );
    assert_eq!(
        app.plex.calls(INVITE_ROUTE),
        invites_sent,
        "no invite reached plex.tv"
    );
    assert_eq!(
        scalar(
            &app.app.db,
            "SELECT COUNT(*) FROM job WHERE kind = 'plex.invite' AND state <> 'done'"
        )
        .await,
        0,
        "the invite jobs ended (done, with nothing sent)"
    );
    let cancelled: Vec<String> = usher::on_db!(&app.app.db, |pool| sqlx::query_scalar(
        "SELECT detail FROM audit_log WHERE action = 'share.invite_cancelled' ORDER BY id"
    )
    .fetch_all(pool)
    .await
    .unwrap());
    assert_eq!(cancelled.len(), 2, "{cancelled:?}");
    assert!(
        cancelled
            .iter()
            .all(|d| d.contains("the subscriber must change Plex account first")),
        "the outcome says why: {cancelled:?}"
    );
    assert!(
        live_shares(&app.app.db).await.is_empty(),
        "the unsent shares hold no place"
    );
}

// 3. A reconcile run while 500 invites are in flight.
async fn a_reconcile_while_500_invites_are_in_flight_loses_none(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| {
        roomy(s);
        s.jobs.workers = 50;
    })
    .await;
    let (servers, plan) = servers_for(&app, 600).await;
    // A hundred invited and recorded before.
    let mut people = add_members(&app, plan, "earlier", 1000, 100, Standing::Permanent).await;
    drain(&app).await;
    // Five hundred more queued.
    people.extend(add_members(&app, plan, "inflight", 2000, 500, Standing::Permanent).await);

    // Every worker sends an invite that plex.tv writes but whose answer is held back.
    let invites = app.plex.hold(INVITE_ROUTE);
    app.start_workers();
    invites.wait_for(50, Duration::from_secs(60)).await;
    // Each server's reconcile starts and reads plex.tv's lists; their second answers are held.
    let lists = app.plex.hold(PENDING_ROUTE);
    let reconciles: Vec<_> = servers
        .iter()
        .map(|server| {
            let (app, server) = (app.app.clone(), *server);
            tokio::spawn(async move { plex_sync::reconcile_server(&app, server).await })
        })
        .collect();
    lists.wait_for(servers.len(), Duration::from_secs(30)).await;
    // Now the invites are answered and recorded, and the other 450 sent and recorded, all after
    // plex.tv's lists were read and before reconcile looks at Usher's shares again.
    invites.release();
    wait_until(
        "every invite recorded",
        Duration::from_secs(180),
        async || {
            scalar(
                &app.app.db,
                "SELECT COUNT(*) FROM job WHERE kind = 'plex.invite' AND state <> 'done'",
            )
            .await
                == 0
        },
    )
    .await;
    lists.release();
    for reconcile in reconciles {
        let drift = reconcile.await.unwrap().unwrap();
        assert_eq!(
            drift,
            Drift::default(),
            "invites made meanwhile are no drift"
        );
    }

    assert_one_live_share_each(&app, &people).await;
    assert_eq!(
        scalar(
            &app.app.db,
            "SELECT COUNT(*) FROM audit_log WHERE action = 'reconcile.drift'"
        )
        .await,
        0,
        "no drift recorded"
    );
    for server in servers {
        assert_eq!(
            plex_sync::reconcile_server(&app.app, server).await.unwrap(),
            Drift::default(),
            "and a reconcile afterwards agrees"
        );
    }
}

// 4. A 429 storm with 502s after writes.
async fn a_429_storm_with_502s_after_writes_ends_with_every_invite_done_once(backend: Backend) {
    let app = TestApp::spawn_with(backend, roomy).await;
    let (_, plan) = servers_for(&app, 200).await;
    let people = add_members(&app, plan, "stormy", 1000, 200, Standing::Permanent).await;
    app.plex.set_faults(Faults {
        rate_limited: 0.5,
        server_error: 0.0,
        error_after_write: 0.2,
        retry_after_secs: Some(2),
        seed: 19,
    });
    // The test clock moves to each Retry-After and backoff: seconds of rate limiting pass without
    // waiting for them.
    app.drain_jobs(5000).await;

    assert_eq!(
        scalar(
            &app.app.db,
            "SELECT COUNT(*) FROM job WHERE kind = 'plex.invite' AND state = 'done'"
        )
        .await,
        200,
        "every invite job done"
    );
    assert_eq!(
        scalar(
            &app.app.db,
            "SELECT COUNT(*) FROM job WHERE state IN ('dead', 'parked', 'queued', 'running')"
        )
        .await,
        0,
        "none dead, none stuck"
    );
    assert_one_live_share_each(&app, &people).await;
    assert!(
        app.plex.calls(INVITE_ROUTE) > 400,
        "the storm was real: {} invite calls",
        app.plex.calls(INVITE_ROUTE)
    );
}

// 6. Two change requests racing for one subscriber.
async fn two_change_requests_racing_for_one_subscriber_get_one_code_and_one_refusal(
    backend: Backend,
) {
    let app = TestApp::spawn_with(backend, roomy).await;
    let world = crate::helpers::world::after_a_ban(&app, 1).await;
    let who = world.subscribers[0].0;
    for round in 0..6 {
        let emails = [
            format!("race{round}a@example.com"),
            format!("race{round}b@example.com"),
        ];
        for email in &emails {
            app.plex.add_user_account(email);
        }
        let ask = |email: &str| {
            let (app, email) = (app.app.clone(), PlexEmail::parse(email).unwrap());
            tokio::spawn(async move {
                account_change::request_change(&app, &Actor::Subscriber(who), who, &email).await
            })
        };
        let (a, b) = (ask(&emails[0]), ask(&emails[1]));
        let results = [a.await.unwrap(), b.await.unwrap()];
        let (winner, loser) = match results {
            [Ok(_), Err(loser)] => (&emails[0], loser),
            [Err(loser), Ok(_)] => (&emails[1], loser),
            other => panic!("round {round}: not one code and one refusal: {other:?}"),
        };
        assert!(
            matches!(loser, ProofError::ResendTooSoon(_)),
            "round {round}: {loser:?}"
        );
        assert!(
            loser
                .to_string()
                .starts_with("a code was sent less than a minute ago"),
            "round {round}: {loser}"
        );
        assert_eq!(
            scalar(
                &app.app.db,
                "SELECT COUNT(*) FROM proof_request WHERE state = 'pending'"
            )
            .await,
            1,
            "round {round}: one pending request"
        );
        // The winner's code came, and it works later; the loser got no mail.
        code_for(&app, winner);
        let loser_email = emails.iter().find(|e| *e != winner).unwrap();
        let stray = std::fs::read_dir(app.app.settings.outbox_dir())
            .unwrap()
            .filter(|m| {
                std::fs::read_to_string(m.as_ref().unwrap().path())
                    .unwrap()
                    .contains(&format!("To: {loser_email}"))
            })
            .count();
        assert_eq!(stray, 0, "round {round}: no code for the refused request");
        app.clock.advance(chrono::Duration::minutes(2));
    }
}

// 7. A retired account's username.
async fn a_retired_accounts_username_is_refused_like_its_email(backend: Backend) {
    let app = TestApp::spawn_with(backend, roomy).await;
    let world = crate::helpers::world::after_a_ban(&app, 2).await;
    let (alice, _) = world.subscribers[0].clone();
    let (bob, bob_old) = world.subscribers[1].clone();
    // plex.tv named the username of Bob's old account when it answered his invite.
    let username: Option<String> = usher::on_db!(&app.app.db, |pool| sqlx::query_scalar(
        "SELECT plex_username FROM plex_identity WHERE email_norm = $1"
    )
    .bind(&bob_old)
    .fetch_one(pool)
    .await
    .unwrap());
    assert_eq!(username.as_deref(), Some("old1"));
    // Bob moves to a new account; the old one is retired for good.
    app.plex.add_user_account("bob.new@example.com");
    let me = Actor::Subscriber(bob);
    account_change::request_change(
        &app.app,
        &me,
        bob,
        &PlexEmail::parse("bob.new@example.com").unwrap(),
    )
    .await
    .unwrap();
    account_change::verify_change(&app.app, &me, bob, &code_for(&app, "bob.new@example.com"))
        .await
        .unwrap();

    let counts = async || {
        (
            scalar(&app.app.db, "SELECT COUNT(*) FROM proof_request").await,
            scalar(&app.app.db, "SELECT COUNT(*) FROM audit_log").await,
            std::fs::read_dir(app.app.settings.outbox_dir())
                .unwrap()
                .count(),
        )
    };
    let before = counts().await;
    let shouted = bob_old.to_uppercase();
    for typed in ["old1", " OLD1 ", shouted.as_str()] {
        let err = account_change::request_change(
            &app.app,
            &Actor::Subscriber(alice),
            alice,
            &PlexEmail::parse(typed).unwrap(),
        )
        .await
        .unwrap_err();
        assert!(matches!(err, ProofError::Retired), "{typed:?}: {err:?}");
        assert_eq!(
            err.to_string(),
            "that Plex account was used here before and can never be used again; sign up for a new one"
        );
    }
    // An admin adding a member with that username is refused the same way.
    let added = members::add_member(
        &app.app,
        &admin(),
        &NewMember {
            member: DiscordId::new(777).unwrap(),
            name: "carol".into(),
            plex_email: PlexEmail::parse("Old1").unwrap(),
            contact_email: None,
            plan: PlanId::new(1),
            standing: Standing::Permanent,
            transaction: None,
            amount: None,
            note: None,
        },
    )
    .await
    .unwrap_err();
    assert!(added.to_string().contains("used here before"), "{added}");
    assert_eq!(
        counts().await,
        before,
        "no request, audit row or mail was written"
    );
}

crate::on_both_backends!(
    after_flag_everyone_every_change_ends_with_one_share_for_the_new_account,
    an_invite_queued_before_a_flag_never_reaches_plex,
    a_reconcile_while_500_invites_are_in_flight_loses_none,
    a_429_storm_with_502s_after_writes_ends_with_every_invite_done_once,
    two_change_requests_racing_for_one_subscriber_get_one_code_and_one_refusal,
    a_retired_accounts_username_is_refused_like_its_email,
    a_usher_process_killed_three_times_during_600_invites_loses_and_doubles_nothing,
);

// 8. A real `usher` process killed with SIGKILL during 600 invites.
async fn a_usher_process_killed_three_times_during_600_invites_loses_and_doubles_nothing(
    backend: Backend,
) {
    const PEOPLE: u64 = 600;
    const WORKERS: usize = 4;
    let app = TestApp::spawn_with(backend, roomy).await;
    // The process runs on the wall clock: seed on it too.
    app.clock.advance(chrono::Utc::now() - app.clock.now());
    let (_, plan) = servers_for(&app, PEOPLE).await;
    let people = add_members(&app, plan, "crash", 1000, PEOPLE, Standing::Permanent).await;
    let db = &app.app.db;
    let database_url = match db {
        Db::Postgres(pool) => {
            let options = pool.connect_options();
            format!(
                "postgres://postgres@127.0.0.1:{}/{}",
                options.get_port(),
                options.get_database().unwrap()
            )
        }
        Db::Sqlite(_) => format!(
            "sqlite://{}",
            app.app.settings.data_dir.join("usher.db").display()
        ),
    };
    let key = std::fs::read_to_string(app.app.settings.data_dir.join("secret.key")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let usher = Usher::new(dir.path())
        .env("USHER_DATABASE__URL", database_url)
        .env("USHER_SECRET_KEY", key.trim())
        .env("USHER_WEB__ADDR", format!("127.0.0.1:{port}"))
        .env("USHER_PLEX__BASE_URL", app.plex.base_url().as_str())
        .env("USHER_PLEX__REQUESTS_PER_SECOND", "1000")
        .env("USHER_PLEX__SEATS_PER_ACCOUNT", "10000")
        .env("USHER_JOBS__POLL_INTERVAL_MS", "50")
        .env("USHER_JOBS__WORKERS", WORKERS.to_string())
        // A killed process's jobs are taken over seconds later, not minutes.
        .env("USHER_JOBS__LEASE_SECS", "3");
    let recorded = async || {
        scalar(
            db,
            "SELECT COUNT(*) FROM share WHERE plex_share_id IS NOT NULL",
        )
        .await
    };

    let mut logs = String::new();
    for round in 1..=3_i64 {
        let running = usher.spawn(&[]);
        running.wait_healthy(port).await;
        wait_until("invites progress", Duration::from_secs(120), async || {
            recorded().await >= round * 150
        })
        .await;
        // Every worker is mid-invite: plex.tv wrote it, its answer has not come back. Kill.
        let held = app.plex.hold(INVITE_ROUTE);
        held.wait_for(WORKERS, Duration::from_secs(30)).await;
        let (status, log) = running.kill().await;
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(9),
            "killed: {log}"
        );
        logs.push_str(&log);
        held.release();
    }
    let running = usher.spawn(&[]);
    running.wait_healthy(port).await;
    wait_until("every invite done", Duration::from_secs(180), async || {
        scalar(
            db,
            "SELECT COUNT(*) FROM job WHERE kind = 'plex.invite' AND state = 'done'",
        )
        .await
            == i64::try_from(PEOPLE).unwrap()
    })
    .await;
    let (status, log) = running.stop().await;
    assert!(status.success(), "{log}");
    logs.push_str(&log);

    assert_eq!(
        scalar(db, "SELECT COUNT(*) FROM job WHERE kind = 'plex.invite'").await,
        i64::try_from(PEOPLE).unwrap(),
        "one invite job per subscriber, none lost"
    );
    let stopped: Vec<String> = usher::on_db!(db, |pool| sqlx::query_scalar(
        "SELECT kind || ' ' || state || ': ' || COALESCE(last_error, '') FROM job \
         WHERE state IN ('dead', 'parked') ORDER BY id"
    )
    .fetch_all(pool)
    .await
    .unwrap());
    assert!(
        stopped.is_empty(),
        "none dead or parked: {stopped:#?}\n{}",
        logs.lines()
            .filter(|l| l.contains("WARN") || l.contains("ERROR"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        scalar(
            db,
            "SELECT COUNT(*) FROM job WHERE kind = 'plex.invite' AND attempts > 1"
        )
        .await
            >= i64::try_from(3 * WORKERS).unwrap(),
        "the invites killed mid-call ran again"
    );
    assert_one_live_share_each(&app, &people).await;
}
