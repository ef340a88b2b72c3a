//! Admin services for owner accounts, servers, libraries, groups and plans, against the fake
//! plex.tv, on both backends.

use secrecy::{ExposeSecret as _, SecretString};
use usher::clock::Clock as _;
use usher::domain::{
    Actor, BillingPeriod, Currency, DiscordId, LibraryId, Money, PlanId, PlexEmail, ServerId,
    ShareState,
};
use usher::services::plex_admin::{self, AdminError, PlanSpec};
use usher::store::servers::ServerFlags;
use usher::store::{self, owner_accounts, servers, shares, subscribers};

use crate::helpers::{Backend, TestApp};

fn admin() -> Actor {
    Actor::Admin(DiscordId::new(900).unwrap())
}

fn secret(token: &str) -> SecretString {
    token.to_string().into()
}

/// Seeds an owner with one server on the fake and adds both to Usher.
async fn owner_with_server(app: &TestApp) -> (usher::domain::OwnerAccountId, ServerId, String) {
    let token = app.plex.add_owner("owner@example.com");
    let fake = app.plex.add_server(
        &token,
        "Alpha",
        &[("Movies", "movie"), ("TV", "show"), ("4K", "movie")],
    );
    let added = plex_admin::add_owner_account(&app.app, &admin(), &secret(&token))
        .await
        .unwrap();
    let server = plex_admin::add_server(&app.app, &admin(), added.id, "alpha")
        .await
        .unwrap();
    assert_eq!((server.name.as_str(), server.libraries), ("Alpha", 3));
    (added.id, server.id, fake.machine_identifier)
}

async fn adding_an_owner_account_tests_the_token_and_stores_it_sealed(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = app.plex.add_owner("boss@example.com");
    let added = plex_admin::add_owner_account(&app.app, &admin(), &secret(&token))
        .await
        .unwrap();
    assert_eq!(added.name, "boss");
    assert!(added.plex_pass);
    assert!(
        !format!("{added:?}").contains(&token),
        "the reply never carries the token"
    );
    assert_eq!(app.plex.calls("GET /api/v2/user"), 1);

    let mut tx = app.app.db.begin().await.unwrap();
    let row = owner_accounts::find_owner_account(&mut tx, added.id)
        .await
        .unwrap()
        .unwrap();
    assert!(!row.token_enc.contains(&token));
    assert_eq!(
        app.app
            .cipher
            .decrypt(&row.token_enc)
            .unwrap()
            .expose_secret(),
        token
    );
    drop(tx);

    let again = plex_admin::add_owner_account(&app.app, &admin(), &secret(&token))
        .await
        .unwrap_err();
    assert!(
        matches!(again, AdminError::AccountAlreadyAdded(ref n) if n == "boss"),
        "{again}"
    );
}

