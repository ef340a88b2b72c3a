//! Free trials through the Discord door (issue 15): a trial works and ends like a paid period; a
//! member gets one, ever, and so does a plex.tv account under any email; the limit of running
//! trials holds; a payment converts a trial off the trial server with no moment without access and
//! no share left doubled.

use chrono::Duration;
use serde_json::Value;
use usher::clock::Clock as _;
use usher::domain::{BillingPeriod, Currency, Money, OwnerAccountId, PlanId, ServerId};
use usher::fakes::discord::FakeUser;
use usher::fakes::plex::FakeShare;
use usher::services::plex_admin::{self, PlanSpec};
use usher::services::plex_sync;
use usher::services::settings::{self, SettingsChange};
use usher::store::servers::{self, ServerFlags};

use crate::helpers::world::admin;
use crate::joining::{
    GUILD, ROLE, Shop, count, eventually, join_by_code, next, said, shop, subscribe_and_pay,
};

/// The trial plan's id (the shop's Standard plan is 1).
const TRIAL_PLAN: i64 = 2;
/// A trial's length.
const TRIAL_HOURS: i64 = 48;

struct TrialShop {
    shop: Shop,
    /// "Trial Box": carries only the Trial group, allows trials.
    trial_box: String,
    main_id: ServerId,
    trial_box_id: ServerId,
}

/// The joining shop (server "Main" with the Standard group, the Standard plan sold by Stripe)
/// plus a second server of the same owner, "Trial Box", whose libraries are in a "Trial" group
/// only, the Trial plan (48 hours) on that group, Main closed to trials, and trials on with at
/// most `max_active` running.
async fn trial_shop(backend: crate::helpers::Backend, max_active: i64) -> TrialShop {
    let shop = shop(backend).await;
    let app = &shop.app;
    let group = plex_admin::create_group(&app.app, &admin(), "Trial", false)
        .await
        .unwrap();
    let trial = plex_admin::create_plan(
        &app.app,
        &admin(),
        &PlanSpec {
            name: "Trial".into(),
            price: Money::parse("0", Currency::parse("USD").unwrap()).unwrap(),
            period: BillingPeriod::Month,
            max_streams: 1,
            trial: true,
            groups: vec![group.into()],
        },
    )
    .await
    .unwrap();
    assert_eq!(trial, PlanId::new(TRIAL_PLAN));
    let token = app.plex.token_for("owner@example.com").unwrap();
    let trial_box = app
        .plex
        .add_server(&token, "Trial Box", &[("Movies", "movie"), ("TV", "show")])
        .machine_identifier;
    let added = plex_admin::add_server(&app.app, &admin(), OwnerAccountId::new(1), "Trial Box")
        .await
        .unwrap();
    let libraries = {
        let mut tx = app.app.db.read().await.unwrap();
        servers::find_libraries(&mut tx, added.id).await.unwrap()
    };
    for library in libraries {
        plex_admin::assign_library(&app.app, &admin(), library.id, Some(group))
            .await
            .unwrap();
    }
    let (main_id, _) = server_named(&shop, "Main").await;
    let no_trials = ServerFlags {
        allow_trials: Some(false),
        ..ServerFlags::default()
    };
    plex_admin::set_server_flags(&app.app, &admin(), main_id, &no_trials)
        .await
        .unwrap();
    let trials = ServerFlags {
        allow_trials: Some(true),
        ..ServerFlags::default()
    };
    plex_admin::set_server_flags(&app.app, &admin(), added.id, &trials)
        .await
        .unwrap();
    let on = SettingsChange {
        trials: Some(true),
        trial_hours: Some(TRIAL_HOURS),
        trial_plan: Some(trial),
        max_active_trials: Some(max_active),
        ..SettingsChange::default()
    };
    settings::change(&app.app, &admin(), &on).await.unwrap();
    TrialShop {
        trial_box,
        shop,
        main_id,
        trial_box_id: added.id,
    }
}

async fn server_named(shop: &Shop, name: &str) -> (ServerId, String) {
    let mut tx = shop.app.app.db.read().await.unwrap();
    let server = servers::find_servers(&mut tx)
        .await
        .unwrap()
        .into_iter()
        .find(|s| s.name == name)
        .unwrap();
    (server.id, server.machine_id)
}

/// `/trial` as `user`; the reply's text.
async fn run_trial(shop: &Shop, user: &FakeUser) -> String {
    let handle = shop.discord.slash(user, Some(GUILD), "trial", Value::Null);
    let first = handle.response().await;
    if first.kind == 4 {
        return said(&first);
    }
    assert_eq!(first.kind, 5, "deferred: {:?}", first.data);
    next(&handle).await.content().unwrap_or_default().to_owned()
}

