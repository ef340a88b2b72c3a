//! Outgoing mail without an SMTP relay goes to the outbox folder as `.eml` files.

use crate::helpers::{Backend, TestApp};

#[tokio::test]
async fn without_smtp_mail_lands_in_the_outbox_with_text_and_html() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let email = app
        .app
        .templates
        .render_email(
            "verification_code",
            serde_json::json!({ "code": "123456", "name": "Ana" }),
        )
        .unwrap();
    app.app
        .mailer
        .send(&app.app.settings.email.from, "ana@example.com", &email)
        .await
        .unwrap();

    let outbox = app.app.settings.outbox_dir();
    let files: Vec<_> = std::fs::read_dir(&outbox)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "one message in {}", outbox.display());
    let raw = std::fs::read_to_string(&files[0]).unwrap();
    assert!(raw.contains("To: ana@example.com"), "{raw}");
    assert!(
        raw.contains(&format!("Subject: {}", email.subject)),
        "{raw}"
    );
    assert!(
        raw.contains("text/plain") && raw.contains("text/html"),
        "{raw}"
    );
    assert!(raw.contains("123456"), "the code reaches the recipient");

    let refused = app
        .app
        .mailer
        .send(&app.app.settings.email.from, "not an address", &email)
        .await
        .unwrap_err();
    assert!(
        refused.to_string().contains("not an email address"),
        "{refused}"
    );
}

async fn the_account_change_setting_is_off_until_an_admin_turns_it_on(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = usher::domain::Actor::Admin(usher::domain::DiscordId::new(1).unwrap());
    let read = |app: &TestApp| {
        let db = app.app.db.clone();
        async move {
            let mut tx = db.begin().await.unwrap();
            usher::services::settings::plex_account_change_enabled(&mut tx)
                .await
                .unwrap()
        }
    };
    assert!(!read(&app).await, "off by default");
    usher::services::settings::set_plex_account_change(&app.app, &admin, true)
        .await
        .unwrap();
    assert!(read(&app).await);
    usher::services::settings::set_plex_account_change(&app.app, &admin, false)
        .await
        .unwrap();
    assert!(!read(&app).await);
}

crate::on_both_backends!(the_account_change_setting_is_off_until_an_admin_turns_it_on);
