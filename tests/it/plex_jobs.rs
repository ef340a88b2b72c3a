//! The share jobs against the fake plex.tv: exact libraries, idempotency under replays, crashes
//! and injected faults, and the error rules (401 and 410 park, a full server moves the invite).

use secrecy::SecretString;
use usher::clock::Clock as _;
use usher::domain::{
    Actor, BillingPeriod, Currency, DiscordId, Money, OwnerAccountId, PlanId, PlexEmail, ServerId,
    ShareId, ShareState,
};
use usher::fakes::plex::{FakeServer, Faults};
use usher::jobs::{InviteShare, Job as _};
use usher::services::plex_admin::{self, PlanSpec};
use usher::store::{self, servers, shares, subscribers};

use crate::helpers::{Backend, TestApp};

const INVITE_ROUTE: &str = "POST /api/v2/shared_servers";

fn admin() -> Actor {
    Actor::Admin(DiscordId::new(900).unwrap())
}

/// One owner, servers with Movies / TV / Home Videos, a Standard group (Movies, TV), a Private
/// group (Home Videos) and a plan on Standard.
struct Catalogue {
    owner: OwnerAccountId,
    servers: Vec<(ServerId, FakeServer)>,
    plan: PlanId,
}

async fn catalogue(app: &TestApp, server_names: &[&str]) -> Catalogue {
    let token = app.plex.add_owner("owner@example.com");
    let owner =
        plex_admin::add_owner_account(&app.app, &admin(), &SecretString::from(token.clone()))
            .await
            .unwrap()
            .id;
    let standard = plex_admin::create_group(&app.app, &admin(), "Standard", false)
        .await
        .unwrap();
    let private = plex_admin::create_group(&app.app, &admin(), "Private", true)
        .await
        .unwrap();
    let mut list = Vec::new();
    for name in server_names {
        let fake = app.plex.add_server(
            &token,
            name,
            &[
                ("Movies", "movie"),
                ("TV", "show"),
                ("Home Videos", "movie"),
            ],
        );
        let server = plex_admin::add_server(&app.app, &admin(), owner, name)
            .await
            .unwrap()
            .id;
        let mut tx = app.app.db.begin().await.unwrap();
        let libraries = servers::find_libraries(&mut tx, server).await.unwrap();
        drop(tx);
        for library in libraries {
            let group = if library.title == "Home Videos" {
                private
            } else {
                standard
            };
            plex_admin::assign_library(&app.app, &admin(), library.id, Some(group))
                .await
                .unwrap();
        }
        list.push((server, fake));
    }
    let spec = PlanSpec {
        name: "Standard".into(),
        price: Money::parse("8.00", Currency::parse("USD").unwrap()).unwrap(),
        period: BillingPeriod::Month,
        max_streams: 2,
        trial: false,
        groups: vec![standard.into()],
    };
    let plan = plex_admin::create_plan(&app.app, &admin(), &spec)
        .await
        .unwrap();
    Catalogue {
        owner,
        servers: list,
        plan,
    }
}

/// Creates `n` subscribers with real plex.tv accounts and a pending share each on `server`, and
/// enqueues their invites; returns (share, email) pairs.
async fn subscribers_with_pending_invites(
    app: &TestApp,
    cat: &Catalogue,
    server: ServerId,
    n: u64,
) -> Vec<(ShareId, String)> {
    more_pending_invites(app, cat, server, "viewer", 10_000..10_000 + n).await
}

/// As [`subscribers_with_pending_invites`], with emails `{prefix}{i}@example.com` and Discord ids
/// taken from `ids`.
async fn more_pending_invites(
    app: &TestApp,
    cat: &Catalogue,
    server: ServerId,
    prefix: &str,
    ids: std::ops::Range<u64>,
) -> Vec<(ShareId, String)> {
    let now = app.clock.now();
    let mut tx = app.app.db.begin().await.unwrap();
    let mut out = Vec::new();
    for id in ids {
        let email = format!("{prefix}{}@example.com", id % 10_000);
        app.plex.add_user_account(&email);
        let sub = subscribers::insert_subscriber(&mut tx, DiscordId::new(id).unwrap(), prefix, now)
            .await
            .unwrap();
        subscribers::update_subscriber_plan(&mut tx, sub, Some(cat.plan), now)
            .await
            .unwrap();
        let identity = subscribers::insert_identity(
            &mut tx,
            sub,
            &usher::store::subscribers::AccountKeys::email(&PlexEmail::parse(&email).unwrap()),
            now,
        )
        .await
        .unwrap();
        let share = shares::insert_share(&mut tx, sub, server, identity, ShareState::Pending, now)
            .await
            .unwrap();
        app.app
            .queue
            .enqueue(
                &mut tx,
                &usher::jobs::InviteShare::new(share, cat.owner, "1"),
            )
            .await
            .unwrap();
        out.push((share, email));
    }
    tx.commit().await.unwrap();
    out
}

