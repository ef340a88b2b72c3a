//! Ban recovery as the seed runs it (issue 13): "How to deal with a ban", steps 1 to 11 in the
//! seed's order, through the real bot over the fake Discord; the seed's warning (a banned Plex
//! account given a new email on plex.tv) refused by code and by Plex sign-in; admin rights only in
//! the home guild; a revoked owner token parking jobs until `/admin plex-account update-token`;
//! an expired subscriber changing account without an invite until they pay; and a proof used once
//! when it is finished twice at once.
//!
//! The world before the ban is built through the services the admins' tools call: cash customers
//! added with `members::add_member` (the service behind `/admin user add`), placed and invited by
//! the real jobs on the fake plex.tv. The runbook's 200 subscribers on two servers are more than
//! Usher would ever seat there (99 a server, Plex's ceiling), so they are written into the store as
//! `world::banned_world` does and invited by the real jobs ([`Seeding::Rows`]). Everything the
//! seed asks of the admin and the subscribers afterwards goes through Discord.

use std::time::Duration;

use futures::future::join_all;
use serde_json::{Value, json};
use usher::clock::Clock as _;
use usher::domain::{
    Actor, BillingPeriod, Currency, DiscordId, LibraryGroupId, Money, PlanId, PlexEmail, ServerId,
    ShareState, SubscriberId,
};
use usher::fakes::discord::{Callback, FakeDiscord, FakeUser, InteractionHandle, Reply};
use usher::jobs::{InviteShare, Job as _};
use usher::services::account_change::{self, SignInOutcome};
use usher::services::members::{self, NewMember, Standing};
use usher::services::plex_admin::{self, PlanSpec};
use usher::services::proofs::ProofError;
use usher::services::settings::set_plex_account_change;
use usher::store::bulk_flags::FlagFilter;

use crate::helpers::world::{admin, code_for, drain, owner_with_servers};
use crate::helpers::{Backend, TestApp};

const HOME: u64 = 1_200_000_000_000_000_001;
const AWAY: u64 = 1_300_000_000_000_000_002;
const ADMIN_ROLE: u64 = 4242;
const WAIT: Duration = Duration::from_secs(30);
const ADMINISTRATOR: u64 = 0x8;
const OLD_OWNER: &str = "old-owner@example.com";
const NEW_OWNER: &str = "new-owner@example.com";
/// What "I've signed in" says when the sign-in watch finished it first.
const SETTLED: &str = "This sign-in is already dealt with";

/// Usher before a ban: one owner account ("old-owner") with the servers "Old A" and "Old B"
/// (Movies and TV in the Standard group), the Standard plan, and `n` cash customers paid for 30
/// days (Discord users 100.., `user{i}`, Plex `old{i}@example.com`) invited by the real jobs; the
/// bot connected and the workers running.
struct Recovery {
    discord: FakeDiscord,
    app: TestApp,
    /// Holds the admin role in the home guild.
    admin: FakeUser,
    /// Where admin alerts go.
    alerts: u64,
    group: LibraryGroupId,
    plan: PlanId,
    /// Machine ids of "Old A" and "Old B".
    old_machines: Vec<String>,
}

/// How the subscribers before the ban got in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seeding {
    /// `members::add_member` (the service of `/admin user add`): a cash customer paid for 30
    /// days, placed and invited by the real jobs. Usher seats at most 99 people on a server (Plex's
    /// ceiling), so this is for up to 190 subscribers on the two old servers.
    Added,
    /// Rows written straight into the store (subscriber, plan, identity, pending share and its
    /// invite job, as `world::banned_world` does), half on each old server, then made permanent
    /// through the service: how 200 people can sit on two servers, which Usher itself would never
    /// seat (they predate it). The invites still go out through the real jobs.
    Rows,
}

async fn before_the_ban(backend: Backend, n: u64) -> Recovery {
    let seeding = if n > 190 {
        Seeding::Rows
    } else {
        Seeding::Added
    };
    let recovery = world_before_the_ban(backend, n, seeding, |_| {}).await;
    let _bot = recovery.app.start_bot();
    assert!(
        recovery.discord.wait_registered(WAIT).await,
        "the bot registered its commands"
    );
    recovery.app.start_workers();
    recovery
}

/// As [`before_the_ban`] without the bot and the workers.
async fn world_before_the_ban(
    backend: Backend,
    n: u64,
    seeding: Seeding,
    tweak: impl FnOnce(&mut usher::config::Settings),
) -> Recovery {
    let discord = FakeDiscord::start().await;
    let alerts = discord.add_guild_channel(HOME, "usher-alerts");
    let app = TestApp::spawn_with_discord(backend, &discord, |s| {
        s.discord.guild_ids = vec![HOME];
        s.discord.admin_role_ids = vec![ADMIN_ROLE];
        s.discord.alert_channel_id = Some(alerts);
        // One owner account seats 150–200 here (plex.tv's own ceiling is about 100 people per
        // account); this test is about the runbook, not seats.
        s.plex.seats_per_account = 10_000;
        tweak(s);
    })
    .await;
    app.plex.set_seats_per_account(10_000);
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
    let old_owner = owner_with_servers(&app, OLD_OWNER, &["Old A", "Old B"], group).await;
    match seeding {
        Seeding::Added => {
            for i in 0..n {
                let email = format!("old{i}@example.com");
                app.plex.add_user_account(&email);
                let added = members::add_member(
                    &app.app,
                    &admin(),
                    &NewMember {
                        member: DiscordId::new(100 + i).unwrap(),
                        name: format!("user{i}"),
                        plex_email: PlexEmail::parse(&email).unwrap(),
                        contact_email: None,
                        plan,
                        standing: Standing::Days(30),
                        transaction: Some(format!("cash-{i}")),
                        amount: Some("8".into()),
                        note: None,
                    },
                )
                .await
                .unwrap();
                assert!(added.server.is_some(), "user{i} was placed");
            }
        }
        Seeding::Rows => seed_rows(&app, n, plan, old_owner).await,
    }
    for i in 0..n {
        discord.add_user(&subscriber(i));
    }
    drain(&app).await;
    assert_eq!(
        app.plex.all_shares().len(),
        usize::try_from(n).unwrap(),
        "everyone is invited before the ban"
    );
    let old_machines = {
        let mut tx = app.app.db.read().await.unwrap();
        let servers = usher::store::servers::find_servers(&mut tx).await.unwrap();
        ["Old A", "Old B"]
            .iter()
            .map(|name| {
                servers
                    .iter()
                    .find(|s| s.name == *name)
                    .unwrap()
                    .machine_id
                    .clone()
            })
            .collect()
    };
    Recovery {
        discord,
        app,
        admin: FakeUser::new(900, "owner").with_roles(&[ADMIN_ROLE]),
        alerts,
        group,
        plan,
        old_machines,
    }
}

