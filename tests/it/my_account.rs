//! My Account over HTTP, on both backends: one-time sign-in links, sessions, CSRF, the account
//! change and the re-invite through the page, and what a refused request leaves behind (nothing).

use reqwest::StatusCode;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use usher::clock::Clock as _;
use usher::domain::{ServerId, SubscriberId};
use usher::services::sign_in;
use usher::services::{access, account_change, plex_admin, settings};
use usher::store::servers::ServerFlags;

use crate::helpers::world::{admin, after_a_ban, banned_world, code_for, drain};
use crate::helpers::{Backend, TestApp};

/// A browser without JavaScript: follows no redirects, carries the session cookie by hand.
struct Browser {
    http: reqwest::Client,
    base: String,
    cookie: Option<String>,
}

impl Browser {
    fn new(app: &TestApp) -> Self {
        Self {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            base: app.url(""),
            cookie: None,
        }
    }

    /// Opens a link issued by Usher (its host is the configured public URL, not the test server).
    async fn open_link(&mut self, link: &url::Url) -> reqwest::Response {
        let path = format!("{}?{}", link.path(), link.query().unwrap_or(""));
        let response = self.get(&path).await;
        if let Some(set) = response.headers().get(SET_COOKIE) {
            let pair = set.to_str().unwrap().split(';').next().unwrap().to_owned();
            self.cookie = Some(pair);
        }
        response
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        let mut request = self.http.get(format!("{}{path}", self.base));
        if let Some(cookie) = &self.cookie {
            request = request.header(COOKIE, cookie);
        }
        request.send().await.unwrap()
    }

    async fn post(&self, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        let mut request = self.http.post(format!("{}{path}", self.base)).form(form);
        if let Some(cookie) = &self.cookie {
            request = request.header(COOKIE, cookie);
        }
        request.send().await.unwrap()
    }

    /// The CSRF token of the page at `path`.
    async fn csrf(&self, path: &str) -> String {
        let html = self.get(path).await.text().await.unwrap();
        csrf_in(&html)
    }
}

fn csrf_in(html: &str) -> String {
    let marker = "name=\"csrf\" value=\"";
    let start = html.find(marker).expect("a CSRF field on the page") + marker.len();
    html[start..].split('"').next().unwrap().to_owned()
}

async fn count(app: &TestApp, sql: &str) -> i64 {
    let mut tx = app.app.db.read().await.unwrap();
    usher::on_tx!(&mut tx, |c| sqlx::query_scalar(sql)
        .fetch_one(c)
        .await
        .unwrap())
}

fn outbox_len(app: &TestApp) -> usize {
    std::fs::read_dir(app.app.settings.outbox_dir()).map_or(0, Iterator::count)
}

/// Signs `subscriber` in and returns the browser holding the session.
async fn signed_in(app: &TestApp, subscriber: SubscriberId) -> Browser {
    let link = sign_in::issue_link(&app.app, subscriber).await.unwrap();
    let mut browser = Browser::new(app);
    let response = browser.open_link(&link.url).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    browser
}

/// Pays `subscriber` for the 30 days around now.
async fn pay(app: &TestApp, subscriber: SubscriberId, txn: &str) {
    let now = app.clock.now();
    let mut tx = app.app.db.begin().await.unwrap();
    usher::on_tx!(&mut tx, |c| {
        sqlx::query(
        "INSERT INTO payment (subscriber_id, provider, provider_txn_id, amount_minor, currency, \
         paid_from, paid_to, status, created_at) VALUES ($1, 'manual', $2, 800, 'USD', $3, $4, 'applied', $5)"
    )
    .bind(subscriber.get())
    .bind(txn)
    .bind(now - chrono::Duration::days(3))
    .bind(now + chrono::Duration::days(27))
    .bind(now)
    .execute(c)
    .await
    .unwrap()
    .rows_affected()
    });
    tx.commit().await.unwrap();
}