/// Runs due jobs, moving the clock past every backoff, until nothing is queued.
async fn drain(app: &TestApp) {
    app.drain_jobs(2000).await;
}

async fn job_states(app: &TestApp) -> Vec<(String, i64)> {
    store::jobs::count_by_state(&app.app.db)
        .await
        .unwrap()
        .into_iter()
        .map(|(state, n)| (state.as_str().to_owned(), n))
        .collect()
}

async fn an_invite_shares_exactly_the_plans_libraries_by_global_id(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let cat = catalogue(&app, &["Alpha"]).await;
    let (server, fake) = &cat.servers[0];
    let invited = subscribers_with_pending_invites(&app, &cat, *server, 1).await;
    drain(&app).await;

    let on_plex = app.plex.shares_for_email(&invited[0].1);
    assert_eq!(on_plex.len(), 1);
    let expected: Vec<u64> = fake
        .libraries
        .iter()
        .filter(|l| l.title != "Home Videos")
        .map(|l| l.global_id)
        .collect();
    let mut sent = on_plex[0].library_ids.clone();
    sent.sort_unstable();
    assert_eq!(
        sent, expected,
        "global ids of Standard only; the private group is never shared"
    );
    assert!(on_plex[0].skip_friendship);
    let mut tx = app.app.db.begin().await.unwrap();
    let ctx = shares::find_share_context(&mut tx, invited[0].0)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        ctx.plex_share_id,
        Some(i64::try_from(on_plex[0].id).unwrap())
    );
    assert_eq!(ctx.state, ShareState::Pending);
}

async fn replayed_and_repeated_invites_send_one_share(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let cat = catalogue(&app, &["Alpha"]).await;
    let invited = subscribers_with_pending_invites(&app, &cat, cat.servers[0].0, 1).await;
    let mut tx = app.app.db.begin().await.unwrap();
    // The same job again is a no-op; a second, distinct job for the same share finds it sent.
    assert!(
        !app.app
            .queue
            .enqueue(
                &mut tx,
                &usher::jobs::InviteShare::new(invited[0].0, cat.owner, "1")
            )
            .await
            .unwrap()
    );
    assert!(
        app.app
            .queue
            .enqueue(
                &mut tx,
                &usher::jobs::InviteShare::new(invited[0].0, cat.owner, "2")
            )
            .await
            .unwrap()
    );
    tx.commit().await.unwrap();
    drain(&app).await;
    assert_eq!(app.plex.calls(INVITE_ROUTE), 1);
    assert_eq!(app.plex.shares_for_email(&invited[0].1).len(), 1);
    assert_eq!(job_states(&app).await, vec![("done".to_string(), 2)]);
}

async fn a_crash_after_plex_answered_is_recorded_not_doubled(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let cat = catalogue(&app, &["Alpha"]).await;
    let (server, fake) = &cat.servers[0];
    let invited = subscribers_with_pending_invites(&app, &cat, *server, 1).await;
    // The worker sent the invite and died before recording plex.tv's answer.
    let token = SecretString::from(app.plex.token_for("owner@example.com").unwrap());
    let first = app
        .app
        .plex
        .invite(
            &token,
            &usher::integrations::plex::Invite {
                machine_identifier: fake.machine_identifier.clone(),
                invited: invited[0].1.clone(),
                library_ids: vec![usher::integrations::plex::PlexSectionId(
                    fake.libraries[0].global_id,
                )],
                settings: usher::integrations::plex::ShareSettings::default(),
            },
        )
        .await
        .unwrap();
    drain(&app).await;
    let on_plex = app.plex.shares_for_email(&invited[0].1);
    assert_eq!(on_plex.len(), 1, "exactly one share");
    let mut tx = app.app.db.begin().await.unwrap();
    let ctx = shares::find_share_context(&mut tx, invited[0].0)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        ctx.plex_share_id,
        Some(i64::try_from(first.id.0).unwrap()),
        "the existing share is recorded"
    );
    assert_eq!(job_states(&app).await, vec![("done".to_string(), 1)]);
}

