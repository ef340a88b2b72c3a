//! The everyday lifecycle on the clock, both backends: payments → invite and role → reminders 3 and
//! 1 days before the end → expiry (access removed on plex.tv within the hour, role taken) → the
//! share deleted after the grace days; a renewal before the end cancels the removal, a renewal
//! after it gives the access back on the same server, a subscriber renewing automatically gets no
//! reminder. Time moves only by the manual clock; the scheduler's tick and the job queue run as in
//! production, driven by the test.

use chrono::Duration;
use usher::clock::Clock as _;
use usher::domain::{BillingPeriod, Currency, DiscordId, Money, PlexEmail, Provider, SubscriberId};
use usher::fakes::discord::{FakeDiscord, FakeUser};
use usher::jobs::AppDispatch;
use usher::services::payments::{self, Paid, PaymentEvent};
use usher::services::plex_admin::{self, PlanSpec};
use usher::services::settings;
use usher::store::{self, subscribers};

use crate::helpers::world::{admin, owner_with_servers};
use crate::helpers::{Backend, TestApp};

const GUILD: u64 = 1_200_000_000_000_000_001;
const ROLE: u64 = 5_000;
const GRACE_DAYS: i64 = 7;

struct Life {
    app: TestApp,
    discord: FakeDiscord,
    machine: String,
}

/// One server "Alpha" on an active owner, the Standard plan (monthly), roles configured, and the
/// named subscribers (Discord user 100 + i, Plex email `<name>@example.com`, guild members).
async fn life(backend: Backend, names: &[&str]) -> (Life, Vec<SubscriberId>) {
    let discord = FakeDiscord::start().await;
    discord.add_guild_role(GUILD, ROLE);
    let app = TestApp::spawn_with_discord(backend, &discord, |s| {
        s.discord.subscriber_guild_id = Some(GUILD);
        s.discord.subscriber_role_ids = vec![ROLE];
    })
    .await;
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
    owner_with_servers(&app, "owner@example.com", &["Alpha"], group).await;
    let machine = {
        let mut tx = app.app.db.read().await.unwrap();
        let servers = store::servers::find_servers(&mut tx).await.unwrap();
        servers[0].machine_id.clone()
    };
    let lifecycle = settings::SettingsChange {
        reminder_days: Some("3,1".into()),
        share_grace_days: Some(GRACE_DAYS),
        ..settings::SettingsChange::default()
    };
    settings::change(&app.app, &admin(), &lifecycle)
        .await
        .unwrap();
    let now = app.clock.now();
    let mut ids = Vec::new();
    let mut tx = app.app.db.begin().await.unwrap();
    for (i, name) in (0_u64..).zip(names) {
        let email = format!("{name}@example.com");
        app.plex.add_user_account(&email);
        discord.add_member(GUILD, &FakeUser::new(100 + i, name));
        let sub =
            subscribers::insert_subscriber(&mut tx, DiscordId::new(100 + i).unwrap(), name, now)
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
        usher::on_tx!(&mut tx, |c| sqlx::query(
            "UPDATE subscriber SET contact_email = $1 WHERE id = $2"
        )
        .bind(format!("{name}.mail@example.com"))
        .bind(sub.get())
        .execute(c)
        .await
        .map(drop)
        .unwrap());
        ids.push(sub);
    }
    tx.commit().await.unwrap();
    (
        Life {
            app,
            discord,
            machine,
        },
        ids,
    )
}

/// A USD 8 payment by `email` (matched by it), as a provider webhook would bring it.
fn paid_by_email(txn: impl Into<String>, email: String) -> PaymentEvent {
    let amount = Money::new(800, Currency::parse("USD").unwrap());
    let mut paid = Paid::new(txn, amount, crate::helpers::epoch());
    paid.payer_email = Some(email);
    PaymentEvent::Paid(paid)
}