async fn a_sign_in_link_works_once_and_shows_only_the_owners_flagged_account(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let world = after_a_ban(&app, 2).await;
    let (me, _) = &world.subscribers[0];
    let link = sign_in::issue_link(&app.app, *me).await.unwrap();
    assert!(
        link.url.as_str().starts_with(&format!(
            "{}account/login?token=",
            app.app.settings.public_url()
        )),
        "{}",
        link.url
    );

    let mut browser = Browser::new(&app);
    let response = browser.open_link(&link.url).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(response.headers()[LOCATION], "/account");
    let cookie = response.headers()[SET_COOKIE].to_str().unwrap().to_owned();
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/account", "Max-Age="] {
        assert!(cookie.contains(attribute), "{attribute} missing: {cookie}");
    }
    assert!(
        !cookie.contains("Secure"),
        "plain http public URL: {cookie}"
    );

    let page = browser.get("/account").await;
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(page.headers()["cache-control"], "no-store");
    assert!(
        page.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("frame-ancestors 'none'")
    );
    let html = page.text().await.unwrap();
    assert!(html.contains("id=\"flag-banner\""), "{html}");
    assert!(html.contains("Your Plex account must change"));
    assert!(html.contains("Hello, user0"));
    assert!(html.contains("old0@example.com"));
    assert!(
        !html.contains("user1") && !html.contains("old1@example.com"),
        "another subscriber's data leaked"
    );
    assert!(!html.contains("Re-invite me"), "no re-invite while flagged");

    // The same link again: refused, and no second session.
    let mut other = Browser::new(&app);
    let again = other.open_link(&link.url).await;
    assert_eq!(again.status(), StatusCode::UNAUTHORIZED);
    assert!(again.headers().get(SET_COOKIE).is_none());
    assert!(
        again
            .text()
            .await
            .unwrap()
            .contains("This link does not work")
    );
    assert_eq!(count(&app, "SELECT COUNT(*) FROM web_session").await, 1);

    // Without a session the page asks to sign in, and shows nobody's data.
    let anonymous = Browser::new(&app).get("/account").await;
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    assert!(!anonymous.text().await.unwrap().contains("user0"));
}

async fn forged_altered_expired_and_reused_links_open_no_session(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let world = after_a_ban(&app, 1).await;
    let (me, _) = &world.subscribers[0];
    let link = sign_in::issue_link(&app.app, *me).await.unwrap();
    let token = link
        .url
        .query_pairs()
        .find(|(k, _)| k == "token")
        .unwrap()
        .1
        .into_owned();

    // Altered: one character of the token flipped; another purpose's token; garbage; nothing.
    let mut altered = token.clone().into_bytes();
    let last = altered.len() - 1;
    altered[last] = if altered[last] == b'A' { b'B' } else { b'A' };
    let altered = String::from_utf8(altered).unwrap();
    let other_purpose = app.app.signer.sign(
        "change-account",
        &format!("{me}.x"),
        Some(app.clock.now() + chrono::Duration::minutes(5)),
    );
    for bad in [
        format!("/account/login?token={altered}"),
        format!("/account/login?token={other_purpose}"),
        "/account/login?token=not-a-token".to_owned(),
        "/account/login".to_owned(),
    ] {
        let response = Browser::new(&app).get(&bad).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{bad}");
        assert!(response.headers().get(SET_COOKIE).is_none(), "{bad}");
        let html = response.text().await.unwrap();
        assert!(!html.contains(&token), "the page echoes no token");
    }
    assert_eq!(count(&app, "SELECT COUNT(*) FROM web_session").await, 0);
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM web_login_link WHERE used_at IS NOT NULL"
        )
        .await,
        0,
        "a refused link consumes nothing"
    );

    // Expired: 16 minutes later the genuine link is refused and stays unused.
    app.clock.advance(chrono::Duration::minutes(16));
    let response = Browser::new(&app).open_link(&link.url).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(response.headers().get(SET_COOKIE).is_none());
    assert_eq!(count(&app, "SELECT COUNT(*) FROM web_session").await, 0);

    // A fresh link works once; the reuse is refused.
    let fresh = sign_in::issue_link(&app.app, *me).await.unwrap();
    assert_eq!(
        Browser::new(&app).open_link(&fresh.url).await.status(),
        StatusCode::SEE_OTHER
    );
    let reused = Browser::new(&app).open_link(&fresh.url).await;
    assert_eq!(reused.status(), StatusCode::UNAUTHORIZED);
    assert!(reused.headers().get(SET_COOKIE).is_none());
    assert_eq!(count(&app, "SELECT COUNT(*) FROM web_session").await, 1);

    // Two browsers racing with one link: exactly one session.
    let raced = sign_in::issue_link(&app.app, *me).await.unwrap();
    let (mut a, mut b) = (Browser::new(&app), Browser::new(&app));
    let (ra, rb) = tokio::join!(a.open_link(&raced.url), b.open_link(&raced.url));
    let mut statuses = [ra.status(), rb.status()];
    statuses.sort();
    assert_eq!(statuses, [StatusCode::SEE_OTHER, StatusCode::UNAUTHORIZED]);
    assert_eq!(count(&app, "SELECT COUNT(*) FROM web_session").await, 2);
}