async fn a_thousand_invites_under_injected_faults_each_exist_exactly_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let cat = catalogue(&app, &["Alpha"]).await;
    let (server, fake) = &cat.servers[0];
    app.plex.set_share_limit(&fake.machine_identifier, 2000);
    app.plex.set_seats_per_account(2000);
    plex_admin::set_server_flags(
        &app.app,
        &admin(),
        *server,
        &servers::ServerFlags::default(),
    )
    .await
    .unwrap();
    let invited = subscribers_with_pending_invites(&app, &cat, *server, 1000).await;
    app.plex.set_faults(Faults {
        rate_limited: 0.10,
        server_error: 0.10,
        error_after_write: 0.05,
        retry_after_secs: Some(2),
        seed: 7,
    });
    drain(&app).await;

    assert_eq!(
        job_states(&app).await,
        vec![("done".to_string(), 1000)],
        "every invite job finished"
    );
    let all = app.plex.shares_on_server(&fake.machine_identifier);
    assert_eq!(all.len(), 1000, "one share per subscriber, none doubled");
    for (share, email) in &invited {
        assert_eq!(app.plex.shares_for_email(email).len(), 1, "{email}");
        let mut tx = app.app.db.begin().await.unwrap();
        let ctx = shares::find_share_context(&mut tx, *share)
            .await
            .unwrap()
            .unwrap();
        assert!(ctx.plex_share_id.is_some(), "share {share} recorded");
    }
    assert!(
        app.plex.calls(INVITE_ROUTE) > 1000,
        "faults were injected and retried"
    );
}

async fn a_retired_endpoint_parks_the_job_with_update_usher(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let cat = catalogue(&app, &["Alpha"]).await;
    subscribers_with_pending_invites(&app, &cat, cat.servers[0].0, 1).await;
    app.plex.retire_route(INVITE_ROUTE);
    drain(&app).await;
    let job = store::jobs::find_by_key(&app.app.db, &format!("{}:1:1", InviteShare::KIND))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (job.state.as_str(), job.attempts),
        ("parked", 1),
        "never retried"
    );
    assert!(job.last_error.unwrap().contains("update Usher"));
    assert_eq!(app.plex.calls(INVITE_ROUTE), 1);
}

async fn a_revoked_owner_token_parks_invites_without_hammering(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let cat = catalogue(&app, &["Alpha"]).await;
    subscribers_with_pending_invites(&app, &cat, cat.servers[0].0, 3).await;
    app.plex
        .revoke_token(&app.plex.token_for("owner@example.com").unwrap());
    drain(&app).await;
    assert_eq!(job_states(&app).await, vec![("parked".to_string(), 3)]);
    assert_eq!(
        app.plex.calls(INVITE_ROUTE),
        3,
        "one call each, then parked"
    );
}

