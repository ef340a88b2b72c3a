//! What the process logs: a full run with every secret configured (bot connected, owner account
//! added, webhooks of each provider delivered, a forged sign-in link, jobs run, then stopped) at
//! debug level contains none of the secrets and no colour codes when standard error is not a
//! terminal; requests and jobs carry spans with their ids; `log.format = "json"` writes one
//! object per line.

use std::time::Duration;

use usher::fakes::discord::{FakeDiscord, FakeUser};
use usher::fakes::paypal::FakePayPal;
use usher::fakes::plex::FakePlex;
use usher::fakes::plisio::FakePlisio;
use usher::fakes::stripe::FakeStripe;

use crate::helpers::bin::{Usher, free_port};
use crate::helpers::{drop_postgres_database, fresh_postgres_database, load};

const GUILD: u64 = 810_000_000_000_000_001;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_run_logs_no_secret_and_no_colour_and_gives_requests_and_jobs_ids() {
    let (discord, plex, stripe, paypal, plisio) = (
        FakeDiscord::start().await,
        FakePlex::start().await,
        FakeStripe::start().await,
        FakePayPal::start().await,
        FakePlisio::start().await,
    );
    let owner_token = plex.add_owner("owner@example.com");
    let (url, database) = fresh_postgres_database().await;
    // Trust authentication ignores the password, so a configured one must still never show.
    let pg_password = "pg-password-must-not-show";
    let url = url.replacen("postgres@", &format!("postgres:{pg_password}@"), 1);
    let secret_key = "c2VjcmV0LWtleS1tdXN0LW5vdC1zaG93LWluLWEtbG9nLWZpbGU=";
    let smtp_password = "smtp-password-must-not-show";
    let secrets = [
        ("discord token", discord.token()),
        ("owner Plex token", owner_token.clone()),
        ("Stripe secret key", stripe.secret_key()),
        ("Stripe webhook secret", stripe.webhook_secret()),
        ("PayPal client secret", paypal.client_secret()),
        ("Plisio secret key", plisio.secret_key()),
        ("SMTP password", smtp_password.to_owned()),
        ("database password", pg_password.to_owned()),
        ("secret key", secret_key.to_owned()),
    ];

    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let usher = Usher::new(dir.path())
        .env("USHER_LOG", "debug")
        .env("USHER_WEB__ADDR", format!("127.0.0.1:{port}"))
        .env("USHER_DATABASE__URL", url)
        .env("USHER_SECRET_KEY", secret_key)
        .env("USHER_PLEX__BASE_URL", plex.base_url().as_str())
        .env("USHER_DISCORD__TOKEN", discord.token())
        .env("USHER_DISCORD__API_BASE_URL", discord.api_base())
        .env("USHER_DISCORD__GUILD_IDS", format!("[{GUILD}]"))
        .env("USHER_EMAIL__SMTP__HOST", "127.0.0.1")
        .env("USHER_EMAIL__SMTP__PORT", free_port().to_string())
        .env("USHER_EMAIL__SMTP__TLS", "none")
        .env("USHER_EMAIL__SMTP__USERNAME", "usher")
        .env("USHER_EMAIL__SMTP__PASSWORD", smtp_password)
        .env("USHER_PAYMENTS__STRIPE__SECRET_KEY", stripe.secret_key())
        .env(
            "USHER_PAYMENTS__STRIPE__WEBHOOK_SECRET",
            stripe.webhook_secret(),
        )
        .env(
            "USHER_PAYMENTS__STRIPE__API_BASE_URL",
            stripe.base_url().as_str(),
        )
        .env("USHER_PAYMENTS__PAYPAL__CLIENT_ID", paypal.client_id())
        .env(
            "USHER_PAYMENTS__PAYPAL__CLIENT_SECRET",
            paypal.client_secret(),
        )
        .env("USHER_PAYMENTS__PAYPAL__WEBHOOK_ID", paypal.webhook_id())
        .env(
            "USHER_PAYMENTS__PAYPAL__API_BASE_URL",
            paypal.base_url().as_str(),
        )
        .env("USHER_PAYMENTS__PLISIO__SECRET_KEY", plisio.secret_key())
        .env(
            "USHER_PAYMENTS__PLISIO__API_BASE_URL",
            plisio.base_url().as_str(),
        );

    let mut log = String::new();
    let token_file = dir.path().join("owner.token");
    std::fs::write(&token_file, &owner_token).unwrap();
    let added = usher
        .output(&[
            "plex-account",
            "add",
            "--token-file",
            token_file.to_str().unwrap(),
        ])
        .await;
    assert!(added.status.success());
    log.push_str(&String::from_utf8_lossy(&added.stderr));
    log.push_str(&String::from_utf8_lossy(&added.stdout));

    let running = usher.spawn(&[]);
    running.wait_healthy(port).await;
    running
        .wait_for_log("registered commands in guild", Duration::from_secs(20))
        .await;
    let invite = usher::bot::invite_url(discord.application_id()).to_string();
    assert!(
        running.log().contains(&invite),
        "the log names the invite link {invite}:\n{}",
        running.log()
    );
    let help = discord.slash(
        &FakeUser::new(5, "ana"),
        Some(GUILD),
        "help",
        serde_json::json!([]),
    );
    assert_eq!(help.response().await.kind, 4);

    let client = reqwest::Client::new();
    let web = |path: &str| format!("http://127.0.0.1:{port}{path}");
    let (body, signature) = load::invoice_paid(1, "sub_nobody", &stripe.webhook_secret());
    let paid = client
        .post(web("/webhooks/stripe"))
        .header("stripe-signature", signature)
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(paid.status(), 200);
    let request_id = paid.headers()["x-request-id"].to_str().unwrap().to_owned();
    let forged = client
        .post(web("/webhooks/stripe"))
        .header("stripe-signature", "t=1,v1=00")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 400);
    let event = serde_json::json!({
        "id": "WH-LOGS-1",
        "event_version": "1.0",
        "create_time": "2026-03-01T12:00:00Z",
        "resource_type": "subscription",
        "event_type": "BILLING.SUBSCRIPTION.CANCELLED",
        "summary": "Subscription cancelled",
        "resource": {"id": "I-NOBODY", "status": "CANCELLED", "plan_id": "P-NONE"},
        "links": [],
    });
    let (body, headers) = paypal.signed(&event);
    let verified = client
        .post(web("/webhooks/paypal"))
        .headers(headers)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(verified.status(), 200, "{}", verified.text().await.unwrap());
    assert_eq!(
        paypal.verify_calls(),
        1,
        "verified with PayPal (OAuth first)"
    );
    let login = client
        .get(web("/account/login?token=forged-login-token-must-not-show"))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 401);
    client.get(web("/metrics")).send().await.unwrap();
    running
        .wait_for_log("job{id=", Duration::from_secs(20))
        .await;

    let (status, run_log) = running.stop().await;
    assert!(status.success(), "{run_log}");
    log.push_str(&run_log);
    drop_postgres_database(database);

    for (name, secret) in &secrets {
        assert!(
            !log.contains(secret.as_str()),
            "the {name} is in the log:\n{log}"
        );
    }
    assert!(!log.contains("forged-login-token-must-not-show"), "{log}");
    assert!(
        !log.contains('\u{1b}'),
        "colour codes in a log that is not a terminal"
    );
    let finished = log
        .lines()
        .find(|l| l.contains("request finished") && l.contains(&format!("id={request_id}")))
        .unwrap_or_else(|| panic!("no request line with id {request_id}:\n{log}"));
    assert!(finished.contains("route=/webhooks/stripe"), "{finished}");
    assert!(finished.contains("status=200"), "{finished}");
    assert!(
        log.lines()
            .any(|l| l.contains("job{id=") && l.contains("kind=")),
        "a job's lines carry its span:\n{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_write_one_object_per_line_with_the_request_span() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let usher = Usher::new(dir.path())
        .env("USHER_WEB__ADDR", format!("127.0.0.1:{port}"))
        .env("USHER_LOG__FORMAT", "json");
    let running = usher.spawn(&[]);
    running.wait_healthy(port).await;
    let response = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .unwrap();
    let id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let (status, log) = running.stop().await;
    assert!(status.success(), "{log}");
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(lines.len() > 3, "{log}");
    assert!(
        lines
            .iter()
            .all(|l| l["level"].is_string() && l["timestamp"].is_string())
    );
    let request = lines
        .iter()
        .find(|l| l["fields"]["message"] == "request finished" && l["span"]["id"] == id.as_str())
        .unwrap_or_else(|| panic!("no request line with id {id}:\n{log}"));
    assert_eq!(request["span"]["name"], "request");
    assert_eq!(request["span"]["route"], "/metrics");
    assert_eq!(request["fields"]["status"], 200);
}
