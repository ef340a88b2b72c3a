//! The Discord door end to end: the real bot (serenity + poise) over the fake Discord, the real
//! services, jobs and database, the fake plex.tv and the mail outbox. Nothing is called directly
//! that a person would do through Discord.

use std::time::Duration;

use serde_json::{Value, json};
use usher::fakes::discord::{Callback, FakeDiscord, FakeUser, Reply, ReplyKind};
use usher::services::recovery;

use crate::helpers::world::{World, banned_world, code_for, make_permanent};
use crate::helpers::{Backend, TestApp};

const GUILD: u64 = 1_200_000_000_000_000_001;
const ADMIN_ROLE: u64 = 4242;
const WAIT: Duration = Duration::from_secs(15);

struct Door {
    discord: FakeDiscord,
    app: TestApp,
    admin: FakeUser,
    fallback_channel: u64,
    world: World,
}

/// A banned world of `n` subscribers (Discord users 100.., nobody flagged), the bot connected to
/// the fake Discord, and job workers running.
async fn door(backend: Backend, n: u64) -> Door {
    let discord = FakeDiscord::start().await;
    let fallback_channel = discord.add_guild_channel(GUILD, "recovery-help");
    let app = TestApp::spawn_with_discord(backend, &discord, |s| {
        s.discord.guild_ids = vec![GUILD];
        s.discord.admin_role_ids = vec![ADMIN_ROLE];
        s.discord.fallback_channel_id = Some(fallback_channel);
    })
    .await;
    let world = banned_world(&app, n).await;
    make_permanent(&app, &world).await;
    for i in 0..n {
        discord.add_user(&FakeUser::new(100 + i, &format!("user{i}")));
    }
    let _bot = app.start_bot();
    assert!(
        discord.wait_registered(WAIT).await,
        "the bot registered its commands"
    );
    app.start_workers();
    Door {
        discord,
        app,
        admin: FakeUser::new(900, "owner").with_roles(&[ADMIN_ROLE]),
        fallback_channel,
        world,
    }
}

fn subscriber(i: u64) -> FakeUser {
    FakeUser::new(100 + i, &format!("user{i}"))
}

/// `/admin users flag everyone:true` as options.
fn flag_everyone() -> Value {
    json!([{"type": 2, "name": "users", "options": [
        {"type": 1, "name": "flag", "options": [{"type": 5, "name": "everyone", "value": true}]}
    ]}])
}

/// Every button `custom_id` in a message body or callback data.
fn buttons(body: &Value) -> Vec<String> {
    body["components"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|row| row["components"].as_array().into_iter().flatten())
        .filter_map(|c| c["custom_id"].as_str().map(str::to_owned))
        .collect()
}

fn is_ephemeral(callback: &Callback) -> bool {
    callback.data["flags"].as_u64().unwrap_or(0) & 64 == 64
}

/// The next followup or edit of an interaction.
async fn next(handle: &usher::fakes::discord::InteractionHandle) -> Reply {
    handle
        .try_next_message(WAIT)
        .await
        .expect("the bot answered in time")
}

