//! The `usher` binary as an owner runs it: start on the embedded defaults, answer health checks,
//! stop cleanly on SIGTERM; `config check` masks secrets; bad configuration names the key.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn usher(dir: &std::path::Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_usher"));
    cmd.current_dir(dir).env_clear().env("USHER_LOG", "info");
    cmd
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn run_starts_on_the_embedded_defaults_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = usher(dir.path())
        .arg("run")
        .env("USHER_WEB__ADDR", format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    // Readiness: the health check must answer within 10 s of start.
    let started = Instant::now();
    let client = reqwest::Client::new();
    let health = loop {
        match client
            .get(format!("http://127.0.0.1:{port}/healthz"))
            .send()
            .await
        {
            Ok(response) => break response,
            Err(_) if started.elapsed() < Duration::from_secs(10) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(err) => {
                let _ = child.kill();
                panic!("no answer on /healthz within 10 s: {err}");
            }
        }
    };
    assert_eq!(health.status(), 200);

    let metrics = client
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .send()
        .await
        .unwrap();
    let text = metrics.text().await.unwrap();
    assert!(text.contains("usher_jobs{state=\"queued\"} 0"), "{text}");

    // The SQLite file sits in ./usher-data with the schema applied, and a secret key beside it.
    let db = dir.path().join("usher-data/usher.db");
    assert!(db.exists(), "no database at {}", db.display());
    let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(&format!(
        "sqlite://{}",
        db.display()
    ))
    .await
    .unwrap();
    let tables: Vec<String> =
        sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    for table in [
        "subscriber",
        "plex_identity",
        "owner_account",
        "server",
        "library",
        "library_group",
        "plan",
        "plan_group",
        "payment",
        "share",
        "proof_request",
        "webhook_event",
        "job",
        "setting",
        "audit_log",
    ] {
        assert!(
            tables.iter().any(|t| t == table),
            "table {table} missing from {tables:?}"
        );
    }

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let output = child.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "exit {:?}; log:\n{log}",
        output.status
    );
    assert!(
        log.contains("Discord bot is off"),
        "the log says why the bot is off:\n{log}"
    );
}

#[test]
fn config_check_prints_the_effective_config_with_secrets_masked() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("usher.toml"),
        "[database]\nurl = \"postgres://usher:hunter2@db.internal/usher\"\n",
    )
    .unwrap();
    let output = usher(dir.path())
        .args(["config", "check"])
        .env("USHER_DISCORD__TOKEN", "MTIz.discord-token-value")
        .env(
            "USHER_SECRET_KEY",
            "c2VjcmV0LWtleS12YWx1ZS10aGF0LWlzLWxvbmctZW5vdWdo",
        )
        .env("USHER_WEB__ADDR", "0.0.0.0:9090")
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for secret in ["discord-token-value", "hunter2", "c2VjcmV0LWtleS12"] {
        assert!(!out.contains(secret), "{secret} leaked:\n{out}");
    }
    assert!(
        out.contains("addr = \"0.0.0.0:9090\""),
        "env overrides the default:\n{out}"
    );
    assert!(
        out.contains("postgres://usher:********@db.internal/usher"),
        "{out}"
    );
    assert!(out.contains("token = \"********\""), "{out}");
}

/// Environment, `usher.toml` text, and the key the error must name.
type BadConfig = (
    &'static [(&'static str, &'static str)],
    Option<&'static str>,
    &'static str,
);

#[test]
fn bad_configuration_names_the_key_and_exits_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    // (environment, usher.toml, the key the message must name)
    let cases: [BadConfig; 3] = [
        (&[("USHER_WEB__ADDR", "not-an-address")], None, "web.addr"),
        (&[("USHER_JOBS__WORKERS", "0")], None, "jobs.workers"),
        (&[], Some("[web]\nadress = \"127.0.0.1:1\"\n"), "adress"),
    ];
    for (env, file, key) in cases {
        let toml = dir.path().join("usher.toml");
        let _ = std::fs::remove_file(&toml);
        if let Some(text) = file {
            std::fs::write(&toml, text).unwrap();
        }
        let mut cmd = usher(dir.path());
        cmd.args(["config", "check"]).envs(env.iter().copied());
        let output = cmd.output().unwrap();
        let err = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{key}: {err}");
        assert!(err.contains(key), "the message names `{key}`: {err}");
    }
}

#[test]
fn a_broken_template_override_stops_run_at_start_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("overrides/emails")).unwrap();
    std::fs::write(
        dir.path().join("overrides/emails/verification_code.txt.j2"),
        "Subject: Your code\n\n{% if code %}{{ code }\n",
    )
    .unwrap();
    let output = usher(dir.path())
        .arg("run")
        .env("USHER_TEMPLATES_DIR", "overrides")
        .env("USHER_WEB__ADDR", format!("127.0.0.1:{}", free_port()))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "run must refuse to start:\n{err}");
    assert!(
        err.contains("verification_code.txt.j2"),
        "the error names the file:\n{err}"
    );
}

#[tokio::test]
async fn the_generated_secret_key_is_private_and_reused_across_starts() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let settings = || usher::config::Settings {
        data_dir: dir.path().join("data"),
        ..Default::default()
    };
    let clock = std::sync::Arc::new(usher::clock::SystemClock);
    let first = usher::App::build(settings(), clock.clone()).await.unwrap();
    let link = first.signer.sign("login", "subscriber:1", None);
    first.db.close().await;

    let key = dir.path().join("data/secret.key");
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let second = usher::App::build(settings(), clock).await.unwrap();
    let now = chrono::Utc::now();
    assert_eq!(
        second.signer.verify("login", &link, now).unwrap(),
        "subscriber:1",
        "same key after restart"
    );
}

#[tokio::test]
async fn users_export_writes_every_subscriber_as_csv() {
    let dir = tempfile::tempdir().unwrap();
    let status = usher(dir.path()).arg("migrate").status().unwrap();
    assert!(status.success());
    let db = dir.path().join("usher-data/usher.db");
    let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(&format!(
        "sqlite://{}",
        db.display()
    ))
    .await
    .unwrap();
    for (id, name) in [(111_i64, "Ana"), (222, "Ben, Jr.")] {
        sqlx::query("INSERT INTO subscriber (discord_id, display_name, created_at, updated_at) VALUES ($1, $2, '2026-01-01T00:00:00+00:00', '2026-01-01T00:00:00+00:00')")
            .bind(id)
            .bind(name)
            .execute(&mut conn)
            .await
            .unwrap();
    }
    drop(conn);

    let out = dir.path().join("users.csv");
    let output = usher(dir.path())
        .args(["users", "export", "--csv"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let csv = std::fs::read_to_string(&out).unwrap();
    let lines: Vec<_> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "discord_id,name,plex_email,plan,server,state,paid_until,flagged,permanent"
    );
    assert_eq!(lines[1], "111,Ana,,,,never paid,,no,no");
    assert_eq!(
        lines[2], "222,\"Ben, Jr.\",,,,never paid,,no,no",
        "names with commas are quoted"
    );
    assert_eq!(lines.len(), 3);

    let stdout = usher(dir.path())
        .args(["users", "export", "--csv", "-"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&stdout.stdout), csv);
}
