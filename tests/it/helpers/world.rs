//! A world to test ban recovery in: owners, servers, a plan and subscribers, built through the
//! services (and the store where a service does not exist yet), plus the job drain and the
//! outbox reader every recovery test needs.

use secrecy::SecretString;
use usher::clock::Clock as _;
use usher::domain::{
    Actor, BillingPeriod, Currency, DiscordId, Money, OwnerAccountId, PlexEmail, ShareState,
    SubscriberId, VerificationCode,
};
use usher::services::account_change;
use usher::services::plex_admin::{self, PlanSpec};
use usher::services::settings::set_plex_account_change;
use usher::store::{servers, shares, subscribers};

use super::TestApp;

pub fn admin() -> Actor {
    Actor::Admin(DiscordId::new(900).unwrap())
}

/// Adds an owner with the named servers (Movies + TV in the plan's group) to Usher.
pub async fn owner_with_servers(
    app: &TestApp,
    email: &str,
    names: &[&str],
    group: usher::domain::LibraryGroupId,
) -> OwnerAccountId {
    let token = app.plex.add_owner(email);
    for name in names {
        app.plex
            .add_server(&token, name, &[("Movies", "movie"), ("TV", "show")]);
    }
    let owner = plex_admin::add_owner_account(&app.app, &admin(), &SecretString::from(token))
        .await
        .unwrap()
        .id;
    for name in names {
        let server = plex_admin::add_server(&app.app, &admin(), owner, name)
            .await
            .unwrap()
            .id;
        let mut tx = app.app.db.begin().await.unwrap();
        let libraries = servers::find_libraries(&mut tx, server).await.unwrap();
        drop(tx);
        for library in libraries {
            plex_admin::assign_library(&app.app, &admin(), library.id, Some(group))
                .await
                .unwrap();
        }
    }
    owner
}

pub struct World {
    /// The banned owner account.
    pub old_owner: OwnerAccountId,
    /// Each subscriber with their old Plex email.
    pub subscribers: Vec<(SubscriberId, String)>,
}

/// `n` subscribers invited on the "Old" server of an owner that then gets banned; a new owner with
/// two servers is added; the setting is on; everyone is permanent and flagged.
pub async fn after_a_ban(app: &TestApp, n: u64) -> World {
    let world = banned_world(app, n).await;
    make_permanent(app, &world).await;
    for (sub, _) in &world.subscribers {
        assert!(
            account_change::set_flag(&app.app, &admin(), *sub, true)
                .await
                .unwrap()
        );
    }
    world
}

/// Makes every subscriber of the world permanent: only a paid-up (or permanent) subscriber is
/// invited after an account change.
pub async fn make_permanent(app: &TestApp, world: &World) {
    for (sub, _) in &world.subscribers {
        usher::services::members::set_permanent(&app.app, &admin(), *sub, true)
            .await
            .unwrap();
    }
}

/// As [`after_a_ban`], with nobody flagged yet and nobody paid up (they were added by hand). Subscriber `i` is Discord user `100 + i`, named
/// `user{i}`, with Plex email `old{i}@example.com`.
pub async fn banned_world(app: &TestApp, n: u64) -> World {
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
    let old_owner = owner_with_servers(app, "old-owner@example.com", &["Old"], group).await;
    let old_server = usher::domain::ServerId::new(1);
    let now = app.clock.now();
    let mut tx = app.app.db.begin().await.unwrap();
    let mut list = Vec::new();
    for i in 0..n {
        let email = format!("old{i}@example.com");
        app.plex.add_user_account(&email);
        let sub = subscribers::insert_subscriber(
            &mut tx,
            DiscordId::new(100 + i).unwrap(),
            &format!("user{i}"),
            now,
        )
        .await
        .unwrap();
        subscribers::update_subscriber_plan(&mut tx, sub, Some(plan), now)
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
        let share =
            shares::insert_share(&mut tx, sub, old_server, identity, ShareState::Pending, now)
                .await
                .unwrap();
        app.app
            .queue
            .enqueue(
                &mut tx,
                &usher::jobs::InviteShare::new(share, old_owner, "1"),
            )
            .await
            .unwrap();
        list.push((sub, email));
    }
    tx.commit().await.unwrap();
    drain(app).await;
    plex_admin::mark_owner_banned(&app.app, &admin(), old_owner)
        .await
        .unwrap();
    owner_with_servers(app, "new-owner@example.com", &["New A", "New B"], group).await;
    set_plex_account_change(&app.app, &admin(), true)
        .await
        .unwrap();
    World {
        old_owner,
        subscribers: list,
    }
}

pub async fn drain(app: &TestApp) {
    app.drain_jobs(500).await;
}

/// The code mailed to `email` since the last call, read from the outbox as the subscriber would.
/// Mails read are removed, so each call sees only what was sent after the previous one.
pub fn code_for(app: &TestApp, email: &str) -> VerificationCode {
    let mails: Vec<_> = std::fs::read_dir(app.app.settings.outbox_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            std::fs::read_to_string(p)
                .unwrap()
                .contains(&format!("To: {email}"))
        })
        .collect();
    assert_eq!(mails.len(), 1, "exactly one new mail to {email}");
    let raw = std::fs::read_to_string(&mails[0]).unwrap();
    std::fs::remove_file(&mails[0]).unwrap();
    let code = raw
        .lines()
        .map(str::trim)
        .find(|l| l.len() == 6 && l.bytes().all(|b| b.is_ascii_digit()))
        .expect("a 6-digit line in the mail");
    VerificationCode::parse(code).unwrap()
}
