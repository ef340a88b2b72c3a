//! `usher doctor` against the local fakes of every service: a complete installation is all ✓ and
//! exits 0; then each fault, alone, gives its own ✗ (and exit 1) and no other ✗.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use usher::fakes::discord::{FakeDiscord, FakeUser, bits};
use usher::fakes::paypal::FakePayPal;
use usher::fakes::plex::FakePlex;
use usher::fakes::plisio::FakePlisio;
use usher::fakes::smtp::FakeSmtp;
use usher::fakes::stripe::FakeStripe;

use crate::helpers::bin::{Running, Usher, free_port};
use crate::helpers::{Backend, drop_postgres_database, fresh_postgres_database};

const HOME: u64 = 820_000_000_000_000_001;
const OTHER_HOME: u64 = 820_000_000_000_000_002;
const ROLE: u64 = 820_000_000_000_000_003;
const SMTP_USER: &str = "usher@example.com";
const SMTP_PASSWORD: &str = "smtp-app-password";

struct World {
    discord: FakeDiscord,
    plex: FakePlex,
    stripe: FakeStripe,
    paypal: FakePayPal,
    plisio: FakePlisio,
    smtp: FakeSmtp,
    owner_token: String,
    machine_id: String,
    alert: u64,
    usher: Usher,
    port: u16,
    dir: tempfile::TempDir,
    pg_database: Option<String>,
}

impl Drop for World {
    fn drop(&mut self) {
        if let Some(name) = self.pg_database.take() {
            drop_postgres_database(name);
        }
    }
}

impl World {
    /// Every service configured and every fake set up as the README's quick start leaves them.
    async fn new(backend: Backend) -> Self {
        let (discord, plex, stripe, paypal, plisio, smtp) = (
            FakeDiscord::start().await,
            FakePlex::start().await,
            FakeStripe::start().await,
            FakePayPal::start().await,
            FakePlisio::start().await,
            FakeSmtp::start(SMTP_USER, SMTP_PASSWORD).await,
        );
        let owner_token = plex.add_owner("owner@example.com");
        let machine_id = plex
            .add_server(&owner_token, "Main", &[("Movies", "movie")])
            .machine_identifier;
        discord.name_guild(HOME, "Home");
        discord.add_guild_role(HOME, ROLE);
        discord.name_guild(OTHER_HOME, "Other");
        let alert = discord.add_guild_channel(HOME, "usher-alerts");
        let fallback = discord.add_guild_channel(HOME, "recovery-help");
        let port = free_port();
        let public_url = format!("http://127.0.0.1:{port}");
        stripe.add_webhook_endpoint(&format!("{public_url}/webhooks/stripe"), false);

        let dir = tempfile::tempdir().unwrap();
        let (database_url, pg_database) = match backend {
            Backend::Sqlite => (None, None),
            Backend::Postgres => {
                let (url, name) = fresh_postgres_database().await;
                (Some(url), Some(name))
            }
        };
        let mut usher = Usher::new(dir.path())
            .env("USHER_WEB__ADDR", format!("127.0.0.1:{port}"))
            .env("USHER_PUBLIC_URL", public_url)
            .env("USHER_PLEX__BASE_URL", plex.base_url().as_str())
            .env("USHER_DISCORD__TOKEN", discord.token())
            .env("USHER_DISCORD__API_BASE_URL", discord.api_base())
            .env(
                "USHER_DISCORD__GUILD_IDS",
                format!("[{HOME}, {OTHER_HOME}]"),
            )
            .env("USHER_DISCORD__SUBSCRIBER_GUILD_ID", HOME.to_string())
            .env("USHER_DISCORD__SUBSCRIBER_ROLE_IDS", format!("[{ROLE}]"))
            .env("USHER_DISCORD__ALERT_CHANNEL_ID", alert.to_string())
            .env("USHER_DISCORD__FALLBACK_CHANNEL_ID", fallback.to_string())
            .env("USHER_EMAIL__SMTP__HOST", "127.0.0.1")
            .env("USHER_EMAIL__SMTP__PORT", smtp.port().to_string())
            .env("USHER_EMAIL__SMTP__TLS", "none")
            .env("USHER_EMAIL__SMTP__USERNAME", SMTP_USER)
            .env("USHER_EMAIL__SMTP__PASSWORD", SMTP_PASSWORD)
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
        if let Some(url) = database_url {
            usher = usher.env("USHER_DATABASE__URL", url);
        }
        let token_file = dir.path().join("owner.token");
        std::fs::write(&token_file, &owner_token).unwrap();
        usher
            .ok(&[
                "plex-account",
                "add",
                "--token-file",
                token_file.to_str().unwrap(),
            ])
            .await;
        usher
            .ok(&["server", "add", "--account", "owner", "--name", "Main"])
            .await;
        Self {
            discord,
            plex,
            stripe,
            paypal,
            plisio,
            smtp,
            owner_token,
            machine_id,
            alert,
            usher,
            port,
            dir,
            pg_database,
        }
    }

