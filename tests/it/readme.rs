//! A newcomer following only the README's quick start reaches a bot that answers `/help`: this
//! test takes the quick start's `usher.toml` and its commands out of README.md, fills in the
//! placeholders with the fakes' values, runs the commands with the `usher` binary (approving the
//! Plex sign-in as the owner would), and asks the bot for `/help` in the home guild as the admin.
//! Only the base URLs of the fakes and a free port are added; they are not the README's to know.

use std::time::Duration;

use usher::fakes::discord::{FakeDiscord, FakeUser};
use usher::fakes::plex::FakePlex;

use crate::helpers::bin::{Running, Usher, free_port};

const GUILD: u64 = 830_000_000_000_000_001;
const ADMIN: u64 = 830_000_000_000_000_002;

/// The quick start: its text, up to the next section.
fn quick_start(readme: &str) -> &str {
    let start = readme
        .find("## Quick start")
        .expect("the README has a quick start");
    let rest = &readme[start + 3..];
    &rest[..rest.find("\n## ").unwrap_or(rest.len())]
}

/// The first fenced block of `lang` in `text`, without its fence or indentation.
fn block(text: &str, lang: &str) -> String {
    let fence = format!("```{lang}\n");
    let start = text
        .find(&fence)
        .unwrap_or_else(|| panic!("no {lang} block"))
        + fence.len();
    let end = start + text[start..].find("```").expect("the block ends");
    text[start..end]
        .lines()
        .map(str::trim)
        .collect::<Vec<_>>()
        .join("\n")
}

/// Splits a command line as a shell would, for the simple quoting the README uses; drops a
/// trailing `# comment`.
fn words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let (mut word, mut quoted, mut any) = (String::new(), false, false);
    for c in line.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                any = true;
            }
            '#' if !quoted => break,
            c if c.is_whitespace() && !quoted => {
                if any {
                    words.push(std::mem::take(&mut word));
                    any = false;
                }
            }
            c => {
                word.push(c);
                any = true;
            }
        }
    }
    if any {
        words.push(word);
    }
    words
}

fn fill(text: &str, values: &[(&str, String)]) -> String {
    let mut filled = text.to_owned();
    for (placeholder, value) in values {
        filled = filled.replace(placeholder, value);
    }
    assert!(
        !filled.contains('<'),
        "a README placeholder this test does not know: {filled}"
    );
    filled
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_quick_start_reaches_a_bot_that_answers_help() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let steps = quick_start(&readme);

    // The invite link the README shows is the one the code computes.
    let invite = usher::bot::invite_url(1)
        .to_string()
        .replace("client_id=1", "client_id=<application id>");
    assert!(
        steps.contains(&invite),
        "the README's invite link is {invite}"
    );

    let (discord, plex) = (FakeDiscord::start().await, FakePlex::start().await);
    discord.name_guild(GUILD, "Home");
    let token = plex.add_owner("owner@example.com");
    plex.add_server(&token, "Living Room", &[("Movies", "movie")]);
    let values = [
        ("<bot token>", discord.token()),
        ("<home guild id>", GUILD.to_string()),
        ("<your user id>", ADMIN.to_string()),
        ("<plex username>", "owner".to_owned()),
        ("<server name>", "Living Room".to_owned()),
    ];

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("usher.toml"),
        fill(&block(steps, "toml"), &values),
    )
    .unwrap();
    let port = free_port();
    let usher = Usher::new(dir.path())
        .env("USHER_DISCORD__API_BASE_URL", discord.api_base())
        .env("USHER_PLEX__BASE_URL", plex.base_url().as_str())
        .env("USHER_WEB__ADDR", format!("127.0.0.1:{port}"));

    let mut running: Option<Running> = None;
    let commands = fill(&block(steps, "sh"), &values);
    for line in commands.lines().filter(|l| !l.trim().is_empty()) {
        let args = words(line);
        assert_eq!(args[0], "usher", "{line}");
        let args: Vec<&str> = args[1..].iter().map(String::as_str).collect();
        match args.as_slice() {
            ["run", rest @ ..] => running = Some(usher.spawn(rest)),
            ["plex-account", "add"] => {
                let signing_in = usher.spawn_command(&args);
                signing_in
                    .wait_for_log("https://app.plex.tv/auth#?", Duration::from_secs(10))
                    .await;
                let code = plex.pin_codes().pop().expect("a PIN was made");
                assert!(signing_in.log().contains(&code), "the link carries the PIN");
                assert!(plex.approve_pin(&code, "owner@example.com"));
                let (status, out) = signing_in.wait().await;
                assert!(status.success(), "{line}\n{out}");
            }
            _ => {
                usher.ok(&args).await;
            }
        }
    }
    let running = running.expect("the quick start ends by running Usher");
    running.wait_healthy(port).await;
    running
        .wait_for_log("registered commands in guild", Duration::from_secs(20))
        .await;
    let invite = usher::bot::invite_url(discord.application_id()).to_string();
    assert!(
        running.log().contains(&invite),
        "the log gives the invite link"
    );

    let help = discord.slash(
        &FakeUser::new(ADMIN, "owner"),
        Some(GUILD),
        "help",
        serde_json::json!([]),
    );
    let reply = help.response().await;
    assert_eq!(reply.kind, 4, "an immediate reply");
    let text = reply.data.to_string();
    assert!(
        text.contains("/admin"),
        "the admin sees the admin commands: {text}"
    );
    let (status, log) = running.stop().await;
    assert!(status.success(), "{log}");
}
