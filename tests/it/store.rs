//! Rules the database itself keeps, on both backends: one Plex identity per normalised email,
//! ever; retired identities stay retired; owner tokens are stored only encrypted.

use secrecy::ExposeSecret as _;
use usher::clock::Clock as _;
use usher::domain::{DiscordId, PlexEmail, RetireReason, SubscriberId};
use usher::store::{self, Tx, is_unique_violation, owner_accounts, subscribers};

use crate::helpers::{Backend, TestApp};

async fn subscriber(app: &TestApp, tx: &mut Tx, discord: u64) -> SubscriberId {
    let id = DiscordId::new(discord).unwrap();
    subscribers::insert_subscriber(tx, id, &format!("user{discord}"), app.clock.now())
        .await
        .unwrap()
}

async fn an_email_in_other_case_and_spacing_is_the_same_identity(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let spelled = PlexEmail::parse(" Foo@Example.COM ").unwrap();
    let plain = PlexEmail::parse("foo@example.com").unwrap();
    assert_eq!(spelled, plain);

    let mut tx = app.app.db.begin().await.unwrap();
    let alice = subscriber(&app, &mut tx, 1001).await;
    let bob = subscriber(&app, &mut tx, 1002).await;
    subscribers::insert_identity(
        &mut tx,
        alice,
        &usher::store::subscribers::AccountKeys::email(&spelled),
        app.clock.now(),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();

    let mut tx = app.app.db.begin().await.unwrap();
    let err = subscribers::insert_identity(
        &mut tx,
        bob,
        &usher::store::subscribers::AccountKeys::email(&plain),
        app.clock.now(),
    )
    .await
    .unwrap_err();
    assert!(is_unique_violation(&err), "{err}");
    drop(tx);

    let mut tx = app.app.db.begin().await.unwrap();
    let found = subscribers::find_identity_by_email(&mut tx, &plain)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (found.subscriber_id, found.email_norm.as_str()),
        (alice, "foo@example.com")
    );
}

async fn a_retired_identity_can_never_be_active_again(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let email = PlexEmail::parse("old@example.com").unwrap();
    let mut tx = app.app.db.begin().await.unwrap();
    let alice = subscriber(&app, &mut tx, 2001).await;
    let bob = subscriber(&app, &mut tx, 2002).await;
    let identity = subscribers::insert_identity(
        &mut tx,
        alice,
        &usher::store::subscribers::AccountKeys {
            email: &email,
            plex_user_id: Some(77),
            username: None,
        },
        app.clock.now(),
    )
    .await
    .unwrap();
    assert!(
        subscribers::update_identity_retired(
            &mut tx,
            identity,
            RetireReason::Changed,
            app.clock.now()
        )
        .await
        .unwrap()
    );
    tx.commit().await.unwrap();

    // Not as a new row, for the same subscriber or anyone else, however it is spelled.
    for (who, spelling) in [(alice, "old@example.com"), (bob, "  OLD@Example.com")] {
        let mut tx = app.app.db.begin().await.unwrap();
        let again = PlexEmail::parse(spelling).unwrap();
        let err = subscribers::insert_identity(
            &mut tx,
            who,
            &usher::store::subscribers::AccountKeys::email(&again),
            app.clock.now(),
        )
        .await
        .unwrap_err();
        assert!(is_unique_violation(&err), "{spelling}: {err}");
    }
    // Not by flipping the state back in SQL: the database refuses.
    let mut tx = app.app.db.begin().await.unwrap();
    let revive = "UPDATE plex_identity SET state = 'active', retire_reason = NULL, retired_at = NULL WHERE id = $1";
    let err = usher::on_tx!(&mut tx, |c| sqlx::query(revive)
        .bind(identity.get())
        .execute(c)
        .await
        .map(|_| ()))
    .unwrap_err();
    assert!(
        err.to_string().contains("can never be active again"),
        "{err}"
    );
    drop(tx);
    // Nor by writing a non-normalised spelling past the domain type.
    let mut tx = app.app.db.begin().await.unwrap();
    let raw = "INSERT INTO plex_identity (subscriber_id, email_norm, state, created_at) VALUES ($1, $2, 'active', $3)";
    let err = usher::on_tx!(&mut tx, |c| sqlx::query(raw)
        .bind(bob.get())
        .bind(" Old@Example.com")
        .bind(app.clock.now())
        .execute(c)
        .await
        .map(|_| ()))
    .unwrap_err();
    assert!(err.as_database_error().is_some(), "{err}");
    drop(tx);

    let mut tx = app.app.db.begin().await.unwrap();
    let row = subscribers::find_identity_by_email(&mut tx, &email)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            row.state.as_str(),
            row.retire_reason.map(usher::domain::RetireReason::as_str)
        ),
        ("retired", Some("changed"))
    );
    assert!(
        subscribers::find_active_identity(&mut tx, alice)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        subscribers::find_active_identity(&mut tx, bob)
            .await
            .unwrap()
            .is_none()
    );
}

