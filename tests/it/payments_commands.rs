//! The payment commands end to end: `/subscribe` (autocomplete, the private link button, refusals),
//! `/admin plan set-provider` and `list`, and `/admin payments unmatched|assign` for a Stripe
//! invoice that came through the webhook route and matched nobody. The real bot over the fake
//! Discord, the fake Stripe, the real services and database; races against the service directly.

use std::time::Duration;

use secrecy::SecretString;
use serde_json::{Value, json};
use url::Url;
use usher::clock::Clock as _;
use usher::config::StripeSettings;
use usher::domain::{
    Actor, BillingPeriod, Currency, Money, PaymentId, PlanId, Provider, SubscriberId,
};
use usher::fakes::discord::{Callback, FakeDiscord, FakeUser, InteractionHandle, Reply};
use usher::fakes::stripe::FakeStripe;
use usher::integrations::payments::stripe::{CheckoutRequest, StripeClient};
use usher::services::payments::{AssignError, assign_unmatched};
use usher::services::plex_admin::{self, PlanSpec};
use usher::services::{account, account_change, checkout};

use crate::helpers::world::{World, admin, banned_world};
use crate::helpers::{Backend, TestApp};

const GUILD: u64 = 1_200_000_000_000_000_001;
const ADMIN_ROLE: u64 = 4242;
const WAIT: Duration = Duration::from_secs(15);
const PRICE: &str = "price_standard_monthly";

struct Door {
    discord: FakeDiscord,
    stripe: FakeStripe,
    app: TestApp,
    admin: FakeUser,
    world: World,
}

/// A banned world of `n` subscribers (Discord users 100.., plan Standard, 8 USD a month), Stripe
/// configured (its price not yet on the plan), the bot connected and job workers running.
async fn door(backend: Backend, n: u64) -> Door {
    let discord = FakeDiscord::start().await;
    let stripe = FakeStripe::start().await;
    stripe.add_price(PRICE, true, 800, "usd");
    let (key, secret, base) = (
        stripe.secret_key(),
        stripe.webhook_secret(),
        stripe.base_url(),
    );
    let app = TestApp::spawn_with_discord(backend, &discord, |s| {
        s.discord.guild_ids = vec![GUILD];
        s.discord.admin_role_ids = vec![ADMIN_ROLE];
        s.payments.stripe = Some(StripeSettings {
            secret_key: key.into(),
            webhook_secret: secret.into(),
            api_base_url: base,
        });
    })
    .await;
    let world = banned_world(&app, n).await;
    for i in 0..n {
        discord.add_user(&subscriber(i));
    }
    let _bot = app.start_bot();
    assert!(
        discord.wait_registered(WAIT).await,
        "the bot registered its commands"
    );
    app.start_workers();
    Door {
        discord,
        stripe,
        app,
        admin: FakeUser::new(900, "owner").with_roles(&[ADMIN_ROLE]),
        world,
    }
}

fn subscriber(i: u64) -> FakeUser {
    FakeUser::new(100 + i, &format!("user{i}"))
}