impl Life {
    /// A payment for `name`'s Plex email, as a provider webhook would bring it (matched by email).
    async fn pay(&self, name: &str, txn: &str) {
        let event = paid_by_email(txn.to_owned(), format!("{name}@example.com"));
        payments::process(
            &self.app.app,
            Provider::Stripe,
            &format!("evt_{txn}"),
            "invoice.paid",
            vec![event],
        )
        .await
        .unwrap();
        self.run_jobs().await;
    }

    /// Runs every due job without moving the clock; fails when a job is left to retry later.
    async fn run_jobs(&self) {
        let dispatch = AppDispatch::new(self.app.app.clone());
        while self.app.app.queue.run_due(&dispatch).await.unwrap() > 0 {}
        let counts = store::jobs::count_by_state(&self.app.app.db).await.unwrap();
        assert!(
            !counts.iter().any(|(s, _)| s.as_str() == "queued"
                || s.as_str() == "running"
                || s.as_str() == "dead"
                || s.as_str() == "parked"),
            "every job finished: {counts:?}"
        );
    }

    /// The clock's distance to `target`.
    fn until(&self, target: chrono::DateTime<chrono::Utc>) -> Duration {
        target - self.app.clock.now()
    }

    /// Moves the clock, then runs the scheduler's tick and the jobs it queued, as the running
    /// service does every minute.
    async fn at(&self, by: Duration) {
        self.app.clock.advance(by);
        usher::scheduler::tick(&self.app.app).await.unwrap();
        self.run_jobs().await;
    }

    fn plex_shares(&self, name: &str) -> usize {
        self.app
            .plex
            .shares_for_email(&format!("{name}@example.com"))
            .len()
    }

    fn has_role(&self, i: u64) -> bool {
        self.discord
            .member_roles(GUILD, 100 + i)
            .unwrap()
            .contains(&ROLE)
    }

    fn dms(&self, i: u64, needle: &str) -> usize {
        self.dms_to(100 + i, needle)
    }

    fn dms_to(&self, user: u64, needle: &str) -> usize {
        self.discord
            .messages_to(user)
            .iter()
            .filter(|m| m.content.contains(needle))
            .count()
    }

    fn mails(&self, name: &str, needle: &str) -> usize {
        let Ok(dir) = std::fs::read_dir(self.app.app.settings.outbox_dir()) else {
            return 0;
        };
        dir.map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
            .filter(|m| m.contains(&format!("To: {name}.mail@example.com")) && m.contains(needle))
            .count()
    }

    async fn share_rows(&self, who: SubscriberId) -> Vec<(String, bool)> {
        let mut tx = self.app.app.db.read().await.unwrap();
        usher::on_tx!(&mut tx, |c| sqlx::query_as(
            "SELECT state, suspended_at IS NOT NULL FROM share WHERE subscriber_id = $1 ORDER BY id"
        )
        .bind(who.get())
        .fetch_all(c)
        .await
        .unwrap())
    }

    async fn users_on_alpha(&self) -> i64 {
        let mut tx = self.app.app.db.read().await.unwrap();
        let rows = store::servers::find_servers(&mut tx).await.unwrap();
        rows.iter().find(|s| s.name == "Alpha").unwrap().users
    }
}