fn plex_shares(shop: &Shop, email: &str) -> Vec<FakeShare> {
    shop.app.plex.shares_for_email(email)
}

fn has_role(shop: &Shop, user: u64) -> bool {
    shop.discord
        .member_roles(GUILD, user)
        .unwrap_or_default()
        .contains(&ROLE)
}

/// Moves the clock and runs the scheduler's tick, as the service does every minute.
async fn at(shop: &Shop, by: Duration) {
    shop.app.clock.advance(by);
    usher::scheduler::tick(&shop.app.app).await.unwrap();
}

async fn joined(shop: &Shop, id: u64, name: &str) -> FakeUser {
    let user = FakeUser::new(id, name);
    shop.discord.add_member(GUILD, &user);
    shop.app
        .plex
        .add_user_account(&format!("{name}@example.com"));
    let text = join_by_code(
        &shop.discord,
        &shop.app,
        &user,
        &format!("{name}@example.com"),
        &format!("{name}.mail@example.com"),
    )
    .await;
    assert!(text.starts_with("Welcome in!"), "{text}");
    assert!(text.contains("`/trial`"), "trials are offered: {text}");
    user
}

async fn a_trial_works_ends_and_never_comes_twice(backend: crate::helpers::Backend) {
    let t = trial_shop(backend, 1).await;
    let shop = &t.shop;
    let dave = joined(shop, 400, "dave").await;
    let edna = joined(shop, 401, "edna").await;

    let started = run_trial(shop, &dave).await;
    assert!(
        started.contains("Your free trial of **Trial**"),
        "{started}"
    );
    assert!(started.contains("**Trial Box**"), "{started}");
    eventually("plex.tv holds dave's trial share", async || {
        plex_shares(shop, "dave@example.com").len() == 1
    })
    .await;
    let share = &plex_shares(shop, "dave@example.com")[0];
    assert_eq!(share.machine_identifier, t.trial_box, "on the trial server");
    let mut libraries = share.library_ids.clone();
    libraries.sort_unstable();
    let mut box_libraries: Vec<u64> = shop
        .app
        .plex
        .libraries_of(&t.trial_box)
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    box_libraries.sort_unstable();
    assert_eq!(libraries, box_libraries, "the Trial group's libraries");
    eventually("dave has the subscriber role", async || has_role(shop, 400)).await;

    // The limit of running trials (1) is reached: edna waits; dave cannot start another.
    let full = run_trial(shop, &edna).await;
    assert!(full.contains("All free trial places are taken"), "{full}");
    let again = run_trial(shop, &dave).await;
    assert!(again.contains("had your free trial already"), "{again}");
    assert_eq!(
        count(&shop.app, "SELECT COUNT(*) FROM trial_grant").await,
        1
    );

    // The trial ends like a paid period: access removed on plex.tv, the role taken, a DM.
    at(shop, Duration::hours(TRIAL_HOURS) + Duration::minutes(30)).await;
    eventually("dave's trial access is gone from plex.tv", async || {
        plex_shares(shop, "dave@example.com").is_empty()
    })
    .await;
    eventually("dave's role is taken", async || !has_role(shop, 400)).await;
    eventually("dave is told it ended", async || {
        shop.discord
            .messages_to(400)
            .iter()
            .any(|m| m.content.contains("ended"))
    })
    .await;

    // Ended, it is still his one trial; and now edna's place is free.
    let after = run_trial(shop, &dave).await;
    assert!(after.contains("had your free trial already"), "{after}");
    let edna_started = run_trial(shop, &edna).await;
    assert!(
        edna_started.contains("Your free trial of **Trial**"),
        "{edna_started}"
    );
    assert_eq!(
        count(&shop.app, "SELECT COUNT(*) FROM trial_grant").await,
        2
    );
}

