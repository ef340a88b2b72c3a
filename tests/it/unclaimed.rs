//! Imported subscribers who have not claimed yet hear by email (issue 14): their reminders go to
//! their Plex email, a DM to them is recorded as undeliverable with the reason, and the flag
//! notice is an email with a one-time My Account link that works once, for 24 hours, and opens the
//! page where they change their Plex account.

use chrono::Duration;
use reqwest::StatusCode;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use usher::domain::{Actor, BillingPeriod, Currency, Money};
use usher::services::import::{self, PlexImportOptions};
use usher::services::members::Standing;
use usher::services::plex_admin::{self, PlanSpec};
use usher::services::{account_change, settings};

use crate::helpers::world::{admin, owner_with_servers};
use crate::helpers::{Backend, TestApp};

/// Mails in the outbox to `to` that contain `needle`.
fn mails(app: &TestApp, to: &str, needle: &str) -> Vec<String> {
    let Ok(dir) = std::fs::read_dir(app.app.settings.outbox_dir()) else {
        return Vec::new();
    };
    dir.map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .filter(|m| m.contains(&format!("To: {to}")) && m.contains(needle))
        .collect()
}

async fn count(app: &TestApp, sql: &str) -> i64 {
    let mut tx = app.app.db.read().await.unwrap();
    usher::on_tx!(&mut tx, |c| sqlx::query_scalar(sql)
        .fetch_one(c)
        .await
        .unwrap())
}

async fn tick(app: &TestApp, by: Duration) {
    app.clock.advance(by);
    usher::scheduler::tick(&app.app).await.unwrap();
    app.drain_jobs(200).await;
}

/// The sign-in link in a mail's text part, as a path on the test server (the mail names the
/// public URL). The outbox holds the mail as sent: quoted-printable soft line breaks are joined
/// and `=3D` read as `=`, as a mail reader does.
fn link_path(mail: &str) -> String {
    let decoded = mail
        .replace("=\r\n", "")
        .replace("=\n", "")
        .replace("=3D", "=");
    let at = decoded
        .find("/account/login?token=")
        .expect("a sign-in link in the mail");
    decoded[at..]
        .split(|c: char| c.is_whitespace() || c == '"' || c == '<')
        .next()
        .unwrap()
        .to_owned()
}

async fn an_unclaimed_subscriber_hears_by_email_with_a_one_time_link(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let group = plex_admin::create_group(&app.app, &admin(), "Standard", false)
        .await
        .unwrap();
    plex_admin::create_plan(
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
    owner_with_servers(&app, "owner@example.com", &["Main"], group).await;
    let machine = app.plex.all_servers()[0].machine_identifier.clone();
    let libraries: Vec<u64> = app
        .plex
        .libraries_of(&machine)
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    app.plex
        .seed_share(&machine, "friend@example.com", Some(&libraries), true);
    let reminders = settings::SettingsChange {
        reminder_days: Some("3".into()),
        ..settings::SettingsChange::default()
    };
    settings::change(&app.app, &admin(), &reminders)
        .await
        .unwrap();

    // Imported, paid 10 days, never claimed: no Discord member.
    let options = PlexImportOptions {
        owner: None,
        server: None,
        default_plan: None,
        standing: Standing::Days(10),
    };
    let preview = import::preview_plex_import(&app.app, &admin(), &options)
        .await
        .unwrap();
    import::confirm_import(&app.app, &admin(), &preview.token, &|_| {})
        .await
        .unwrap();
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM subscriber WHERE discord_id IS NULL AND contact_email IS NULL"
        )
        .await,
        1
    );

    // The 3-day reminder goes to their Plex email; the DM is recorded as undeliverable, why.
    tick(&app, Duration::days(7) + Duration::hours(1)).await;
    assert_eq!(
        mails(
            &app,
            "friend@example.com",
            "Subject: Your subscription ends in 3 days"
        )
        .len(),
        1
    );
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM notification WHERE kind = 'reminder' AND channel = 'dm' \
             AND state = 'undeliverable' AND error LIKE '%unclaimed%'"
        )
        .await,
        1
    );

    // Flagged: an email with a one-time link to My Account, no DM.
    let subscriber = usher::domain::SubscriberId::new(1);
    account_change::set_flag(&app.app, &Actor::System, subscriber, true)
        .await
        .unwrap();
    app.drain_jobs(200).await;
    let flag_mails = mails(
        &app,
        "friend@example.com",
        "Subject: Your Plex account must change",
    );
    assert_eq!(flag_mails.len(), 1);
    assert!(flag_mails[0].contains("within 24 hours"));
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM notification WHERE kind = 'flagged' AND channel = 'dm'"
        )
        .await,
        0
    );
    let path = link_path(&flag_mails[0]);

    // 23 hours later the link still opens My Account, once.
    app.clock.advance(Duration::hours(23));
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let opened = http.get(app.url(&path)).send().await.unwrap();
    assert_eq!(opened.status(), StatusCode::SEE_OTHER);
    assert_eq!(opened.headers()[LOCATION], "/account");
    let cookie = opened.headers()[SET_COOKIE]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let page = http
        .get(app.url("/account"))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(html.contains("Your Plex account must change"), "{html}");
    assert!(html.contains("friend@example.com"));
    let again = http.get(app.url(&path)).send().await.unwrap();
    assert_ne!(again.status(), StatusCode::SEE_OTHER, "a link works once");
    assert!(again.headers().get(SET_COOKIE).is_none());
}

async fn a_flag_link_expires_after_24_hours(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let group = plex_admin::create_group(&app.app, &admin(), "Standard", false)
        .await
        .unwrap();
    owner_with_servers(&app, "owner@example.com", &["Main"], group).await;
    let machine = app.plex.all_servers()[0].machine_identifier.clone();
    app.plex
        .seed_share(&machine, "late@example.com", None, true);
    let options = PlexImportOptions {
        owner: None,
        server: None,
        default_plan: None,
        standing: Standing::Permanent,
    };
    let preview = import::preview_plex_import(&app.app, &admin(), &options)
        .await
        .unwrap();
    import::confirm_import(&app.app, &admin(), &preview.token, &|_| {})
        .await
        .unwrap();
    account_change::set_flag(
        &app.app,
        &Actor::System,
        usher::domain::SubscriberId::new(1),
        true,
    )
    .await
    .unwrap();
    app.drain_jobs(200).await;
    let flag_mails = mails(
        &app,
        "late@example.com",
        "Subject: Your Plex account must change",
    );
    assert_eq!(flag_mails.len(), 1);
    let path = link_path(&flag_mails[0]);
    app.clock
        .advance(Duration::hours(24) + Duration::minutes(1));
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let late = http.get(app.url(&path)).send().await.unwrap();
    assert_ne!(late.status(), StatusCode::SEE_OTHER);
    assert!(late.headers().get(SET_COOKIE).is_none());
}

crate::on_both_backends!(
    an_unclaimed_subscriber_hears_by_email_with_a_one_time_link,
    a_flag_link_expires_after_24_hours,
);
