//! Ban recovery through the services: flagged subscribers move to new, verified Plex accounts and
//! are re-invited; every refusal changes nothing.

use usher::clock::Clock as _;
use usher::domain::{Actor, DiscordId, PlexEmail, ShareState, SubscriberId, VerificationCode};
use usher::services::account_change;
use usher::services::plex_admin;
use usher::services::proofs::ProofError;
use usher::services::settings::set_plex_account_change;
use usher::store::{servers, shares, subscribers};

use crate::helpers::world::{admin, after_a_ban, code_for, drain, owner_with_servers};
use crate::helpers::{Backend, TestApp};

async fn request_rows(app: &TestApp) -> i64 {
    let mut tx = app.app.db.begin().await.unwrap();
    usher::on_tx!(&mut tx, |c| sqlx::query_scalar(
        "SELECT COUNT(*) FROM proof_request"
    )
    .fetch_one(c)
    .await
    .unwrap())
}

async fn flagged_subscribers_move_to_new_accounts_and_are_reinvited_across_new_servers(
    backend: Backend,
) {
    let app = TestApp::spawn(backend).await;
    let world = after_a_ban(&app, 50).await;
    for (i, (sub, _)) in world.subscribers.iter().enumerate() {
        let new_email = format!("fresh{i}@example.com");
        app.plex.add_user_account(&new_email);
        let actor = Actor::Subscriber(*sub);
        account_change::request_change(
            &app.app,
            &actor,
            *sub,
            &PlexEmail::parse(&new_email).unwrap(),
        )
        .await
        .unwrap();
        let code = code_for(&app, &new_email);
        let applied = account_change::verify_change(&app.app, &actor, *sub, &code)
            .await
            .unwrap();
        assert!(applied.server.is_some(), "placed on a new server");
    }
    drain(&app).await;

    let mut per_server = std::collections::BTreeMap::new();
    for (i, (sub, old_email)) in world.subscribers.iter().enumerate() {
        let new_email = format!("fresh{i}@example.com");
        let on_plex = app.plex.shares_for_email(&new_email);
        assert_eq!(on_plex.len(), 1, "{new_email} invited once");
        *per_server
            .entry(on_plex[0].machine_identifier.clone())
            .or_insert(0) += 1;
        let mut tx = app.app.db.begin().await.unwrap();
        let old =
            subscribers::find_identity_by_email(&mut tx, &PlexEmail::parse(old_email).unwrap())
                .await
                .unwrap()
                .unwrap();
        assert_eq!(
            (
                old.state.as_str(),
                old.retire_reason.map(usher::domain::RetireReason::as_str)
            ),
            ("banned", Some("banned"))
        );
        let current = subscribers::find_active_identity(&mut tx, *sub)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(current.email_norm.as_str(), new_email);
        assert!(
            !subscribers::find_subscriber(&mut tx, *sub)
                .await
                .unwrap()
                .unwrap()
                .requires_plex_change
        );
    }
    assert_eq!(
        per_server.values().copied().collect::<Vec<_>>(),
        vec![25, 25],
        "spread over both new servers"
    );
    for (_, old_email) in &world.subscribers {
        assert!(
            app.plex.shares_for_email(old_email).is_empty(),
            "{old_email} keeps no share"
        );
    }
    let mut tx = app.app.db.begin().await.unwrap();
    let retired: i64 = usher::on_tx!(&mut tx, |c| sqlx::query_scalar(
        "SELECT COUNT(*) FROM plex_identity WHERE state <> 'active'"
    )
    .fetch_one(c)
    .await
    .unwrap());
    drop(tx);
    assert_eq!(retired, 50, "every old identity retired for good");

    // Two subscribers accept their invites; reconcile notices; the board shows the progress.
    for i in 0..2 {
        let share = app.plex.shares_for_email(&format!("fresh{i}@example.com"))[0].id;
        assert!(app.plex.accept_invite(share));
    }
    let mut tx = app.app.db.begin().await.unwrap();
    let all_servers = servers::find_servers(&mut tx).await.unwrap();
    drop(tx);
    for server in all_servers {
        usher::services::plex_sync::reconcile_server(&app.app, server.id)
            .await
            .unwrap();
    }
    let board = usher::services::recovery::board(&app.app).await.unwrap();
    assert_eq!(
        (
            board.flagged,
            board.code_sent,
            board.verified,
            board.invited,
            board.accepted,
            board.waiting_for_room
        ),
        (0, 0, 50, 48, 2, 0)
    );
    assert_eq!(board.entries.len(), 50);
}