async fn the_same_plex_account_under_a_new_email_gets_no_second_trial(
    backend: crate::helpers::Backend,
) {
    let t = trial_shop(backend, 10).await;
    let shop = &t.shop;
    let erin = joined(shop, 410, "erin").await;
    let started = run_trial(shop, &erin).await;
    assert!(started.contains("Your free trial"), "{started}");
    eventually(
        "erin's invite is recorded with her plex.tv id",
        async || {
            count(
                &shop.app,
                "SELECT COUNT(*) FROM plex_identity WHERE email_norm = 'erin@example.com' \
             AND plex_user_id IS NOT NULL",
            )
            .await
                == 1
        },
    )
    .await;
    at(shop, Duration::hours(TRIAL_HOURS) + Duration::minutes(30)).await;
    eventually("erin's trial ended on plex.tv", async || {
        plex_shares(shop, "erin@example.com").is_empty()
    })
    .await;

    // The same person changes the email of that plex.tv account (the id stays) and comes back
    // as another Discord member with the new address.
    assert!(
        shop.app
            .plex
            .change_email("erin@example.com", "erin.again@example.com")
    );
    let frank = FakeUser::new(411, "frank");
    shop.discord.add_member(GUILD, &frank);
    let text = join_by_code(
        &shop.discord,
        &shop.app,
        &frank,
        "erin.again@example.com",
        "frank.mail@example.com",
    )
    .await;
    assert!(text.starts_with("Welcome in!"), "{text}");
    let second = run_trial(shop, &frank).await;
    assert!(second.contains("Your free trial"), "{second}");

    // plex.tv names the account's id when the invite is answered: the invite is taken back at
    // once, the identity refused for good, the trial over, frank told why and the admins alerted.
    eventually("the refused identity", async || {
        count(
            &shop.app,
            "SELECT COUNT(*) FROM plex_identity WHERE email_norm = 'erin.again@example.com' \
             AND state <> 'active'",
        )
        .await
            == 1
    })
    .await;
    eventually("the invite is gone from plex.tv", async || {
        plex_shares(shop, "erin.again@example.com").is_empty()
    })
    .await;
    let now = shop.app.clock.now();
    let mut tx = shop.app.app.db.read().await.unwrap();
    let frank_id = usher::store::subscribers::find_id_by_discord(
        &mut tx,
        usher::domain::DiscordId::new(411).unwrap(),
    )
    .await
    .unwrap()
    .unwrap();
    let trial = usher::store::trials::find_trial(&mut tx, frank_id)
        .await
        .unwrap()
        .unwrap();
    drop(tx);
    assert!(trial.ends_at <= now, "frank's trial ended at once");
    assert_eq!(
        count(
            &shop.app,
            "SELECT COUNT(*) FROM audit_log WHERE action = 'identity.refused'"
        )
        .await,
        1
    );
    eventually("frank is told why", async || {
        shop.discord
            .messages_to(411)
            .iter()
            .any(|m| m.content.contains("erin.again@example.com"))
    })
    .await;
    let third = run_trial(shop, &frank).await;
    assert!(
        third.contains("had your free trial already") || third.contains("must be changed"),
        "{third}"
    );
    assert!(
        count(
            &shop.app,
            "SELECT COUNT(*) FROM share WHERE state <> 'removed' AND subscriber_id IN \
             (SELECT id FROM subscriber WHERE discord_id = 411)"
        )
        .await
            == 0,
        "frank holds no share"
    );
}

