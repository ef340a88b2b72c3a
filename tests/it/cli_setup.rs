//! Setting up from a terminal: the `usher` binary against the fake plex.tv adds an owner account
//! (from a token file, from standard input, or by Plex sign-in), a server and a plan through the
//! same services as the Discord commands; the token is sealed and never echoed; a bad token
//! changes nothing.

use std::io::{BufReader, Write as _};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use usher::fakes::plex::FakePlex;
use usher::store::Db;

use crate::helpers::{Backend, drop_postgres_database, fresh_postgres_database};

/// A folder to run the binary in, its database, and the fake plex.tv it talks to.
struct Setup {
    dir: tempfile::TempDir,
    database_url: String,
    pg_database: Option<String>,
    plex: FakePlex,
}

impl Drop for Setup {
    fn drop(&mut self) {
        if let Some(name) = self.pg_database.take() {
            drop_postgres_database(name);
        }
    }
}

impl Setup {
    async fn new(backend: Backend) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (database_url, pg_database) = match backend {
            Backend::Sqlite => (
                format!("sqlite://{}", dir.path().join("usher.db").display()),
                None,
            ),
            Backend::Postgres => {
                let (url, name) = fresh_postgres_database().await;
                (url, Some(name))
            }
        };
        Self {
            dir,
            database_url,
            pg_database,
            plex: FakePlex::start().await,
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_usher"));
        cmd.current_dir(self.dir.path())
            .env_clear()
            .env("USHER_LOG", "info")
            .env("USHER_DATABASE__URL", &self.database_url)
            .env("USHER_PLEX__BASE_URL", self.plex.base_url().as_str())
            .args(args);
        cmd
    }

    /// Runs the binary to the end off the runtime's threads (the fakes live on them).
    async fn run(&self, args: &[&str]) -> Output {
        let mut cmd = self.command(args);
        tokio::task::spawn_blocking(move || cmd.output().unwrap())
            .await
            .unwrap()
    }