async fn every_refusal_changes_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let world = after_a_ban(&app, 2).await;
    let (alice, alice_old) = world.subscribers[0].clone();
    let (bob, bob_old) = world.subscribers[1].clone();
    let me = Actor::Subscriber(alice);
    let ask = |email: &str| PlexEmail::parse(email).unwrap();
    app.plex.add_user_account("alice.new@example.com");

    // Setting off.
    set_plex_account_change(&app.app, &admin(), false)
        .await
        .unwrap();
    let off = account_change::request_change(&app.app, &me, alice, &ask("alice.new@example.com"))
        .await
        .unwrap_err();
    assert!(matches!(off, ProofError::Disabled), "{off}");
    assert_eq!(
        off.to_string(),
        "Plex account changes are turned off by the admins"
    );
    set_plex_account_change(&app.app, &admin(), true)
        .await
        .unwrap();
    // Her own current account, in another spelling.
    let same = account_change::request_change(
        &app.app,
        &me,
        alice,
        &ask(&format!("  {}  ", alice_old.to_uppercase())),
    )
    .await
    .unwrap_err();
    assert!(matches!(same, ProofError::SameAsCurrent), "{same}");
    // Bob's account.
    let taken = account_change::request_change(&app.app, &me, alice, &ask(&bob_old))
        .await
        .unwrap_err();
    assert!(matches!(taken, ProofError::InUse), "{taken}");
    // Not a plex.tv account.
    let ghost = account_change::request_change(&app.app, &me, alice, &ask("nobody@example.com"))
        .await
        .unwrap_err();
    assert!(matches!(ghost, ProofError::NotPlexAccount(_)), "{ghost}");
    assert_eq!(request_rows(&app).await, 0, "no request was stored");

    // Bob changes first; his old email is then retired for good, in any spelling.
    app.plex.add_user_account("bob.new@example.com");
    account_change::request_change(
        &app.app,
        &Actor::Subscriber(bob),
        bob,
        &ask("bob.new@example.com"),
    )
    .await
    .unwrap();
    account_change::verify_change(
        &app.app,
        &Actor::Subscriber(bob),
        bob,
        &code_for(&app, "bob.new@example.com"),
    )
    .await
    .unwrap();
    let retired = account_change::request_change(
        &app.app,
        &me,
        alice,
        &ask(&format!(" {}", bob_old.to_uppercase())),
    )
    .await
    .unwrap_err();
    assert!(matches!(retired, ProofError::Retired), "{retired}");

    // Resend limit, expiry, and the lock after five wrong codes.
    account_change::request_change(&app.app, &me, alice, &ask("alice.new@example.com"))
        .await
        .unwrap();
    let again = account_change::request_change(&app.app, &me, alice, &ask("alice.new@example.com"))
        .await
        .unwrap_err();
    assert!(matches!(again, ProofError::ResendTooSoon(_)), "{again}");
    let first = code_for(&app, "alice.new@example.com");
    app.clock.advance(chrono::Duration::minutes(16));
    let late = account_change::verify_change(&app.app, &me, alice, &first)
        .await
        .unwrap_err();
    assert!(matches!(late, ProofError::Expired), "{late}");

    account_change::request_change(&app.app, &me, alice, &ask("alice.new@example.com"))
        .await
        .unwrap();
    let right = code_for(&app, "alice.new@example.com");
    let wrong = VerificationCode::parse(if right.expose_for_delivery() == "000000" {
        "111111"
    } else {
        "000000"
    })
    .unwrap();
    for left in (1..=4).rev() {
        let err = account_change::verify_change(&app.app, &me, alice, &wrong)
            .await
            .unwrap_err();
        assert!(
            matches!(err, ProofError::WrongCode(n) if n == left),
            "{err}"
        );
    }
    let locked = account_change::verify_change(&app.app, &me, alice, &wrong)
        .await
        .unwrap_err();
    assert!(matches!(locked, ProofError::Locked), "{locked}");
    let sixth = account_change::verify_change(&app.app, &me, alice, &right)
        .await
        .unwrap_err();
    assert!(
        matches!(sixth, ProofError::NoPendingRequest),
        "the right code no longer works: {sixth}"
    );
    let board = usher::services::recovery::board(&app.app).await.unwrap();
    assert_eq!(
        (board.flagged, board.code_sent, board.verified),
        (1, 0, 1),
        "Alice flagged, Bob done"
    );

    let mut tx = app.app.db.begin().await.unwrap();
    let current = subscribers::find_active_identity(&mut tx, alice)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        current.email_norm.as_str(),
        alice_old,
        "Alice still has her old identity"
    );
    assert!(
        subscribers::find_subscriber(&mut tx, alice)
            .await
            .unwrap()
            .unwrap()
            .requires_plex_change
    );
    assert!(
        app.plex
            .shares_for_email("alice.new@example.com")
            .is_empty()
    );
}