async fn a_payment_converts_a_trial_off_the_trial_server_without_a_gap(
    backend: crate::helpers::Backend,
) {
    let t = trial_shop(backend, 10).await;
    let shop = &t.shop;
    let (_, main) = server_named(shop, "Main").await;
    let gina = joined(shop, 420, "gina").await;
    let started = run_trial(shop, &gina).await;
    assert!(started.contains("**Trial Box**"), "{started}");
    eventually("plex.tv holds gina's trial invite", async || {
        plex_shares(shop, "gina@example.com").len() == 1
    })
    .await;
    let trial_share = plex_shares(shop, "gina@example.com")[0].clone();
    assert!(shop.app.plex.accept_invite(trial_share.id));
    plex_sync::reconcile_server(&shop.app.app, t.trial_box_id)
        .await
        .unwrap();
    assert_eq!(
        count(
            &shop.app,
            "SELECT COUNT(*) FROM share WHERE state = 'accepted'"
        )
        .await,
        1
    );

    // Gina pays for Standard during her trial. Trial Box does not carry the Standard group, so
    // she moves to Main: the new share comes first, the trial share stays until it is accepted.
    subscribe_and_pay(shop, &gina, 1).await;
    eventually("plex.tv holds gina's invite to Main", async || {
        plex_shares(shop, "gina@example.com")
            .iter()
            .any(|s| s.machine_identifier == main)
    })
    .await;
    let held = plex_shares(shop, "gina@example.com");
    assert_eq!(held.len(), 2, "the trial share stays meanwhile: {held:?}");
    assert!(held.iter().any(|s| s.id == trial_share.id));
    let new_share = held.iter().find(|s| s.machine_identifier == main).unwrap();
    let mut libraries = new_share.library_ids.clone();
    libraries.sort_unstable();
    let mut main_libraries: Vec<u64> = shop
        .app
        .plex
        .libraries_of(&main)
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    main_libraries.sort_unstable();
    assert_eq!(libraries, main_libraries, "the Standard plan's libraries");
    assert_eq!(
        count(
            &shop.app,
            "SELECT COUNT(*) FROM trial_grant WHERE converted_at IS NOT NULL"
        )
        .await,
        1
    );

    // A reconcile before she accepts changes nothing: she keeps the trial server.
    plex_sync::reconcile_server(&shop.app.app, t.main_id)
        .await
        .unwrap();
    assert_eq!(plex_shares(shop, "gina@example.com").len(), 2);

    // She accepts Main's invite; the next reconcile sees it and the trial share goes.
    assert!(shop.app.plex.accept_invite(new_share.id));
    plex_sync::reconcile_server(&shop.app.app, t.main_id)
        .await
        .unwrap();
    eventually("the trial share is removed on plex.tv", async || {
        plex_shares(shop, "gina@example.com").len() == 1
    })
    .await;
    let left = plex_shares(shop, "gina@example.com");
    assert_eq!(left[0].machine_identifier, main);
    assert_eq!(left[0].id, new_share.id);
    assert_eq!(
        count(
            &shop.app,
            "SELECT COUNT(*) FROM share WHERE state <> 'removed'"
        )
        .await,
        1,
        "one live share"
    );
    assert_eq!(
        count(
            &shop.app,
            "SELECT COUNT(*) FROM subscriber WHERE discord_id = 420 AND plan_id = 1"
        )
        .await,
        1,
        "on the Standard plan"
    );
    // Another reconcile of both servers finds nothing to change.
    for server in [t.main_id, t.trial_box_id] {
        plex_sync::reconcile_server(&shop.app.app, server)
            .await
            .unwrap();
    }
    assert_eq!(plex_shares(shop, "gina@example.com").len(), 1);
}

async fn a_refused_account_still_on_its_first_trial_keeps_that_share(
    backend: crate::helpers::Backend,
) {
    // erin is on her trial (accepted on plex.tv) when the same plex.tv account, under a new
    // email, asks for another trial as frank: frank's identity is refused, and erin's own share
    // is not taken with it.
    let t = trial_shop(backend, 10).await;
    let shop = &t.shop;
    let erin = joined(shop, 430, "erin").await;
    assert!(run_trial(shop, &erin).await.contains("Your free trial"));
    eventually("erin's trial invite", async || {
        plex_shares(shop, "erin@example.com").len() == 1
    })
    .await;
    let hers = plex_shares(shop, "erin@example.com")[0].clone();
    assert!(shop.app.plex.accept_invite(hers.id));
    plex_sync::reconcile_server(&shop.app.app, t.trial_box_id)
        .await
        .unwrap();
    assert!(
        shop.app
            .plex
            .change_email("erin@example.com", "erin.again@example.com")
    );
    let frank = FakeUser::new(431, "frank");
    shop.discord.add_member(GUILD, &frank);
    let text = join_by_code(
        &shop.discord,
        &shop.app,
        &frank,
        "erin.again@example.com",
        "frank.mail@example.com",
    )
    .await;
    assert!(text.starts_with("Welcome in!"), "{text}");
    assert!(run_trial(shop, &frank).await.contains("Your free trial"));
    eventually("frank's identity is refused", async || {
        count(
            &shop.app,
            "SELECT COUNT(*) FROM plex_identity WHERE email_norm = 'erin.again@example.com' \
             AND state <> 'active'",
        )
        .await
            == 1
    })
    .await;
    let all = shop.app.plex.all_shares();
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(all[0].id, hers.id, "erin's share stays");
    assert_eq!(
        count(
            &shop.app,
            "SELECT COUNT(*) FROM share WHERE state <> 'removed' AND subscriber_id IN \
             (SELECT id FROM subscriber WHERE discord_id = 430)"
        )
        .await,
        1
    );
    assert_eq!(
        count(
            &shop.app,
            "SELECT COUNT(*) FROM share WHERE state <> 'removed' AND subscriber_id IN \
             (SELECT id FROM subscriber WHERE discord_id = 431)"
        )
        .await,
        0
    );
}

crate::on_both_backends!(
    a_trial_works_ends_and_never_comes_twice,
    the_same_plex_account_under_a_new_email_gets_no_second_trial,
    a_payment_converts_a_trial_off_the_trial_server_without_a_gap,
    a_refused_account_still_on_its_first_trial_keeps_that_share,
);