    fn file(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    async fn db(&self) -> Db {
        Db::connect_url(&self.database_url, 1).await.unwrap()
    }
}

fn text(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn assert_ok(output: &Output) -> String {
    let (out, err) = text(output);
    assert!(
        output.status.success(),
        "exit {:?}\n{out}\n{err}",
        output.status
    );
    out
}

async fn count(db: &Db, table: &str) -> i64 {
    let sql = format!("SELECT COUNT(*) FROM {table}");
    usher::on_db!(db, |pool| sqlx::query_scalar::<_, i64>(&sql)
        .fetch_one(pool)
        .await
        .unwrap())
}

async fn sealed_tokens(db: &Db) -> Vec<String> {
    usher::on_db!(db, |pool| sqlx::query_scalar::<_, String>(
        "SELECT token_enc FROM owner_account ORDER BY id"
    )
    .fetch_all(pool)
    .await
    .unwrap())
}

async fn the_terminal_sets_up_an_owner_a_server_and_a_plan(backend: Backend) {
    let s = Setup::new(backend).await;
    let token = s.plex.add_owner("owner@example.com");
    s.plex
        .add_server(&token, "Main", &[("Movies", "movie"), ("TV Shows", "show")]);
    let token_file = s.file("owner.token", &format!("  {token}\n"));

    let added = s
        .run(&[
            "plex-account",
            "add",
            "--token-file",
            token_file.to_str().unwrap(),
        ])
        .await;
    let (out, err) = text(&added);
    assert!(added.status.success(), "{out}\n{err}");
    assert!(
        out.contains("Added the owner Plex account owner (#1, Plex Pass: yes)"),
        "{out}"
    );
    assert!(
        !out.contains(&token) && !err.contains(&token),
        "the token is never echoed"
    );
    let db = s.db().await;
    let sealed = sealed_tokens(&db).await;
    assert_eq!(sealed.len(), 1);
    assert!(!sealed[0].contains(&token), "the token is stored sealed");

    let listed = assert_ok(&s.run(&["plex-account", "list"]).await);
    assert_eq!(listed, "#1\towner\tactive\tPlex Pass: yes\n");

    let refused = s
        .run(&["server", "add", "--account", "owner", "--name", "Backup"])
        .await;
    assert!(!refused.status.success());
    assert!(
        text(&refused)
            .1
            .contains("owns no server called or identified as `Backup`; it owns: Main"),
        "{}",
        text(&refused).1
    );
    let server = assert_ok(
        &s.run(&["server", "add", "--account", "OWNER", "--name", "main"])
            .await,
    );
    assert!(
        server.contains("Added the server Main (#1) with 2 libraries"),
        "{server}"
    );
    let servers = assert_ok(&s.run(&["server", "list"]).await);
    assert!(
        servers.starts_with(
            "#1\tMain\t0/95 users\towner #1 (active)\tenabled, open to new subscriptions"
        ),
        "{servers}"
    );

    let unknown_group = s
        .run(&[
            "plan",
            "create",
            "--name",
            "Standard",
            "--price",
            "8",
            "--currency",
            "USD",
            "--period",
            "month",
            "--groups",
            "4K",
        ])
        .await;
    assert!(!unknown_group.status.success());
    assert!(
        text(&unknown_group)
            .1
            .contains("there is no library group named `4K`"),
        "{}",
        text(&unknown_group).1
    );
    let plan = assert_ok(
        &s.run(&[
            "plan",
            "create",
            "--name",
            "Standard",
            "--price",
            "7.50",
            "--currency",
            "usd",
            "--period",
            "month",
            "--streams",
            "2",
        ])
        .await,
    );
    assert!(plan.contains("Created the plan Standard (#1)"), "{plan}");
    let plans = assert_ok(&s.run(&["plan", "list"]).await);
    assert!(plans.starts_with("#1\tStandard\t"), "{plans}");
    assert!(
        plans.contains("offered\tsold by no provider yet"),
        "{plans}"
    );
    let again = s
        .run(&[
            "plan",
            "create",
            "--name",
            "Standard",
            "--price",
            "1",
            "--currency",
            "USD",
            "--period",
            "week",
        ])
        .await;
    assert!(!again.status.success());
    assert!(
        text(&again)
            .1
            .contains("a plan called Standard exists already")
    );

    let export = assert_ok(&s.run(&["users", "export", "--csv", "-"]).await);
    assert_eq!(
        export,
        "discord_id,name,plex_email,plan,server,state,paid_until,flagged,permanent\n"
    );
    let audited = usher::on_db!(&db, |pool| sqlx::query_scalar::<_, String>(
        "SELECT action || ' by ' || actor FROM audit_log ORDER BY id"
    )
    .fetch_all(pool)
    .await
    .unwrap());
    assert_eq!(
        audited,
        [
            "owner_account.add by system",
            "server.add by system",
            "plan.create by system"
        ]
    );
    db.close().await;
}

async fn a_bad_token_changes_nothing_and_is_not_repeated(backend: Backend) {
    let s = Setup::new(backend).await;
    s.plex.add_owner("owner@example.com");
    let bad = "not-a-plex-token-123";
    let token_file = s.file("owner.token", bad);
    let refused = s
        .run(&[
            "plex-account",
            "add",
            "--token-file",
            token_file.to_str().unwrap(),
        ])
        .await;
    let (out, err) = text(&refused);
    assert!(!refused.status.success());
    assert!(
        err.contains("plex.tv did not accept that token"),
        "the refusal says why:\n{err}"
    );
    assert!(!out.contains(bad) && !err.contains(bad), "{out}\n{err}");
    let empty = s.file("empty.token", " \n");
    let nothing = s
        .run(&[
            "plex-account",
            "add",
            "--token-file",
            empty.to_str().unwrap(),
        ])
        .await;
    assert!(!nothing.status.success());
    assert!(
        text(&nothing).1.contains("no token given"),
        "{}",
        text(&nothing).1
    );

    let listed = assert_ok(&s.run(&["plex-account", "list"]).await);
    assert!(listed.starts_with("No owner Plex accounts yet"), "{listed}");
    let db = s.db().await;
    assert_eq!(count(&db, "owner_account").await, 0);
    assert_eq!(count(&db, "audit_log").await, 0);
    db.close().await;
}

crate::on_both_backends!(
    the_terminal_sets_up_an_owner_a_server_and_a_plan,
    a_bad_token_changes_nothing_and_is_not_repeated
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_can_come_from_standard_input() {
    let s = Setup::new(Backend::Sqlite).await;
    let token = s.plex.add_owner("owner@example.com");
    let mut cmd = s.command(&["plex-account", "add", "--token-file", "-"]);
    let output = tokio::task::spawn_blocking(move || {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        writeln!(child.stdin.take().unwrap(), "{token}").unwrap();
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap();
    let out = assert_ok(&output);
    assert!(out.contains("Added the owner Plex account owner"), "{out}");
}

/// Reads the child's standard output until the sign-in link, and returns the PIN code in it.
fn read_pin_code(stdout: &mut impl std::io::BufRead, seen: &mut String) -> String {
    loop {
        let mut line = String::new();
        assert!(
            stdout.read_line(&mut line).unwrap() > 0,
            "no link in:\n{seen}"
        );
        seen.push_str(&line);
        if let Some(link) = line.trim().strip_prefix("https://app.plex.tv/auth#?") {
            return url::form_urlencoded::parse(link.as_bytes())
                .find(|(k, _)| k == "code")
                .map(|(_, v)| v.into_owned())
                .expect("the link carries the PIN code");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plex_sign_in_prints_the_link_and_adds_the_account_that_approves_it() {
    let s = Setup::new(Backend::Sqlite).await;
    s.plex.add_owner("owner@example.com");
    let mut child = s
        .command(&["plex-account", "add"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let (code, mut stdout, mut seen) = tokio::task::spawn_blocking(move || {
        let mut seen = String::new();
        let code = read_pin_code(&mut stdout, &mut seen);
        (code, stdout, seen)
    })
    .await
    .unwrap();
    assert_eq!(
        s.plex.pin_codes(),
        vec![code.clone()],
        "the link names the PIN"
    );
    let db = s.db().await;
    assert_eq!(
        count(&db, "owner_account").await,
        0,
        "nothing stored while waiting"
    );
    assert!(s.plex.approve_pin(&code, "owner@example.com"));

    let status = tokio::task::spawn_blocking(move || {
        std::io::Read::read_to_string(&mut stdout, &mut seen).unwrap();
        (child.wait().unwrap(), seen)
    })
    .await
    .unwrap();
    let (status, out) = status;
    assert!(status.success(), "{out}");
    assert!(out.contains("Waiting for the approval"), "{out}");
    assert!(
        out.contains("Added the owner Plex account owner (#1, Plex Pass: yes)"),
        "{out}"
    );
    let token = s.plex.token_for("owner@example.com").unwrap();
    assert!(!out.contains(&token), "{out}");
    assert!(
        s.plex.calls("GET /api/v2/pins/{id}") >= 2,
        "polled until approved"
    );
    assert_eq!(count(&db, "owner_account").await, 1);
    db.close().await;
}