async fn two_subscribers_racing_for_one_new_email_get_one_winner(backend: Backend) {
    for round in 0..5 {
        let app = TestApp::spawn(backend).await;
        let world = after_a_ban(&app, 2).await;
        let email = format!("shared{round}@example.com");
        app.plex.add_user_account(&email);
        let mut codes = Vec::new();
        for (sub, _) in &world.subscribers {
            account_change::request_change(
                &app.app,
                &Actor::Subscriber(*sub),
                *sub,
                &PlexEmail::parse(&email).unwrap(),
            )
            .await
            .unwrap();
            // Both requests mailed the same address: the newest mail is this subscriber's code.
            codes.push(code_for(&app, &email));
        }
        let (a, b) = (world.subscribers[0].0, world.subscribers[1].0);
        let mut codes = codes.into_iter();
        let race = |sub: SubscriberId, code: VerificationCode| {
            let app = app.app.clone();
            tokio::spawn(async move {
                account_change::verify_change(&app, &Actor::Subscriber(sub), sub, &code).await
            })
        };
        let (ta, tb) = (
            race(a, codes.next().unwrap()),
            race(b, codes.next().unwrap()),
        );
        let (ra, rb) = (ta.await.unwrap(), tb.await.unwrap());
        let wins = [ra.is_ok(), rb.is_ok()].iter().filter(|w| **w).count();
        assert_eq!(
            wins, 1,
            "round {round}: exactly one winner ({ra:?} / {rb:?})"
        );
        let loser = match (ra, rb) {
            (Ok(_), Err(loser)) | (Err(loser), Ok(_)) => loser,
            other => panic!("round {round}: not one winner: {other:?}"),
        };
        assert!(matches!(loser, ProofError::InUse), "round {round}: {loser}");
        assert_eq!(loser.to_string(), "that Plex account is already in use");
    }
}

crate::on_both_backends!(
    flagged_subscribers_move_to_new_accounts_and_are_reinvited_across_new_servers,
    every_refusal_changes_nothing,
    two_subscribers_racing_for_one_new_email_get_one_winner,
    a_bulk_flag_applies_exactly_the_previewed_set_once,
    a_crash_between_the_change_and_the_invite_still_invites_exactly_once,
);

async fn flagged_count(app: &TestApp) -> i64 {
    let mut tx = app.app.db.begin().await.unwrap();
    usher::on_tx!(&mut tx, |c| sqlx::query_scalar(
        "SELECT COUNT(*) FROM subscriber WHERE requires_plex_change"
    )
    .fetch_one(c)
    .await
    .unwrap())
}

