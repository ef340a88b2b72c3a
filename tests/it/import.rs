//! Adopting an existing server (issue 14): the plex.tv import through the Discord door, and the
//! seats plex.tv counts per owner account, through the services placement and the reconcile use.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};
use usher::clock::Clock as _;
use usher::domain::{
    Actor, BillingPeriod, Currency, DiscordId, Money, PlanId, PlexEmail, ServerId,
};
use usher::fakes::discord::{FakeDiscord, FakeUser, ReplyKind};
use usher::services::members::{self, NewMember, Standing};
use usher::services::plex_admin::{self, PlanSpec};
use usher::services::{access, account_change, catalog, plex_sync};
use usher::store::servers;

use crate::helpers::world::{admin, after_a_ban, code_for, drain};
use crate::helpers::{Backend, TestApp};

const GUILD: u64 = 1_400_000_000_000_000_001;
const ADMIN_ROLE: u64 = 4343;
const WAIT: Duration = Duration::from_secs(30);

async fn count(app: &TestApp, sql: &str) -> i64 {
    let mut tx = app.app.db.read().await.unwrap();
    usher::on_tx!(&mut tx, |c| sqlx::query_scalar(sql)
        .fetch_one(c)
        .await
        .unwrap())
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

fn import_plex(options: &Value) -> Value {
    json!([{"type": 2, "name": "import", "options": [
        {"type": 1, "name": "plex", "options": options}
    ]}])
}

/// Assigns every library of `server` whose title is in `titles` to `group`.
async fn group_libraries(
    app: &TestApp,
    server: ServerId,
    titles: &[&str],
    group: usher::domain::LibraryGroupId,
) {
    let mut tx = app.app.db.begin().await.unwrap();
    let libraries = servers::find_libraries(&mut tx, server).await.unwrap();
    drop(tx);
    for library in libraries
        .into_iter()
        .filter(|l| titles.contains(&l.title.as_str()))
    {
        plex_admin::assign_library(&app.app, &admin(), library.id, Some(group))
            .await
            .unwrap();
    }
}

async fn plan(app: &TestApp, name: &str, groups: Vec<usher::domain::LibraryGroupId>) -> PlanId {
    plex_admin::create_plan(
        &app.app,
        &admin(),
        &PlanSpec {
            name: name.into(),
            price: Money::parse("8", Currency::parse("USD").unwrap()).unwrap(),
            period: BillingPeriod::Month,
            max_streams: 2,
            trial: false,
            groups: groups.into_iter().map(Into::into).collect(),
        },
    )
    .await
    .unwrap()
}

/// The global ids of a fake server's libraries with these titles.
fn ids(app: &TestApp, machine: &str, titles: &[&str]) -> Vec<u64> {
    let servers = app.plex.all_servers();
    servers
        .iter()
        .find(|s| s.machine_identifier == machine)
        .unwrap()
        .libraries
        .iter()
        .filter(|l| titles.contains(&l.title.as_str()))
        .map(|l| l.global_id)
        .collect()
}

async fn an_existing_server_is_imported_through_discord_exactly_as_previewed(backend: Backend) {
    let discord = FakeDiscord::start().await;
    let app = TestApp::spawn_with_discord(backend, &discord, |s| {
        s.discord.guild_ids = vec![GUILD];
        s.discord.admin_role_ids = vec![ADMIN_ROLE];
    })
    .await;
    // Usher knows old0@example.com from before a ban: after the account change it is retired.
    let world = after_a_ban(&app, 1).await;
    let (sub, _) = world.subscribers[0];
    app.plex.add_user_account("fresh0@example.com");
    let actor = Actor::Subscriber(sub);
    account_change::request_change(
        &app.app,
        &actor,
        sub,
        &PlexEmail::parse("fresh0@example.com").unwrap(),
    )
    .await
    .unwrap();
    let code = code_for(&app, "fresh0@example.com");
    account_change::verify_change(&app.app, &actor, sub, &code)
        .await
        .unwrap();
    drain(&app).await;

    // The new owner's third server carries an extra library group, sold as Premium.
    let owner_token = app.plex.token_for("new-owner@example.com").unwrap();
    let standard = catalog::groups(&app.app)
        .await
        .unwrap()
        .into_iter()
        .find(|g| g.name == "Standard")
        .unwrap()
        .id;
    let extra = plex_admin::create_group(&app.app, &admin(), "Extra", false)
        .await
        .unwrap();
    app.plex.add_server(
        &owner_token,
        "New C",
        &[("Movies", "movie"), ("TV", "show"), ("Anime", "show")],
    );
    let owner = catalog::owner_accounts(&app.app)
        .await
        .unwrap()
        .into_iter()
        .find(|a| a.name == "new-owner")
        .unwrap()
        .id;
    let new_c = plex_admin::add_server(&app.app, &admin(), owner, "New C")
        .await
        .unwrap()
        .id;
    group_libraries(&app, new_c, &["Movies", "TV"], standard).await;
    group_libraries(&app, new_c, &["Anime"], extra).await;
    let premium = plan(&app, "Premium", vec![standard, extra]).await;

    // plex.tv as the owner left it: 600 friends over three servers, one of them on two, every
    // tenth invite still pending, one whose email Usher retired, one with only Anime (no plan
    // has just that), and five Home users (two of them with a share).
    let machines: BTreeMap<String, String> = catalog::servers(&app.app)
        .await
        .unwrap()
        .into_iter()
        .filter(|s| s.name.starts_with("New"))
        .map(|s| {
            let machine = app
                .plex
                .all_servers()
                .into_iter()
                .find(|f| f.name == s.name)
                .unwrap()
                .machine_identifier;
            (s.name, machine)
        })
        .collect();
    let (a, b, c) = (&machines["New A"], &machines["New B"], &machines["New C"]);
    let movies_tv_a = ids(&app, a, &["Movies", "TV"]);
    let movies_tv_b = ids(&app, b, &["Movies", "TV"]);
    let all_c = ids(&app, c, &["Movies", "TV", "Anime"]);
    let anime_c = ids(&app, c, &["Anime"]);
    for i in 0..600 {
        let email = if i == 597 {
            "old0@example.com".to_owned()
        } else {
            format!("f{i}@example.com")
        };
        let accepted = i % 10 != 5;
        let (machine, libraries) = match i {
            0..200 => (a, &movies_tv_a),
            200..400 => (b, &movies_tv_b),
            598 => (c, &anime_c),
            _ => (c, &all_c),
        };
        app.plex
            .seed_share(machine, &email, Some(libraries), accepted);
    }
    app.plex
        .seed_share(c, "f399@example.com", Some(&all_c), true);
    for k in 0..5 {
        let email = format!("home{k}@example.com");
        app.plex.add_home_user(&owner_token, &email, k == 4);
        if k < 2 {
            app.plex.seed_share(a, &email, Some(&movies_tv_a), true);
        }
    }
    let fresh_on = app.plex.shares_for_email("fresh0@example.com")[0]
        .machine_identifier
        .clone();

    let me = FakeUser::new(900, "owner").with_roles(&[ADMIN_ROLE]);
    discord.add_user(&me);
    let _bot = app.start_bot();
    assert!(discord.wait_registered(WAIT).await);
    app.start_workers();

    let subscribers_before = count(&app, "SELECT COUNT(*) FROM subscriber").await;
    let invites_before = app.plex.calls("POST /api/v2/shared_servers");
    let preview = discord.slash(
        &me,
        Some(GUILD),
        "admin",
        import_plex(&json!([{"type": 4, "name": "days", "value": 30}])),
    );
    assert_eq!(preview.response().await.kind, 5, "the preview defers first");
    let shown = preview.try_next_message(WAIT).await.expect("a preview");
    assert_eq!(shown.kind, ReplyKind::Followup);
    let embed = &shown.body["embeds"][0];
    assert_eq!(embed["title"].as_str().unwrap(), "Import 599 people?");
    let lines: Vec<&str> = embed["description"].as_str().unwrap().lines().collect();
    let known = |machine: &str| usize::from(fresh_on == machine);
    for (name, machine) in [("New A", a), ("New B", b), ("New C", c)] {
        let wanted = format!(
            "{name}: 200 new (20 pending), {} in Usher already",
            known(machine)
        );
        assert!(lines.contains(&wanted.as_str()), "{wanted} in {lines:#?}");
    }
    for wanted in [
        "plan (none): 1",
        "plan Premium: 199",
        "plan Standard: 399",
        "without a plan (1): f598",
        "skipped old0@example.com: retired or banned in Usher: never imported",
        "Plex Home and managed users (seats, not imported): 5",
    ] {
        assert!(lines.contains(&wanted), "{wanted} in {lines:#?}");
    }
    assert_eq!(
        count(&app, "SELECT COUNT(*) FROM subscriber").await,
        subscribers_before,
        "a preview writes no subscriber"
    );

    let confirm = buttons(&shown.body)
        .into_iter()
        .find(|id| id.starts_with("usher:im-ok:"))
        .expect("a Confirm button");
    assert!(confirm.len() <= 100);
    let click = discord.click(&me, Some(GUILD), &confirm, shown.message_id);
    let first = click.response().await;
    assert_eq!(first.kind, 7, "the preview message is updated in place");
    let mut last = String::new();
    while !last.starts_with("Imported") {
        let reply = click.try_next_message(WAIT).await.expect("the import ends");
        reply.body["content"]
            .as_str()
            .unwrap_or_default()
            .clone_into(&mut last);
        assert!(
            last.starts_with("Importing…") || last.starts_with("Imported"),
            "{last}"
        );
    }
    assert_eq!(
        last,
        "Imported 599 people with 600 Plex shares. They are unclaimed until they run `/plex link`."
    );

    // Rows: unclaimed subscribers with identities (plex.tv ids), shares, plans and paid time.
    let unclaimed = "FROM subscriber s JOIN plex_identity i ON i.subscriber_id = s.id \
                     AND i.state = 'active' WHERE s.discord_id IS NULL";
    assert_eq!(
        count(&app, &format!("SELECT COUNT(*) {unclaimed}")).await,
        599
    );
    assert_eq!(
        count(
            &app,
            &format!("SELECT COUNT(*) {unclaimed} AND i.plex_user_id IS NOT NULL")
        )
        .await,
        599
    );
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM share WHERE plex_share_id IS NOT NULL AND imported_libraries IS NOT NULL"
        )
        .await,
        600
    );
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM share WHERE imported_libraries IS NOT NULL AND state = 'pending'"
        )
        .await,
        60
    );
    for (plan_id, wanted) in [(premium.get(), 199), (1, 399)] {
        assert_eq!(
            count(
                &app,
                &format!("SELECT COUNT(*) {unclaimed} AND s.plan_id = {plan_id}")
            )
            .await,
            wanted
        );
    }
    assert_eq!(
        count(
            &app,
            &format!("SELECT COUNT(*) {unclaimed} AND s.plan_id IS NULL")
        )
        .await,
        1
    );
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM payment WHERE provider = 'manual' AND reference = 'import' AND status = 'applied'"
        )
        .await,
        598
    );
    let paid_to = app.clock.now() + chrono::Duration::days(30);
    let mut tx = app.app.db.read().await.unwrap();
    let ends: Vec<chrono::DateTime<chrono::Utc>> = usher::on_tx!(&mut tx, |c| sqlx::query_scalar(
        "SELECT paid_to FROM payment WHERE reference = 'import'"
    )
    .fetch_all(c)
    .await
    .unwrap());
    drop(tx);
    assert!(
        ends.iter().all(|t| *t == paid_to),
        "paid 30 days from the confirm"
    );
    let two = count(
        &app,
        "SELECT COUNT(*) FROM share sh JOIN plex_identity i ON i.id = sh.plex_identity_id \
         WHERE i.email_norm = 'f399@example.com'",
    )
    .await;
    assert_eq!(
        two, 2,
        "a friend on two servers is one subscriber with two shares"
    );
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM plex_identity WHERE email_norm LIKE 'home%'"
        )
        .await,
        0,
        "Home users are never imported"
    );
    assert_eq!(
        app.plex.calls("POST /api/v2/shared_servers"),
        invites_before,
        "nobody is invited"
    );

    // A second import adds nothing.
    let again = discord.slash(
        &me,
        Some(GUILD),
        "admin",
        import_plex(&json!([{"type": 5, "name": "permanent", "value": true}])),
    );
    again.response().await;
    let shown = again.try_next_message(WAIT).await.expect("a preview");
    assert_eq!(
        shown.body["content"].as_str(),
        Some("Nobody new to import.")
    );
    assert!(buttons(&shown.body).is_empty());
    assert_eq!(
        count(&app, &format!("SELECT COUNT(*) {unclaimed}")).await,
        599
    );

    // Three of them claim: f1 with `/plex link` and an emailed code, f2 with `/plex link` and
    // Plex sign-in, f3 through an admin's `/admin user link`.
    let claimed = |discord_id: u64, email: &str| {
        format!(
            "SELECT COUNT(*) FROM subscriber s JOIN plex_identity i ON i.subscriber_id = s.id \
             WHERE s.discord_id = {discord_id} AND i.email_norm = '{email}' AND i.state = 'active'"
        )
    };
    let f1 = FakeUser::new(701, "ann");
    discord.add_member(GUILD, &f1);
    let opened = discord.slash(
        &f1,
        Some(GUILD),
        "plex",
        json!([{"type": 1, "name": "link", "options": []}]),
    );
    let modal = opened.response().await;
    assert_eq!(modal.kind, 9, "a form opens: {:?}", modal.data);
    assert_eq!(modal.data["custom_id"], "usher:join-email:claim");
    let submit = discord.submit_modal(
        &f1,
        Some(GUILD),
        "usher:join-email:claim",
        &[("plex", "F1@example.com"), ("contact", "")],
    );
    assert_eq!(submit.response().await.kind, 5);
    let sent = submit.try_next_message(WAIT).await.expect("code sent");
    assert!(
        sent.content().unwrap_or_default().contains("6-digit code"),
        "{:?}",
        sent.content()
    );
    let code = code_for(&app, "f1@example.com");
    let enter = discord.click(&f1, Some(GUILD), "usher:join-enter:claim", None);
    assert_eq!(enter.response().await.kind, 9);
    let done = discord.submit_modal(
        &f1,
        Some(GUILD),
        "usher:join-code:claim",
        &[("code", code.expose_for_delivery())],
    );
    assert_eq!(done.response().await.kind, 5);
    let welcome = done.try_next_message(WAIT).await.expect("claimed");
    assert!(
        welcome
            .content()
            .unwrap_or_default()
            .contains("f1@example.com"),
        "{:?}",
        welcome.content()
    );
    assert_eq!(count(&app, &claimed(701, "f1@example.com")).await, 1);

    let f2 = FakeUser::new(702, "bob");
    discord.add_member(GUILD, &f2);
    let start = discord.slash(
        &f2,
        Some(GUILD),
        "plex",
        json!([{"type": 1, "name": "link", "options": [{"type": 4, "name": "method", "value": 1}]}]),
    );
    assert_eq!(start.response().await.kind, 5);
    let shown = start.try_next_message(WAIT).await.expect("a sign-in link");
    let signed_in = buttons(&shown.body)
        .into_iter()
        .find(|id| id.starts_with("usher:join-signed-in:"))
        .expect("an I've signed in button");
    let pin = app.plex.pin_codes().pop().expect("a PIN");
    assert!(app.plex.approve_pin(&pin, "f2@example.com"));
    let pressed = discord.click(&f2, Some(GUILD), &signed_in, shown.message_id);
    pressed.response().await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while count(&app, &claimed(702, "f2@example.com")).await == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "f2 claimed by sign-in"
        );
        app.clock.advance(chrono::Duration::milliseconds(200));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let f3 = FakeUser::new(703, "cat");
    discord.add_member(GUILD, &f3);
    let linked = discord.slash(
        &me,
        Some(GUILD),
        "admin",
        json!([{"type": 2, "name": "user", "options": [{"type": 1, "name": "link", "options": [
            {"type": 6, "name": "member", "value": "703"},
            {"type": 3, "name": "plex_email", "value": "f3@example.com"}
        ]}]}]),
    );
    let first = linked.response().await;
    let text = if first.kind == 5 {
        linked
            .try_next_message(WAIT)
            .await
            .expect("linked")
            .content()
            .unwrap_or_default()
            .to_owned()
    } else {
        first.data["content"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    assert!(text.contains("f3@example.com"), "{text}");
    assert_eq!(count(&app, &claimed(703, "f3@example.com")).await, 1);
    // One member is one subscriber: f1 cannot take f3's, and f3's is taken.
    let again = discord.slash(
        &me,
        Some(GUILD),
        "admin",
        json!([{"type": 2, "name": "user", "options": [{"type": 1, "name": "link", "options": [
            {"type": 6, "name": "member", "value": "701"},
            {"type": 3, "name": "plex_email", "value": "f4@example.com"}
        ]}]}]),
    );
    let refused = again.response().await;
    let refused_text = if refused.kind == 5 {
        again
            .try_next_message(WAIT)
            .await
            .expect("refused")
            .content()
            .unwrap_or_default()
            .to_owned()
    } else {
        refused.data["content"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    assert!(
        refused_text.contains("another subscriber already"),
        "{refused_text}"
    );
    assert_eq!(
        count(&app, &format!("SELECT COUNT(*) {unclaimed}")).await,
        596,
        "three claimed, nothing else changed"
    );
}

async fn a_second_confirm_and_a_confirm_during_a_run_are_refused(backend: Backend) {
    use usher::services::import::{self, ImportError, PlexImportOptions};
    let app = TestApp::spawn(backend).await;
    let group = plex_admin::create_group(&app.app, &admin(), "Standard", false)
        .await
        .unwrap();
    plan(&app, "Standard", vec![group]).await;
    crate::helpers::world::owner_with_servers(&app, "owner@example.com", &["Main"], group).await;
    let machine = app.plex.all_servers()[0].machine_identifier.clone();
    let movies = ids(&app, &machine, &["Movies", "TV"]);
    for i in 0..3 {
        app.plex
            .seed_share(&machine, &format!("p{i}@example.com"), Some(&movies), true);
    }
    let options = PlexImportOptions {
        owner: None,
        server: None,
        default_plan: None,
        standing: Standing::Permanent,
    };
    let first = import::preview_plex_import(&app.app, &admin(), &options)
        .await
        .unwrap();
    let second = import::preview_plex_import(&app.app, &admin(), &options)
        .await
        .unwrap();
    // The second confirm starts while the first runs: refused, and the first completes.
    let app2 = app.app.clone();
    let token2 = second.token.clone();
    let during = std::sync::Mutex::new(None);
    let handle = tokio::runtime::Handle::current();
    let done = import::confirm_import(&app.app, &admin(), &first.token, &|progress| {
        if progress.done == 0 {
            let result = std::thread::scope(|scope| {
                scope
                    .spawn(|| {
                        handle.block_on(import::confirm_import(&app2, &admin(), &token2, &|_| {}))
                    })
                    .join()
                    .unwrap()
            });
            *during.lock().unwrap() = Some(result);
        }
    })
    .await
    .unwrap();
    assert_eq!(done.added, 3);
    let during = during.lock().unwrap().take().unwrap();
    assert!(
        matches!(during, Err(ImportError::AnotherRunning)),
        "{during:?}"
    );
    let replay = import::confirm_import(&app.app, &admin(), &first.token, &|_| {}).await;
    assert!(matches!(replay, Err(ImportError::Stale)), "{replay:?}");
    let forged = import::confirm_import(&app.app, &admin(), "nonsense", &|_| {}).await;
    assert!(matches!(forged, Err(ImportError::BadToken)), "{forged:?}");
    assert_eq!(count(&app, "SELECT COUNT(*) FROM subscriber").await, 3);
    assert_eq!(
        count(&app, "SELECT COUNT(*) FROM subscriber WHERE permanent").await,
        3
    );
}

/// An owner account one seat short of plex.tv's ceiling, and a second account with room.
async fn seats_world(app: &TestApp) -> (PlanId, ServerId, ServerId, String) {
    let group = plex_admin::create_group(&app.app, &admin(), "Standard", false)
        .await
        .unwrap();
    let plan = plan(app, "Standard", vec![group]).await;
    let full_owner = crate::helpers::world::owner_with_servers(
        app,
        "full@example.com",
        &["Full 1", "Full 2"],
        group,
    )
    .await;
    crate::helpers::world::owner_with_servers(app, "roomy@example.com", &["Roomy"], group).await;
    let token = app.plex.token_for("full@example.com").unwrap();
    let machine = app
        .plex
        .all_servers()
        .into_iter()
        .find(|s| s.name == "Full 1")
        .unwrap()
        .machine_identifier;
    // 98 people made outside Usher: 80 friends with a share, 8 pending invites, 5 friends
    // without a share, 5 Home users. With the owner: 99 of 100 seats.
    for i in 0..88 {
        app.plex
            .seed_share(&machine, &format!("outside{i}@example.com"), None, i < 80);
    }
    for i in 0..5 {
        app.plex
            .add_friend(&token, &format!("friend{i}@example.com"));
        app.plex
            .add_home_user(&token, &format!("home{i}@example.com"), i == 0);
    }
    assert_eq!(app.plex.seats_used(&token), 99);
    let servers = catalog::servers(&app.app).await.unwrap();
    let id = |name: &str| servers.iter().find(|s| s.name == name).unwrap().id;
    // The hourly reconcile reads the seats.
    for server in &servers {
        plex_sync::reconcile_server(&app.app, server.id)
            .await
            .unwrap();
    }
    let _ = full_owner;
    (plan, id("Full 1"), id("Full 2"), machine)
}

async fn add(app: &TestApp, i: u64, plan: PlanId) -> members::MemberAdded {
    let email = format!("new{i}@example.com");
    app.plex.add_user_account(&email);
    members::add_member(
        &app.app,
        &admin(),
        &NewMember {
            member: DiscordId::new(7000 + i).unwrap(),
            name: format!("new{i}"),
            plex_email: PlexEmail::parse(&email).unwrap(),
            contact_email: None,
            plan,
            standing: Standing::Days(30),
            transaction: None,
            amount: None,
            note: None,
        },
    )
    .await
    .unwrap()
}

async fn an_account_one_seat_short_takes_one_invite_then_placement_moves_on(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (plan, full_1, full_2, _) = seats_world(&app).await;
    let owners = catalog::owner_accounts(&app.app).await.unwrap();
    let full = owners.iter().find(|o| o.name == "full").unwrap();
    assert_eq!((full.seats_used, full.seat_ceiling), (99, 100));

    let first = add(&app, 0, plan).await;
    assert_eq!(
        first.server,
        Some(full_1),
        "the last seat goes first (fewest users, lowest id)"
    );
    let second = add(&app, 1, plan).await;
    let roomy = catalog::servers(&app.app)
        .await
        .unwrap()
        .into_iter()
        .find(|s| s.name == "Roomy")
        .unwrap();
    assert_eq!(
        second.server,
        Some(roomy.id),
        "then another account's server"
    );
    drain(&app).await;
    let token = app.plex.token_for("full@example.com").unwrap();
    assert_eq!(
        app.plex.seats_used(&token),
        100,
        "plex.tv took the one invite"
    );
    assert_eq!(app.plex.shares_for_email("new0@example.com").len(), 1);
    assert_eq!(app.plex.shares_for_email("new1@example.com").len(), 1);
    let listed = catalog::servers(&app.app).await.unwrap();
    let full_listed = listed.iter().find(|s| s.id == full_2).unwrap();
    assert_eq!(
        (full_listed.account_seats_used, full_listed.seat_ceiling),
        (100, 100)
    );

    // Someone seated on the full account can still be shared its second server.
    let mut tx = app.app.db.begin().await.unwrap();
    let identity = usher::store::subscribers::find_active_identity(&mut tx, first.subscriber)
        .await
        .unwrap()
        .unwrap();
    let placed = access::place_and_invite(
        &app.app,
        &mut tx,
        first.subscriber,
        identity.id,
        plan,
        vec![full_2],
        None,
    )
    .await
    .unwrap();
    app.app.queue.commit(tx).await.unwrap();
    assert_eq!(placed, Ok(full_2), "a seated person costs no new seat");
    drain(&app).await;
    assert_eq!(app.plex.shares_for_email("new0@example.com").len(), 2);
    assert_eq!(app.plex.seats_used(&token), 100);

    // A newcomer preferring the full account's server is still sent elsewhere.
    let third = add(&app, 2, plan).await;
    assert_eq!(third.server, Some(roomy.id));
}

crate::on_both_backends!(
    an_existing_server_is_imported_through_discord_exactly_as_previewed,
    a_second_confirm_and_a_confirm_during_a_run_are_refused,
    an_account_one_seat_short_takes_one_invite_then_placement_moves_on,
);
