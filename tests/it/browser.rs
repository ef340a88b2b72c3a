//! My Account in a real browser: Debian's headless chromium, driven through chromedriver
//! (WebDriver). A flagged subscriber opens their sign-in link, sees the red banner, changes their
//! Plex account with the code from the outbox, and sees the confirmation. Screenshots of each step
//! are saved under `target/tmp/browser/` (the CI artifacts).
//!
//! Needs `/usr/bin/chromium` and `/usr/bin/chromedriver` (`apt-get install chromium
//! chromium-driver`; `.ci/run` installs them). Without them the test fails; it never skips.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use usher::services::sign_in;

use crate::helpers::world::{after_a_ban, code_for, drain};
use crate::helpers::{Backend, TestApp};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// A chromedriver process, killed on drop.
struct Driver {
    child: Child,
    port: u16,
}

impl Driver {
    fn start() -> Self {
        for path in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                Path::new(path).exists(),
                "the browser test needs {path}: run `apt-get install -y chromium chromium-driver` (CI's .ci/run does)"
            );
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        Self { child, port }
    }

    async fn connect(&self, profile: &Path) -> Client {
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": CHROMIUM,
                // This machine has no network: the background-networking flags keep chromium from
                // trying Google's hosts at start.
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-quic", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--window-size=412,915",
                    format!("--user-data-dir={}", profile.display()),
                ],
            }),
        );
        let url = format!("http://127.0.0.1:{}", self.port);
        for _ in 0..100 {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            if let Ok(client) = ClientBuilder::new(connector)
                .capabilities(caps.clone())
                .connect(&url)
                .await
            {
                return client;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("chromedriver did not accept a session on {url}");
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn artifacts() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser");
    std::fs::create_dir_all(&dir).expect("artifact folder");
    dir
}

async fn screenshot(browser: &Client, name: &str) {
    let png = browser.screenshot().await.expect("screenshot");
    assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
    let path = artifacts().join(format!("{name}.png"));
    std::fs::write(&path, png).expect("write screenshot");
    eprintln!("screenshot: {}", path.display());
}

async fn text_of(browser: &Client, css: &str) -> String {
    browser
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css} on the page: {e}"))
        .text()
        .await
        .expect("element text")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flagged_subscriber_changes_plex_account_in_a_real_browser() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let world = after_a_ban(&app, 2).await;
    let (me, old) = world.subscribers[0].clone();
    app.plex.add_user_account("browser.fresh@example.com");
    let link = sign_in::issue_link(&app.app, me).await.unwrap();
    let start = app.url(&format!(
        "{}?{}",
        link.url.path(),
        link.url.query().unwrap()
    ));

    let driver = Driver::start();
    let profile = tempfile::tempdir().expect("profile folder");
    let browser = driver.connect(profile.path()).await;

    // The link signs in and lands on My Account, with the banner.
    browser.goto(&start).await.expect("open the sign-in link");
    assert!(
        browser.current_url().await.unwrap().path() == "/account",
        "redirected to /account"
    );
    let banner = text_of(&browser, "#flag-banner").await;
    assert!(banner.contains("Your Plex account must change"), "{banner}");
    assert_eq!(text_of(&browser, "#plex-account").await, old);
    assert_eq!(
        text_of(&browser, "#server").await,
        "none",
        "the banned server is not access"
    );
    screenshot(&browser, "1-account-flagged").await;

    // Change your Plex account → email form → code form.
    browser
        .find(Locator::Css("#change-account"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    // Clicks navigate asynchronously: wait for the next page's element, never find it at once.
    let email = browser
        .wait()
        .for_element(Locator::Css("#email"))
        .await
        .expect("the email form");
    email.send_keys("Browser.Fresh@Example.com").await.unwrap();
    screenshot(&browser, "2-email-form").await;
    browser
        .find(Locator::Css("#send-code"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    browser
        .wait()
        .for_element(Locator::Css("#code"))
        .await
        .expect("the code form");
    assert_eq!(
        browser.current_url().await.unwrap().path(),
        "/account/change/code"
    );

    // The code, read from the outbox as the subscriber reads their mail.
    let code = code_for(&app, "browser.fresh@example.com");
    let code = code.expose_for_delivery().to_owned();
    browser
        .find(Locator::Css("#code"))
        .await
        .unwrap()
        .send_keys(&code)
        .await
        .unwrap();
    screenshot(&browser, "3-code-form").await;
    browser
        .find(Locator::Css("#confirm-code"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let confirmation = browser
        .wait()
        .for_element(Locator::Css("#confirmation"))
        .await
        .expect("the confirmation")
        .text()
        .await
        .unwrap();
    assert!(
        confirmation.contains("your Plex account is now browser.fresh@example.com"),
        "{confirmation}"
    );
    assert!(
        text_of(&browser, "#next-step")
            .await
            .contains("Check your Plex invites")
    );
    let source = browser.source().await.unwrap();
    assert!(!source.contains(&code), "the page never shows the code");
    screenshot(&browser, "4-confirmation").await;

    // Back on My Account: no banner, the new account, the invite to accept.
    drain(&app).await;
    browser.goto(&app.url("/account")).await.unwrap();
    assert!(
        browser.find(Locator::Css("#flag-banner")).await.is_err(),
        "the banner is gone"
    );
    assert_eq!(
        text_of(&browser, "#plex-account").await,
        "browser.fresh@example.com"
    );
    assert!(
        text_of(&browser, "#invite")
            .await
            .contains("waiting for you")
    );
    screenshot(&browser, "5-account-after").await;
    assert_eq!(
        app.plex.shares_for_email("browser.fresh@example.com").len(),
        1
    );
    browser.close().await.unwrap();
}