async fn a_full_server_moves_the_invite_to_another_server(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let cat = catalogue(&app, &["Alpha", "Beta"]).await;
    let (alpha, alpha_fake) = &cat.servers[0];
    let (beta, beta_fake) = &cat.servers[1];
    app.plex.set_share_limit(&alpha_fake.machine_identifier, 0);
    let invited = subscribers_with_pending_invites(&app, &cat, *alpha, 1).await;
    drain(&app).await;
    assert!(
        app.plex
            .shares_on_server(&alpha_fake.machine_identifier)
            .is_empty()
    );
    assert_eq!(
        app.plex
            .shares_on_server(&beta_fake.machine_identifier)
            .len(),
        1
    );
    let mut tx = app.app.db.begin().await.unwrap();
    let ctx = shares::find_share_context(&mut tx, invited[0].0)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ctx.server_id, *beta);
    let closed = servers::find_server(&mut tx, *alpha)
        .await
        .unwrap()
        .unwrap();
    assert!(
        !closed.allow_new_subscriptions,
        "plex.tv said full: closed to new subscriptions"
    );
    drop(tx);

    // With no server left, the invite waits for an admin instead of failing silently: the share
    // was moved to Beta (Usher's count saw room), plex.tv refused it there too, and the moved
    // invite is parked.
    app.plex.set_share_limit(&beta_fake.machine_identifier, 1);
    let more = more_pending_invites(&app, &cat, *alpha, "late", 20_500..20_501).await;
    drain(&app).await;
    let first = store::jobs::find_by_key(
        &app.app.db,
        &format!("{}:{}:1", InviteShare::KIND, more[0].0),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(
        first.state.as_str(),
        "done",
        "the first invite moved the share"
    );
    let job = store::jobs::find_by_key(
        &app.app.db,
        &format!("{}:{}:moved-{beta}", InviteShare::KIND, more[0].0),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(job.state.as_str(), "parked");
    assert!(
        job.last_error.unwrap().contains("no server has room"),
        "admins are told why"
    );
}

async fn removing_a_share_deletes_it_once_and_tolerates_replays(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let cat = catalogue(&app, &["Alpha"]).await;
    let invited = subscribers_with_pending_invites(&app, &cat, cat.servers[0].0, 1).await;
    drain(&app).await;
    let mut tx = app.app.db.begin().await.unwrap();
    app.app
        .queue
        .enqueue(
            &mut tx,
            &usher::jobs::RemoveShare::new(invited[0].0, cat.owner, "1"),
        )
        .await
        .unwrap();
    app.app
        .queue
        .enqueue(
            &mut tx,
            &usher::jobs::RemoveShare::new(invited[0].0, cat.owner, "2"),
        )
        .await
        .unwrap();
    tx.commit().await.unwrap();
    drain(&app).await;
    assert!(app.plex.shares_for_email(&invited[0].1).is_empty());
    let mut tx = app.app.db.begin().await.unwrap();
    assert_eq!(
        shares::find_share_state(&mut tx, invited[0].0)
            .await
            .unwrap(),
        Some(ShareState::Removed)
    );
    drop(tx);
    assert_eq!(job_states(&app).await, vec![("done".to_string(), 3)]);
}

crate::on_both_backends!(
    an_invite_shares_exactly_the_plans_libraries_by_global_id,
    replayed_and_repeated_invites_send_one_share,
    a_crash_after_plex_answered_is_recorded_not_doubled,
    a_thousand_invites_under_injected_faults_each_exist_exactly_once,
    a_retired_endpoint_parks_the_job_with_update_usher,
    a_revoked_owner_token_parks_invites_without_hammering,
    a_full_server_moves_the_invite_to_another_server,
    removing_a_share_deletes_it_once_and_tolerates_replays,
    reconcile_records_accepted_vanished_and_unknown_shares,
    marking_an_owner_banned_snapshots_its_users_first_and_closes_its_servers,
    an_update_job_brings_the_share_in_line_with_the_plan,
);

async fn audit_count(app: &TestApp, action: &str) -> i64 {
    let mut tx = app.app.db.begin().await.unwrap();
    usher::on_tx!(&mut tx, |c| sqlx::query_scalar(
        "SELECT COUNT(*) FROM audit_log WHERE action = $1"
    )
    .bind(action)
    .fetch_one(c)
    .await
    .unwrap())
}

async fn reconcile_records_accepted_vanished_and_unknown_shares(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let cat = catalogue(&app, &["Alpha"]).await;
    let (server, fake) = &cat.servers[0];
    let invited = subscribers_with_pending_invites(&app, &cat, *server, 3).await;
    drain(&app).await;
    let on_plex: Vec<_> = invited
        .iter()
        .map(|(_, email)| app.plex.shares_for_email(email)[0].id)
        .collect();
    // One subscriber accepts; the owner deletes another by hand; a stranger is shared by hand.
    assert!(app.plex.accept_invite(on_plex[0]));
    let token = SecretString::from(app.plex.token_for("owner@example.com").unwrap());
    app.app
        .plex
        .delete_share(
            &token,
            usher::integrations::plex::SharedServerId(on_plex[1]),
        )
        .await
        .unwrap();
    app.plex.add_user_account("stranger@example.com");
    let stranger = app
        .app
        .plex
        .invite(
            &token,
            &usher::integrations::plex::Invite {
                machine_identifier: fake.machine_identifier.clone(),
                invited: "stranger@example.com".into(),
                library_ids: vec![usher::integrations::plex::PlexSectionId(
                    fake.libraries[0].global_id,
                )],
                settings: usher::integrations::plex::ShareSettings::default(),
            },
        )
        .await
        .unwrap();

    assert_eq!(
        usher::scheduler::tick(&app.app).await.unwrap(),
        2,
        "one reconcile per server, and the lifecycle sweep"
    );
    assert_eq!(
        usher::scheduler::tick(&app.app).await.unwrap(),
        0,
        "not twice in the same hour"
    );
    let drift = usher::services::plex_sync::reconcile_server(&app.app, *server)
        .await
        .unwrap();
    assert_eq!(drift.accepted, vec![invited[0].0]);
    assert_eq!(drift.vanished, vec![invited[1].0]);
    assert_eq!(drift.unknown, vec![stranger.id.0]);
    drain(&app).await;
    let mut tx = app.app.db.begin().await.unwrap();
    let mut states = Vec::new();
    for (share, _) in &invited {
        states.push(
            shares::find_share_state(&mut tx, *share)
                .await
                .unwrap()
                .unwrap(),
        );
    }
    drop(tx);
    assert_eq!(
        states,
        [
            ShareState::Accepted,
            ShareState::Removed,
            ShareState::Pending
        ]
    );
    assert_eq!(
        audit_count(&app, "reconcile.drift").await,
        2,
        "the direct run and the queued one both saw the stranger"
    );
    app.clock.advance(chrono::Duration::hours(1));
    assert_eq!(
        usher::scheduler::tick(&app.app).await.unwrap(),
        2,
        "again the next hour"
    );
}

async fn marking_an_owner_banned_snapshots_its_users_first_and_closes_its_servers(
    backend: Backend,
) {
    let app = TestApp::spawn(backend).await;
    let cat = catalogue(&app, &["Alpha"]).await;
    let invited = subscribers_with_pending_invites(&app, &cat, cat.servers[0].0, 2).await;
    drain(&app).await;
    let path = plex_admin::mark_owner_banned(&app.app, &admin(), cat.owner)
        .await
        .unwrap();
    let csv = std::fs::read_to_string(&path).unwrap();
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("discord_id,name,plex_email,plan,server,state,paid_until,flagged,permanent")
    );
    let rows: Vec<_> = lines.collect();
    assert_eq!(rows.len(), 2, "{csv}");
    assert!(
        rows[0].starts_with(&format!(
            "10000,viewer,{},Standard,Alpha,pending,",
            invited[0].1
        )),
        "{csv}"
    );

    let mut tx = app.app.db.begin().await.unwrap();
    let candidates = usher::services::shares::load_candidates(&mut tx, 100)
        .await
        .unwrap();
    assert!(
        candidates.iter().all(|c| !c.owner_usable),
        "placement never picks a banned owner's server"
    );
    drop(tx);
    let again = plex_admin::mark_owner_banned(&app.app, &admin(), cat.owner)
        .await
        .unwrap_err();
    assert!(
        matches!(again, plex_admin::AdminError::AccountNotActive { .. }),
        "{again}"
    );
}

