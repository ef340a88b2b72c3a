//! The admins' hand tools through the Discord door (issue 15): a cash customer added with
//! `/admin user add` is invited, reminded and expires on schedule, and one transaction id is
//! recorded once; `/admin user plan` converts the time left at the plans' daily prices and the
//! share follows the new plan's libraries on plex.tv; `/admin users list` pages over more than a
//! thousand subscribers with every filter; every hand tool refuses a member who is not an admin
//! and writes nothing. Jobs and the scheduler's tick run when the test says, on the manual clock.

use std::time::Duration as StdDuration;

use chrono::Duration;
use serde_json::{Value, json};
use usher::clock::Clock as _;
use usher::domain::{
    Actor, BillingPeriod, Currency, DiscordId, Money, PlanId, PlexEmail, ServerId, SubscriberId,
};
use usher::fakes::discord::{Callback, FakeDiscord, FakeUser, InteractionHandle};
use usher::jobs::AppDispatch;
use usher::services::members::{self, NewMember, Standing};
use usher::services::plex_admin::{self, PlanSpec};
use usher::services::{account_change, settings};
use usher::store::{self, servers, subscribers::MemberFilter};

use crate::helpers::world::{admin, owner_with_servers};
use crate::helpers::{Backend, TestApp};

const GUILD: u64 = 1_200_000_000_000_000_001;
const ROLE: u64 = 5_000;
const ADMIN_ROLE: u64 = 4_242;
const WAIT: StdDuration = StdDuration::from_secs(15);

struct Tools {
    discord: FakeDiscord,
    app: TestApp,
    admin: FakeUser,
    /// Main's machine id and row id.
    main: String,
    main_id: ServerId,
    basic: PlanId,
    premium: PlanId,
}

/// Server "Main" (Movies and TV in the Standard group, 4K in the Extra group), the Basic plan
/// (10 USD a month: Standard) and the Premium plan (20 USD a month: Standard and Extra),
/// reminders 3 and 1 days before the end, roles configured, the bot connected. Jobs run only when
/// the test runs them.
async fn tools(backend: Backend) -> Tools {
    let discord = FakeDiscord::start().await;
    discord.add_guild_role(GUILD, ROLE);
    let app = TestApp::spawn_with_discord(backend, &discord, |s| {
        s.discord.guild_ids = vec![GUILD];
        s.discord.admin_role_ids = vec![ADMIN_ROLE];
        s.discord.subscriber_guild_id = Some(GUILD);
        s.discord.subscriber_role_ids = vec![ROLE];
    })
    .await;
    let standard = plex_admin::create_group(&app.app, &admin(), "Standard", false)
        .await
        .unwrap();
    let extra = plex_admin::create_group(&app.app, &admin(), "Extra", false)
        .await
        .unwrap();
    let plan = |name: &str, price: &str, groups: Vec<usher::domain::LibraryGroupId>| PlanSpec {
        name: name.into(),
        price: Money::parse(price, Currency::parse("USD").unwrap()).unwrap(),
        period: BillingPeriod::Month,
        max_streams: 2,
        trial: false,
        groups: groups.into_iter().map(Into::into).collect(),
    };
    let basic = plex_admin::create_plan(&app.app, &admin(), &plan("Basic", "10", vec![standard]))
        .await
        .unwrap();
    let premium = plex_admin::create_plan(
        &app.app,
        &admin(),
        &plan("Premium", "20", vec![standard, extra]),
    )
    .await
    .unwrap();
    owner_with_servers(&app, "owner@example.com", &["Main"], standard).await;
    let (main_id, main) = {
        let mut tx = app.app.db.read().await.unwrap();
        let row = servers::find_servers(&mut tx).await.unwrap().remove(0);
        (row.id, row.machine_id)
    };
    app.plex.add_library(&main, "4K", "movie");
    plex_admin::sync_libraries(&app.app, &admin(), main_id)
        .await
        .unwrap();
    let four_k = {
        let mut tx = app.app.db.read().await.unwrap();
        servers::find_libraries(&mut tx, main_id)
            .await
            .unwrap()
            .into_iter()
            .find(|l| l.title == "4K")
            .unwrap()
            .id
    };
    plex_admin::assign_library(&app.app, &admin(), four_k, Some(extra))
        .await
        .unwrap();
    let lifecycle = settings::SettingsChange {
        reminder_days: Some("3,1".into()),
        share_grace_days: Some(7),
        ..settings::SettingsChange::default()
    };
    settings::change(&app.app, &admin(), &lifecycle)
        .await
        .unwrap();
    let admin_user = FakeUser::new(900, "owner").with_roles(&[ADMIN_ROLE]);
    discord.add_member(GUILD, &admin_user);
    let _bot = app.start_bot();
    assert!(discord.wait_registered(WAIT).await, "commands registered");
    Tools {
        discord,
        app,
        admin: admin_user,
        main,
        main_id,
        basic,
        premium,
    }
}