async fn posts_without_the_sessions_csrf_token_change_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let world = after_a_ban(&app, 1).await;
    let (me, _) = &world.subscribers[0];
    app.plex.add_user_account("fresh0@example.com");
    pay(&app, *me, "t-0").await;
    let browser = signed_in(&app, *me).await;
    let good = browser.csrf("/account").await;
    let mails = outbox_len(&app);
    let shares_before = count(&app, "SELECT COUNT(*) FROM share").await;

    for csrf in [None, Some(""), Some("forged-token")] {
        let mut form = vec![("email", "fresh0@example.com")];
        if let Some(csrf) = csrf {
            form.push(("csrf", csrf));
        }
        let response = browser.post("/account/change", &form).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{csrf:?}");
        assert!(
            response
                .text()
                .await
                .unwrap()
                .contains("nothing was changed")
        );
        for path in [
            "/account/reinvite",
            "/account/change/resend",
            "/account/logout",
        ] {
            let mut form = Vec::new();
            if let Some(csrf) = csrf {
                form.push(("csrf", csrf));
            }
            let response = browser.post(path, &form).await;
            assert_eq!(response.status(), StatusCode::FORBIDDEN, "{path} {csrf:?}");
        }
        let response = browser
            .post("/account/change/code", &[("code", "123456")])
            .await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
    }
    assert_eq!(count(&app, "SELECT COUNT(*) FROM proof_request").await, 0);
    assert_eq!(outbox_len(&app), mails, "no code was mailed");
    assert_eq!(
        count(&app, "SELECT COUNT(*) FROM share").await,
        shares_before
    );
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM web_session WHERE ended_at IS NULL"
        )
        .await,
        1,
        "a forged sign-out ends nothing"
    );
    assert_eq!(browser.get("/account").await.status(), StatusCode::OK);

    // A token that is almost the session's is refused too.
    let response = browser
        .post(
            "/account/change",
            &[
                ("email", "fresh0@example.com"),
                ("csrf", &format!("{good}x")),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);

    // Without a cookie, a POST is a sign-in page, not an action.
    let response = Browser::new(&app)
        .post(
            "/account/change",
            &[("email", "fresh0@example.com"), ("csrf", &good)],
        )
        .await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(count(&app, "SELECT COUNT(*) FROM proof_request").await, 0);
}