async fn an_owner_token_is_not_readable_in_the_database(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    // The owner's token goes in through the service an admin uses, which tests it on plex.tv and
    // seals it; the store only ever sees what the service hands it.
    let token = app.plex.add_owner("owner@example.com");
    let admin = usher::domain::Actor::Admin(DiscordId::new(900).unwrap());
    let id = usher::services::plex_admin::add_owner_account(
        &app.app,
        &admin,
        &secrecy::SecretString::from(token.clone()),
    )
    .await
    .unwrap()
    .id;
    let token = token.as_str();

    let mut tx = app.app.db.begin().await.unwrap();
    let sealed = owner_accounts::find_token_enc(&mut tx, id)
        .await
        .unwrap()
        .unwrap();
    assert!(!sealed.contains(token));
    assert_eq!(
        app.app.cipher.decrypt(&sealed).unwrap().expose_secret(),
        token
    );
    drop(tx);

    if backend == Backend::Sqlite {
        // Every byte on disk: the database file and its write-ahead log.
        let dir = &app.app.settings.data_dir;
        let mut bytes = std::fs::read(dir.join("usher.db")).unwrap();
        bytes.extend(std::fs::read(dir.join("usher.db-wal")).unwrap_or_default());
        assert!(
            bytes.windows(token.len()).all(|w| w != token.as_bytes()),
            "token found in the SQLite files"
        );
        assert!(
            bytes.windows(sealed.len()).any(|w| w == sealed.as_bytes()),
            "the sealed token is what is stored"
        );
    }
}

async fn runtime_settings_are_written_once_or_replaced(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut tx = app.app.db.begin().await.unwrap();
    let now = app.clock.now();
    assert_eq!(
        store::settings::insert_setting_once(&mut tx, "client_id", "first", now)
            .await
            .unwrap(),
        "first"
    );
    assert_eq!(
        store::settings::insert_setting_once(&mut tx, "client_id", "second", now)
            .await
            .unwrap(),
        "first"
    );
    store::settings::upsert_setting(&mut tx, "plex_account_change", "on", now)
        .await
        .unwrap();
    store::settings::upsert_setting(&mut tx, "plex_account_change", "off", now)
        .await
        .unwrap();
    assert_eq!(
        store::settings::find_setting(&mut tx, "plex_account_change")
            .await
            .unwrap()
            .as_deref(),
        Some("off")
    );
}

async fn an_open_read_never_blocks_a_writer(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut reader = app.app.db.read().await.unwrap();
    assert!(
        store::settings::find_setting(&mut reader, "client_id")
            .await
            .unwrap()
            .is_none()
    );
    // With the reader still open, a write transaction starts, writes and commits (a reader
    // holding SQLite's writer lock would make this fail on the busy timeout).
    let mut writer = app.app.db.begin().await.unwrap();
    store::settings::upsert_setting(&mut writer, "client_id", "x", app.clock.now())
        .await
        .unwrap();
    writer.commit().await.unwrap();
    reader.rollback().await.unwrap();
    let mut check = app.app.db.read().await.unwrap();
    assert_eq!(
        store::settings::find_setting(&mut check, "client_id")
            .await
            .unwrap()
            .as_deref(),
        Some("x")
    );
}

crate::on_both_backends!(
    an_open_read_never_blocks_a_writer,
    an_email_in_other_case_and_spacing_is_the_same_identity,
    a_retired_identity_can_never_be_active_again,
    an_owner_token_is_not_readable_in_the_database,
    runtime_settings_are_written_once_or_replaced,
);
