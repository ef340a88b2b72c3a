//! The new customer's way in, end to end through the Discord door (issue 15): `/join` with an
//! emailed code or Plex sign-in, `/subscribe`, the provider's checkout and signed webhook, the
//! placement, the plex.tv invite with the plan's libraries, the subscriber role and the DM naming
//! the server; and every refusal of `/join`, which writes nothing.

use std::time::Duration;

use serde_json::{Value, json};
use usher::clock::Clock as _;
use usher::config::StripeSettings;
use usher::domain::{BillingPeriod, Currency, Money, PlanId};
use usher::fakes::discord::{Callback, FakeDiscord, FakeUser, InteractionHandle, Reply};
use usher::fakes::stripe::FakeStripe;
use usher::services::plex_admin::{self, PlanSpec};
use usher::services::settings::{self, SettingsChange};

use crate::helpers::world::{admin, code_for, owner_with_servers};
use crate::helpers::{Backend, TestApp};

pub const GUILD: u64 = 1_200_000_000_000_000_001;
pub const ROLE: u64 = 5_000;
const NEWCOMER_ROLE: u64 = 6_000;
const WAIT: Duration = Duration::from_secs(15);
const PRICE: &str = "price_standard_monthly";

pub struct Shop {
    pub discord: FakeDiscord,
    pub stripe: FakeStripe,
    pub app: TestApp,
    /// The "Main" server's machine id.
    pub main: String,
}