async fn an_update_job_brings_the_share_in_line_with_the_plan(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let cat = catalogue(&app, &["Alpha"]).await;
    let (server, fake) = &cat.servers[0];
    let invited = subscribers_with_pending_invites(&app, &cat, *server, 1).await;
    drain(&app).await;
    // The admin moves Home Videos into the plan's group.
    let mut tx = app.app.db.begin().await.unwrap();
    let libraries = servers::find_libraries(&mut tx, *server).await.unwrap();
    let standard = libraries
        .iter()
        .find(|l| l.title == "Movies")
        .unwrap()
        .group_id
        .unwrap();
    drop(tx);
    let home = libraries.iter().find(|l| l.title == "Home Videos").unwrap();
    plex_admin::assign_library(&app.app, &admin(), home.id, Some(standard))
        .await
        .unwrap();
    let mut tx = app.app.db.begin().await.unwrap();
    app.app
        .queue
        .enqueue(
            &mut tx,
            &usher::jobs::UpdateShare::new(invited[0].0, cat.owner, "groups-1"),
        )
        .await
        .unwrap();
    tx.commit().await.unwrap();
    drain(&app).await;
    let mut sent = app.plex.shares_for_email(&invited[0].1)[0]
        .library_ids
        .clone();
    sent.sort_unstable();
    let all: Vec<u64> = fake.libraries.iter().map(|l| l.global_id).collect();
    assert_eq!(sent, all);
}