fn said(callback: &Callback) -> String {
    callback.data["content"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

fn buttons(body: &Value) -> Vec<(String, bool)> {
    body["components"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|row| row["components"].as_array().into_iter().flatten())
        .filter_map(|c| {
            c["custom_id"]
                .as_str()
                .map(|id| (id.to_owned(), c["disabled"].as_bool().unwrap_or(false)))
        })
        .collect()
}

impl Tools {
    /// `/admin <group> <sub> …options` as `user`.
    fn admin_as(
        &self,
        user: &FakeUser,
        group: &str,
        sub: &str,
        options: &Value,
    ) -> InteractionHandle {
        self.discord.slash(
            user,
            Some(GUILD),
            "admin",
            json!([{"type": 2, "name": group, "options": [
                {"type": 1, "name": sub, "options": options}
            ]}]),
        )
    }

    /// The text the admin's command ends with (after a deferral, its follow-up).
    async fn admin_says(&self, group: &str, sub: &str, options: &Value) -> String {
        self.says_as(&self.admin.clone(), group, sub, options).await
    }

    async fn says_as(&self, user: &FakeUser, group: &str, sub: &str, options: &Value) -> String {
        let handle = self.admin_as(user, group, sub, options);
        let first = handle.response().await;
        if first.kind == 5 {
            let reply = handle.try_next_message(WAIT).await.expect("a follow-up");
            reply.content().unwrap_or_default().to_owned()
        } else {
            said(&first)
        }
    }

    /// Runs every due job without moving the clock; fails when one is left dead or parked.
    async fn run_jobs(&self) {
        let dispatch = AppDispatch::new(self.app.app.clone());
        while self.app.app.queue.run_due(&dispatch).await.unwrap() > 0 {}
        let counts = store::jobs::count_by_state(&self.app.app.db).await.unwrap();
        assert!(
            !counts
                .iter()
                .any(|(s, _)| matches!(s.as_str(), "dead" | "parked" | "running")),
            "no job failed: {counts:?}"
        );
    }

    /// Moves the clock, then the scheduler's tick and the jobs it queued.
    async fn at(&self, by: Duration) {
        self.app.clock.advance(by);
        usher::scheduler::tick(&self.app.app).await.unwrap();
        self.run_jobs().await;
    }

    fn has_role(&self, user: u64) -> bool {
        self.discord
            .member_roles(GUILD, user)
            .unwrap_or_default()
            .contains(&ROLE)
    }

    fn dms(&self, user: u64, needle: &str) -> usize {
        self.discord
            .messages_to(user)
            .iter()
            .filter(|m| m.content.contains(needle))
            .count()
    }

    fn mails(&self, to: &str, needle: &str) -> usize {
        let Ok(dir) = std::fs::read_dir(self.app.app.settings.outbox_dir()) else {
            return 0;
        };
        dir.map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
            .filter(|m| m.contains(&format!("To: {to}")) && m.contains(needle))
            .count()
    }

    async fn count(&self, sql: &str) -> i64 {
        let mut tx = self.app.app.db.read().await.unwrap();
        usher::on_tx!(&mut tx, |c| sqlx::query_scalar(sql)
            .fetch_one(c)
            .await
            .unwrap())
    }

    async fn paid_end(&self, who: SubscriberId) -> Option<chrono::DateTime<chrono::Utc>> {
        let mut tx = self.app.app.db.read().await.unwrap();
        usher::services::payments::paid_end_in(&mut tx, who)
            .await
            .unwrap()
    }

    async fn subscriber(&self, discord: u64) -> SubscriberId {
        let mut tx = self.app.app.db.read().await.unwrap();
        store::subscribers::find_id_by_discord(&mut tx, DiscordId::new(discord).unwrap())
            .await
            .unwrap()
            .expect("a subscriber")
    }

    fn member(&self, id: u64, name: &str) -> FakeUser {
        let user = FakeUser::new(id, name);
        self.discord.add_member(GUILD, &user);
        self.app
            .plex
            .add_user_account(&format!("{name}@example.com"));
        user
    }

    fn sorted_libraries(&self, ids: &[u64]) -> Vec<String> {
        let mut names: Vec<String> = ids
            .iter()
            .map(|id| self.app.plex.library(*id).expect("a seeded library").title)
            .collect();
        names.sort();
        names
    }
}

/// What a database holds that a refused tool could have written.
async fn footprint(t: &Tools) -> (i64, i64, i64, i64, i64) {
    (
        t.count("SELECT COUNT(*) FROM subscriber").await,
        t.count("SELECT COUNT(*) FROM payment").await,
        t.count("SELECT COUNT(*) FROM share").await,
        t.count("SELECT COUNT(*) FROM job").await,
        t.count("SELECT COUNT(*) FROM subscriber WHERE permanent")
            .await,
    )
}

async fn a_cash_customer_is_invited_reminded_and_expires_on_schedule(backend: Backend) {
    let t = tools(backend).await;
    let hana = t.member(500, "hana");
    let start = t.app.clock.now();
    let added = t
        .admin_says(
            "user",
            "add",
            &json!([
                {"type": 6, "name": "member", "value": "500"},
                {"type": 3, "name": "plex_email", "value": "Hana@Example.com"},
                {"type": 3, "name": "plan", "value": t.basic.to_string()},
                {"type": 4, "name": "days", "value": 30},
                {"type": 3, "name": "transaction", "value": "cash-0001"},
                {"type": 3, "name": "amount", "value": "10"},
                {"type": 3, "name": "contact_email", "value": "hana.mail@example.com"}
            ]),
        )
        .await;
    assert!(
        added.starts_with("Added **hana** (hana@example.com)"),
        "{added}"
    );
    assert!(added.contains("their Plex invite is on its way"), "{added}");
    let hana_id = t.subscriber(500).await;
    let end = start + Duration::days(30);
    assert_eq!(t.paid_end(hana_id).await, Some(end));
    assert_eq!(
        t.count(
            "SELECT COUNT(*) FROM payment WHERE provider = 'manual' AND provider_txn_id = 'cash-0001' \
             AND amount_minor = 1000"
        )
        .await,
        1
    );

    // Invited on plex.tv with Basic's libraries, the role given, told where.
    t.run_jobs().await;
    let shares = t.app.plex.shares_for_email("hana@example.com");
    assert_eq!(shares.len(), 1);
    assert_eq!(shares[0].machine_identifier, t.main);
    assert_eq!(t.sorted_libraries(&shares[0].library_ids), ["Movies", "TV"]);
    assert!(t.has_role(500));
    assert_eq!(t.dms(500, "Main"), 1, "{:?}", t.discord.messages_to(500));

    // The same transaction entered again: refused by name, nothing written — on a payment and
    // on a new customer alike.
    let before = footprint(&t).await;
    let again = t
        .admin_says(
            "user",
            "pay",
            &json!([
                {"type": 6, "name": "user", "value": "500"},
                {"type": 4, "name": "days", "value": 30},
                {"type": 3, "name": "transaction", "value": "cash-0001"}
            ]),
        )
        .await;
    assert!(again.contains("cash-0001"), "{again}");
    assert!(again.to_lowercase().contains("already"), "{again}");
    t.member(501, "ivy");
    let other = t
        .admin_says(
            "user",
            "add",
            &json!([
                {"type": 6, "name": "member", "value": "501"},
                {"type": 3, "name": "plex_email", "value": "ivy@example.com"},
                {"type": 3, "name": "plan", "value": t.basic.to_string()},
                {"type": 4, "name": "days", "value": 30},
                {"type": 3, "name": "transaction", "value": "cash-0001"}
            ]),
        )
        .await;
    assert!(other.contains("cash-0001"), "{other}");
    assert_eq!(footprint(&t).await, before);
    assert_eq!(t.paid_end(hana_id).await, Some(end));

    // Reminded 3 and 1 days before the end, by DM and by mail to the contact address.
    t.at(end - Duration::days(3) + Duration::minutes(30) - t.app.clock.now())
        .await;
    assert_eq!(t.dms(500, "ends in **3 days**"), 1);
    assert_eq!(
        t.mails(
            "hana.mail@example.com",
            "Subject: Your subscription ends in 3 days"
        ),
        1
    );
    t.at(Duration::days(2)).await;
    assert_eq!(t.dms(500, "ends in **1 day**"), 1);

    // Expires on schedule: access removed on plex.tv, the role taken, told.
    t.at(end - t.app.clock.now() - Duration::minutes(5)).await;
    assert_eq!(
        t.app.plex.shares_for_email("hana@example.com").len(),
        1,
        "not yet"
    );
    t.at(Duration::minutes(35)).await;
    assert!(t.app.plex.shares_for_email("hana@example.com").is_empty());
    assert!(!t.has_role(500));
    assert_eq!(t.dms(500, "subscription ended"), 1);

    // Every hand tool refuses a member who is not an admin, and nothing changes.
    let before = footprint(&t).await;
    let tries: [(&str, &str, Value); 8] = [
        (
            "user",
            "add",
            json!([
                {"type": 6, "name": "member", "value": "500"},
                {"type": 3, "name": "plex_email", "value": "hana@example.com"},
                {"type": 3, "name": "plan", "value": "1"},
                {"type": 4, "name": "days", "value": 30}
            ]),
        ),
        (
            "user",
            "pay",
            json!([
                {"type": 6, "name": "user", "value": "500"},
                {"type": 4, "name": "days", "value": 365}
            ]),
        ),
        (
            "user",
            "permanent",
            json!([
                {"type": 6, "name": "user", "value": "500"},
                {"type": 5, "name": "on", "value": true}
            ]),
        ),
        (
            "user",
            "plan",
            json!([
                {"type": 6, "name": "user", "value": "500"},
                {"type": 3, "name": "plan", "value": t.premium.to_string()}
            ]),
        ),
        (
            "user",
            "remove",
            json!([{"type": 6, "name": "user", "value": "500"}]),
        ),
        (
            "user",
            "reinvite",
            json!([{"type": 6, "name": "user", "value": "500"}]),
        ),
        (
            "user",
            "link",
            json!([
                {"type": 6, "name": "member", "value": "500"},
                {"type": 3, "name": "plex_email", "value": "hana@example.com"}
            ]),
        ),
        ("users", "list", json!([])),
    ];
    for (group, sub, options) in &tries {
        let refused = t.says_as(&hana, group, sub, options).await;
        assert_eq!(refused, usher::commands::NOT_ADMIN, "/admin {group} {sub}");
    }
    t.run_jobs().await;
    assert_eq!(footprint(&t).await, before);
    assert_eq!(t.paid_end(hana_id).await, Some(end));
    assert!(t.app.plex.shares_for_email("hana@example.com").is_empty());
}

async fn a_plan_change_converts_the_time_left_and_the_share_follows(backend: Backend) {
    let t = tools(backend).await;
    t.member(510, "jack");
    let added = t
        .admin_says(
            "user",
            "add",
            &json!([
                {"type": 6, "name": "member", "value": "510"},
                {"type": 3, "name": "plex_email", "value": "jack@example.com"},
                {"type": 3, "name": "plan", "value": t.basic.to_string()},
                {"type": 4, "name": "days", "value": 20}
            ]),
        )
        .await;
    assert!(added.starts_with("Added **jack**"), "{added}");
    t.run_jobs().await;
    let jack = t.subscriber(510).await;
    let now = t.app.clock.now();
    assert_eq!(t.paid_end(jack).await, Some(now + Duration::days(20)));
    let share = &t.app.plex.shares_for_email("jack@example.com")[0];
    assert_eq!(t.sorted_libraries(&share.library_ids), ["Movies", "TV"]);

    // 20 days left on 10 a month, to 20 a month: 10 days. Shown first, applied on Confirm.
    let handle = t.admin_as(
        &t.admin,
        "user",
        "plan",
        &json!([
            {"type": 6, "name": "user", "value": "510"},
            {"type": 3, "name": "plan", "value": t.premium.to_string()}
        ]),
    );
    let preview = handle.response().await;
    let text = said(&preview);
    let (old, new) = (now + Duration::days(20), now + Duration::days(10));
    assert!(
        text.contains(&format!(
            "<t:{}:f> → <t:{}:f>",
            old.timestamp(),
            new.timestamp()
        )),
        "{text}"
    );
    assert!(text.contains("**Basic** to **Premium**"), "{text}");
    assert_eq!(t.paid_end(jack).await, Some(old), "nothing applied yet");
    let confirm = buttons(&preview.data)
        .into_iter()
        .find(|(id, _)| id.starts_with("usher:pc-ok:"))
        .expect("a Confirm button")
        .0;
    let clicked = t.discord.click(&t.admin, Some(GUILD), &confirm, None);
    let done = clicked.response().await;
    let done_text = if done.kind == 6 {
        clicked
            .try_next_message(WAIT)
            .await
            .unwrap()
            .content()
            .unwrap_or_default()
            .to_owned()
    } else {
        said(&done)
    };
    assert!(done_text.contains("Premium"), "{done_text}");
    assert_eq!(t.paid_end(jack).await, Some(new));
    assert_eq!(
        t.count(&format!(
            "SELECT COUNT(*) FROM subscriber WHERE id = {jack} AND plan_id = {}",
            t.premium
        ))
        .await,
        1
    );
    t.run_jobs().await;
    let shares = t.app.plex.shares_for_email("jack@example.com");
    assert_eq!(shares.len(), 1, "the same share, updated");
    assert_eq!(shares[0].id, share.id);
    assert_eq!(
        t.sorted_libraries(&shares[0].library_ids),
        ["4K", "Movies", "TV"]
    );

    // The same confirmation again changes nothing.
    let replay = t.discord.click(&t.admin, Some(GUILD), &confirm, None);
    let replayed = replay.response().await;
    let replay_text = if replayed.kind == 6 {
        replay
            .try_next_message(WAIT)
            .await
            .unwrap()
            .content()
            .unwrap_or_default()
            .to_owned()
    } else {
        said(&replayed)
    };
    assert!(
        replay_text.contains("expired or was already used")
            || replay_text.contains("on that plan already"),
        "{replay_text}"
    );
    assert_eq!(t.paid_end(jack).await, Some(new));
}

async fn every_hand_tool_refusal_names_what_is_wrong_and_writes_nothing(backend: Backend) {
    let t = tools(backend).await;
    t.member(520, "kim");
    t.member(521, "lee");
    let add = |plex: &str, extra: Value| {
        let mut options = vec![
            json!({"type": 6, "name": "member", "value": "521"}),
            json!({"type": 3, "name": "plex_email", "value": plex}),
        ];
        options.extend(extra.as_array().unwrap().iter().cloned());
        Value::Array(options)
    };
    // kim is a subscriber with a recorded transaction.
    let kim = t
        .admin_says(
            "user",
            "add",
            &json!([
                {"type": 6, "name": "member", "value": "520"},
                {"type": 3, "name": "plex_email", "value": "kim@example.com"},
                {"type": 3, "name": "plan", "value": t.basic.to_string()},
                {"type": 4, "name": "days", "value": 30},
                {"type": 3, "name": "transaction", "value": "bank-77"}
            ]),
        )
        .await;
    assert!(kim.starts_with("Added **kim**"), "{kim}");
    t.run_jobs().await;
    let before = footprint(&t).await;
    let plan = t.basic.to_string();
    let cases: Vec<(&str, &str, Value, &str)> = vec![
        (
            "user",
            "add",
            add(
                "not an email",
                json!([{"type": 3, "name": "plan", "value": plan}, {"type": 4, "name": "days", "value": 30}]),
            ),
            "not an email",
        ),
        (
            "user",
            "add",
            add(
                "nobody@example.com",
                json!([{"type": 3, "name": "plan", "value": plan}, {"type": 4, "name": "days", "value": 30}]),
            ),
            "no plex.tv account for nobody@example.com",
        ),
        (
            "user",
            "add",
            add(
                "kim@example.com",
                json!([{"type": 3, "name": "plan", "value": plan}, {"type": 4, "name": "days", "value": 30}]),
            ),
            "already in use",
        ),
        (
            "user",
            "add",
            add(
                "lee@example.com",
                json!([{"type": 3, "name": "plan", "value": "99"}, {"type": 4, "name": "days", "value": 30}]),
            ),
            "no plan #99",
        ),
        (
            "user",
            "add",
            add(
                "lee@example.com",
                json!([{"type": 3, "name": "plan", "value": plan}, {"type": 4, "name": "days", "value": 0}]),
            ),
            "at least 1 (it was 0)",
        ),
        (
            "user",
            "add",
            add(
                "lee@example.com",
                json!([{"type": 3, "name": "plan", "value": plan}, {"type": 4, "name": "days", "value": -5}]),
            ),
            "at least 1 (it was -5)",
        ),
        (
            "user",
            "add",
            add(
                "lee@example.com",
                json!([{"type": 3, "name": "plan", "value": plan}, {"type": 3, "name": "until", "value": "2020-01-01"}]),
            ),
            "not in the future",
        ),
        (
            "user",
            "add",
            add(
                "lee@example.com",
                json!([{"type": 3, "name": "plan", "value": plan}, {"type": 3, "name": "until", "value": "next week"}]),
            ),
            "not a date like 2026-12-31",
        ),
        (
            "user",
            "add",
            add(
                "lee@example.com",
                json!([{"type": 3, "name": "plan", "value": plan}, {"type": 4, "name": "days", "value": 30}, {"type": 5, "name": "permanent", "value": true}]),
            ),
            "exactly one of days, until or permanent",
        ),
        (
            "user",
            "add",
            add(
                "lee@example.com",
                json!([{"type": 3, "name": "plan", "value": plan}, {"type": 4, "name": "days", "value": 30}, {"type": 3, "name": "amount", "value": "lots"}]),
            ),
            "`lots` is not a price",
        ),
        (
            "user",
            "add",
            add(
                "lee@example.com",
                json!([{"type": 3, "name": "plan", "value": plan}, {"type": 4, "name": "days", "value": 30}, {"type": 3, "name": "transaction", "value": "bank-77"}]),
            ),
            "bank-77 is recorded already",
        ),
        (
            "user",
            "add",
            json!([
                {"type": 6, "name": "member", "value": "520"},
                {"type": 3, "name": "plex_email", "value": "lee@example.com"},
                {"type": 3, "name": "plan", "value": plan},
                {"type": 4, "name": "days", "value": 30}
            ]),
            "is a subscriber already",
        ),
        (
            "user",
            "pay",
            json!([{"type": 6, "name": "user", "value": "521"}, {"type": 4, "name": "days", "value": 30}]),
            "lee is not a subscriber",
        ),
        (
            "user",
            "pay",
            json!([{"type": 6, "name": "user", "value": "520"}, {"type": 4, "name": "days", "value": 0}]),
            "at least 1",
        ),
        (
            "user",
            "pay",
            json!([{"type": 6, "name": "user", "value": "520"}, {"type": 3, "name": "until", "value": "2020-01-01"}]),
            "not in the future",
        ),
    ];
    for (group, sub, options, wanted) in &cases {
        let text = t.admin_says(group, sub, options).await;
        assert!(
            text.to_lowercase().contains(&wanted.to_lowercase()),
            "/admin {group} {sub} {options}: {text}"
        );
        assert_eq!(footprint(&t).await, before, "{wanted}: nothing written");
    }
}

/// One listing through Discord: the title's total and page count, then every page by Next,
/// returning the subscriber ids shown in order.
async fn walk(t: &Tools, options: &Value) -> (String, Vec<i64>) {
    let first = t
        .admin_as(&t.admin, "users", "list", options)
        .response()
        .await;
    let title = first.data["embeds"][0]["title"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let mut ids = Vec::new();
    let mut body = first.data.clone();
    let mut pages = 0;
    loop {
        pages += 1;
        let text = body["embeds"][0]["description"]
            .as_str()
            .unwrap_or_default();
        for line in text.lines().filter(|l| l.starts_with('`')) {
            let id = line[1..].split('`').next().unwrap();
            ids.push(id.parse().unwrap());
        }
        let page_buttons = buttons(&body);
        assert_eq!(page_buttons.len(), 2, "Previous and Next");
        assert_eq!(
            page_buttons[0].1,
            pages == 1,
            "Previous is off on page 1 only"
        );
        let (next, last) = page_buttons[1].clone();
        if last {
            break;
        }
        let click = t.discord.click(&t.admin, Some(GUILD), &next, None);
        let update = click.response().await;
        assert_eq!(update.kind, 7, "the page updates in place");
        body = update.data;
        assert!(pages < 100, "too many pages");
    }
    (title, ids)
}

async fn the_users_list_pages_over_a_thousand_subscribers_with_every_filter(backend: Backend) {
    // 1,010 subscribers added by hand: a quarter paid 3 days, a quarter 10 days, a quarter 60
    // days, a quarter permanent; even ones on Basic, odd on Premium; every tenth flagged.
    const N: u64 = 1_010;
    let t = tools(backend).await;
    for i in 0..N {
        let name = format!("m{i:04}");
        t.app.plex.add_user_account(&format!("{name}@example.com"));
        let standing = match i % 4 {
            0 => Standing::Days(3),
            1 => Standing::Days(10),
            2 => Standing::Days(60),
            _ => Standing::Permanent,
        };
        let new = NewMember {
            member: DiscordId::new(10_000 + i).unwrap(),
            name: name.clone(),
            plex_email: PlexEmail::parse(&format!("{name}@example.com")).unwrap(),
            contact_email: None,
            plan: if i % 2 == 0 { t.basic } else { t.premium },
            standing,
            transaction: None,
            amount: None,
            note: None,
        };
        let added = members::add_member(&t.app.app, &admin(), &new)
            .await
            .unwrap();
        if i % 10 == 0 {
            account_change::set_flag(&t.app.app, &Actor::System, added.subscriber, true)
                .await
                .unwrap();
        }
    }
    // Five days on: the 3-day ones have expired, the 10-day ones end within 7 days.
    t.app.clock.advance(Duration::days(5));
    let capacity = {
        let mut tx = t.app.app.db.read().await.unwrap();
        servers::find_servers(&mut tx).await.unwrap()[0].max_users
    };
    let quarter = |r: u64| (0..N).filter(|i| i % 4 == r).count();
    let placed = usize::try_from(capacity).unwrap();
    let cases: Vec<(Value, MemberFilter, usize)> = vec![
        (json!([]), MemberFilter::All, 1_010),
        (
            json!([{"type": 4, "name": "filter", "value": 1}, {"type": 4, "name": "days", "value": 7}]),
            MemberFilter::ExpiringWithin(7),
            quarter(1),
        ),
        (
            json!([{"type": 4, "name": "filter", "value": 2}]),
            MemberFilter::Expired,
            quarter(0),
        ),
        (
            json!([{"type": 4, "name": "filter", "value": 6}]),
            MemberFilter::Flagged,
            101,
        ),
        (
            json!([{"type": 4, "name": "filter", "value": 3}]),
            MemberFilter::Unclaimed,
            0,
        ),
        (
            json!([{"type": 4, "name": "filter", "value": 4}]),
            MemberFilter::Trial,
            0,
        ),
        (
            json!([{"type": 4, "name": "filter", "value": 5}]),
            MemberFilter::WaitingForRoom,
            1_010 - placed,
        ),
        (
            json!([{"type": 3, "name": "plan", "value": t.premium.to_string()}]),
            MemberFilter::Plan(t.premium),
            505,
        ),
        (
            json!([{"type": 3, "name": "server", "value": t.main_id.to_string()}]),
            MemberFilter::Server(t.main_id),
            placed,
        ),
    ];
    let now = t.app.clock.now();
    for (options, filter, expected) in cases {
        let (title, ids) = walk(&t, &options).await;
        let pages = expected.div_ceil(20).max(1);
        assert_eq!(
            title,
            format!("{expected} subscribers · page 1 of {pages}"),
            "{filter:?}"
        );
        assert_eq!(ids.len(), expected, "{filter:?}: every one shown once");
        let mut distinct = ids.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), expected, "{filter:?}: no one twice");
        // Soonest paid end first (permanent last), checked against each one's own paid end.
        let mut ends = Vec::new();
        for id in &ids {
            let who = SubscriberId::new(*id);
            let permanent = t
                .count(&format!(
                    "SELECT COUNT(*) FROM subscriber WHERE id = {id} AND permanent"
                ))
                .await
                == 1;
            let end = t.paid_end(who).await;
            match filter {
                MemberFilter::ExpiringWithin(7) => {
                    let end = end.unwrap();
                    assert!(end > now && end <= now + Duration::days(7), "{id}");
                }
                MemberFilter::Expired => assert!(!permanent && end.unwrap() <= now, "{id}"),
                MemberFilter::Flagged => assert_eq!((id - 1) % 10, 0, "{id}"),
                MemberFilter::Plan(_) => assert_eq!((id - 1) % 2, 1, "{id}"),
                _ => {}
            }
            ends.push((permanent, end));
        }
        assert!(
            ends.windows(2)
                .all(|w| w[0] <= w[1] || w[1].0 || w[0].1.is_none()),
            "{filter:?}: sorted by paid end"
        );
    }
}

crate::on_both_backends!(
    a_cash_customer_is_invited_reminded_and_expires_on_schedule,
    a_plan_change_converts_the_time_left_and_the_share_follows,
    every_hand_tool_refusal_names_what_is_wrong_and_writes_nothing,
    the_users_list_pages_over_a_thousand_subscribers_with_every_filter,
);