async fn a_token_plex_refuses_is_not_stored(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let err = plex_admin::add_owner_account(&app.app, &admin(), &secret("not-a-real-token"))
        .await
        .unwrap_err();
    assert!(matches!(err, AdminError::TokenRejected), "{err}");
    assert!(!err.to_string().contains("not-a-real-token"));
    let mut tx = app.app.db.begin().await.unwrap();
    assert!(
        owner_accounts::find_owner_accounts(&mut tx)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn a_server_is_added_by_name_with_its_global_library_ids(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (owner, server, machine) = owner_with_server(&app).await;
    let mut tx = app.app.db.begin().await.unwrap();
    let row = servers::find_server(&mut tx, server)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.machine_id, machine);
    assert!(row.enabled && row.allow_new_subscriptions && !row.allow_trials);
    assert_eq!(row.max_users, 95);
    let libraries = servers::find_libraries(&mut tx, server).await.unwrap();
    let fake: Vec<_> = app.plex.libraries_of(&machine);
    let stored: Vec<_> = libraries
        .iter()
        .map(|l| (u64::try_from(l.section_id).unwrap(), l.local_key.clone()))
        .collect();
    assert_eq!(
        stored, fake,
        "global ids and local keys as plex.tv reports them"
    );
    drop(tx);

    let unknown = plex_admin::add_server(&app.app, &admin(), owner, "Beta")
        .await
        .unwrap_err();
    assert!(unknown.to_string().contains("it owns: Alpha"), "{unknown}");
    let twice = plex_admin::add_server(&app.app, &admin(), owner, &machine)
        .await
        .unwrap_err();
    assert!(
        matches!(twice, AdminError::ServerAlreadyAdded(_)),
        "{twice}"
    );
}

async fn a_library_sync_keeps_groups_and_follows_the_server(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (_, server, machine) = owner_with_server(&app).await;
    let group = plex_admin::create_group(&app.app, &admin(), "Standard", false)
        .await
        .unwrap();
    let mut tx = app.app.db.begin().await.unwrap();
    let libraries = servers::find_libraries(&mut tx, server).await.unwrap();
    drop(tx);
    let movies = libraries.iter().find(|l| l.title == "Movies").unwrap();
    plex_admin::assign_library(&app.app, &admin(), movies.id, Some(group))
        .await
        .unwrap();

    let four_k = libraries.iter().find(|l| l.title == "4K").unwrap();
    app.plex.remove_library(&machine, &four_k.local_key);
    app.plex.add_library(&machine, "Music", "artist");
    let synced = plex_admin::sync_libraries(&app.app, &admin(), server)
        .await
        .unwrap();
    assert_eq!((synced.added, synced.kept, synced.removed), (1, 2, 1));

    let mut tx = app.app.db.begin().await.unwrap();
    let after = servers::find_libraries(&mut tx, server).await.unwrap();
    let titles: Vec<_> = after.iter().map(|l| l.title.as_str()).collect();
    assert_eq!(titles, ["Movies", "TV", "Music"]);
    assert_eq!(
        after[0].group_id,
        Some(group),
        "the group stays with the library"
    );
    drop(tx);

    let missing = plex_admin::assign_library(&app.app, &admin(), LibraryId::new(999_999), None)
        .await
        .unwrap_err();
    assert!(matches!(missing, AdminError::NoSuchLibrary(_)), "{missing}");
}

async fn server_flags_change_and_bad_capacity_changes_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (_, server, _) = owner_with_server(&app).await;
    let too_many = ServerFlags {
        max_users: Some(120),
        enabled: Some(false),
        ..ServerFlags::default()
    };
    let err = plex_admin::set_server_flags(&app.app, &admin(), server, &too_many)
        .await
        .unwrap_err();
    assert!(matches!(err, AdminError::BadCapacity), "{err}");

    let flags = ServerFlags {
        allow_new_subscriptions: Some(false),
        allow_trials: Some(true),
        max_users: Some(80),
        location: Some("EU".into()),
        ..ServerFlags::default()
    };
    plex_admin::set_server_flags(&app.app, &admin(), server, &flags)
        .await
        .unwrap();
    let mut tx = app.app.db.begin().await.unwrap();
    let row = servers::find_server(&mut tx, server)
        .await
        .unwrap()
        .unwrap();
    assert!(row.enabled, "the refused change left `enabled` alone");
    assert!(!row.allow_new_subscriptions && row.allow_trials);
    assert_eq!((row.max_users, row.location.as_deref()), (80, Some("EU")));
    drop(tx);

    let clear = ServerFlags {
        location: Some(String::new()),
        ..ServerFlags::default()
    };
    plex_admin::set_server_flags(&app.app, &admin(), server, &clear)
        .await
        .unwrap();
    let mut tx = app.app.db.begin().await.unwrap();
    assert_eq!(
        servers::find_server(&mut tx, server)
            .await
            .unwrap()
            .unwrap()
            .location,
        None
    );
    drop(tx);
    let none = plex_admin::set_server_flags(&app.app, &admin(), ServerId::new(4242), &clear)
        .await
        .unwrap_err();
    assert!(matches!(none, AdminError::NoSuchServer(_)), "{none}");
}

