//! Plex sign-in with a PIN against the fake plex.tv: create, send the person to app.plex.tv,
//! poll until approved, then learn whose token it is; a PIN is private to the installation that
//! made it and reads as expired once plex.tv forgets it.

use std::time::Duration;

use secrecy::ExposeSecret as _;
use usher::fakes::plex::FakePlex;
use usher::integrations::plex::{PinCheck, PlexConfig, PlexTvClient};

fn client(fake: &FakePlex, client_identifier: &str) -> PlexTvClient {
    PlexTvClient::new(&PlexConfig {
        base_url: fake.base_url(),
        client_identifier: client_identifier.into(),
        product: "Usher".into(),
        version: "0.1.0".into(),
        timeout: Duration::from_secs(5),
    })
    .expect("client")
}

#[tokio::test]
async fn an_approved_pin_yields_the_approving_accounts_token_and_identity() {
    let fake = FakePlex::start().await;
    fake.add_owner("owner@example.com");
    let friend_id = fake.add_user_account("friend@example.com");
    let plex = client(&fake, "install-1");

    let pin = plex.create_pin().await.unwrap();
    assert_eq!(pin.code.len(), 25, "strong PINs carry 25 characters");
    assert!(pin.expires_at.is_some_and(|at| at > chrono::Utc::now()));
    let link = plex.sign_in_url(&pin, None);
    assert_eq!(link.host_str(), Some("app.plex.tv"));
    assert_eq!(link.path(), "/auth");
    let fragment = link
        .fragment()
        .expect("the parameters ride in the fragment");
    assert!(
        fragment.starts_with("?clientID=install-1&code="),
        "{fragment}"
    );
    assert!(fragment.contains(&pin.code), "{fragment}");
    assert!(
        fragment.contains("context%5Bdevice%5D%5Bproduct%5D=Usher"),
        "{fragment}"
    );
    let forward = url::Url::parse("https://usher.example.com/account/plex").unwrap();
    assert!(
        plex.sign_in_url(&pin, Some(&forward))
            .fragment()
            .unwrap()
            .ends_with("&forwardUrl=https%3A%2F%2Fusher.example.com%2Faccount%2Fplex")
    );

    assert!(matches!(
        plex.check_pin(pin.id).await.unwrap(),
        PinCheck::Waiting
    ));
    assert!(fake.approve_pin(&pin.code, "friend@example.com"));
    let PinCheck::Approved(token) = plex.check_pin(pin.id).await.unwrap() else {
        panic!("the approved PIN carries a token");
    };
    assert_eq!(
        Some(token.expose_secret().to_owned()),
        fake.token_for("friend@example.com")
    );
    let check = format!("{:?}", PinCheck::Approved(token.clone()));
    assert!(!check.contains(token.expose_secret()), "{check}");

    let account = plex.account(&token).await.unwrap();
    assert_eq!(account.id, friend_id);
    assert_eq!(account.email, "friend@example.com");
    assert_eq!(account.username, "friend");
    assert!(!account.uuid.is_empty());
    assert_eq!(fake.calls("POST /api/v2/pins"), 1);
    assert_eq!(fake.calls("GET /api/v2/pins/{id}"), 2);
}

#[tokio::test]
async fn a_pin_is_private_to_its_installation_and_expires() {
    let fake = FakePlex::start().await;
    fake.add_user_account("friend@example.com");
    let plex = client(&fake, "install-1");
    let other = client(&fake, "install-2");

    let pin = plex.create_pin().await.unwrap();
    assert!(fake.approve_pin(&pin.code, "friend@example.com"));
    assert!(
        matches!(other.check_pin(pin.id).await.unwrap(), PinCheck::Expired),
        "another installation cannot read the token"
    );
    assert!(matches!(
        plex.check_pin(pin.id).await.unwrap(),
        PinCheck::Approved(_)
    ));

    let second = plex.create_pin().await.unwrap();
    assert_ne!(second.id, pin.id);
    assert_ne!(second.code, pin.code);
    fake.expire_pin(&second.code);
    assert!(matches!(
        plex.check_pin(second.id).await.unwrap(),
        PinCheck::Expired
    ));
    assert!(
        !fake.approve_pin(&second.code, "friend@example.com"),
        "an expired PIN cannot be approved"
    );
    assert!(
        !fake.approve_pin(&pin.code, "nobody@example.com"),
        "only a plex.tv account can approve"
    );
}

#[tokio::test]
async fn pins_need_the_client_identity_but_no_token() {
    let fake = FakePlex::start().await;
    let http = reqwest::Client::new();
    let bare = http
        .post(fake.base_url().join("api/v2/pins?strong=true").unwrap())
        .header("Accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(bare.status(), 400, "X-Plex-Client-Identifier is required");
    let created: serde_json::Value = http
        .post(fake.base_url().join("api/v2/pins").unwrap())
        .header("Accept", "application/json")
        .header("X-Plex-Client-Identifier", "raw")
        .header("X-Plex-Product", "Raw")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(created["code"].as_str().unwrap().len(), 4, "a short PIN");
    assert_eq!(created["expiresIn"], 900);
    assert_eq!(created["authToken"], serde_json::Value::Null);
    assert_eq!(created["clientIdentifier"], "raw");
}