/// See [`Seeding::Rows`].
async fn seed_rows(app: &TestApp, n: u64, plan: PlanId, old_owner: usher::domain::OwnerAccountId) {
    use usher::store::{shares, subscribers};
    let now = app.clock.now();
    let servers: Vec<ServerId> = {
        let mut tx = app.app.db.read().await.unwrap();
        usher::store::servers::find_servers(&mut tx)
            .await
            .unwrap()
            .into_iter()
            .map(|s| s.id)
            .collect()
    };
    let mut tx = app.app.db.begin().await.unwrap();
    let mut made = Vec::new();
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
        let email = PlexEmail::parse(&email).unwrap();
        let identity = subscribers::insert_identity(
            &mut tx,
            sub,
            &subscribers::AccountKeys::email(&email),
            now,
        )
        .await
        .unwrap();
        let server = servers[usize::try_from(i % 2).unwrap()];
        let share = shares::insert_share(&mut tx, sub, server, identity, ShareState::Pending, now)
            .await
            .unwrap();
        app.app
            .queue
            .enqueue(&mut tx, &InviteShare::new(share, old_owner, "1"))
            .await
            .unwrap();
        made.push(sub);
    }
    tx.commit().await.unwrap();
    drain(app).await;
    for sub in made {
        members::set_permanent(&app.app, &admin(), sub, true)
            .await
            .unwrap();
    }
}

fn subscriber(i: u64) -> FakeUser {
    FakeUser::new(100 + i, &format!("user{i}"))
}

fn sub_id(i: u64) -> SubscriberId {
    SubscriberId::new(i64::try_from(i).unwrap() + 1)
}