async fn removing_an_owner_account_ends_its_shares_and_keeps_subscribers(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (owner, server, _) = owner_with_server(&app).await;
    let now = app.clock.now();
    let mut tx = app.app.db.begin().await.unwrap();
    let mut kept = Vec::new();
    for n in 0..3u64 {
        let sub =
            subscribers::insert_subscriber(&mut tx, DiscordId::new(5000 + n).unwrap(), "sub", now)
                .await
                .unwrap();
        let email = PlexEmail::parse(&format!("viewer{n}@example.com")).unwrap();
        let identity = subscribers::insert_identity(
            &mut tx,
            sub,
            &usher::store::subscribers::AccountKeys::email(&email),
            now,
        )
        .await
        .unwrap();
        let share = shares::insert_share(&mut tx, sub, server, identity, ShareState::Accepted, now)
            .await
            .unwrap();
        kept.push((sub, share));
    }
    tx.commit().await.unwrap();

    let removed = plex_admin::remove_owner_account(&app.app, &admin(), owner, false)
        .await
        .unwrap();
    assert_eq!(removed.shares_removed, 3);
    let mut tx = app.app.db.begin().await.unwrap();
    for (sub, share) in &kept {
        assert_eq!(
            shares::find_share_state(&mut tx, *share).await.unwrap(),
            Some(usher::domain::ShareState::Removed)
        );
        assert!(
            subscribers::find_active_identity(&mut tx, *sub)
                .await
                .unwrap()
                .is_some(),
            "identity kept"
        );
    }
    let row = servers::find_server(&mut tx, server)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((row.owner_state.as_str(), row.users), ("removed", 0));
    drop(tx);

    let again = plex_admin::remove_owner_account(&app.app, &admin(), owner, false)
        .await
        .unwrap_err();
    assert!(
        matches!(again, AdminError::AccountNotActive { .. }),
        "{again}"
    );
    let sync = plex_admin::sync_libraries(&app.app, &admin(), server)
        .await
        .unwrap_err();
    assert!(
        matches!(sync, AdminError::AccountNotActive { .. }),
        "a removed account is never called: {sync}"
    );
}

async fn plans_are_created_with_their_groups_and_names_stay_unique(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let standard = plex_admin::create_group(&app.app, &admin(), "Standard", false)
        .await
        .unwrap();
    let uhd = plex_admin::create_group(&app.app, &admin(), "4K", false)
        .await
        .unwrap();
    let dup = plex_admin::create_group(&app.app, &admin(), " Standard ", false)
        .await
        .unwrap_err();
    assert!(matches!(dup, AdminError::GroupExists(_)), "{dup}");
    let spec = PlanSpec {
        name: "Premium".into(),
        price: Money::parse("12.50", Currency::parse("usd").unwrap()).unwrap(),
        period: BillingPeriod::Month,
        max_streams: 4,
        trial: false,
        groups: vec![standard.into(), uhd.into()],
    };
    let plan = plex_admin::create_plan(&app.app, &admin(), &spec)
        .await
        .unwrap();
    let mut tx = app.app.db.begin().await.unwrap();
    assert_eq!(
        servers::find_plan_groups(&mut tx, plan).await.unwrap(),
        vec![standard, uhd]
    );
    drop(tx);
    let again = plex_admin::create_plan(&app.app, &admin(), &spec)
        .await
        .unwrap_err();
    assert!(matches!(again, AdminError::PlanExists(_)), "{again}");
    let zero = PlanSpec {
        name: "Zero".into(),
        max_streams: 0,
        ..spec
    };
    assert!(matches!(
        plex_admin::create_plan(&app.app, &admin(), &zero).await,
        Err(AdminError::BadStreams)
    ));
}

crate::on_both_backends!(
    adding_an_owner_account_tests_the_token_and_stores_it_sealed,
    a_token_plex_refuses_is_not_stored,
    a_server_is_added_by_name_with_its_global_library_ids,
    a_library_sync_keeps_groups_and_follows_the_server,
    server_flags_change_and_bad_capacity_changes_nothing,
    removing_an_owner_account_ends_its_shares_and_keeps_subscribers,
    plans_are_created_with_their_groups_and_names_stay_unique,
    groups_and_plans_can_be_edited_and_plan_groups_update_live_shares,
);