async fn a_flagged_subscriber_changes_account_through_the_page(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let world = after_a_ban(&app, 2).await;
    let (me, old) = world.subscribers[0].clone();
    app.plex.add_user_account("fresh0@example.com");
    let browser = signed_in(&app, me).await;

    let form = browser.get("/account/change").await;
    assert_eq!(form.status(), StatusCode::OK);
    let csrf = csrf_in(&form.text().await.unwrap());

    // Refusals from the services show on the page and change nothing.
    for (email, expected) in [
        ("not an email", "That email does not look right"),
        (old.as_str(), "That is the Plex account you already use"),
        ("old1@example.com", "That Plex account is already in use."),
        (
            "nobody@example.com",
            "There is no plex.tv account for nobody@example.com",
        ),
    ] {
        let response = browser
            .post("/account/change", &[("email", email), ("csrf", &csrf)])
            .await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{email}");
        let html = response.text().await.unwrap();
        assert!(html.contains(expected), "{email}: {html}");
    }
    assert_eq!(count(&app, "SELECT COUNT(*) FROM proof_request").await, 0);

    let response = browser
        .post(
            "/account/change",
            &[("email", "  Fresh0@Example.com "), ("csrf", &csrf)],
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(response.headers()[LOCATION], "/account/change/code");
    let code = code_for(&app, "fresh0@example.com");
    let code_text = code.expose_for_delivery().to_owned();
    let page = browser.get("/account/change/code").await;
    assert_eq!(page.status(), StatusCode::OK);
    assert!(!page.text().await.unwrap().contains(&code_text));

    let wrong = if code_text == "000000" {
        "111111"
    } else {
        "000000"
    };
    let response = browser
        .post("/account/change/code", &[("code", wrong), ("csrf", &csrf)])
        .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(response.text().await.unwrap().contains("4 tries left"));

    let response = browser
        .post(
            "/account/change/code",
            &[("code", &code_text), ("csrf", &csrf)],
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let html = response.text().await.unwrap();
    assert!(
        html.contains("Done: your Plex account is now fresh0@example.com"),
        "{html}"
    );
    assert!(html.contains("Check your Plex invites"));
    assert!(!html.contains(&code_text), "the page never shows the code");

    drain(&app).await;
    assert_eq!(app.plex.shares_for_email("fresh0@example.com").len(), 1);
    assert!(app.plex.shares_for_email(&old).is_empty());
    let html = browser.get("/account").await.text().await.unwrap();
    assert!(!html.contains("id=\"flag-banner\""));
    assert!(html.contains("fresh0@example.com"));
    assert!(html.contains("waiting for you"), "invite pending: {html}");

    // With the setting off, the change form says so.
    settings::set_plex_account_change(&app.app, &admin(), false)
        .await
        .unwrap();
    account_change::set_flag(&app.app, &admin(), me, true)
        .await
        .unwrap();
    let response = browser.get("/account/change").await;
    assert_eq!(response.status(), StatusCode::CONFLICT);
    assert!(response.text().await.unwrap().contains("turned off"));
}

async fn re_invite_me_places_a_paid_up_subscriber_and_refuses_the_others(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let world = banned_world(&app, 3).await;
    // The banned owner is removed: the old shares go, the subscribers stay.
    plex_admin::remove_owner_account(&app.app, &admin(), world.old_owner, false)
        .await
        .unwrap();
    let (paid, paid_email) = world.subscribers[0].clone();
    // The banned server's share stays on plex.tv (nobody can call it any more); count the others.
    let old_owner_plex_id = app.plex.shares_for_email(&paid_email)[0].owner_id;
    let (unpaid, _) = world.subscribers[1].clone();
    let (flagged, _) = world.subscribers[2].clone();
    pay(&app, paid, "t-paid").await;
    pay(&app, flagged, "t-flagged").await;
    account_change::set_flag(&app.app, &admin(), flagged, true)
        .await
        .unwrap();

    let browser = signed_in(&app, paid).await;
    let html = browser.get("/account").await.text().await.unwrap();
    assert!(html.contains("Re-invite me"), "{html}");
    let csrf = csrf_in(&html);
    let response = browser.post("/account/reinvite", &[("csrf", &csrf)]).await;
    assert_eq!(response.status(), StatusCode::OK);
    let html = response.text().await.unwrap();
    assert!(html.contains("is on its way"), "{html}");
    assert!(
        !html.contains("Re-invite me"),
        "the button goes once invited"
    );
    drain(&app).await;
    let new_shares = || {
        app.plex
            .shares_for_email(&paid_email)
            .into_iter()
            .filter(|s| s.owner_id != old_owner_plex_id)
            .count()
    };
    assert_eq!(new_shares(), 1, "one invite on a new server");

    // Asking again: the invite is waiting, nothing new.
    let response = browser.post("/account/reinvite", &[("csrf", &csrf)]).await;
    assert_eq!(response.status(), StatusCode::CONFLICT);
    assert!(response.text().await.unwrap().contains("still waiting"));
    drain(&app).await;
    assert_eq!(new_shares(), 1);

    // Not paid up, and flagged: refused, with the reason, and no share made.
    for (who, expected) in [(unpaid, "not active"), (flagged, "must be changed first")] {
        let browser = signed_in(&app, who).await;
        let html = browser.get("/account").await.text().await.unwrap();
        assert!(!html.contains("Re-invite me"));
        let csrf = csrf_in(&html);
        let before = count(&app, "SELECT COUNT(*) FROM share WHERE state <> 'removed'").await;
        let response = browser.post("/account/reinvite", &[("csrf", &csrf)]).await;
        assert_eq!(response.status(), StatusCode::CONFLICT);
        assert!(response.text().await.unwrap().contains(expected));
        assert_eq!(
            count(&app, "SELECT COUNT(*) FROM share WHERE state <> 'removed'").await,
            before
        );
    }
}

async fn sign_out_ends_the_session_and_https_sets_secure_cookies(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| {
        s.public_url = Some("https://usher.example.com".parse().unwrap());
    })
    .await;
    let world = after_a_ban(&app, 1).await;
    let (me, _) = &world.subscribers[0];
    let link = sign_in::issue_link(&app.app, *me).await.unwrap();
    assert!(
        link.url
            .as_str()
            .starts_with("https://usher.example.com/account/login?token="),
        "{}",
        link.url
    );
    let mut browser = Browser::new(&app);
    let response = browser.open_link(&link.url).await;
    assert!(
        response.headers()[SET_COOKIE]
            .to_str()
            .unwrap()
            .contains("Secure")
    );
    let csrf = browser.csrf("/account").await;
    let response = browser.post("/account/logout", &[("csrf", &csrf)]).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("You are signed out")
    );
    assert_eq!(
        browser.get("/account").await.status(),
        StatusCode::UNAUTHORIZED
    );
}