fn is_ephemeral(flags: &Value) -> bool {
    flags.as_u64().unwrap_or(0) & 64 == 64
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

async fn paid_until(app: &TestApp, who: SubscriberId) -> Option<chrono::DateTime<chrono::Utc>> {
    account::status_of(&app.app, who)
        .await
        .unwrap()
        .unwrap()
        .paid_until
}

impl Door {
    /// `/admin <group> <sub> …options` as the admin (or `user`).
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

    fn ask(&self, group: &str, sub: &str, options: &Value) -> InteractionHandle {
        self.admin_as(&self.admin, group, sub, options)
    }

    /// `/admin plan set-provider plan:1 stripe_price:<price>` through Discord.
    async fn set_stripe_price(&self, price: &str) -> String {
        let options = json!([
            {"type": 3, "name": "plan", "value": "1"},
            {"type": 3, "name": "stripe_price", "value": price}
        ]);
        said(&self.ask("plan", "set-provider", &options).response().await)
    }

    /// The plan labels `/subscribe`'s autocomplete offers `user` (with `provider` chosen, if any).
    async fn offered(&self, user: &FakeUser, provider: Option<u64>) -> Vec<(String, String)> {
        let mut options = vec![json!({"type": 3, "name": "plan", "value": "", "focused": true})];
        if let Some(index) = provider {
            options.push(json!({"type": 4, "name": "provider", "value": index}));
        }
        let answer = self
            .discord
            .autocomplete(user, Some(GUILD), "subscribe", Value::Array(options))
            .response()
            .await;
        assert_eq!(answer.kind, 8, "an autocomplete result");
        answer.data["choices"]
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

    /// `/subscribe plan:<plan>` (and `provider:<index>`) as `user`.
    fn subscribe(&self, user: &FakeUser, plan: &str, provider: Option<u64>) -> InteractionHandle {
        let mut options = vec![json!({"type": 3, "name": "plan", "value": plan})];
        if let Some(index) = provider {
            options.push(json!({"type": 4, "name": "provider", "value": index}));
        }
        self.discord
            .slash(user, Some(GUILD), "subscribe", Value::Array(options))
    }
}

/// A second, priceless plan and a retired plan with a Stripe price: neither may be offered.
async fn more_plans(app: &TestApp) {
    let usd = Currency::parse("USD").unwrap();
    for (name, price) in [("Premium", "12"), ("Legacy", "5")] {
        plex_admin::create_plan(
            &app.app,
            &admin(),
            &PlanSpec {
                name: name.into(),
                price: Money::parse(price, usd).unwrap(),
                period: BillingPeriod::Year,
                max_streams: 1,
                trial: false,
                groups: Vec::new(),
            },
        )
        .await
        .unwrap();
    }
    let legacy = PlanId::new(3);
    let retire = plex_admin::PlanEdit {
        name: None,
        price: None,
        max_streams: None,
        trial: None,
        active: Some(false),
        groups: None,
    };
    plex_admin::edit_plan(&app.app, &admin(), legacy, &retire)
        .await
        .unwrap();
    let mut tx = app.app.db.begin().await.unwrap();
    usher::store::payments::update_plan_provider_ids(&mut tx, legacy, Some("price_legacy"), None)
        .await
        .unwrap();
    tx.commit().await.unwrap();
}

async fn an_admin_prices_a_plan_and_a_subscriber_gets_a_private_stripe_link(backend: Backend) {
    let door = door(backend, 2).await;
    more_plans(&door.app).await;
    let alice = subscriber(0);

    // No plan is sold by Stripe yet: nothing to offer.
    assert!(door.offered(&alice, None).await.is_empty());

    // Bad ids are refused with the reason and change nothing; the input is never echoed.
    let audit = "SELECT COUNT(*) FROM audit_log WHERE action = 'plan.provider_ids'";
    let refused = door.set_stripe_price("prod_123").await;
    assert!(
        refused.starts_with("A Stripe price id starts with `price_`"),
        "{refused}"
    );
    let key = door.set_stripe_price("sk_live_do_not_echo").await;
    assert!(key.contains("Stripe key, not a price id"), "{key}");
    assert!(!key.contains("sk_live_do_not_echo"));
    let nothing = door
        .ask(
            "plan",
            "set-provider",
            &json!([{"type": 3, "name": "plan", "value": "1"}]),
        )
        .response()
        .await;
    assert!(
        said(&nothing).starts_with("Give `stripe_price` or `paypal_plan`"),
        "{}",
        said(&nothing)
    );
    let paypal = door
        .ask(
            "plan",
            "set-provider",
            &json!([
                {"type": 3, "name": "plan", "value": "1"},
                {"type": 3, "name": "paypal_plan", "value": "PLAN-1"}
            ]),
        )
        .response()
        .await;
    assert!(
        said(&paypal).starts_with("A PayPal plan id starts with `P-`"),
        "{}",
        said(&paypal)
    );
    assert_eq!(count(&door.app, audit).await, 0);
    assert_eq!(
        count(
            &door.app,
            "SELECT COUNT(*) FROM plan WHERE id = 1 AND stripe_price_id IS NULL AND paypal_plan_id IS NULL"
        )
        .await,
        1
    );
    // A member who is not an admin is refused.
    let member = door
        .admin_as(
            &alice,
            "plan",
            "set-provider",
            &json!([{"type": 3, "name": "plan", "value": "1"},
                    {"type": 3, "name": "stripe_price", "value": PRICE}]),
        )
        .response()
        .await;
    assert_eq!(said(&member), usher::commands::NOT_ADMIN);
    assert_eq!(count(&door.app, audit).await, 0);

    // The admin sets it; the PayPal id may be set before PayPal is configured, and says so.
    let saved = door.set_stripe_price(&format!("  {PRICE} ")).await;
    assert_eq!(
        saved,
        format!("Saved. **Standard**: Stripe price `{PRICE}`, PayPal plan none.")
    );
    assert_eq!(count(&door.app, audit).await, 1);
    let listed = said(&door.ask("plan", "list", &json!([])).response().await);
    assert!(
        listed.contains(&format!(
            "`1` **Standard** 8.00 USD a month — sold with Stripe; Stripe price `{PRICE}`, PayPal plan none"
        )),
        "{listed}"
    );
    assert!(
        listed.contains("**Premium** 12.00 USD a year — sold by no provider yet"),
        "{listed}"
    );
    assert!(
        listed
            .contains("`3` **Legacy** 5.00 USD a year — not offered; Stripe price `price_legacy`"),
        "{listed}"
    );

    // Autocomplete: the active plan Stripe sells, with its price; nothing under PayPal.
    let standard = vec![("Standard — 8.00 USD a month".to_owned(), "1".to_owned())];
    assert_eq!(door.offered(&alice, None).await, standard);
    assert_eq!(door.offered(&alice, Some(0)).await, standard);
    assert!(door.offered(&alice, Some(1)).await.is_empty());

    // Provider left out: Stripe is the only one, so it is used. The reply is private, says what
    // is bought and carries a link button to the session Stripe made.
    let asked = door.subscribe(&alice, "1", None);
    let first = asked.response().await;
    assert_eq!(first.kind, 5, "deferred while Stripe is asked");
    assert!(is_ephemeral(&first.data["flags"]));
    let reply = next(&asked).await;
    assert!(is_ephemeral(&reply.body["flags"]), "{}", reply.body);
    assert_eq!(
        reply.content().unwrap_or_default(),
        "You are buying **Standard**: 8.00 USD a month, paid with Stripe. The button opens Stripe's page to pay on; your access follows as soon as the payment arrives."
    );
    let sessions = door.stripe.sessions();
    assert_eq!(sessions.len(), 1);
    let button = &reply.body["components"][0]["components"][0];
    assert_eq!(button["style"], 5, "a link button: {button}");
    assert_eq!(button["label"], "Pay with Stripe");
    assert_eq!(
        button["url"].as_str().unwrap(),
        format!("https://checkout.stripe.com/c/pay/{}", sessions[0].id)
    );
    assert_eq!(sessions[0].price_id, PRICE);
    assert_eq!(
        sessions[0].customer_email.as_deref(),
        Some("old0@example.com")
    );
    let reference = sessions[0].client_reference_id.clone().unwrap();
    assert_eq!(
        count(
            &door.app,
            &format!(
                "SELECT COUNT(*) FROM checkout WHERE reference = '{reference}' AND subscriber_id = 1 AND plan_id = 1 AND provider = 'stripe'"
            )
        )
        .await,
        1
    );

    // Refusals, each a sentence; none makes a checkout or calls Stripe.
    let calls = door.stripe.total_calls();
    let stranger = FakeUser::new(555, "stranger");
    let unknown = door.subscribe(&stranger, "1", None).response().await;
    assert_eq!(
        said(&unknown),
        "You are not a subscriber here yet: run `/join` to link your Plex account (or `/plex link` if the admins imported you)."
    );
    assert!(is_ephemeral(&unknown.data["flags"]));
    let cases = [
        ("3", Some(0), "That plan is not offered."),
        (
            "2",
            Some(0),
            "The plan Premium cannot be paid with Stripe yet; ask the admins.",
        ),
        (
            "2",
            None,
            "The plan Premium cannot be paid for here yet; ask the admins.",
        ),
        ("1", Some(1), "PayPal payments are not set up here."),
        ("1", Some(2), "Plisio payments are not set up here."),
    ];
    for (plan, provider, expected) in cases {
        let asked = door.subscribe(&alice, plan, provider);
        assert_eq!(asked.response().await.kind, 5);
        let reply = next(&asked).await;
        assert_eq!(reply.content().unwrap_or_default(), expected, "plan {plan}");
        assert!(is_ephemeral(&reply.body["flags"]));
        assert_eq!(reply.body["components"], Value::Null);
    }
    let typed = door.subscribe(&alice, "Standard", None).response().await;
    assert_eq!(
        said(&typed),
        "Pick the plan from the list (got `Standard`)."
    );

    // A flagged subscriber is told to change their Plex account first.
    let bob = subscriber(1);
    account_change::set_flag(&door.app.app, &admin(), door.world.subscribers[1].0, true)
        .await
        .unwrap();
    let flagged = door.subscribe(&bob, "1", Some(0));
    flagged.response().await;
    assert_eq!(
        next(&flagged).await.content().unwrap_or_default(),
        "Your Plex account must be changed before you can subscribe or renew; run /plex change-account first."
    );
    assert_eq!(door.stripe.total_calls(), calls, "Stripe was not asked");
    assert_eq!(count(&door.app, "SELECT COUNT(*) FROM checkout").await, 1);

    // A PayPal plan id can be set before PayPal is configured (the reply says so); `none`
    // takes the plan off Stripe, and /subscribe stops offering it.
    let paypal = said(
        &door
            .ask(
                "plan",
                "set-provider",
                &json!([
                    {"type": 3, "name": "plan", "value": "1"},
                    {"type": 3, "name": "stripe_price", "value": "None"},
                    {"type": 3, "name": "paypal_plan", "value": "P-5ML4271244454362WXNWU5NQ"}
                ]),
            )
            .response()
            .await,
    );
    assert_eq!(
        paypal,
        "Saved. **Standard**: Stripe price none, PayPal plan `P-5ML4271244454362WXNWU5NQ`. PayPal is not configured here, so it is not sold there yet."
    );
    assert!(door.offered(&alice, None).await.is_empty());
    assert_eq!(count(&door.app, audit).await, 2);

    // /help lists the new commands.
    let help = door
        .discord
        .slash(&door.admin, Some(GUILD), "help", Value::Null)
        .response()
        .await;
    let help = said(&help);
    for line in [
        "`/subscribe` — Pay for a plan",
        "`/admin plan create|edit|retire|list|set-provider`",
        "`/admin payments unmatched|assign`",
    ] {
        assert!(help.contains(line), "{line} in {help}");
    }
    assert!(help.chars().count() <= 2000, "fits one Discord message");
    assert!(door.discord.unknown_calls().is_empty());
}

/// A subscription at Stripe that Usher did not make (a payment link shared by hand), paid by
/// someone Usher does not know: its invoice carries no reference and no known email.
async fn a_stranger_subscription(door: &Door) -> String {
    let client = StripeClient::new(
        door.stripe.base_url(),
        SecretString::from(door.stripe.secret_key()),
    )
    .unwrap();
    let session = client
        .create_checkout_session(&CheckoutRequest {
            price_id: PRICE.into(),
            recurring: true,
            usher_ref: "made-elsewhere".into(),
            customer_email: Some("stranger@example.com".into()),
            success_url: Url::parse("https://shop.example/ok").unwrap(),
            cancel_url: Url::parse("https://shop.example/no").unwrap(),
            idempotency_key: "made-elsewhere".into(),
        })
        .await
        .unwrap();
    let completed = door.stripe.complete_checkout(&session.id);
    completed["data"]["object"]["subscription"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// An `invoice.paid` for `sub` without Usher's reference, through the webhook route.
async fn deliver_invoice_without_reference(door: &Door, sub: &str) {
    let now = door.app.clock.now();
    let mut invoice = door
        .stripe
        .event_invoice_paid(sub, now, now + chrono::Duration::days(30));
    invoice["data"]["object"]["parent"]["subscription_details"]["metadata"] = json!({});
    let (body, header) = door.stripe.signed_at(&invoice, now.timestamp());
    let status = reqwest::Client::new()
        .post(door.app.url("/webhooks/stripe"))
        .header("stripe-signature", header)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 200);
}

async fn an_admin_assigns_an_unmatched_stripe_invoice_once(backend: Backend) {
    let door = door(backend, 2).await;
    let sub = a_stranger_subscription(&door).await;
    let unmatched = "SELECT COUNT(*) FROM payment WHERE status = 'unmatched'";

    let empty = said(
        &door
            .ask("payments", "unmatched", &json!([]))
            .response()
            .await,
    );
    assert_eq!(
        empty,
        "No unmatched payments: every payment found its subscriber."
    );
    deliver_invoice_without_reference(&door, &sub).await;
    assert_eq!(count(&door.app, unmatched).await, 1);

    // The admin lists it: id, provider, amount, currency, payer email, date.
    let listed = said(
        &door
            .ask("payments", "unmatched", &json!([]))
            .response()
            .await,
    );
    assert!(listed.starts_with("**1 unmatched payments**"), "{listed}");
    let date = door.app.clock.now().format("%Y-%m-%d %H:%M UTC");
    assert!(
        listed.contains(&format!(
            "`#1` Stripe · 8.00 USD · stranger@example.com · {date} · `in_"
        )),
        "{listed}"
    );
    // ...and is offered it when assigning.
    let typed = door
        .discord
        .autocomplete(
            &door.admin,
            Some(GUILD),
            "admin",
            json!([{"type": 2, "name": "payments", "options": [
                {"type": 1, "name": "assign", "options": [
                    {"type": 3, "name": "payment", "value": "strang", "focused": true}
                ]}
            ]}]),
        )
        .response()
        .await;
    assert_eq!(
        typed.data["choices"],
        json!([{"name": "#1 Stripe 8.00 USD stranger@example.com", "value": "1"}])
    );

    let assign = |user: &FakeUser, payment: &str, to: u64| {
        door.admin_as(
            user,
            "payments",
            "assign",
            &json!([
                {"type": 3, "name": "payment", "value": payment},
                {"type": 6, "name": "user", "value": to.to_string()}
            ]),
        )
    };
    let alice = door.world.subscribers[0].0;
    assert_eq!(
        door.app.plex.shares_for_email("old0@example.com").len(),
        1,
        "only the share on the banned server"
    );

    // A member who is not an admin is refused, and nothing changes.
    let member = assign(&subscriber(1), "1", 101).response().await;
    assert_eq!(said(&member), usher::commands::NOT_ADMIN);
    assert!(is_ephemeral(&member.data["flags"]));
    // Refusals with their reason: unknown payment, someone who is not a subscriber.
    let missing = assign(&door.admin, "99", 100).response().await;
    assert_eq!(said(&missing), "There is no payment #99.");
    door.discord.add_user(&FakeUser::new(555, "stranger"));
    let nobody = assign(&door.admin, "1", 555).response().await;
    assert_eq!(said(&nobody), "Stranger is not a subscriber.");
    assert_eq!(count(&door.app, unmatched).await, 1);
    assert_eq!(paid_until(&door.app, alice).await, None);

    // The admin assigns it to user0: one period from now, audited with the admin.
    let now = door.app.clock.now();
    let until = BillingPeriod::Month.after(now);
    let done = said(&assign(&door.admin, "#1", 100).response().await);
    assert_eq!(
        done,
        format!(
            "Payment #1 (8.00 USD via Stripe) now pays for **Standard** for user0: paid from <t:{}:D> until <t:{}:D>.",
            now.timestamp(),
            until.timestamp()
        )
    );
    assert_eq!(paid_until(&door.app, alice).await, Some(until));
    assert!(
        account::status_of(&door.app.app, alice)
            .await
            .unwrap()
            .unwrap()
            .active
    );
    assert_eq!(
        count(
            &door.app,
            "SELECT COUNT(*) FROM audit_log WHERE action = 'payment.assigned' AND actor = 'discord:900' AND subscriber_id = 1"
        )
        .await,
        1
    );
    // They had no access (their server's owner was banned): the invite goes out.
    eventually("user0 is invited to a new server", async || {
        door.app.plex.shares_for_email("old0@example.com").len() == 2
    })
    .await;

    // A second assign, to anyone, is refused and changes nothing.
    let again = said(&assign(&door.admin, "1", 101).response().await);
    assert_eq!(
        again,
        "Payment #1 is already matched to a subscriber; nothing changed."
    );
    assert_eq!(paid_until(&door.app, alice).await, Some(until));
    assert_eq!(
        paid_until(&door.app, door.world.subscribers[1].0).await,
        None
    );
    assert_eq!(
        count(
            &door.app,
            "SELECT COUNT(*) FROM payment WHERE status = 'applied'"
        )
        .await,
        1
    );
    let empty = said(
        &door
            .ask("payments", "unmatched", &json!([]))
            .response()
            .await,
    );
    assert!(empty.starts_with("No unmatched payments"), "{empty}");
}

async fn assigning_needs_a_plan_and_refuses_refunded_payments(backend: Backend) {
    let door = door(backend, 2).await;
    let sub = a_stranger_subscription(&door).await;
    deliver_invoice_without_reference(&door, &sub).await;
    let alice = door.world.subscribers[0].0;
    let payment = PaymentId::new(1);

    // A subscriber with no plan needs the plan named.
    let mut tx = door.app.app.db.begin().await.unwrap();
    usher::store::subscribers::update_subscriber_plan(&mut tx, alice, None, door.app.clock.now())
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let no_plan = assign_unmatched(&door.app.app, &admin(), payment, alice, None).await;
    assert!(
        matches!(no_plan, Err(AssignError::NoPlan(ref n)) if n == "user0"),
        "{no_plan:?}"
    );
    let bad_plan = assign_unmatched(
        &door.app.app,
        &admin(),
        payment,
        alice,
        Some(PlanId::new(42)),
    )
    .await;
    assert!(matches!(bad_plan, Err(AssignError::NoSuchPlan(_))));
    let nobody = assign_unmatched(
        &door.app.app,
        &admin(),
        payment,
        SubscriberId::new(77),
        Some(PlanId::new(1)),
    )
    .await;
    assert!(matches!(nobody, Err(AssignError::NotSubscriber)));
    assert_eq!(
        count(
            &door.app,
            "SELECT COUNT(*) FROM payment WHERE status = 'unmatched'"
        )
        .await,
        1
    );
    let done = assign_unmatched(
        &door.app.app,
        &admin(),
        payment,
        alice,
        Some(PlanId::new(1)),
    )
    .await
    .unwrap();
    assert_eq!(done.plan, "Standard");

    // Refunded at Stripe: it cannot be given again.
    let refund = door.stripe.event_charge_refunded(&sub, 800);
    let now = door.app.clock.now();
    let (body, header) = door.stripe.signed_at(&refund, now.timestamp());
    let status = reqwest::Client::new()
        .post(door.app.url("/webhooks/stripe"))
        .header("stripe-signature", header)
        .body(body)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 200);
    assert_eq!(
        count(
            &door.app,
            "SELECT COUNT(*) FROM payment WHERE status = 'refunded'"
        )
        .await,
        1
    );
    let refunded = assign_unmatched(
        &door.app.app,
        &admin(),
        payment,
        door.world.subscribers[1].0,
        None,
    )
    .await;
    assert!(
        matches!(refunded, Err(AssignError::Refunded(_))),
        "{refunded:?}"
    );
    assert_eq!(
        paid_until(&door.app, door.world.subscribers[1].0).await,
        None
    );
}

async fn concurrent_assigns_and_a_late_webhook_match_apply_a_payment_once(backend: Backend) {
    let door = door(backend, 4).await;
    let mut tx = door.app.app.db.begin().await.unwrap();
    usher::store::payments::update_plan_provider_ids(&mut tx, PlanId::new(1), Some(PRICE), None)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let now = door.app.clock.now();
    let one_period = BillingPeriod::Month.after(now);

    // Two admins assign the same payment at once, to different subscribers: one wins.
    let sub = a_stranger_subscription(&door).await;
    deliver_invoice_without_reference(&door, &sub).await;
    let (a, b) = (door.world.subscribers[0].0, door.world.subscribers[1].0);
    let payment = PaymentId::new(1);
    let actor = admin();
    let (first, second) = tokio::join!(
        assign_unmatched(&door.app.app, &actor, payment, a, None),
        assign_unmatched(&door.app.app, &actor, payment, b, None),
    );
    let won = [&first, &second].iter().filter(|r| r.is_ok()).count();
    assert_eq!(won, 1, "{first:?} {second:?}");
    for lost in [&first, &second]
        .into_iter()
        .filter_map(|r| r.as_ref().err())
    {
        assert!(matches!(lost, AssignError::AlreadyMatched(_)), "{lost:?}");
    }
    let mut ends = [
        paid_until(&door.app, a).await,
        paid_until(&door.app, b).await,
    ];
    ends.sort();
    assert_eq!(ends, [None, Some(one_period)]);

    // A subscriber's own checkout: the invoice arrives first without the reference (unmatched),
    // then the admin assigns it while the activation that would match it arrives.
    for i in [2_usize, 3] {
        let who = door.world.subscribers[i].0;
        checkout::start_checkout(
            &door.app.app,
            &Actor::Subscriber(who),
            who,
            PlanId::new(1),
            Provider::Stripe,
        )
        .await
        .unwrap();
        let session = door.stripe.sessions().pop().unwrap();
        let completed = door.stripe.complete_checkout(&session.id);
        let sub = completed["data"]["object"]["subscription"]
            .as_str()
            .unwrap()
            .to_owned();
        deliver_invoice_without_reference(&door, &sub).await;
        let payment = {
            let mut tx = door.app.app.db.read().await.unwrap();
            let rows = usher::store::payments::find_unmatched(&mut tx)
                .await
                .unwrap();
            assert_eq!(rows.len(), 1);
            rows[0].id
        };
        let (body, header) = door.stripe.signed_at(&completed, now.timestamp());
        let webhook = reqwest::Client::new()
            .post(door.app.url("/webhooks/stripe"))
            .header("stripe-signature", header)
            .body(body)
            .send();
        let (assigned, delivered) = tokio::join!(
            assign_unmatched(&door.app.app, &actor, payment, who, None),
            webhook,
        );
        assert_eq!(delivered.unwrap().status(), 200);
        assert!(
            matches!(assigned, Ok(_) | Err(AssignError::AlreadyMatched(_))),
            "{assigned:?}"
        );
        assert_eq!(
            paid_until(&door.app, who).await,
            Some(one_period),
            "subscriber {i}"
        );
        assert_eq!(
            count(
                &door.app,
                &format!(
                    "SELECT COUNT(*) FROM payment WHERE subscriber_id = {} AND status = 'applied'",
                    who.get()
                )
            )
            .await,
            1
        );
    }
    assert_eq!(
        count(
            &door.app,
            "SELECT COUNT(*) FROM payment WHERE status = 'unmatched'"
        )
        .await,
        0
    );
}

async fn without_a_provider_chosen_the_one_that_sells_the_plan_is_used_or_asked_for(
    backend: Backend,
) {
    let stripe = FakeStripe::start().await;
    let (key, secret, base) = (
        stripe.secret_key(),
        stripe.webhook_secret(),
        stripe.base_url(),
    );
    // Plisio is configured but never called here.
    let app = TestApp::spawn_with(backend, move |s| {
        s.payments.stripe = Some(StripeSettings {
            secret_key: key.into(),
            webhook_secret: secret.into(),
            api_base_url: base,
        });
        s.payments.plisio = Some(usher::config::PlisioSettings {
            secret_key: "plisio-secret".to_owned().into(),
            api_base_url: Url::parse("http://127.0.0.1:9/").unwrap(),
        });
    })
    .await;
    let world = banned_world(&app, 1).await;
    let me = world.subscribers[0].0;
    let mut tx = app.app.db.begin().await.unwrap();
    usher::store::payments::update_plan_provider_ids(&mut tx, PlanId::new(1), Some(PRICE), None)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let asked = checkout::subscribe(&app.app, me, PlanId::new(1), None).await;
    let Err(err) = asked else { panic!("{asked:?}") };
    assert_eq!(
        err.to_string(),
        "choose how to pay for Standard: Stripe, Plisio"
    );
    assert_eq!(count(&app, "SELECT COUNT(*) FROM checkout").await, 0);
    assert_eq!(stripe.total_calls(), 0);

    // With no provider configured at all, the subscriber is told so.
    let unpaid = TestApp::spawn(backend).await;
    let world = banned_world(&unpaid, 1).await;
    let none = checkout::subscribe(&unpaid.app, world.subscribers[0].0, PlanId::new(1), None).await;
    assert!(
        matches!(none, Err(checkout::CheckoutError::NoProviders)),
        "{none:?}"
    );
}

/// What the admins must check besides unmatched payments is listed with them: a refund that
/// matched nothing and a signed delivery that could not be stored.
async fn refunds_and_rejected_deliveries_are_listed_for_the_admins(backend: Backend) {
    let door = door(backend, 1).await;
    let refund = door.stripe.event_outside_charge_refunded(1500, "usd");
    let mut broken = door.stripe.event_outside_charge_refunded(100, "usd");
    broken["data"]["object"]["currency"] = json!("dollars");
    for event in [&refund, &broken] {
        let (body, header) = door
            .stripe
            .signed_at(event, door.app.clock.now().timestamp());
        let status = reqwest::Client::new()
            .post(door.app.url("/webhooks/stripe"))
            .header("stripe-signature", header)
            .body(body)
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 200);
    }
    let listed = said(
        &door
            .ask("payments", "unmatched", &json!([]))
            .response()
            .await,
    );
    assert!(listed.starts_with("No unmatched payments"), "{listed}");
    assert!(listed.contains("**2 to check**"), "{listed}");
    assert!(
        listed.contains("Unmatched refund · Stripe · 15.00 USD"),
        "{listed}"
    );
    assert!(
        listed.contains("Delivery kept unread · Stripe · `charge.refunded`")
            && listed.contains("/currency"),
        "{listed}"
    );
}

crate::on_both_backends!(
    refunds_and_rejected_deliveries_are_listed_for_the_admins,
    without_a_provider_chosen_the_one_that_sells_the_plan_is_used_or_asked_for,
    an_admin_prices_a_plan_and_a_subscriber_gets_a_private_stripe_link,
    an_admin_assigns_an_unmatched_stripe_invoice_once,
    assigning_needs_a_plan_and_refuses_refunded_payments,
    concurrent_assigns_and_a_late_webhook_match_apply_a_payment_once,
);
