//! Notifications: every flagged subscriber gets exactly one "must change" DM job, made in batches
//! after a bulk flag; delivery outcomes reach the recovery board.

use usher::clock::Clock as _;
use usher::domain::{DiscordId, SubscriberId};
use usher::services::{account_change, notify, recovery};
use usher::store::bulk_flags::{FlagFilter, SubscriptionState};
use usher::store::subscribers;

use crate::helpers::world::{admin, drain};
use crate::helpers::{Backend, TestApp};

/// Adds subscribers `first..first+n` (Discord ids 1000+i); the first `paid` of them have a paid
/// interval around now.
async fn seed(app: &TestApp, n: u64, paid: u64) -> Vec<SubscriberId> {
    let now = app.clock.now();
    let mut tx = app.app.db.begin().await.unwrap();
    let mut out = Vec::new();
    for i in 0..n {
        let sub = subscribers::insert_subscriber(
            &mut tx,
            DiscordId::new(1000 + i).unwrap(),
            &format!("member{i:05}"),
            now,
        )
        .await
        .unwrap();
        if i < paid {
            let from = now - chrono::Duration::days(3);
            let to = now + chrono::Duration::days(27);
            usher::on_tx!(&mut tx, |c| {
                sqlx::query(
                "INSERT INTO payment (subscriber_id, provider, provider_txn_id, amount_minor, currency, \
                 paid_from, paid_to, status, created_at) VALUES ($1, 'manual', $2, 800, 'USD', $3, $4, 'applied', $5)"
            )
            .bind(sub.get())
            .bind(format!("txn-{i}"))
            .bind(from)
            .bind(to)
            .bind(now)
            .execute(c)
            .await
            .unwrap()
            .rows_affected()
            });
        }
        out.push(sub);
    }
    tx.commit().await.unwrap();
    out
}

async fn scalar(app: &TestApp, sql: &str) -> i64 {
    let mut tx = app.app.db.read().await.unwrap();
    usher::on_tx!(&mut tx, |c| sqlx::query_scalar(sql)
        .fetch_one(c)
        .await
        .unwrap())
}

async fn a_bulk_flag_by_state_notifies_each_flagged_subscriber_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let subs = seed(&app, 1203, 3).await;

    let active = account_change::preview_bulk_flag(
        &app.app,
        &admin(),
        FlagFilter::State(SubscriptionState::Active),
    )
    .await
    .unwrap();
    assert_eq!(active.count, 3, "three are paid for now");
    let inactive = account_change::preview_bulk_flag(
        &app.app,
        &admin(),
        FlagFilter::State(SubscriptionState::Inactive),
    )
    .await
    .unwrap();
    assert_eq!(inactive.count, 1200);
    assert_eq!(inactive.first_names[0], "member00003");

    let flagged = account_change::confirm_bulk_flag(&app.app, &admin(), &inactive.token)
        .await
        .unwrap();
    assert_eq!(flagged, 1200);
    assert_eq!(
        scalar(&app, "SELECT COUNT(*) FROM notification").await,
        0,
        "the confirm itself stays one statement: DMs are made by the fan-out jobs"
    );
    drain(&app).await;
    assert_eq!(
        scalar(
            &app,
            "SELECT COUNT(*) FROM job WHERE kind = 'notify.flag_fanout' AND state = 'done'"
        )
        .await,
        3,
        "1,200 members in batches of 500"
    );
    assert_eq!(
        scalar(
            &app,
            "SELECT COUNT(*) FROM notification WHERE kind = 'flagged' AND channel = 'dm'"
        )
        .await,
        1200
    );
    assert_eq!(
        scalar(
            &app,
            "SELECT COUNT(DISTINCT subscriber_id) FROM notification"
        )
        .await,
        1200,
        "one each"
    );
    // No bot token in this app: nothing can be DMed, and the board says so.
    assert_eq!(
        scalar(
            &app,
            "SELECT COUNT(*) FROM notification WHERE state = 'undeliverable'"
        )
        .await,
        1200
    );
    let board = recovery::board(&app.app).await.unwrap();
    assert_eq!(
        (board.flagged, board.notified, board.dm_failed),
        (1200, 0, 1200)
    );

    // A repeated fan-out (a retried job) adds nothing.
    let preview: i64 = scalar(&app, "SELECT MAX(id) FROM bulk_flag_preview").await;
    notify::fan_out_flagged(&app.app, preview, usher::domain::SubscriberId::new(0))
        .await
        .unwrap();
    drain(&app).await;
    assert_eq!(
        scalar(&app, "SELECT COUNT(*) FROM notification").await,
        1200
    );

    // One flag by hand: one more DM; the same flag again: nothing; unflag and flag: a new one.
    let paid = subs[0];
    assert!(
        account_change::set_flag(&app.app, &admin(), paid, true)
            .await
            .unwrap()
    );
    assert!(
        !account_change::set_flag(&app.app, &admin(), paid, true)
            .await
            .unwrap()
    );
    drain(&app).await;
    assert_eq!(
        scalar(&app, "SELECT COUNT(*) FROM notification").await,
        1201
    );
    assert!(
        account_change::set_flag(&app.app, &admin(), paid, false)
            .await
            .unwrap()
    );
    app.clock.advance(chrono::Duration::seconds(1));
    assert!(
        account_change::set_flag(&app.app, &admin(), paid, true)
            .await
            .unwrap()
    );
    drain(&app).await;
    assert_eq!(
        scalar(&app, "SELECT COUNT(*) FROM notification").await,
        1202
    );
}

crate::on_both_backends!(a_bulk_flag_by_state_notifies_each_flagged_subscriber_once);