async fn subscribers_waiting_for_room_are_invited_when_a_server_opens(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let world = after_a_ban(&app, 3).await;
    for (i, (sub, _)) in world.subscribers.iter().enumerate() {
        pay(&app, *sub, &format!("t-{i}")).await;
    }
    // Both new servers closed: every verified change waits for room.
    for id in [2, 3] {
        plex_admin::set_server_flags(
            &app.app,
            &admin(),
            ServerId::new(id),
            &ServerFlags {
                allow_new_subscriptions: Some(false),
                ..ServerFlags::default()
            },
        )
        .await
        .unwrap();
    }
    drain(&app).await;
    for (i, (sub, _)) in world.subscribers.iter().enumerate() {
        let email = format!("new{i}@example.com");
        app.plex.add_user_account(&email);
        let actor = usher::domain::Actor::Subscriber(*sub);
        let parsed = usher::domain::PlexEmail::parse(&email).unwrap();
        account_change::request_change(&app.app, &actor, *sub, &parsed)
            .await
            .unwrap();
        let code = code_for(&app, &email);
        let applied = account_change::verify_change(&app.app, &actor, *sub, &code)
            .await
            .unwrap();
        assert_eq!(applied.server, None);
    }
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM subscriber WHERE waiting_for_room_since IS NOT NULL"
        )
        .await,
        3
    );
    // The hourly run finds nothing with room: they keep waiting, nothing is invited.
    assert_eq!(access::place_waiting(&app.app).await.unwrap(), 0);

    // The admin opens both servers: the change queues the placement, which spreads the cohort.
    for id in [2, 3] {
        plex_admin::set_server_flags(
            &app.app,
            &admin(),
            ServerId::new(id),
            &ServerFlags {
                allow_new_subscriptions: Some(true),
                ..ServerFlags::default()
            },
        )
        .await
        .unwrap();
    }
    drain(&app).await;
    for i in 0..3 {
        assert_eq!(
            app.plex
                .shares_for_email(&format!("new{i}@example.com"))
                .len(),
            1,
            "new{i} invited"
        );
    }
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM subscriber WHERE waiting_for_room_since IS NOT NULL"
        )
        .await,
        0
    );
    let on_a = count(
        &app,
        "SELECT COUNT(*) FROM share WHERE server_id = 2 AND state <> 'removed'",
    )
    .await;
    let on_b = count(
        &app,
        "SELECT COUNT(*) FROM share WHERE server_id = 3 AND state <> 'removed'",
    )
    .await;
    assert_eq!(on_a + on_b, 3);
    assert!(on_a >= 1 && on_b >= 1, "spread over both: {on_a}/{on_b}");
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM notification WHERE kind = 'invited'"
        )
        .await,
        3
    );
    // Running again invites nobody twice.
    assert_eq!(access::place_waiting(&app.app).await.unwrap(), 0);
}

crate::on_both_backends!(
    a_sign_in_link_works_once_and_shows_only_the_owners_flagged_account,
    forged_altered_expired_and_reused_links_open_no_session,
    posts_without_the_sessions_csrf_token_change_nothing,
    a_flagged_subscriber_changes_account_through_the_page,
    re_invite_me_places_a_paid_up_subscriber_and_refuses_the_others,
    sign_out_ends_the_session_and_https_sets_secure_cookies,
    subscribers_waiting_for_room_are_invited_when_a_server_opens,
);