/// One active owner with the server "Main" (Movies and TV, in the Standard group), the Standard
/// plan (8 USD a month) sold with Stripe, the subscriber role configured; the bot connected and
/// workers running. Nobody is a subscriber.
pub async fn shop(backend: Backend) -> Shop {
    let discord = FakeDiscord::start().await;
    discord.add_guild_role(GUILD, ROLE);
    let stripe = FakeStripe::start().await;
    stripe.add_price(PRICE, true, 800, "usd");
    let (key, secret, base) = (
        stripe.secret_key(),
        stripe.webhook_secret(),
        stripe.base_url(),
    );
    let app = TestApp::spawn_with_discord(backend, &discord, |s| {
        s.discord.guild_ids = vec![GUILD];
        s.discord.subscriber_guild_id = Some(GUILD);
        s.discord.subscriber_role_ids = vec![ROLE];
        s.discord.registration_role_ids = vec![NEWCOMER_ROLE];
        s.payments.stripe = Some(StripeSettings {
            secret_key: key.into(),
            webhook_secret: secret.into(),
            api_base_url: base,
        });
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
    assert_eq!(plan, PlanId::new(1));
    let price = usher::domain::StripePriceId::parse(PRICE).unwrap();
    plex_admin::set_plan_provider_ids(
        &app.app,
        &admin(),
        plan,
        Some(plex_admin::ProviderIdChange::Set(price)),
        None,
    )
    .await
    .unwrap();
    owner_with_servers(&app, "owner@example.com", &["Main"], group).await;
    let main = {
        let mut tx = app.app.db.read().await.unwrap();
        usher::store::servers::find_servers(&mut tx).await.unwrap()[0]
            .machine_id
            .clone()
    };
    let _bot = app.start_bot();
    assert!(
        discord.wait_registered(WAIT).await,
        "the bot registered its commands"
    );
    app.start_workers();
    Shop {
        discord,
        stripe,
        app,
        main,
    }
}

pub fn said(callback: &Callback) -> String {
    callback.data["content"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

pub async fn next(handle: &InteractionHandle) -> Reply {
    handle
        .try_next_message(WAIT)
        .await
        .expect("the bot answered in time")
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

pub fn link_urls(body: &Value) -> Vec<String> {
    body["components"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|row| row["components"].as_array().into_iter().flatten())
        .filter_map(|c| c["url"].as_str().map(str::to_owned))
        .collect()
}

pub async fn count(app: &TestApp, sql: &str) -> i64 {
    let mut tx = app.app.db.read().await.unwrap();
    usher::on_tx!(&mut tx, |c| sqlx::query_scalar(sql)
        .fetch_one(c)
        .await
        .unwrap())
}

/// Waits until `probe` holds, checking every 20 ms.
pub async fn eventually(what: &str, mut probe: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while tokio::time::Instant::now() < deadline {
        if probe().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting until {what}");
}

/// `/join` by emailed code through Discord, as `user` types it; returns the last reply's text.
pub async fn join_by_code(
    discord: &FakeDiscord,
    app: &TestApp,
    user: &FakeUser,
    plex: &str,
    contact: &str,
) -> String {
    let opened = discord.slash(user, Some(GUILD), "join", Value::Null);
    let modal = opened.response().await;
    assert_eq!(modal.kind, 9, "a modal opens: {:?}", modal.data);
    assert_eq!(modal.data["custom_id"], "usher:join-email:join");
    let submit = discord.submit_modal(
        user,
        Some(GUILD),
        "usher:join-email:join",
        &[("plex", plex), ("contact", contact)],
    );
    assert_eq!(submit.response().await.kind, 5);
    let sent = next(&submit).await;
    let text = sent.content().unwrap_or_default().to_owned();
    if !text.contains("6-digit code") {
        return text;
    }
    assert!(buttons(&sent.body).contains(&"usher:join-enter:join".to_owned()));
    let code = code_for(app, &plex.trim().to_lowercase());
    let enter = discord.click(user, Some(GUILD), "usher:join-enter:join", None);
    assert_eq!(enter.response().await.kind, 9);
    let done = discord.submit_modal(
        user,
        Some(GUILD),
        "usher:join-code:join",
        &[("code", code.expose_for_delivery())],
    );
    assert_eq!(done.response().await.kind, 5);
    next(&done).await.content().unwrap_or_default().to_owned()
}

/// `/subscribe plan:` through Discord as `user`, then the member pays at the fake Stripe and
/// Stripe delivers the signed `checkout.session.completed` and `invoice.paid` to the web door.
pub async fn subscribe_and_pay(shop: &Shop, user: &FakeUser, plan: i64) {
    let subscribe = shop.discord.slash(
        user,
        Some(GUILD),
        "subscribe",
        json!([{"type": 3, "name": "plan", "value": plan.to_string()}, {"type": 4, "name": "provider", "value": 0}]),
    );
    assert_eq!(subscribe.response().await.kind, 5);
    let link = next(&subscribe).await;
    let urls = link_urls(&link.body);
    let session = shop.stripe.sessions().pop().expect("a checkout session");
    assert!(
        urls.iter().any(|u| u.contains(&session.id)),
        "{urls:?} {}",
        session.id
    );
    let completed = shop.stripe.complete_checkout(&session.id);
    let sub = completed["data"]["object"]["subscription"]
        .as_str()
        .unwrap()
        .to_owned();
    let now = shop.app.clock.now();
    let invoice = shop
        .stripe
        .event_invoice_paid(&sub, now, now + chrono::Duration::days(30));
    for event in [&completed, &invoice] {
        let (body, header) = shop.stripe.signed_at(event, now.timestamp());
        let status = reqwest::Client::new()
            .post(shop.app.url("/webhooks/stripe"))
            .header("stripe-signature", header)
            .body(body)
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status.as_u16(), 200);
    }
}

async fn a_new_member_joins_subscribes_pays_and_is_invited_with_the_plans_libraries(
    backend: Backend,
) {
    let shop = shop(backend).await;
    let carol = FakeUser::new(300, "carol");
    shop.discord.add_member(GUILD, &carol);
    let plex_id = shop.app.plex.add_user_account("carol@example.com");

    // Before joining, /subscribe points to /join.
    let early = shop
        .discord
        .slash(
            &carol,
            Some(GUILD),
            "subscribe",
            json!([{"type": 3, "name": "plan", "value": "1"}]),
        )
        .response()
        .await;
    assert!(said(&early).contains("run `/join`"), "{}", said(&early));

    // /join by emailed code.
    let joined = join_by_code(
        &shop.discord,
        &shop.app,
        &carol,
        " Carol@Example.com ",
        "carol.mail@example.com",
    )
    .await;
    assert!(joined.starts_with("Welcome in!"), "{joined}");
    assert!(joined.contains("`/subscribe`"), "{joined}");
    assert_eq!(
        count(
            &shop.app,
            "SELECT COUNT(*) FROM subscriber WHERE discord_id = 300 AND display_name = 'carol' \
             AND contact_email = 'carol.mail@example.com' AND plan_id IS NULL"
        )
        .await,
        1
    );
    assert_eq!(
        count(
            &shop.app,
            "SELECT COUNT(*) FROM plex_identity WHERE email_norm = 'carol@example.com' AND state = 'active'"
        )
        .await,
        1
    );
    eventually("the welcome DM arrived", async || {
        shop.discord
            .messages_to(300)
            .iter()
            .any(|m| m.content.contains("Welcome, carol!"))
    })
    .await;

    subscribe_and_pay(&shop, &carol, 1).await;

    // The fake plex.tv holds Carol's share of Main with the plan's libraries (Movies and TV).
    eventually("plex.tv holds Carol's invite", async || {
        shop.app.plex.shares_for_email("carol@example.com").len() == 1
    })
    .await;
    let share = &shop.app.plex.shares_for_email("carol@example.com")[0];
    assert_eq!(share.machine_identifier, shop.main);
    assert_eq!(share.invited_id, plex_id);
    let mut libraries: Vec<u64> = share.library_ids.clone();
    libraries.sort_unstable();
    let mut main_libraries: Vec<u64> = shop
        .app
        .plex
        .libraries_of(&shop.main)
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    main_libraries.sort_unstable();
    assert_eq!(libraries, main_libraries, "Movies and TV, no more");
    assert!(!share.all_libraries);
    // The plex.tv id the invite named is on her identity.
    eventually(
        "the invite is recorded with Carol's plex.tv id",
        async || {
            count(
                &shop.app,
                &format!("SELECT COUNT(*) FROM plex_identity WHERE plex_user_id = {plex_id}"),
            )
            .await
                == 1
        },
    )
    .await;
    // The subscriber role, and a DM naming the server.
    eventually("Carol holds the subscriber role", async || {
        shop.discord
            .member_roles(GUILD, 300)
            .is_some_and(|roles| roles.contains(&ROLE))
    })
    .await;
    eventually("the DM names the server", async || {
        shop.discord.messages_to(300).iter().any(|m| {
            m.content.contains("Check your Plex invites") && m.content.contains("**Main**")
        })
    })
    .await;
    assert!(
        !shop
            .discord
            .messages_to(300)
            .iter()
            .any(|m| m.content.contains("A server has room")),
        "a first invite is not news of a freed place"
    );
}

async fn another_member_joins_by_plex_sign_in(backend: Backend) {
    let shop = shop(backend).await;
    let dave = FakeUser::new(301, "dave");
    shop.discord.add_member(GUILD, &dave);
    let plex_id = shop.app.plex.add_user_account("dave@example.com");

    let start = shop.discord.slash(
        &dave,
        Some(GUILD),
        "join",
        json!([
            {"type": 4, "name": "method", "value": 1},
            {"type": 3, "name": "contact-email", "value": "dave.mail@example.com"}
        ]),
    );
    assert_eq!(start.response().await.kind, 5);
    let shown = next(&start).await;
    let urls = link_urls(&shown.body);
    assert!(
        urls.iter()
            .any(|u| u.starts_with("https://app.plex.tv/auth#?")),
        "{urls:?}"
    );
    let signed_in = buttons(&shown.body)
        .into_iter()
        .find(|id| id.starts_with("usher:join-signed-in:"))
        .expect("an I've signed in button");

    // Pressed before approving: told to finish on Plex, nothing written.
    let early = shop
        .discord
        .click(&dave, Some(GUILD), &signed_in, shown.message_id);
    assert_eq!(early.response().await.kind, 5);
    let early = next(&early).await;
    assert!(
        early
            .content()
            .unwrap_or_default()
            .contains("Plex has not told us"),
        "{:?}",
        early.content()
    );
    assert_eq!(count(&shop.app, "SELECT COUNT(*) FROM subscriber").await, 0);

    // Dave approves on app.plex.tv; Usher notices by itself.
    let code = shop.app.plex.pin_codes().pop().expect("a PIN");
    assert!(shop.app.plex.approve_pin(&code, "dave@example.com"));
    // The watch looks again a few seconds after its last look (time moves on as we wait).
    eventually("Dave is a subscriber", async || {
        shop.app.clock.advance(chrono::Duration::milliseconds(200));
        count(
            &shop.app,
            &format!(
                "SELECT COUNT(*) FROM subscriber s JOIN plex_identity i ON i.subscriber_id = s.id \
                 WHERE s.discord_id = 301 AND s.contact_email = 'dave.mail@example.com' \
                 AND i.email_norm = 'dave@example.com' AND i.plex_user_id = {plex_id} \
                 AND i.plex_username = 'dave'"
            ),
        )
        .await
            == 1
    })
    .await;
    eventually("the welcome DM arrived", async || {
        shop.discord
            .messages_to(301)
            .iter()
            .any(|m| m.content.contains("Welcome, dave!"))
    })
    .await;
    // The button afterwards: already dealt with.
    let late = shop
        .discord
        .click(&dave, Some(GUILD), &signed_in, shown.message_id);
    assert_eq!(late.response().await.kind, 5);
    let late = next(&late).await;
    assert!(
        late.content()
            .unwrap_or_default()
            .contains("already dealt with"),
        "{:?}",
        late.content()
    );
    // Joining again is refused.
    let again = shop
        .discord
        .slash(&dave, Some(GUILD), "join", Value::Null)
        .response()
        .await;
    assert_eq!(again.kind, 4);
    assert!(said(&again).contains("joined already"), "{}", said(&again));
}

async fn registration_role_and_closed_refuse_and_write_nothing(backend: Backend) {
    let shop = shop(backend).await;
    shop.app.plex.add_user_account("erin@example.com");
    shop.app.plex.add_user_account("frank@example.com");
    let erin = FakeUser::new(302, "erin");
    let frank = FakeUser::new(303, "frank").with_roles(&[NEWCOMER_ROLE]);
    shop.discord.add_member(GUILD, &erin);
    shop.discord.add_member(GUILD, &frank);

    let set = |registration: &str| SettingsChange {
        registration: Some(registration.into()),
        ..SettingsChange::default()
    };
    settings::change(&shop.app.app, &admin(), &set("role"))
        .await
        .unwrap();
    // Erin lacks the role: refused at once, before any email is asked; by sign-in too.
    let refused = shop
        .discord
        .slash(&erin, Some(GUILD), "join", Value::Null)
        .response()
        .await;
    assert_eq!(refused.kind, 4);
    assert!(
        said(&refused).contains("roles the admins chose for new members"),
        "{}",
        said(&refused)
    );
    let by_plex = shop.discord.slash(
        &erin,
        Some(GUILD),
        "join",
        json!([{"type": 4, "name": "method", "value": 1}]),
    );
    assert_eq!(by_plex.response().await.kind, 5);
    let by_plex = next(&by_plex).await;
    assert!(
        by_plex
            .content()
            .unwrap_or_default()
            .contains("roles the admins chose"),
        "{:?}",
        by_plex.content()
    );
    // A modal submitted anyway (an old form) is refused the same way.
    let forced = shop.discord.submit_modal(
        &erin,
        Some(GUILD),
        "usher:join-email:join",
        &[("plex", "erin@example.com"), ("contact", "")],
    );
    assert_eq!(forced.response().await.kind, 5);
    let forced = next(&forced).await;
    assert!(
        forced
            .content()
            .unwrap_or_default()
            .contains("roles the admins chose"),
        "{:?}",
        forced.content()
    );
    // Frank holds it: he gets in.
    let joined = join_by_code(&shop.discord, &shop.app, &frank, "frank@example.com", "").await;
    assert!(joined.starts_with("Welcome in!"), "{joined}");

    // Closed: nobody gets in, and the refusal says how.
    settings::change(&shop.app.app, &admin(), &set("closed"))
        .await
        .unwrap();
    let closed = shop
        .discord
        .slash(&erin, Some(GUILD), "join", Value::Null)
        .response()
        .await;
    assert!(
        said(&closed).starts_with("Joining is closed here"),
        "{}",
        said(&closed)
    );
    // Only Frank was written: one subscriber, one identity, one proof; no mail to Erin.
    assert_eq!(count(&shop.app, "SELECT COUNT(*) FROM subscriber").await, 1);
    assert_eq!(
        count(&shop.app, "SELECT COUNT(*) FROM plex_identity").await,
        1
    );
    assert_eq!(
        count(&shop.app, "SELECT COUNT(*) FROM proof_request").await,
        1
    );
    let to_erin = std::fs::read_dir(shop.app.app.settings.outbox_dir())
        .unwrap()
        .filter(|e| {
            std::fs::read_to_string(e.as_ref().unwrap().path())
                .unwrap()
                .contains("To: erin@example.com")
        })
        .count();
    assert_eq!(to_erin, 0);
}

async fn a_join_names_what_is_wrong_with_the_plex_account(backend: Backend) {
    let shop = shop(backend).await;
    shop.app.plex.add_user_account("gina@example.com");
    let gina = FakeUser::new(304, "gina");
    let hank = FakeUser::new(305, "hank");
    for user in [&gina, &hank] {
        shop.discord.add_member(GUILD, user);
    }
    let joined = join_by_code(&shop.discord, &shop.app, &gina, "gina@example.com", "").await;
    assert!(joined.starts_with("Welcome in!"), "{joined}");
    let cases = [
        (
            "not an email",
            "",
            "is not an email address or Plex username",
        ),
        (
            "nobody@example.com",
            "",
            "There is no plex.tv account for nobody@example.com",
        ),
        ("gina@example.com", "", "already in use"),
        (
            "hank@example.com",
            "not-an-email",
            "The contact email `not-an-email` is not an email address",
        ),
    ];
    shop.app.plex.add_user_account("hank@example.com");
    for (plex, contact, wanted) in cases {
        let text = join_by_code(&shop.discord, &shop.app, &hank, plex, contact).await;
        assert!(text.contains(wanted), "{plex}: {text}");
    }
    assert_eq!(count(&shop.app, "SELECT COUNT(*) FROM subscriber").await, 1);
    assert_eq!(
        count(
            &shop.app,
            "SELECT COUNT(*) FROM proof_request WHERE discord_id = 305"
        )
        .await,
        0
    );
}

crate::on_both_backends!(
    a_new_member_joins_subscribes_pays_and_is_invited_with_the_plans_libraries,
    another_member_joins_by_plex_sign_in,
    registration_role_and_closed_refuse_and_write_nothing,
    a_join_names_what_is_wrong_with_the_plex_account,
);