async fn a_bulk_flag_applies_exactly_the_previewed_set_once(backend: Backend) {
    use usher::store::bulk_flags::FlagFilter;
    let app = TestApp::spawn(backend).await;
    let group = plex_admin::create_group(&app.app, &admin(), "Standard", false)
        .await
        .unwrap();
    let owner_a = owner_with_servers(&app, "a@example.com", &["A1"], group).await;
    owner_with_servers(&app, "b@example.com", &["B1"], group).await;
    let (a1, b1) = (
        usher::domain::ServerId::new(1),
        usher::domain::ServerId::new(2),
    );
    let now = app.clock.now();
    let add = |n: u64, server| {
        let app = &app;
        async move {
            let mut tx = app.app.db.begin().await.unwrap();
            let sub = subscribers::insert_subscriber(
                &mut tx,
                DiscordId::new(n).unwrap(),
                &format!("user{n}"),
                now,
            )
            .await
            .unwrap();
            let identity = subscribers::insert_identity(
                &mut tx,
                sub,
                &usher::store::subscribers::AccountKeys::email(
                    &PlexEmail::parse(&format!("u{n}@example.com")).unwrap(),
                ),
                now,
            )
            .await
            .unwrap();
            shares::insert_share(&mut tx, sub, server, identity, ShareState::Accepted, now)
                .await
                .unwrap();
            tx.commit().await.unwrap();
        }
    };
    for n in 1..=5 {
        add(n, a1).await;
    }
    for n in 6..=8 {
        add(n, b1).await;
    }

    let everyone = account_change::preview_bulk_flag(&app.app, &admin(), FlagFilter::Everyone)
        .await
        .unwrap();
    assert_eq!(everyone.count, 8);
    assert_eq!(
        account_change::preview_bulk_flag(&app.app, &admin(), FlagFilter::Server(b1))
            .await
            .unwrap()
            .count,
        3
    );

    let preview =
        account_change::preview_bulk_flag(&app.app, &admin(), FlagFilter::OwnerAccount(owner_a))
            .await
            .unwrap();
    assert_eq!(preview.count, 5);
    assert_eq!(
        preview.first_names,
        ["user1", "user2", "user3", "user4", "user5"]
    );
    add(9, a1).await; // joins after the preview: not part of what the admin saw

    let mut forged = preview.token.clone();
    forged.replace_range(
        forged.len() - 2..,
        if forged.ends_with("AA") { "BB" } else { "AA" },
    );
    let err = account_change::confirm_bulk_flag(&app.app, &admin(), &forged)
        .await
        .unwrap_err();
    assert!(
        matches!(err, account_change::BulkFlagError::BadToken),
        "{err}"
    );
    assert_eq!(
        flagged_count(&app).await,
        0,
        "a forged confirmation changes nothing"
    );

    assert_eq!(
        account_change::confirm_bulk_flag(&app.app, &admin(), &preview.token)
            .await
            .unwrap(),
        5
    );
    assert_eq!(flagged_count(&app).await, 5, "exactly the previewed five");
    let twice = account_change::confirm_bulk_flag(&app.app, &admin(), &preview.token)
        .await
        .unwrap_err();
    assert!(
        matches!(twice, account_change::BulkFlagError::Stale),
        "{twice}"
    );

    let late = account_change::preview_bulk_flag(&app.app, &admin(), FlagFilter::Everyone)
        .await
        .unwrap();
    assert_eq!(late.count, 4, "only those not flagged yet");
    app.clock.advance(chrono::Duration::minutes(11));
    let stale = account_change::confirm_bulk_flag(&app.app, &admin(), &late.token)
        .await
        .unwrap_err();
    assert!(
        matches!(stale, account_change::BulkFlagError::Stale),
        "{stale}"
    );
    assert_eq!(flagged_count(&app).await, 5);
}

async fn a_crash_between_the_change_and_the_invite_still_invites_exactly_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let world = after_a_ban(&app, 1).await;
    let (sub, old_email) = world.subscribers[0].clone();
    app.plex.add_user_account("phoenix@example.com");
    let me = Actor::Subscriber(sub);
    account_change::request_change(
        &app.app,
        &me,
        sub,
        &PlexEmail::parse("phoenix@example.com").unwrap(),
    )
    .await
    .unwrap();
    account_change::verify_change(&app.app, &me, sub, &code_for(&app, "phoenix@example.com"))
        .await
        .unwrap();

    // The job runner takes the queued removal and invite (and the notifications) and dies
    // before doing any of them.
    let mut claimed = Vec::new();
    while let Some(job) = app.app.queue.claim().await.unwrap() {
        claimed.push(job.kind);
    }
    claimed.sort();
    assert_eq!(
        claimed,
        [
            "notify.deliver",
            "notify.deliver",
            "notify.deliver",
            "plex.invite",
            "plex.remove_share"
        ],
        "old share removal, new invite, the flag DM and the change DM + email were queued"
    );
    assert!(app.plex.shares_for_email("phoenix@example.com").is_empty());

    // After a restart the leases run out and the work is done, once.
    app.clock.advance(chrono::Duration::seconds(
        i64::try_from(app.app.settings.jobs.lease_secs).unwrap() + 1,
    ));
    drain(&app).await;
    assert_eq!(app.plex.shares_for_email("phoenix@example.com").len(), 1);
    assert!(app.plex.shares_for_email(&old_email).is_empty());
    app.clock.advance(chrono::Duration::days(1));
    drain(&app).await;
    assert_eq!(
        app.plex.shares_for_email("phoenix@example.com").len(),
        1,
        "exactly once"
    );
}