async fn a_paid_month_runs_its_course_and_renewals_change_it(backend: Backend) {
    // ana lets it lapse; bob renews before the end; cara renews after the removal; dan renews
    // automatically at the provider.
    let (l, ids) = life(backend, &["ana", "bob", "cara", "dan"]).await;
    let [ana, bob, cara, dan] = ids[..] else {
        unreachable!()
    };
    let start = l.app.clock.now();
    for name in ["ana", "bob", "cara", "dan"] {
        l.pay(name, &format!("in_{name}_1")).await;
    }
    let mut tx = l.app.app.db.begin().await.unwrap();
    let link = usher::store::payments::LinkSubscription {
        provider: Provider::Stripe,
        subscription: "sub_dan",
        target: usher::store::payments::Target {
            subscriber: dan,
            plan: usher::domain::PlanId::new(1),
        },
        customer: None,
        status: "active",
        renewing: true,
    };
    usher::store::payments::upsert_provider_subscription(&mut tx, &link, start)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    // Paid → invited on plex.tv, the role given, a receipt DM.
    for (i, name) in ["ana", "bob", "cara", "dan"].iter().enumerate() {
        assert_eq!(l.plex_shares(name), 1, "{name} is invited");
        assert!(l.has_role(i as u64), "{name} has the subscriber role");
        assert_eq!(
            l.dms(i as u64, "We received **8.00 USD**"),
            1,
            "{name}'s receipt"
        );
    }
    assert_eq!(l.users_on_alpha().await, 4);
    let end = start + Duration::days(31); // March has 31 days.

    // 3 days before the end: not yet half an hour before the mark, then once after it.
    l.at(l.until(end - Duration::days(3) - Duration::minutes(30)))
        .await;
    assert_eq!(l.dms(0, "ends in"), 0, "no reminder before the 3-day mark");
    l.at(Duration::hours(1)).await;
    for (i, name) in [(0, "ana"), (1, "bob"), (2, "cara")] {
        assert_eq!(
            l.dms(i, "ends in **3 days**"),
            1,
            "{name}'s 3-day reminder DM"
        );
        assert_eq!(
            l.mails(name, "Subject: Your subscription ends in 3 days"),
            1,
            "{name}'s mail"
        );
    }
    assert_eq!(
        l.dms(3, "ends in"),
        0,
        "dan renews automatically: no reminder"
    );
    assert_eq!(l.mails("dan", "ends in"), 0);
    // Later ticks in the same and the next hours add nothing.
    l.at(Duration::minutes(10)).await;
    l.at(Duration::hours(1)).await;
    assert_eq!(l.dms(0, "ends in"), 1, "the 3-day reminder went once");

    // 1 day before the end.
    l.at(l.until(end - Duration::days(1) + Duration::minutes(30)))
        .await;
    for (i, name) in [(0, "ana"), (1, "bob"), (2, "cara")] {
        assert_eq!(
            l.dms(i, "ends in **1 day**"),
            1,
            "{name}'s 1-day reminder DM"
        );
        assert_eq!(
            l.mails(name, "Subject: Your subscription ends in 1 day"),
            1,
            "{name}'s mail"
        );
        assert_eq!(l.dms(i, "ends in"), 2, "{name}: two reminders in all");
    }

    // bob renews half a day before the end.
    l.app.clock.advance(Duration::hours(12));
    l.pay("bob", "in_bob_2").await;

    // Half an hour after the end: ana's and cara's access is removed on plex.tv, their roles
    // taken, an "ended" DM sent; bob keeps everything; dan keeps everything (his renewal came).
    l.app.clock.advance(l.until(end));
    l.pay("dan", "in_dan_2").await;
    l.at(Duration::minutes(30)).await;
    for (i, name, who) in [(0, "ana", ana), (2, "cara", cara)] {
        assert_eq!(
            l.plex_shares(name),
            0,
            "{name}'s share is gone from plex.tv"
        );
        assert_eq!(
            l.share_rows(who).await,
            vec![("pending".into(), true)],
            "{name}'s share is kept, suspended"
        );
        assert!(!l.has_role(i), "{name}'s role is taken");
        assert_eq!(l.dms(i, "subscription ended"), 1, "{name} is told");
    }
    for (i, name, who) in [(1, "bob", bob), (3, "dan", dan)] {
        assert_eq!(l.plex_shares(name), 1, "{name} renewed: access stays");
        assert_eq!(l.share_rows(who).await, vec![("pending".into(), false)]);
        assert!(l.has_role(i), "{name} keeps the role");
        assert_eq!(l.dms(i, "subscription ended"), 0);
    }
    // The place is held: the server still counts four users.
    assert_eq!(l.users_on_alpha().await, 4);
    let ana_status = usher::services::account::status_of(&l.app.app, ana)
        .await
        .unwrap()
        .unwrap();
    assert!(
        !ana_status.active && ana_status.server.is_none(),
        "{ana_status:?}"
    );

    // cara renews two days later: invited again to the same server, the role back.
    l.app.clock.advance(Duration::days(2));
    l.pay("cara", "in_cara_2").await;
    assert_eq!(l.plex_shares("cara"), 1, "cara is invited again");
    assert_eq!(l.app.plex.shares_on_server(&l.machine).len(), 4 - 1);
    assert_eq!(
        l.share_rows(cara).await,
        vec![("pending".into(), false)],
        "the same share row"
    );
    assert!(l.has_role(2), "cara has the role again");

    // The grace days: ana's share row stays until the 7th day after the removal, then goes.
    let removed_at = end + Duration::minutes(30);
    l.at(l.until(removed_at + Duration::days(GRACE_DAYS) - Duration::hours(1)))
        .await;
    assert_eq!(l.share_rows(ana).await, vec![("pending".into(), true)]);
    assert_eq!(l.users_on_alpha().await, 4);
    l.at(Duration::hours(2)).await;
    assert_eq!(
        l.share_rows(ana).await,
        vec![("removed".into(), true)],
        "ana's share is deleted"
    );
    assert_eq!(l.users_on_alpha().await, 3, "her place is free");
    assert_eq!(
        l.share_rows(cara).await,
        vec![("pending".into(), false)],
        "cara's is not"
    );

    // ana paying after the grace days is placed anew (no suspended share is left to restore).
    l.pay("ana", "in_ana_2").await;
    assert_eq!(l.plex_shares("ana"), 1);
    assert!(l.has_role(0));
    // Nothing in all this was sent twice.
    assert_eq!(l.dms(0, "subscription ended"), 1);
    assert_eq!(l.dms(0, "ends in"), 2);
}