async fn groups_and_plans_can_be_edited_and_plan_groups_update_live_shares(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (_, server, _) = owner_with_server(&app).await;
    let standard = plex_admin::create_group(&app.app, &admin(), "Standard", false)
        .await
        .unwrap();
    let uhd = plex_admin::create_group(&app.app, &admin(), "UHD", false)
        .await
        .unwrap();
    plex_admin::edit_group(&app.app, &admin(), uhd, Some("4K"), None)
        .await
        .unwrap();
    let clash = plex_admin::edit_group(&app.app, &admin(), uhd, Some("Standard"), None)
        .await
        .unwrap_err();
    assert!(matches!(clash, AdminError::GroupExists(_)), "{clash}");
    let missing = plex_admin::edit_group(
        &app.app,
        &admin(),
        usher::domain::LibraryGroupId::new(999),
        Some("X"),
        None,
    )
    .await
    .unwrap_err();
    assert!(matches!(missing, AdminError::NoSuchGroup(_)), "{missing}");

    let mut tx = app.app.db.begin().await.unwrap();
    let libraries = servers::find_libraries(&mut tx, server).await.unwrap();
    drop(tx);
    for library in &libraries {
        let group = if library.title == "4K" { uhd } else { standard };
        plex_admin::assign_library(&app.app, &admin(), library.id, Some(group))
            .await
            .unwrap();
    }
    let spec = PlanSpec {
        name: "Basic".into(),
        price: Money::parse("5", Currency::parse("EUR").unwrap()).unwrap(),
        period: BillingPeriod::Month,
        max_streams: 1,
        trial: false,
        groups: vec![standard.into()],
    };
    let plan = plex_admin::create_plan(&app.app, &admin(), &spec)
        .await
        .unwrap();
    // One subscriber on the plan with an invited share.
    let now = app.clock.now();
    let mut tx = app.app.db.begin().await.unwrap();
    let sub = subscribers::insert_subscriber(&mut tx, DiscordId::new(77).unwrap(), "sub", now)
        .await
        .unwrap();
    subscribers::update_subscriber_plan(&mut tx, sub, Some(plan), now)
        .await
        .unwrap();
    let identity = subscribers::insert_identity(
        &mut tx,
        sub,
        &usher::store::subscribers::AccountKeys::email(&PlexEmail::parse("v@example.com").unwrap()),
        now,
    )
    .await
    .unwrap();
    let share = shares::insert_share(&mut tx, sub, server, identity, ShareState::Pending, now)
        .await
        .unwrap();
    shares::update_share_invited(&mut tx, share, 123, ShareState::Pending, now)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let renamed = plex_admin::PlanEdit {
        name: Some("Basic+".into()),
        max_streams: Some(2),
        ..Default::default()
    };
    assert_eq!(
        plex_admin::edit_plan(&app.app, &admin(), plan, &renamed)
            .await
            .unwrap(),
        0,
        "no group change, no share update"
    );
    let regrouped = plex_admin::PlanEdit {
        groups: Some(vec![standard.into(), uhd.into()]),
        ..Default::default()
    };
    assert_eq!(
        plex_admin::edit_plan(&app.app, &admin(), plan, &regrouped)
            .await
            .unwrap(),
        1
    );
    let mut tx = app.app.db.begin().await.unwrap();
    assert_eq!(
        servers::find_plan_groups(&mut tx, plan).await.unwrap(),
        vec![standard, uhd]
    );
    drop(tx);
    let queued = store::jobs::count_by_state(&app.app.db).await.unwrap();
    assert_eq!(
        queued,
        vec![(usher::domain::JobState::Queued, 1)],
        "one share update queued with the change"
    );
    let bad = plex_admin::PlanEdit {
        max_streams: Some(0),
        ..Default::default()
    };
    assert!(matches!(
        plex_admin::edit_plan(&app.app, &admin(), plan, &bad).await,
        Err(AdminError::BadStreams)
    ));
    let none = plex_admin::edit_plan(&app.app, &admin(), PlanId::new(4040), &renamed)
        .await
        .unwrap_err();
    assert!(matches!(none, AdminError::NoSuchPlan(_)), "{none}");
}