fn said(callback: &Callback) -> String {
    callback.data["content"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

async fn next(handle: &InteractionHandle) -> Reply {
    handle
        .try_next_message(WAIT)
        .await
        .expect("the bot answered in time")
}

/// The text of the next followup or edit.
async fn next_text(handle: &InteractionHandle) -> String {
    next(handle).await.content().unwrap_or_default().to_owned()
}

fn buttons(body: &Value) -> Vec<String> {
    body["components"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|row| row["components"].as_array().into_iter().flatten())
        .filter_map(|c| c["custom_id"].as_str().map(str::to_owned))
        .collect()
}

fn link_urls(body: &Value) -> Vec<String> {
    body["components"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|row| row["components"].as_array().into_iter().flatten())
        .filter_map(|c| c["url"].as_str().map(str::to_owned))
        .collect()
}

async fn count(app: &TestApp, sql: &str) -> i64 {
    let mut tx = app.app.db.read().await.unwrap();
    usher::on_tx!(&mut tx, |c| sqlx::query_scalar(sql)
        .fetch_one(c)
        .await
        .unwrap())
}

async fn text_of(app: &TestApp, sql: &str) -> Option<String> {
    let mut tx = app.app.db.read().await.unwrap();
    usher::on_tx!(&mut tx, |c| sqlx::query_scalar(sql)
        .fetch_optional(c)
        .await
        .unwrap())
}

/// Waits until `probe` holds, checking every 20 ms.
async fn eventually(what: &str, mut probe: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while tokio::time::Instant::now() < deadline {
        if probe().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting until {what}");
}

/// `/admin <group> <sub> …options` as interaction options.
fn admin_options(group: &str, sub: &str, options: &Value) -> Value {
    json!([{"type": 2, "name": group, "options": [
        {"type": 1, "name": sub, "options": options}
    ]}])
}

impl Recovery {
    fn ask(&self, group: &str, sub: &str, options: &Value) -> InteractionHandle {
        self.discord.slash(
            &self.admin,
            Some(HOME),
            "admin",
            admin_options(group, sub, options),
        )
    }

    /// Asks and returns the text of the immediate answer.
    async fn ask_text(&self, group: &str, sub: &str, options: &Value) -> String {
        let answer = self.ask(group, sub, options).response().await;
        assert_eq!(answer.kind, 4, "{group} {sub}: {answer:?}");
        said(&answer)
    }

    /// Asks a command that defers, and returns the text that follows.
    async fn ask_deferred(&self, group: &str, sub: &str, options: &Value) -> String {
        let handle = self.ask(group, sub, options);
        assert_eq!(handle.response().await.kind, 5, "{group} {sub} defers");
        next_text(&handle).await
    }

    /// The admin's autocomplete for `field` of `/admin <group> <sub>`: `(label, value)` pairs.
    async fn choices(&self, group: &str, sub: &str, field: &str) -> Vec<(String, String)> {
        let options = json!([{"type": 3, "name": field, "value": "", "focused": true}]);
        let typed = self.discord.autocomplete(
            &self.admin,
            Some(HOME),
            "admin",
            admin_options(group, sub, &options),
        );
        let offered = typed.response().await;
        assert_eq!(offered.kind, 8);
        offered.data["choices"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["name"].as_str().unwrap().to_owned(),
                    c["value"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    }

    /// The admin previews a bulk flag, checks the count shown, and confirms it; returns the
    /// confirmation's text.
    async fn bulk_flag(&self, filter: &Value, expected: usize) -> String {
        let preview = self.ask("users", "flag", filter);
        assert_eq!(preview.response().await.kind, 5, "the preview defers");
        let shown = next(&preview).await;
        let title = shown.body["embeds"][0]["title"]
            .as_str()
            .unwrap_or_default();
        assert_eq!(title, format!("Flag {expected} subscribers?"), "{shown:?}");
        let confirm = buttons(&shown.body)
            .into_iter()
            .find(|id| id.starts_with("usher:bf-ok:"))
            .expect("a Confirm button");
        let click = self
            .discord
            .click(&self.admin, Some(HOME), &confirm, shown.message_id);
        let done = click.response().await;
        assert_eq!(done.kind, 7, "the preview message is updated in place");
        said(&done)
    }

    /// The "must change" DM of subscriber `i`: its message id and its change and sign-in buttons.
    fn flag_dm(&self, i: u64) -> (u64, String, String) {
        let dm = self
            .discord
            .messages_to(100 + i)
            .into_iter()
            .find(|m| m.content.contains("Plex account must change"))
            .unwrap_or_else(|| panic!("user{i} got the flag DM"));
        let ids = buttons(&json!({ "components": dm.components }));
        let change = ids
            .iter()
            .find(|id| id.starts_with("change-account."))
            .expect("a change button")
            .clone();
        let sign_in = ids
            .iter()
            .find(|id| id.starts_with("plex-sign-in."))
            .expect("a sign-in button")
            .clone();
        (dm.id, change, sign_in)
    }

    /// Subscriber `i` presses the DM's "Change my Plex account", gives `email` and waits for the
    /// code to be sent; returns the message with the "Enter code" button.
    async fn ask_for_code(&self, i: u64, email: &str) -> Reply {
        let user = subscriber(i);
        let (dm, change, _) = self.flag_dm(i);
        let click = self.discord.click(&user, None, &change, Some(dm));
        let modal = click.response().await;
        assert_eq!(modal.kind, 9, "user{i}: a modal opens: {modal:?}");
        assert_eq!(modal.data["custom_id"], "usher:change-email");
        let submit =
            self.discord
                .submit_modal(&user, None, "usher:change-email", &[("email", email)]);
        assert_eq!(submit.response().await.kind, 5);
        let sent = next(&submit).await;
        assert!(
            sent.content().unwrap_or_default().contains("6-digit code"),
            "user{i}: {:?}",
            sent.content()
        );
        assert!(buttons(&sent.body).contains(&"usher:enter-code".to_owned()));
        sent
    }

    /// Subscriber `i` changes to `email` by the emailed code, through the DM's button; returns
    /// the last answer's text.
    async fn change_by_code(&self, i: u64, email: &str) -> String {
        let user = subscriber(i);
        let sent = self.ask_for_code(i, email).await;
        let code = code_for(&self.app, email);
        let enter = self
            .discord
            .click(&user, None, "usher:enter-code", sent.message_id);
        let modal = enter.response().await;
        assert_eq!(modal.kind, 9);
        assert_eq!(modal.data["custom_id"], "usher:change-code");
        let done = self.discord.submit_modal(
            &user,
            None,
            "usher:change-code",
            &[("code", code.expose_for_delivery())],
        );
        assert_eq!(done.response().await.kind, 5);
        next_text(&done).await
    }

    /// Subscriber `i` signs in with Plex through the DM's button; the account with `email`
    /// approves the PIN on app.plex.tv; they press "I've signed in". Returns that answer's text.
    async fn change_by_sign_in(&self, i: u64, email: &str) -> String {
        let user = subscriber(i);
        let (dm, _, sign_in) = self.flag_dm(i);
        let click = self.discord.click(&user, None, &sign_in, Some(dm));
        assert_eq!(click.response().await.kind, 5);
        let shown = next(&click).await;
        assert!(
            shown
                .content()
                .unwrap_or_default()
                .contains("Sign in with Plex"),
            "user{i}: {:?}",
            shown.content()
        );
        let link = link_urls(&shown.body)
            .into_iter()
            .next()
            .expect("a link to app.plex.tv");
        let code = pin_code(&link);
        assert!(self.app.plex.approve_pin(&code, email), "the PIN is live");
        let signed_in = buttons(&shown.body)
            .into_iter()
            .find(|id| id.starts_with("usher:signed-in:"))
            .expect("an I've signed in button");
        let done = self
            .discord
            .click(&user, None, &signed_in, shown.message_id);
        assert_eq!(done.response().await.kind, 5);
        next_text(&done).await
    }

    /// The seed's steps 2 to 10 done by the services (for the tests that are about what comes
    /// after): remove the old owner as banned, add "new-owner" with "New A", flag everyone, turn
    /// the setting on; waits for the flag DMs of `n` subscribers.
    async fn recover_by_services(&self, n: u64) -> String {
        plex_admin::remove_owner_account(
            &self.app.app,
            &admin(),
            usher::domain::OwnerAccountId::new(1),
            true,
        )
        .await
        .unwrap();
        owner_with_servers(&self.app, NEW_OWNER, &["New A"], self.group).await;
        set_plex_account_change(&self.app.app, &admin(), true)
            .await
            .unwrap();
        let preview =
            account_change::preview_bulk_flag(&self.app.app, &admin(), FlagFilter::Everyone)
                .await
                .unwrap();
        assert_eq!(preview.count, i64::try_from(n).unwrap());
        account_change::confirm_bulk_flag(&self.app.app, &admin(), &preview.token)
            .await
            .unwrap();
        for i in 0..n {
            eventually("the flag DMs arrived", async || {
                self.discord
                    .messages_to(100 + i)
                    .iter()
                    .any(|m| m.content.contains("Plex account must change"))
            })
            .await;
        }
        let mut tx = self.app.app.db.read().await.unwrap();
        let servers = usher::store::servers::find_servers(&mut tx).await.unwrap();
        servers
            .into_iter()
            .find(|s| s.name == "New A")
            .unwrap()
            .machine_id
    }
}

/// The `code` of an app.plex.tv sign-in link (`…/auth#?clientID=…&code=…&…`).
fn pin_code(link: &str) -> String {
    let url = url::Url::parse(link).unwrap();
    let fragment = url.fragment().unwrap_or_default().trim_start_matches('?');
    url::form_urlencoded::parse(fragment.as_bytes())
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .expect("the link carries the PIN's code")
}

/// Every value of an embed's fields by name.
fn fields(embed: &Value) -> Vec<(String, String)> {
    embed["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["name"].as_str().unwrap().to_owned(),
                f["value"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// The id (`value`) of the one choice whose label starts with `label` and is not marked as
/// removed or banned.
fn live_choice(choices: &[(String, String)], label: &str) -> String {
    let found: Vec<_> = choices
        .iter()
        .filter(|(l, _)| {
            l.starts_with(label) && !l.contains("(removed)") && !l.contains("(banned)")
        })
        .collect();
    assert_eq!(found.len(), 1, "one live {label}: {choices:?}");
    found[0].1.clone()
}

// ---- 1. The seed's runbook, steps 1 to 11, in its order -------------------------------------

async fn the_seeds_runbook_in_its_order_brings_150_of_200_subscribers_to_three_new_servers(
    backend: Backend,
) {
    const N: u64 = 200;
    const CHANGED: u64 = 150;
    const CODE_ONLY: u64 = 10;
    let r = before_the_ban(backend, N).await;
    for machine in &r.old_machines {
        assert_eq!(r.app.plex.shares_on_server(machine).len(), 100);
    }

    // 1. Export the users (backup: who was on which server and plan).
    let export = r.ask("users", "export", &json!([]));
    assert_eq!(export.response().await.kind, 5);
    let file = next(&export).await;
    assert_eq!(file.attachments.len(), 1, "{file:?}");
    let csv = String::from_utf8(file.attachments[0].bytes.clone()).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 1 + 200, "a header and one line per subscriber");
    assert!(lines[0].starts_with("discord_id,name,plex_email,plan,server"));
    for i in [0, 1, 199] {
        let line = lines
            .iter()
            .find(|l| l.contains(&format!(",old{i}@example.com,")))
            .unwrap_or_else(|| panic!("old{i} exported"));
        assert!(line.contains(",Standard,Old "), "{line}");
    }

    // 2. Remove the banned Plex account: the data stays, the assignments go.
    let data = "SELECT COUNT(*) FROM subscriber s JOIN audit_log a ON a.subscriber_id = s.id";
    let history = count(&r.app, data).await;
    let removed = r
        .ask_text(
            "plex-account",
            "remove",
            &json!([
                {"type": 3, "name": "account", "value": "1"},
                {"type": 5, "name": "banned", "value": true}
            ]),
        )
        .await;
    assert!(
        removed.starts_with("Removed as banned. 200 server assignments were cleared"),
        "{removed}"
    );
    assert_eq!(count(&r.app, "SELECT COUNT(*) FROM subscriber").await, 200);
    assert_eq!(count(&r.app, data).await, history, "their history stays");

    // 3–4. A new Plex account claims a new server and re-claims "Old A" (same machine id).
    let new_token = r.app.plex.add_owner(NEW_OWNER);
    assert!(r.app.plex.claim_server(&r.old_machines[0], &new_token));
    let libraries = [("Movies", "movie"), ("TV", "show")];
    r.app.plex.add_server(&new_token, "New B", &libraries);
    r.app.plex.add_server(&new_token, "New C", &libraries);

    // 5. Add the new Plex account (the token in a private form).
    let form = r.ask("plex-account", "add", &json!([])).response().await;
    assert_eq!(form.kind, 9);
    assert_eq!(form.data["custom_id"], "usher:owner-token");
    let added = r.discord.submit_modal(
        &r.admin,
        Some(HOME),
        "usher:owner-token",
        &[("token", &new_token)],
    );
    assert_eq!(added.response().await.kind, 5);
    let added = next_text(&added).await;
    assert!(
        added.starts_with("Added the owner Plex account **new-owner**"),
        "{added}"
    );
    assert!(!added.contains(&new_token), "the token is never echoed");

    // 6. Add the servers (the re-claimed one by its machine id) and open them to subscriptions.
    for name in [r.old_machines[0].as_str(), "New B", "New C"] {
        let text = r
            .ask_deferred(
                "server",
                "add",
                &json!([
                    {"type": 3, "name": "account", "value": "2"},
                    {"type": 3, "name": "name", "value": name}
                ]),
            )
            .await;
        assert!(text.contains("with 2 libraries"), "{name}: {text}");
    }
    let servers = r.choices("server", "set", "server").await;
    assert_eq!(servers.len(), 5, "{servers:?}");
    assert!(
        servers.iter().any(|(l, _)| l.starts_with("Old A (banned)")),
        "{servers:?}"
    );
    let new_servers: Vec<String> = ["Old A", "New B", "New C"]
        .iter()
        .map(|name| live_choice(&servers, name))
        .collect();
    for server in &new_servers {
        let saved = r
            .ask_text(
                "server",
                "set",
                &json!([
                    {"type": 3, "name": "server", "value": server},
                    {"type": 5, "name": "allow_new_subscriptions", "value": true}
                ]),
            )
            .await;
        assert_eq!(saved, "Saved.");
    }

    // 7. Put the new servers' libraries in the Standard group.
    let groups = r.choices("group", "assign", "group").await;
    let standard = groups
        .iter()
        .find(|(l, _)| l == "Standard")
        .expect("the Standard group")
        .1
        .clone();
    let offered = r.choices("group", "assign", "library").await;
    assert_eq!(offered.len(), 10, "{offered:?}");
    for (server, title) in [
        ("Old A", "Movies"),
        ("Old A", "TV"),
        ("New B", "Movies"),
        ("New B", "TV"),
        ("New C", "Movies"),
        ("New C", "TV"),
    ] {
        // "Old A / Movies" twice: the re-claimed server's libraries are the newer rows.
        let library = offered
            .iter()
            .filter(|(l, _)| *l == format!("{server} / {title}"))
            .map(|(_, v)| v.parse::<i64>().unwrap())
            .max()
            .unwrap();
        let saved = r
            .ask_text(
                "group",
                "assign",
                &json!([
                    {"type": 3, "name": "library", "value": library.to_string()},
                    {"type": 3, "name": "group", "value": standard}
                ]),
            )
            .await;
        assert!(saved.starts_with("Saved."), "{saved}");
    }
    // 8. (The seed repeats 3–7 for each new account; one account is enough here.)

    // 9. Flag by the removed server, then by the removed owner account: exact previews.
    let flag_servers = r.choices("users", "flag", "server").await;
    let old_a = flag_servers
        .iter()
        .find(|(l, _)| l.starts_with("Old A (banned)"))
        .expect("the removed Old A is offered")
        .1
        .clone();
    let text = r
        .bulk_flag(&json!([{"type": 3, "name": "server", "value": old_a}]), 100)
        .await;
    assert!(text.starts_with("Flagged 100 subscribers"), "{text}");
    let owners = r.choices("users", "flag", "owner_account").await;
    let old_owner = owners
        .iter()
        .find(|(l, _)| l.starts_with("old-owner"))
        .expect("the removed owner account is offered")
        .1
        .clone();
    let text = r
        .bulk_flag(
            &json!([{"type": 3, "name": "owner_account", "value": old_owner}]),
            100,
        )
        .await;
    assert!(text.starts_with("Flagged 100 subscribers"), "{text}");
    for i in 0..N {
        eventually("every flagged subscriber got the DM", async || {
            r.discord
                .messages_to(100 + i)
                .iter()
                .any(|m| m.content.contains("Plex account must change"))
        })
        .await;
    }

    // 10. Turn Plex account change processing on.
    let saved = r
        .ask_text(
            "settings",
            "set",
            &json!([{"type": 5, "name": "plex_account_change", "value": true}]),
        )
        .await;
    assert!(
        saved.contains("**Plex account change processing**: on"),
        "{saved}"
    );

    // 11. 150 subscribers change: two in three by emailed code, one in three by Plex sign-in;
    // ten more ask for a code and stop there.
    for i in 0..CHANGED + CODE_ONLY {
        r.app.plex.add_user_account(&format!("new{i}@example.com"));
    }
    let everyone: Vec<u64> = (0..CHANGED + CODE_ONLY).collect();
    for batch in everyone.chunks(8) {
        join_all(batch.iter().map(|&i| {
            let r = &r;
            async move {
                let email = format!("new{i}@example.com");
                if i >= CHANGED {
                    r.ask_for_code(i, &email).await;
                    return;
                }
                let text = if i % 3 == 2 {
                    r.change_by_sign_in(i, &email).await
                } else {
                    r.change_by_code(i, &email).await
                };
                // The sign-in watch may apply it before the button is pressed.
                assert!(
                    text.contains("Check your Plex invites") || text.contains(SETTLED),
                    "user{i}: {text}"
                );
            }
        }))
        .await;
    }

    // Afterwards: 150 new shares on plex.tv, spread over the three new servers, each with the
    // plan's libraries of its server.
    eventually("the 150 invites exist on plex.tv", async || {
        (0..CHANGED).all(|i| {
            r.app
                .plex
                .shares_for_email(&format!("new{i}@example.com"))
                .len()
                == 1
        })
    })
    .await;
    let new_machines = [
        r.old_machines[0].clone(),
        machine_of(&r, "New B").await,
        machine_of(&r, "New C").await,
    ];
    let mut per_server = [0usize; 3];
    for i in 0..CHANGED {
        let share = r
            .app
            .plex
            .shares_for_email(&format!("new{i}@example.com"))
            .remove(0);
        let at = new_machines
            .iter()
            .position(|m| *m == share.machine_identifier)
            .unwrap_or_else(|| panic!("new{i} is on a new server"));
        per_server[at] += 1;
        let mut wanted: Vec<u64> = r
            .app
            .plex
            .libraries_of(&share.machine_identifier)
            .into_iter()
            .map(|(global, _)| global)
            .collect();
        wanted.sort_unstable();
        let mut got = share.library_ids.clone();
        got.sort_unstable();
        assert_eq!(got, wanted, "new{i} has the plan's libraries");
        assert!(!share.all_libraries);
    }
    assert_eq!(per_server.iter().sum::<usize>(), 150);
    for (machine, n) in new_machines.iter().zip(per_server) {
        assert!(
            (40..=60).contains(&n),
            "the re-invites spread over the three servers: {per_server:?} ({machine})"
        );
        assert_eq!(r.app.plex.shares_on_server(machine).len(), n);
    }
    for i in CHANGED..N {
        assert!(
            r.app
                .plex
                .shares_for_email(&format!("new{i}@example.com"))
                .is_empty()
        );
    }

    // In Usher: 150 banned old identities, 150 live shares on the new account's servers, 50
    // still flagged, their history kept.
    assert_eq!(
        count(
            &r.app,
            "SELECT COUNT(*) FROM plex_identity WHERE state = 'banned'"
        )
        .await,
        150
    );
    assert_eq!(
        count(
            &r.app,
            "SELECT COUNT(*) FROM plex_identity WHERE state = 'active' AND email_norm LIKE 'new%'"
        )
        .await,
        150
    );
    assert_eq!(
        count(
            &r.app,
            "SELECT COUNT(*) FROM share sh JOIN server sv ON sv.id = sh.server_id \
             WHERE sh.state <> 'removed' AND sv.owner_account_id = 2"
        )
        .await,
        150
    );
    assert_eq!(
        count(
            &r.app,
            "SELECT COUNT(*) FROM share WHERE state <> 'removed'"
        )
        .await,
        150
    );
    assert_eq!(
        count(
            &r.app,
            "SELECT COUNT(*) FROM subscriber WHERE requires_plex_change"
        )
        .await,
        50
    );
    assert!(
        count(&r.app, data).await > history,
        "the history stays and grows"
    );

    // The recovery board, as the admin sees it.
    let status = r.ask("recovery", "status", &json!([])).response().await;
    assert_eq!(status.kind, 4);
    let board = fields(&status.data["embeds"][0]);
    let field = |name: &str| {
        board.iter().find(|(n, _)| n == name).map_or_else(
            || panic!("no {name} on the board: {board:?}"),
            |(_, v)| v.clone(),
        )
    };
    assert_eq!(field("Flagged"), "50");
    assert_eq!(field("Notified"), "200");
    assert_eq!(field("DM failed"), "0");
    assert_eq!(field("Code sent"), "10");
    assert_eq!(field("Verified"), "150");
    assert_eq!(field("Invited"), "150");
    assert_eq!(field("Accepted"), "0");
    assert_eq!(field("Waiting for room"), "0");
    assert!(
        r.discord.unknown_calls().is_empty(),
        "{:?}",
        r.discord.unknown_calls()
    );
}

async fn machine_of(r: &Recovery, name: &str) -> String {
    let mut tx = r.app.app.db.read().await.unwrap();
    usher::store::servers::find_servers(&mut tx)
        .await
        .unwrap()
        .into_iter()
        .filter(|s| s.name == name)
        .max_by_key(|s| s.id)
        .unwrap()
        .machine_id
}

// ---- 2. The seed's warning: a banned account with a new email ------------------------------

async fn a_banned_plex_account_given_a_new_email_on_plex_tv_is_refused_by_code_and_by_sign_in(
    backend: Backend,
) {
    let r = before_the_ban(backend, 3).await;
    let new_machine = r.recover_by_services(3).await;
    let plex_id = |email: &str| {
        r.app
            .plex
            .all_shares()
            .into_iter()
            .find(|s| s.invited_email.eq_ignore_ascii_case(email))
            .expect("the old invite")
            .invited_id
    };
    let (id0, id1) = (plex_id("old0@example.com"), plex_id("old1@example.com"));

    // By emailed code: user0 changes the email of their banned account on plex.tv and gives it.
    assert!(
        r.app
            .plex
            .change_email("old0@example.com", "fresh0@example.com")
    );
    let invites_before = r.app.plex.calls("POST /api/v2/shared_servers");
    let text = r.change_by_code(0, "fresh0@example.com").await;
    assert!(text.contains("Check your Plex invites"), "{text}");
    // The invite's answer names the banned account's plex.tv id: the share is undone at once.
    eventually("the new identity is refused", async || {
        text_of(
            &r.app,
            "SELECT state FROM plex_identity WHERE email_norm = 'fresh0@example.com'",
        )
        .await
        .as_deref()
            == Some("refused")
    })
    .await;
    assert_eq!(
        r.app.plex.calls("POST /api/v2/shared_servers"),
        invites_before + 1,
        "one invite went out"
    );
    assert!(
        r.app.plex.shares_on_server(&new_machine).is_empty(),
        "plex.tv holds no share on the new server"
    );
    assert!(
        r.app
            .plex
            .all_shares()
            .iter()
            .filter(|s| s.invited_id == id0)
            .all(|s| r.old_machines.contains(&s.machine_identifier)),
        "the account keeps only its old share on the banned server"
    );
    assert_eq!(
        text_of(
            &r.app,
            "SELECT state FROM plex_identity WHERE email_norm = 'old0@example.com'"
        )
        .await
        .as_deref(),
        Some("banned")
    );
    assert_eq!(
        count(
            &r.app,
            "SELECT COUNT(*) FROM share WHERE subscriber_id = 1 AND state <> 'removed'"
        )
        .await,
        0
    );
    assert_eq!(
        count(
            &r.app,
            "SELECT COUNT(*) FROM subscriber WHERE id = 1 AND requires_plex_change"
        )
        .await,
        1,
        "still flagged"
    );
    assert_eq!(
        count(
            &r.app,
            "SELECT COUNT(*) FROM audit_log WHERE action = 'identity.refused' AND subscriber_id = 1"
        )
        .await,
        1
    );
    eventually("user0 is told why", async || {
        r.discord
            .messages_to(100)
            .iter()
            .any(|m| m.content.contains("cannot be used here") && m.content.contains("brand-new"))
    })
    .await;
    eventually("the admins are alerted", async || {
        r.discord
            .channel_messages(r.alerts)
            .iter()
            .any(|m| m.content.contains("Refused a Plex account") && m.content.contains("user0"))
    })
    .await;

    // By Plex sign-in: user1 does the same; plex.tv names the account's id before anything is
    // linked, and it is refused there.
    assert!(
        r.app
            .plex
            .change_email("old1@example.com", "fresh1@example.com")
    );
    let before = links(&r.app).await;
    let invites_before = r.app.plex.calls("POST /api/v2/shared_servers");
    let text = r.change_by_sign_in(1, "fresh1@example.com").await;
    assert!(
        text.contains("NEW Plex account") || text.contains(SETTLED),
        "{text}"
    );
    let refusal = "SELECT refusal FROM proof_request WHERE subscriber_id = 2 AND state = 'refused'";
    assert!(
        text_of(&r.app, refusal)
            .await
            .is_some_and(|why| why.contains("NEW Plex account")),
        "the refusal is recorded with its reason"
    );
    assert_eq!(links(&r.app).await, before, "no identity, share or invite");
    assert_eq!(
        r.app.plex.calls("POST /api/v2/shared_servers"),
        invites_before
    );
    assert_eq!(
        count(
            &r.app,
            "SELECT COUNT(*) FROM plex_identity WHERE email_norm = 'fresh1@example.com'"
        )
        .await,
        0
    );
    assert_eq!(
        text_of(
            &r.app,
            "SELECT state FROM proof_request WHERE subscriber_id = 2 ORDER BY id DESC"
        )
        .await
        .as_deref(),
        Some("refused")
    );
    assert_eq!(
        count(
            &r.app,
            "SELECT COUNT(*) FROM subscriber WHERE id = 2 AND requires_plex_change"
        )
        .await,
        1
    );
    assert_eq!(
        count(
            &r.app,
            "SELECT COUNT(*) FROM audit_log WHERE action = 'account_change.refused' AND subscriber_id = 2"
        )
        .await,
        1
    );
    eventually("user1 is told why", async || {
        r.discord
            .messages_to(101)
            .iter()
            .any(|m| m.content.contains("cannot be used here"))
    })
    .await;

    // Neither account can be linked by anyone: user2 signs in as each, and is refused.
    for (email, id) in [("fresh0@example.com", id0), ("fresh1@example.com", id1)] {
        let before = links(&r.app).await;
        let text = r.change_by_sign_in(2, email).await;
        let why = text_of(
            &r.app,
            "SELECT refusal FROM proof_request WHERE subscriber_id = 3 ORDER BY id DESC",
        )
        .await
        .unwrap_or_default();
        assert!(
            [SETTLED, "used here before", "already in use"]
                .iter()
                .any(|t| text.contains(t))
                && (why.contains("used here before") || why.contains("already in use")),
            "{email} (plex.tv id {id}): {text} / {why}"
        );
        assert_eq!(links(&r.app).await, before, "{email}: nothing linked");
    }
    assert_eq!(
        count(
            &r.app,
            "SELECT COUNT(*) FROM subscriber WHERE requires_plex_change"
        )
        .await,
        3
    );
    assert!(r.app.plex.shares_on_server(&new_machine).is_empty());
}

/// What linking an account would write: identities, shares, invite jobs.
async fn links(app: &TestApp) -> (i64, i64, i64) {
    (
        count(app, "SELECT COUNT(*) FROM plex_identity").await,
        count(app, "SELECT COUNT(*) FROM share").await,
        count(
            app,
            &format!(
                "SELECT COUNT(*) FROM job WHERE kind = '{}'",
                InviteShare::KIND
            ),
        )
        .await,
    )
}

// ---- 3. Admin rights count only at home ---------------------------------------------------

/// Every leaf of the registered `/admin` tree, with each required option given a value of its
/// type: `(path, options)`.
fn admin_leaves(admin: &Value) -> Vec<(String, Value)> {
    fn filled(options: &Value) -> Value {
        let given: Vec<Value> = options
            .as_array()
            .into_iter()
            .flatten()
            .filter(|o| o["required"].as_bool().unwrap_or(false))
            .map(|o| {
                let value = match o["type"].as_u64().unwrap() {
                    4 => json!(1),
                    5 => json!(true),
                    6 => json!("100"),
                    10 => json!(1.0),
                    _ => o["choices"][0]["value"].clone(),
                };
                let value = if value.is_null() { json!("1") } else { value };
                json!({"type": o["type"], "name": o["name"], "value": value})
            })
            .collect();
        Value::Array(given)
    }
    let mut leaves = Vec::new();
    for group in admin["options"].as_array().unwrap() {
        let name = group["name"].as_str().unwrap();
        match group["type"].as_u64().unwrap() {
            2 => {
                for sub in group["options"].as_array().unwrap() {
                    let leaf = sub["name"].as_str().unwrap();
                    leaves.push((
                        format!("{name} {leaf}"),
                        admin_options(name, leaf, &filled(&sub["options"])),
                    ));
                }
            }
            1 => leaves.push((
                name.to_owned(),
                json!([{"type": 1, "name": name, "options": filled(&group["options"])}]),
            )),
            other => panic!("/admin {name} has type {other}"),
        }
    }
    leaves
}

/// Row counts of every table an admin command can change.
async fn census(app: &TestApp) -> Vec<(&'static str, i64)> {
    let mut all = Vec::new();
    for table in [
        "subscriber",
        "plex_identity",
        "share",
        "owner_account",
        "server",
        "library",
        "library_group",
        "plan",
        "plan_group",
        "payment",
        "bulk_flag_preview",
        "bulk_flag_member",
        "notification",
        "audit_log",
        "job",
        "setting",
        "proof_request",
    ] {
        all.push((
            table,
            count(app, &format!("SELECT COUNT(*) FROM {table}")).await,
        ));
    }
    all
}

async fn settings_and_flags(app: &TestApp) -> (Vec<(String, String)>, i64, i64) {
    let mut tx = app.app.db.read().await.unwrap();
    let settings: Vec<(String, String)> = usher::on_tx!(&mut tx, |c| sqlx::query_as(
        "SELECT key, value FROM setting ORDER BY key"
    )
    .fetch_all(c)
    .await
    .unwrap());
    drop(tx);
    (
        settings,
        count(
            app,
            "SELECT COUNT(*) FROM subscriber WHERE requires_plex_change",
        )
        .await,
        count(app, "SELECT COUNT(*) FROM job WHERE state = 'parked'").await,
    )
}

async fn an_administrator_of_another_guild_is_refused_every_admin_command(backend: Backend) {
    const OWNER_USER: u64 = 901;
    let r = world_before_the_ban(backend, 2, Seeding::Added, |s| {
        s.discord.admin_user_ids = vec![OWNER_USER];
    })
    .await;
    let _bot = r.app.start_bot();
    assert!(r.discord.wait_registered(WAIT).await);
    r.app.start_workers();
    let home = r.discord.registered_commands(Some(HOME));
    let admin = home
        .iter()
        .find(|c| c["name"] == "admin")
        .expect("/admin is registered in the home guild")
        .clone();
    // The commands are also left registered globally (an earlier run without a home guild), so
    // a guild that added the bot can send them.
    let app_id = r.discord.application_id();
    let response = reqwest::Client::new()
        .put(format!(
            "{}/api/v10/applications/{app_id}/commands",
            r.discord.api_base()
        ))
        .header("Authorization", format!("Bot {}", r.discord.token()))
        .json(&home)
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{response:?}");

    // The admin leaves a bulk-flag preview; its Confirm button is what strangers try below.
    let preview = r.ask(
        "users",
        "flag",
        &json!([{"type": 5, "name": "everyone", "value": true}]),
    );
    preview.response().await;
    let shown = next(&preview).await;
    let confirm = buttons(&shown.body)
        .into_iter()
        .find(|id| id.starts_with("usher:bf-ok:"))
        .unwrap();

    let stranger = FakeUser::new(666, "stranger")
        .with_roles(&[ADMIN_ROLE])
        .with_permissions(ADMINISTRATOR);
    let before = census(&r.app).await;
    let state_before = settings_and_flags(&r.app).await;
    let leaves = admin_leaves(&admin);
    assert!(leaves.len() > 30, "every /admin command: {}", leaves.len());
    for (path, options) in &leaves {
        let tried = r
            .discord
            .slash(&stranger, Some(AWAY), "admin", options.clone());
        let refused = tried.response().await;
        assert_eq!(refused.kind, 4, "/admin {path}: {refused:?}");
        assert_eq!(
            refused.data["flags"].as_u64().unwrap_or(0) & 64,
            64,
            "/admin {path}: ephemeral"
        );
        assert_eq!(
            said(&refused),
            usher::commands::NOT_ADMIN_AWAY,
            "/admin {path}"
        );
    }
    // Their autocompletes offer nothing; the buttons and forms refuse them too, in that guild
    // and in a DM (where roles and permissions are nobody's).
    let typed = r.discord.autocomplete(
        &stranger,
        Some(AWAY),
        "admin",
        admin_options(
            "users",
            "flag",
            &json!([{"type": 3, "name": "server", "value": "", "focused": true}]),
        ),
    );
    assert_eq!(typed.response().await.data["choices"], json!([]));
    for guild in [Some(AWAY), None] {
        let click = r
            .discord
            .click(&stranger, guild, &confirm, shown.message_id);
        let answer = click.response().await;
        assert_eq!(said(&answer), usher::commands::NOT_ADMIN_AWAY);
        let token = r
            .app
            .plex
            .add_owner(&format!("intruder-{}@example.com", guild.is_some()));
        for form in ["usher:owner-token", "usher:owner-token-new:1"] {
            let submit = r
                .discord
                .submit_modal(&stranger, guild, form, &[("token", &token)]);
            assert_eq!(
                said(&submit.response().await),
                usher::commands::NOT_ADMIN_AWAY,
                "{form}"
            );
        }
    }
    // The admin's role in a DM counts for nothing either.
    let in_dm = r.discord.click(&r.admin, None, &confirm, shown.message_id);
    assert_eq!(
        said(&in_dm.response().await),
        usher::commands::NOT_ADMIN_AWAY
    );
    assert_eq!(census(&r.app).await, before, "nothing changed");
    assert_eq!(settings_and_flags(&r.app).await, state_before);

    // Positive controls: an administrator of the home guild is an admin there; a configured
    // admin user is one everywhere, in a DM too.
    let home_admin = FakeUser::new(667, "home-admin").with_permissions(ADMINISTRATOR);
    let listed = r
        .discord
        .slash(
            &home_admin,
            Some(HOME),
            "admin",
            admin_options("plex-account", "list", &json!([])),
        )
        .response()
        .await;
    assert!(said(&listed).contains("**old-owner**"), "{listed:?}");
    let owner = FakeUser::new(OWNER_USER, "configured");
    let listed = r
        .discord
        .slash(
            &owner,
            Some(AWAY),
            "admin",
            admin_options("plex-account", "list", &json!([])),
        )
        .response()
        .await;
    assert!(said(&listed).contains("**old-owner**"), "{listed:?}");
    let confirmed = r.discord.click(&owner, None, &confirm, shown.message_id);
    assert!(
        said(&confirmed.response().await).starts_with("Flagged 2 subscribers"),
        "the configured admin's click in a DM counts"
    );
}

// ---- 4. A revoked owner token parks jobs until update-token ---------------------------------

async fn a_revoked_owner_token_parks_jobs_until_update_token_gives_a_good_one(backend: Backend) {
    let r = world_before_the_ban(backend, 0, Seeding::Added, |_| {}).await;
    for i in 0..3 {
        let email = format!("late{i}@example.com");
        r.app.plex.add_user_account(&email);
        members::add_member(
            &r.app.app,
            &admin(),
            &NewMember {
                member: DiscordId::new(200 + i).unwrap(),
                name: format!("late{i}"),
                plex_email: PlexEmail::parse(&email).unwrap(),
                contact_email: None,
                plan: r.plan,
                standing: Standing::Days(30),
                transaction: Some(format!("late-{i}")),
                amount: None,
                note: None,
            },
        )
        .await
        .unwrap();
    }
    // The owner signs out of every device on plex.tv: the stored token gets 401.
    let fresh = r.app.plex.rotate_token(OLD_OWNER).unwrap();
    let _bot = r.app.start_bot();
    assert!(r.discord.wait_registered(WAIT).await);
    r.app.start_workers();
    let parked = "SELECT COUNT(*) FROM job WHERE state = 'parked'";
    eventually("the invites park", async || {
        count(&r.app, parked).await == 3
    })
    .await;
    assert!(r.app.plex.all_shares().is_empty());

    let listed = r.ask_text("jobs", "parked", &json!([])).await;
    assert!(listed.starts_with("**3 jobs stopped**"), "{listed}");
    assert_eq!(listed.matches(InviteShare::KIND).count(), 3, "{listed}");
    let token_sql = "SELECT token_enc FROM owner_account WHERE id = 1";
    let sealed = text_of(&r.app, token_sql).await;

    let update = |token: String| {
        let r = &r;
        async move {
            let form = r
                .ask(
                    "plex-account",
                    "update-token",
                    &json!([{"type": 3, "name": "account", "value": "1"}]),
                )
                .response()
                .await;
            assert_eq!(form.kind, 9);
            assert_eq!(form.data["custom_id"], "usher:owner-token-new:1");
            let submit = r.discord.submit_modal(
                &r.admin,
                Some(HOME),
                "usher:owner-token-new:1",
                &[("token", &token)],
            );
            assert_eq!(submit.response().await.kind, 5);
            let text = next_text(&submit).await;
            assert!(!text.contains(&token), "the token is never echoed: {text}");
            text
        }
    };
    // A bad token, and another account's token: refused, nothing changes.
    let stranger = r.app.plex.add_owner("someone-else@example.com");
    for (bad, why) in [
        ("not-a-plex-token".to_owned(), "did not accept that token"),
        (stranger, "belongs to the Plex account someone-else"),
    ] {
        let text = update(bad).await;
        assert!(text.contains(why), "{text}");
        assert_eq!(count(&r.app, parked).await, 3, "the jobs stay parked");
        assert_eq!(text_of(&r.app, token_sql).await, sealed, "token unchanged");
    }
    assert!(r.app.plex.all_shares().is_empty());

    // The good one: stored sealed, and the parked jobs run to done.
    let text = update(fresh.clone()).await;
    assert!(
        text.contains("plex.tv accepts the new token of **old-owner**. 3 waiting jobs"),
        "{text}"
    );
    eventually("the invites are done", async || {
        count(
            &r.app,
            &format!(
                "SELECT COUNT(*) FROM job WHERE kind = '{}' AND state = 'done'",
                InviteShare::KIND
            ),
        )
        .await
            == 3
    })
    .await;
    assert_eq!(count(&r.app, parked).await, 0);
    assert_eq!(r.app.plex.all_shares().len(), 3);
    let stored = text_of(&r.app, token_sql).await.unwrap();
    assert_ne!(Some(stored.clone()), sealed);
    assert!(!stored.contains(&fresh), "stored sealed");
    let none = r.ask_text("jobs", "parked", &json!([])).await;
    assert!(none.starts_with("No job is parked"), "{none}");
}

// ---- 5. Only the paid-up are invited after a change ----------------------------------------

async fn an_expired_subscriber_changes_account_without_an_invite_until_they_pay(backend: Backend) {
    let r = before_the_ban(backend, 2).await;
    let new_machine = r.recover_by_services(2).await;
    r.app.clock.advance(chrono::Duration::days(31));
    r.app.plex.add_user_account("renewed0@example.com");
    let text = r.change_by_code(0, "renewed0@example.com").await;
    assert!(
        text.contains("Your subscription is not active right now: run `/subscribe`"),
        "{text}"
    );
    assert_eq!(
        text_of(
            &r.app,
            "SELECT state FROM plex_identity WHERE email_norm = 'renewed0@example.com'"
        )
        .await
        .as_deref(),
        Some("active"),
        "the change is done"
    );
    eventually("the change DM says how to get access back", async || {
        r.discord.messages_to(100).iter().any(|m| {
            m.content
                .contains("Your subscription is not active right now")
        })
    })
    .await;
    assert_eq!(
        count(
            &r.app,
            "SELECT COUNT(*) FROM share WHERE subscriber_id = 1 AND state <> 'removed'"
        )
        .await,
        0,
        "no share"
    );
    assert_eq!(
        count(
            &r.app,
            &format!(
                "SELECT COUNT(*) FROM job WHERE kind = '{}' AND state <> 'done'",
                InviteShare::KIND
            )
        )
        .await,
        0,
        "no invite waiting"
    );
    assert!(
        r.app
            .plex
            .shares_for_email("renewed0@example.com")
            .is_empty()
    );

    // They pay (cash, recorded by the admin): now they are invited, with the plan's libraries.
    let paid = r
        .ask_text(
            "user",
            "pay",
            &json!([
                {"type": 6, "name": "user", "value": "100"},
                {"type": 4, "name": "days", "value": 30},
                {"type": 3, "name": "transaction", "value": "renewal-0"}
            ]),
        )
        .await;
    assert!(paid.starts_with("Recorded `renewal-0`"), "{paid}");
    eventually("the invite exists on plex.tv", async || {
        r.app.plex.shares_for_email("renewed0@example.com").len() == 1
    })
    .await;
    let share = r
        .app
        .plex
        .shares_for_email("renewed0@example.com")
        .remove(0);
    assert_eq!(share.machine_identifier, new_machine);
    let mut wanted: Vec<u64> = r
        .app
        .plex
        .libraries_of(&new_machine)
        .into_iter()
        .map(|(g, _)| g)
        .collect();
    wanted.sort_unstable();
    let mut got = share.library_ids;
    got.sort_unstable();
    assert_eq!(got, wanted);
}

// ---- A proof is used once ---------------------------------------------------------------

async fn a_proof_finished_twice_at_once_applies_the_change_once(backend: Backend) {
    let r = world_before_the_ban(backend, 2, Seeding::Added, |_| {}).await;
    // The services' own steps, no bot: flag, then prove by code and by sign-in.
    plex_admin::remove_owner_account(
        &r.app.app,
        &admin(),
        usher::domain::OwnerAccountId::new(1),
        true,
    )
    .await
    .unwrap();
    owner_with_servers(&r.app, NEW_OWNER, &["New A"], r.group).await;
    set_plex_account_change(&r.app.app, &admin(), true)
        .await
        .unwrap();
    for i in 0..2 {
        account_change::set_flag(&r.app.app, &admin(), sub_id(i), true)
            .await
            .unwrap();
    }

    // The right code, submitted twice at once.
    let email = PlexEmail::parse("twice@example.com").unwrap();
    r.app.plex.add_user_account(email.as_str());
    let actor = Actor::Subscriber(sub_id(0));
    account_change::request_change(&r.app.app, &actor, sub_id(0), &email)
        .await
        .unwrap();
    let code = code_for(&r.app, email.as_str());
    let (a, b) = tokio::join!(
        account_change::verify_change(&r.app.app, &actor, sub_id(0), &code),
        account_change::verify_change(&r.app.app, &actor, sub_id(0), &code),
    );
    let applied = [&a, &b].iter().filter(|x| x.is_ok()).count();
    assert_eq!(applied, 1, "{a:?} {b:?}");
    let refused = if a.is_ok() { b } else { a };
    assert!(
        matches!(refused, Err(ProofError::NoPendingRequest)),
        "{refused:?}"
    );

    // Plex sign-in, finished by the watch and the button at once.
    let other = PlexEmail::parse("signed@example.com").unwrap();
    r.app.plex.add_user_account(other.as_str());
    let started =
        account_change::start_sign_in(&r.app.app, &Actor::Subscriber(sub_id(1)), sub_id(1), None)
            .await
            .unwrap();
    assert!(
        r.app
            .plex
            .approve_pin(&pin_code(started.url.as_str()), other.as_str())
    );
    let (a, b) = tokio::join!(
        account_change::finish_sign_in(&r.app.app, started.request, None),
        account_change::finish_sign_in(&r.app.app, started.request, Some(sub_id(1))),
    );
    let outcomes = [a.unwrap(), b.unwrap()];
    assert_eq!(
        outcomes
            .iter()
            .filter(|o| matches!(o, SignInOutcome::Applied(_)))
            .count(),
        1,
        "{outcomes:?}"
    );
    assert!(outcomes.contains(&SignInOutcome::Settled), "{outcomes:?}");

    for (sub, email) in [(1, "twice@example.com"), (2, "signed@example.com")] {
        assert_eq!(
            count(
                &r.app,
                &format!("SELECT COUNT(*) FROM plex_identity WHERE email_norm = '{email}'")
            )
            .await,
            1
        );
        assert_eq!(
            count(
                &r.app,
                &format!(
                    "SELECT COUNT(*) FROM audit_log WHERE action = 'account_change.applied' AND subscriber_id = {sub}"
                )
            )
            .await,
            1
        );
        assert_eq!(
            count(
                &r.app,
                &format!(
                    "SELECT COUNT(*) FROM share WHERE subscriber_id = {sub} AND state <> 'removed'"
                )
            )
            .await,
            1,
            "one new share"
        );
    }
    drain(&r.app).await;
    assert_eq!(r.app.plex.shares_for_email("twice@example.com").len(), 1);
    assert_eq!(r.app.plex.shares_for_email("signed@example.com").len(), 1);
}

crate::on_both_backends!(
    the_seeds_runbook_in_its_order_brings_150_of_200_subscribers_to_three_new_servers,
    a_banned_plex_account_given_a_new_email_on_plex_tv_is_refused_by_code_and_by_sign_in,
    an_administrator_of_another_guild_is_refused_every_admin_command,
    a_revoked_owner_token_parks_jobs_until_update_token_gives_a_good_one,
    an_expired_subscriber_changes_account_without_an_invite_until_they_pay,
    a_proof_finished_twice_at_once_applies_the_change_once,
);