/// A reminder queued just before a renewal is not delivered: the delivery sees the end moved.
async fn a_reminder_queued_before_a_renewal_is_dropped(backend: Backend) {
    let (l, ids) = life(backend, &["ana"]).await;
    l.pay("ana", "in_ana_1").await;
    let end = l.app.clock.now() + Duration::days(31);
    l.app.clock.advance(l.until(end - Duration::days(2)));
    let swept = usher::services::lifecycle::sweep(&l.app.app).await.unwrap();
    assert_eq!(swept.reminded, 1, "{swept:?}");
    // The renewal lands before the deliveries run.
    let renewal = paid_by_email("in_ana_2", "ana@example.com".into());
    payments::process(
        &l.app.app,
        Provider::Stripe,
        "evt_2",
        "invoice.paid",
        vec![renewal],
    )
    .await
    .unwrap();
    l.run_jobs().await;
    assert_eq!(l.dms(0, "ends in"), 0, "no reminder after the renewal");
    assert_eq!(l.mails("ana", "ends in"), 0);
    let mut tx = l.app.app.db.read().await.unwrap();
    let states: Vec<(String, String)> = usher::on_tx!(&mut tx, |c| {
        sqlx::query_as(
        "SELECT channel, state FROM notification WHERE kind = 'reminder' AND subscriber_id = $1 ORDER BY channel"
    )
    .bind(ids[0].get())
    .fetch_all(c)
    .await
    .unwrap()
    });
    assert_eq!(
        states,
        [
            ("dm".to_owned(), "undeliverable".to_owned()),
            ("email".to_owned(), "undeliverable".to_owned())
        ]
    );
}