    /// `usher run --roles web`, the instance `public_url` must reach.
    async fn serve(&self, usher: &Usher) -> Running {
        let running = usher.spawn(&["--roles", "web"]);
        running.wait_healthy(self.port).await;
        running
    }

    fn data(&self) -> std::path::PathBuf {
        self.dir.path().join("usher-data")
    }
}

/// Runs `usher doctor`; returns its exit code and its lines.
async fn doctor(usher: &Usher) -> (i32, Vec<String>) {
    let output = usher.output(&["doctor"]).await;
    let lines = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    (output.status.code().unwrap_or(-1), lines)
}

/// The one ✗ line; panics unless there is exactly one, starting with `prefix`, and exit 1.
async fn only_failure(usher: &Usher, prefix: &str) -> String {
    let (code, lines) = doctor(usher).await;
    one_failure(code, &lines, prefix)
}

/// As [`only_failure`], for a report already run.
fn one_failure(code: i32, lines: &[String], prefix: &str) -> String {
    let failed: Vec<&String> = lines.iter().filter(|l| l.starts_with('✗')).collect();
    assert_eq!(
        failed.len(),
        1,
        "one ✗ wanted ({prefix}), got:\n{}",
        lines.join("\n")
    );
    assert!(
        failed[0].starts_with(&format!("✗ {prefix}")),
        "wanted ✗ {prefix}, got:\n{}",
        lines.join("\n")
    );
    assert_eq!(code, 1, "{}", lines.join("\n"));
    failed[0].clone()
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

async fn doctor_passes_a_complete_installation_and_names_each_fault_alone(backend: Backend) {
    let w = World::new(backend).await;
    let running = w.serve(&w.usher).await;

    let (code, lines) = doctor(&w.usher).await;
    let report = lines.join("\n");
    println!("{report}");
    assert_eq!(code, 0, "{report}");
    assert!(lines.iter().all(|l| l.starts_with('✓')), "{report}");
    for expected in [
        "✓ data folder:",
        "✓ secret key:",
        "✓ database:",
        "✓ migrations: all",
        "✓ Discord token: the bot is Usher",
        "✓ Discord guild 820000000000000001: the bot is in Home",
        "✓ Discord guild 820000000000000002: the bot is in Other",
        "✓ Manage Roles in Home: granted",
        "✓ subscriber role role-820000000000000003: below the bot's role Usher",
        "✓ discord.alert_channel_id",
        "✓ discord.fallback_channel_id",
        "✓ mail: the SMTP relay 127.0.0.1 accepted the connection and the login",
        "✓ Stripe key: works (test mode)",
        "✓ Stripe webhook: we_",
        "✓ PayPal:",
        "✓ Plisio:",
        "✓ owner Plex account owner: the token works (Plex Pass: yes), its shares seat 0",
        "✓ server Main: among the account's servers on plex.tv, 0/95 users",
        "✓ public_url: http://127.0.0.1:",
    ] {
        assert!(
            lines.iter().any(|l| l.starts_with(expected)),
            "no line `{expected}…` in:\n{report}"
        );
    }
    assert_eq!(w.smtp.logins(), (1, 0), "logged in once");
    assert!(w.smtp.messages().is_empty(), "the doctor sends no mail");
    assert!(
        w.discord.all_messages().is_empty(),
        "the doctor posts nothing"
    );
    for secret in [
        w.owner_token.clone(),
        SMTP_PASSWORD.to_owned(),
        w.stripe.secret_key(),
        w.paypal.client_secret(),
        w.plisio.secret_key(),
        w.discord.token(),
    ] {
        assert!(!report.contains(&secret), "{report}");
    }

    // The filesystem.
    chmod(&w.data(), 0o755);
    only_failure(&w.usher, "data folder").await;
    chmod(&w.data(), 0o700);
    let key = w.data().join("secret.key");
    chmod(&key, 0o644);
    let line = only_failure(&w.usher, "secret key").await;
    assert!(line.contains("chmod 600"), "{line}");
    chmod(&key, 0o600);

    // The database's migrations (an empty database answers, but has none).
    let empty = match backend {
        Backend::Sqlite => {
            let path = w.dir.path().join("empty.db");
            (format!("sqlite://{}", path.display()), None)
        }
        Backend::Postgres => {
            let (url, name) = fresh_postgres_database().await;
            (url, Some(name))
        }
    };
    let line = only_failure(
        &w.usher.clone().env("USHER_DATABASE__URL", empty.0),
        "migrations",
    )
    .await;
    assert!(line.contains("usher migrate"), "{line}");
    if let Some(name) = empty.1 {
        drop_postgres_database(name);
    }
    let unreachable = w.usher.clone().env(
        "USHER_DATABASE__URL",
        "postgres://postgres@127.0.0.1:1/usher",
    );
    let (code, lines) = doctor(&unreachable).await;
    let line = one_failure(code, &lines, "database");
    assert!(line.contains("cannot connect"), "{line}");
    for skipped in ["– migrations", "– owner Plex accounts", "– public_url"] {
        assert!(
            lines.iter().any(|l| l.starts_with(skipped)),
            "{skipped} is not checked without the database:\n{}",
            lines.join("\n")
        );
    }

    // Discord.
    only_failure(
        &w.usher
            .clone()
            .env("USHER_DISCORD__TOKEN", "not-the-bot-token"),
        "Discord token",
    )
    .await;
    w.discord.remove_bot_from_guild(OTHER_HOME);
    let line = only_failure(&w.usher, "Discord guild 820000000000000002").await;
    assert!(
        line.contains(&usher::bot::invite_url(w.discord.application_id()).to_string()),
        "the fix names the invite link: {line}"
    );
    w.discord
        .add_member(OTHER_HOME, &FakeUser::new(w.discord.bot_user_id(), "Usher"));
    w.discord
        .set_bot_permissions(HOME, bits::VIEW_CHANNEL | bits::SEND_MESSAGES);
    only_failure(&w.usher, "Manage Roles in Home").await;
    w.discord
        .set_bot_permissions(HOME, usher::bot::PERMISSIONS.bits());
    w.discord.deny_bot_in_channel(w.alert, bits::SEND_MESSAGES);
    only_failure(&w.usher, "discord.alert_channel_id").await;
    let fresh_alert = w.discord.add_guild_channel(HOME, "alerts-2");
    let moved = w
        .usher
        .clone()
        .env("USHER_DISCORD__ALERT_CHANNEL_ID", fresh_alert.to_string());
    w.discord.lock_role(ROLE);
    let line = only_failure(&moved, "subscriber role").await;
    assert!(line.contains("drag the bot's role above it"), "{line}");

    // Discord sound again (a role list without the locked role).
    let good = moved.env("USHER_DISCORD__SUBSCRIBER_ROLE_IDS", "[]");
    let (code, lines) = doctor(&good).await;
    assert_eq!(code, 0, "{}", lines.join("\n"));

    // Mail and payments.
    only_failure(
        &good.clone().env("USHER_EMAIL__SMTP__PASSWORD", "wrong"),
        "mail",
    )
    .await;
    assert_eq!(w.smtp.logins().1, 1, "the wrong password was tried once");
    only_failure(
        &good
            .clone()
            .env("USHER_PAYMENTS__STRIPE__SECRET_KEY", "sk_test_wrong"),
        "Stripe key",
    )
    .await;
    let hook = format!("http://127.0.0.1:{}/webhooks/stripe", w.port);
    let test_mode = w.stripe.webhook_endpoint_ids();
    for id in &test_mode {
        w.stripe.remove_webhook_endpoint(id);
    }
    w.stripe.add_webhook_endpoint(&hook, true);
    let line = only_failure(&good, "Stripe webhook").await;
    assert!(line.contains("in test mode"), "{line}");
    w.stripe.add_webhook_endpoint(&hook, false);
    only_failure(
        &good
            .clone()
            .env("USHER_PAYMENTS__PAYPAL__CLIENT_SECRET", "wrong-secret"),
        "PayPal",
    )
    .await;
    only_failure(
        &good
            .clone()
            .env("USHER_PAYMENTS__PLISIO__SECRET_KEY", "wrong-key"),
        "Plisio",
    )
    .await;

    // public_url: nobody answers, then another installation answers.
    let (status, log) = running.stop().await;
    assert!(status.success(), "{log}");
    let line = only_failure(&good, "public_url").await;
    assert!(line.contains("does not answer"), "{line}");
    let elsewhere = tempfile::tempdir().unwrap();
    let other =
        Usher::new(elsewhere.path()).env("USHER_WEB__ADDR", format!("127.0.0.1:{}", w.port));
    let other_running = w.serve(&other).await;
    let line = only_failure(&good, "public_url").await;
    assert!(line.contains("another installation"), "{line}");
    drop(other_running);
    let running = w.serve(&good).await;

    // plex.tv.
    w.plex.remove_server(&w.machine_id);
    only_failure(&good, "server Main").await;
    w.plex.revoke_token(&w.owner_token);
    let line = only_failure(&good, "owner Plex account owner").await;
    assert!(line.contains("plex.tv refuses its token"), "{line}");
    assert!(
        !doctor(&good)
            .await
            .1
            .iter()
            .any(|l| l.contains("server Main")),
        "the servers of a refused account are not checked"
    );
    let (status, log) = running.stop().await;
    assert!(status.success(), "{log}");
}

crate::on_both_backends!(doctor_passes_a_complete_installation_and_names_each_fault_alone);