async fn count(app: &TestApp, sql: &str) -> i64 {
    let mut tx = app.app.db.read().await.unwrap();
    usher::on_tx!(&mut tx, |c| sqlx::query_scalar(sql)
        .fetch_one(c)
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

/// The admin previews and confirms a bulk flag; returns the confirmation's reply text.
async fn bulk_flag_everyone(door: &Door, expected: usize) -> String {
    let preview = door
        .discord
        .slash(&door.admin, Some(GUILD), "admin", flag_everyone());
    let first = preview.response().await;
    assert_eq!(first.kind, 5, "the preview defers first");
    assert!(is_ephemeral(&first));
    let shown = next(&preview).await;
    assert_eq!(shown.kind, ReplyKind::Followup);
    let title = shown.body["embeds"][0]["title"]
        .as_str()
        .unwrap_or_default();
    assert_eq!(title, format!("Flag {expected} subscribers?"));
    let confirm = buttons(&shown.body)
        .into_iter()
        .find(|id| id.starts_with("usher:bf-ok:"))
        .expect("a Confirm button");
    assert!(confirm.len() <= 100, "custom_id fits Discord's limit");
    let click = door
        .discord
        .click(&door.admin, Some(GUILD), &confirm, shown.message_id);
    let done = click.response().await;
    assert_eq!(done.kind, 7, "the preview message is updated in place");
    done.data["content"].as_str().unwrap_or_default().to_owned()
}

async fn an_admin_bulk_flags_and_a_subscriber_changes_account_through_discord(backend: Backend) {
    let door = door(backend, 3).await;
    let text = bulk_flag_everyone(&door, 3).await;
    assert!(text.starts_with("Flagged 3 subscribers"), "{text}");

    // (a) Each flagged subscriber gets a DM with the lasting, signed button.
    let mut dm_buttons = Vec::new();
    for i in 0..3 {
        let dm = door
            .discord
            .wait_for_dm(100 + i, WAIT)
            .await
            .unwrap_or_else(|| panic!("user{i} got no DM"));
        assert!(
            dm.content.contains("Plex account must change"),
            "{}",
            dm.content
        );
        let ids = buttons(&json!({ "components": dm.components }));
        assert_eq!(ids.len(), 3, "{ids:?}");
        assert!(ids[0].starts_with("change-account."), "{}", ids[0]);
        assert!(ids[1].starts_with("plex-sign-in."), "{}", ids[1]);
        assert_eq!(ids[2], "usher:open-account");
        dm_buttons.push((dm.id, ids[0].clone()));
    }
    assert_ne!(
        dm_buttons[0].1, dm_buttons[1].1,
        "each button names its subscriber"
    );

    // Someone else's button is refused.
    let alice = subscriber(0);
    let wrong = door
        .discord
        .click(&alice, None, &dm_buttons[1].1, Some(dm_buttons[1].0));
    let refused = wrong.response().await;
    assert_eq!(refused.kind, 4);
    assert!(
        refused.data["content"]
            .as_str()
            .unwrap()
            .contains("someone else")
    );

    // "Open My Account" answers with Alice's own one-time link, as a link button; it signs in once.
    let open = door
        .discord
        .click(&alice, None, "usher:open-account", Some(dm_buttons[0].0));
    let answer = open.response().await;
    assert_eq!(answer.kind, 4);
    assert!(is_ephemeral(&answer));
    let link = answer.data["components"][0]["components"][0]["url"]
        .as_str()
        .expect("a link button")
        .to_owned();
    let link = url::Url::parse(&link).unwrap();
    assert_eq!(link.path(), "/account/login");
    let login = format!("/account/login?{}", link.query().unwrap());
    let no_redirect = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let first = no_redirect.get(door.app.url(&login)).send().await.unwrap();
    assert_eq!(first.status(), 303, "the link signs Alice in");
    let again = no_redirect.get(door.app.url(&login)).send().await.unwrap();
    assert_eq!(again.status(), 401, "and only once");

    // (b) The button opens the email modal; the email gets a code; the code modal applies it.
    let click = door
        .discord
        .click(&alice, None, &dm_buttons[0].1, Some(dm_buttons[0].0));
    let modal = click.response().await;
    assert_eq!(modal.kind, 9, "a modal opens");
    assert_eq!(modal.data["custom_id"], "usher:change-email");

    door.app.plex.add_user_account("alice.fresh@example.com");
    let submit = door.discord.submit_modal(
        &alice,
        None,
        "usher:change-email",
        &[("email", "  Alice.Fresh@Example.com ")],
    );
    assert_eq!(submit.response().await.kind, 5);
    let sent = next(&submit).await;
    assert_eq!(sent.kind, ReplyKind::EditOriginal);
    assert!(
        sent.content().unwrap_or_default().contains("6-digit code"),
        "{:?}",
        sent.content()
    );
    assert!(buttons(&sent.body).contains(&"usher:enter-code".to_owned()));
    let code = code_for(&door.app, "alice.fresh@example.com");

    let enter = door.discord.click(&alice, None, "usher:enter-code", None);
    let code_modal = enter.response().await;
    assert_eq!(code_modal.kind, 9);
    assert_eq!(code_modal.data["custom_id"], "usher:change-code");
    // A wrong code first: refused with the tries left, nothing changes.
    let wrong_code = if code.expose_for_delivery() == "000000" {
        "111111"
    } else {
        "000000"
    };
    let bad = door
        .discord
        .submit_modal(&alice, None, "usher:change-code", &[("code", wrong_code)]);
    assert_eq!(bad.response().await.kind, 5);
    let said = next(&bad).await;
    assert!(
        said.content().unwrap_or_default().contains("4 tries left"),
        "{:?}",
        said.content()
    );
    assert!(
        door.app
            .plex
            .shares_for_email("alice.fresh@example.com")
            .is_empty()
    );

    let good = door.discord.submit_modal(
        &alice,
        None,
        "usher:change-code",
        &[("code", code.expose_for_delivery())],
    );
    assert_eq!(good.response().await.kind, 5);
    let applied = next(&good).await;
    assert!(
        applied
            .content()
            .unwrap_or_default()
            .contains("Check your Plex invites"),
        "{:?}",
        applied.content()
    );
    eventually("the new Plex account holds the invite", async || {
        door.app
            .plex
            .shares_for_email("alice.fresh@example.com")
            .len()
            == 1
    })
    .await;
    assert!(
        door.app
            .plex
            .shares_for_email(&door.world.subscribers[0].1)
            .is_empty()
    );
    eventually("the change-confirmed DM arrived", async || {
        door.discord
            .messages_to(100)
            .iter()
            .any(|m| m.content.contains("Check your Plex invites"))
    })
    .await;

    // `/account` now shows the new account and no banner.
    let account = door
        .discord
        .slash(&alice, Some(GUILD), "account", Value::Null);
    let status = account.response().await;
    assert_eq!(status.kind, 4);
    assert!(is_ephemeral(&status));
    let embed = status.data["embeds"][0].to_string();
    assert!(embed.contains("alice.fresh@example.com"), "{embed}");
    assert!(!embed.contains("must change"), "{embed}");

    // Nothing the fake does not understand, and nothing secret on the wire back to Discord.
    assert!(
        door.discord.unknown_calls().is_empty(),
        "{:?}",
        door.discord.unknown_calls()
    );
    let wire = serde_json::to_string(
        &door
            .discord
            .all_messages()
            .iter()
            .map(|m| m.content.clone())
            .collect::<Vec<_>>(),
    )
    .unwrap();
    assert!(
        !wire.contains(code.expose_for_delivery()),
        "the code never goes to Discord"
    );
}

async fn a_non_admin_is_refused_and_nothing_changes(backend: Backend) {
    let door = door(backend, 2).await;
    let member = subscriber(0);
    let attempt = door
        .discord
        .slash(&member, Some(GUILD), "admin", flag_everyone());
    let refused = attempt.response().await;
    assert_eq!(refused.kind, 4);
    assert!(is_ephemeral(&refused));
    let text = refused.data["content"].as_str().unwrap_or_default();
    assert!(text.contains("Only Usher admins"), "{text}");
    assert_eq!(
        count(&door.app, "SELECT COUNT(*) FROM bulk_flag_preview").await,
        0
    );
    assert_eq!(
        count(
            &door.app,
            "SELECT COUNT(*) FROM subscriber WHERE requires_plex_change"
        )
        .await,
        0
    );

    // The admin's Confirm button, clicked by a non-admin, is refused too.
    let preview = door
        .discord
        .slash(&door.admin, Some(GUILD), "admin", flag_everyone());
    preview.response().await;
    let shown = next(&preview).await;
    let confirm = buttons(&shown.body)
        .into_iter()
        .find(|id| id.starts_with("usher:bf-ok:"))
        .unwrap();
    let click = door
        .discord
        .click(&member, Some(GUILD), &confirm, shown.message_id);
    let answer = click.response().await;
    assert_eq!(answer.kind, 4);
    assert!(
        answer.data["content"]
            .as_str()
            .unwrap()
            .contains("Only Usher admins")
    );
    assert_eq!(
        count(
            &door.app,
            "SELECT COUNT(*) FROM subscriber WHERE requires_plex_change"
        )
        .await,
        0,
        "a non-admin's click flags nobody"
    );
    // A non-admin's autocomplete offers nothing; the admin's, typed the same, offers the servers.
    let server_field = json!([{"type": 2, "name": "users", "options": [
        {"type": 1, "name": "flag", "options": [
            {"type": 3, "name": "server", "value": "", "focused": true}
        ]}
    ]}]);
    let typed = door
        .discord
        .autocomplete(&member, Some(GUILD), "admin", server_field.clone());
    let offered = typed.response().await;
    assert_eq!(offered.kind, 8);
    assert_eq!(offered.data["choices"], json!([]));
    let typed = door
        .discord
        .autocomplete(&door.admin, Some(GUILD), "admin", server_field);
    let offered = typed.response().await;
    assert_eq!(offered.kind, 8);
    let names: Vec<&str> = offered.data["choices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 3, "the admin sees every server: {names:?}");
    assert!(names.iter().any(|n| n.starts_with("Old ")), "{names:?}");
}

async fn a_closed_dm_shows_on_the_recovery_board(backend: Backend) {
    let door = door(backend, 2).await;
    door.discord.fail_dms_to(101);
    bulk_flag_everyone(&door, 2).await;
    eventually("both flag DMs were attempted", async || {
        let board = recovery::board(&door.app.app).await.unwrap();
        board.notified + board.dm_failed == 2
    })
    .await;
    let board = recovery::board(&door.app.app).await.unwrap();
    assert_eq!((board.flagged, board.notified, board.dm_failed), (2, 1, 1));
    let failed: Vec<_> = board
        .entries
        .iter()
        .filter(|e| e.dm == recovery::DmStatus::Failed)
        .map(|e| e.name.clone())
        .collect();
    assert_eq!(failed, ["user1"]);
    assert!(door.discord.messages_to(101).is_empty());
    let fallback = door.discord.channel_messages(door.fallback_channel);
    assert_eq!(fallback.len(), 1);
    assert!(
        fallback[0].content.starts_with("<@101>"),
        "{}",
        fallback[0].content
    );
    assert!(
        !fallback[0].content.contains("change-account."),
        "no button in public"
    );

    // The admin sees it in `/admin recovery status`.
    let status = door.discord.slash(
        &door.admin,
        Some(GUILD),
        "admin",
        json!([{"type": 2, "name": "recovery", "options": [{"type": 1, "name": "status", "options": []}]}]),
    );
    let shown = status.response().await;
    assert_eq!(shown.kind, 4);
    let fields = shown.data["embeds"][0]["fields"]
        .as_array()
        .unwrap()
        .clone();
    let field = |name: &str| {
        fields
            .iter()
            .find(|f| f["name"] == name)
            .map(|f| f["value"].as_str().unwrap().to_owned())
            .unwrap()
    };
    assert_eq!(field("DM failed"), "1");
    assert_eq!(field("Notified"), "1");
    assert!(field("Needs attention").contains("<@101>: DM failed"));
}

/// `/admin <group> <sub> …options` as interaction options.
fn admin_options(group: &str, sub: &str, options: &Value) -> Value {
    json!([{"type": 2, "name": group, "options": [
        {"type": 1, "name": sub, "options": options}
    ]}])
}

async fn an_admin_builds_groups_and_plans_and_tests_a_token_through_discord(backend: Backend) {
    let door = door(backend, 1).await;
    let ask = |group: &str, sub: &str, options: Value| {
        door.discord.slash(
            &door.admin,
            Some(GUILD),
            "admin",
            admin_options(group, sub, &options),
        )
    };
    let help = door
        .discord
        .slash(&door.admin, Some(GUILD), "help", Value::Null)
        .response()
        .await;
    let listed = help.data["content"].as_str().unwrap_or_default();
    assert!(
        listed.contains("`/admin users list|flag|export`"),
        "{listed}"
    );
    assert!(
        listed.contains("`/admin group create|list|assign`"),
        "{listed}"
    );
    assert!(listed.chars().count() <= 2000, "fits one Discord message");
    let said = |callback: &Callback| {
        callback.data["content"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };

    let created = ask(
        "group",
        "create",
        json!([{"type": 3, "name": "name", "value": "4K"}]),
    )
    .response()
    .await;
    assert_eq!(
        said(&created),
        "Created the group **4K**. Put libraries in it with `/admin group assign`."
    );

    let plan_options = |groups: &str| {
        json!([
            {"type": 3, "name": "name", "value": "Premium"},
            {"type": 3, "name": "price", "value": "12.50"},
            {"type": 3, "name": "currency", "value": "usd"},
            {"type": 3, "name": "period", "value": "month"},
            {"type": 4, "name": "streams", "value": 4},
            {"type": 3, "name": "groups", "value": groups}
        ])
    };
    let refused = ask("plan", "create", plan_options("Standard, Nope"))
        .response()
        .await;
    assert_eq!(said(&refused), "There is no library group named `Nope`.");
    assert_eq!(
        count(
            &door.app,
            "SELECT COUNT(*) FROM plan WHERE name = 'Premium'"
        )
        .await,
        0
    );

    let made = ask("plan", "create", plan_options("standard, 4k"))
        .response()
        .await;
    assert_eq!(said(&made), "Created the plan **Premium**.");
    assert_eq!(
        count(
            &door.app,
            "SELECT price_minor FROM plan WHERE name = 'Premium'"
        )
        .await,
        1250
    );
    assert_eq!(
        count(
            &door.app,
            "SELECT COUNT(*) FROM plan_group pg JOIN plan p ON p.id = pg.plan_id WHERE p.name = 'Premium'"
        )
        .await,
        2
    );
    let listed = ask("plan", "list", json!([])).response().await;
    assert!(said(&listed).contains("**Premium**"), "{}", said(&listed));

    // Owner account 2 is the new, active one; 1 was marked banned.
    let test = ask(
        "plex-account",
        "test",
        json!([{"type": 3, "name": "account", "value": "2"}]),
    );
    assert_eq!(test.response().await.kind, 5);
    let tested = next(&test).await;
    assert!(
        tested
            .content()
            .unwrap_or_default()
            .contains("plex.tv accepts the token of"),
        "{:?}",
        tested.content()
    );
    let banned = ask(
        "plex-account",
        "test",
        json!([{"type": 3, "name": "account", "value": "1"}]),
    );
    banned.response().await;
    let said_banned = next(&banned).await;
    assert!(
        said_banned.content().unwrap_or_default().contains("banned"),
        "{:?}",
        said_banned.content()
    );
}

crate::on_both_backends!(
    an_admin_builds_groups_and_plans_and_tests_a_token_through_discord,
    an_admin_bulk_flags_and_a_subscriber_changes_account_through_discord,
    a_non_admin_is_refused_and_nothing_changes,
    a_closed_dm_shows_on_the_recovery_board,
);