/// A role the bot may not manage parks the role job with the reason (an admin must act), and a
/// subscriber who left the guild is skipped without failing.
async fn role_trouble_parks_with_the_reason_and_leavers_are_skipped(backend: Backend) {
    let (l, _) = life(backend, &["ana"]).await;
    l.discord.lock_role(ROLE);
    let event = paid_by_email("in_ana_1", "ana@example.com".into());
    payments::process(
        &l.app.app,
        Provider::Stripe,
        "evt_1",
        "invoice.paid",
        vec![event],
    )
    .await
    .unwrap();
    let dispatch = AppDispatch::new(l.app.app.clone());
    while l.app.app.queue.run_due(&dispatch).await.unwrap() > 0 {}
    let mut tx = l.app.app.db.read().await.unwrap();
    let parked: Vec<(String, Option<String>)> = usher::on_tx!(&mut tx, |c| sqlx::query_as(
        "SELECT state, last_error FROM job WHERE kind = 'discord.sync_roles'"
    )
    .fetch_all(c)
    .await
    .unwrap());
    drop(tx);
    assert_eq!(parked.len(), 1);
    assert_eq!(parked[0].0, "parked");
    let why = parked[0].1.clone().unwrap();
    assert!(
        why.contains("Manage Roles") && why.contains("Missing Permissions"),
        "{why}"
    );
    assert_eq!(l.plex_shares("ana"), 1, "the invite went out regardless");

    // bob left the guild: his payment's role job finishes without giving anything.
    let (l, ids) = life(backend, &["bob"]).await;
    let mut tx = l.app.app.db.begin().await.unwrap();
    usher::on_tx!(&mut tx, |c| sqlx::query(
        "UPDATE subscriber SET discord_id = 999 WHERE id = $1"
    )
    .bind(ids[0].get())
    .execute(c)
    .await
    .map(drop)
    .unwrap());
    tx.commit().await.unwrap();
    l.discord.add_user(&FakeUser::new(999, "bob-left"));
    l.pay("bob", "in_bob_1").await;
    assert_eq!(l.discord.member_roles(GUILD, 999), None, "not a member");
    let role_calls: Vec<u16> = l
        .discord
        .calls()
        .iter()
        .filter(|c| c.method == "PUT" && c.path.ends_with(&format!("/members/999/roles/{ROLE}")))
        .map(|c| c.status)
        .collect();
    assert_eq!(
        role_calls,
        [404],
        "the role was asked for once and Discord said Unknown Member"
    );
    assert_eq!(l.plex_shares("bob"), 1);
    assert_eq!(l.dms_to(999, "We received"), 1, "the receipt still went");
}

/// Bad lifecycle settings are refused by name and change nothing, not even the good setting
/// named in the same command.
async fn bad_lifecycle_settings_change_nothing(backend: Backend) {
    let (l, _) = life(backend, &[]).await;
    let before = settings::current(&l.app.app).await.unwrap();
    for (days, grace) in [
        (Some("3;1"), None),
        (Some("0"), Some(3)),
        (Some("1,2,3,4,5,6"), None),
        (None, Some(-1)),
        (Some("2"), Some(366)),
        (None, None),
    ] {
        let bad = settings::SettingsChange {
            plex_account_change: (days.is_some() || grace.is_some())
                .then_some(!before.plex_account_change),
            reminder_days: days.map(str::to_owned),
            share_grace_days: grace,
            ..settings::SettingsChange::default()
        };
        let err = settings::change(&l.app.app, &admin(), &bad)
            .await
            .unwrap_err();
        assert!(
            !matches!(err, settings::SettingError::Unexpected(_)),
            "{days:?} {grace:?}: {err}"
        );
        assert_eq!(settings::current(&l.app.app).await.unwrap(), before);
    }
    let good = settings::SettingsChange {
        reminder_days: Some("7, 1".into()),
        share_grace_days: Some(0),
        ..settings::SettingsChange::default()
    };
    let now = settings::change(&l.app.app, &admin(), &good).await.unwrap();
    assert_eq!(now.lifecycle.reminder_days, vec![7, 1]);
    assert_eq!(now.lifecycle.share_grace_days, 0);
    assert_eq!(settings::current(&l.app.app).await.unwrap(), now);
}

crate::on_both_backends!(
    a_paid_month_runs_its_course_and_renewals_change_it,
    a_reminder_queued_before_a_renewal_is_dropped,
    role_trouble_parks_with_the_reason_and_leavers_are_skipped,
    bad_lifecycle_settings_change_nothing,
);
