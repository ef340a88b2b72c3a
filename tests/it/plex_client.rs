//! The plex.tv and Plex Media Server clients against the fake: every call, every error rule.

use std::time::Duration;

use secrecy::SecretString;
use usher::fakes::plex::{FakePlex, FakeServer, Faults, codes};
use usher::integrations::plex::{
    Invite, PlexConfig, PlexError, PlexSectionId, PlexTvClient, Retry, SectionKey, ShareSettings,
    ShareState, ShareUpdate, Validation,
};

const FRIEND: &str = "friend@example.com";

struct Setup {
    fake: FakePlex,
    client: PlexTvClient,
    owner: SecretString,
    owner_token: String,
    server: FakeServer,
}

fn config(base_url: url::Url) -> PlexConfig {
    PlexConfig {
        base_url,
        client_identifier: "0b6f3c9e-usher-test".into(),
        product: "Usher".into(),
        version: "0.1.0".into(),
        timeout: Duration::from_secs(5),
    }
}

async fn setup() -> Setup {
    let fake = FakePlex::start().await;
    let owner_token = fake.add_owner("owner@example.com");
    let server = fake.add_server(
        &owner_token,
        "Main",
        &[
            ("Movies", "movie"),
            ("TV Shows", "show"),
            ("Music", "artist"),
        ],
    );
    fake.add_user_account(FRIEND);
    let client = PlexTvClient::new(&config(fake.base_url())).expect("client");
    Setup {
        owner: SecretString::from(owner_token.clone()),
        owner_token,
        fake,
        client,
        server,
    }
}

fn global_ids(server: &FakeServer, count: usize) -> Vec<PlexSectionId> {
    server
        .libraries
        .iter()
        .take(count)
        .map(|l| PlexSectionId(l.global_id))
        .collect()
}

fn invite_for(server: &FakeServer, invited: &str, ids: Vec<PlexSectionId>) -> Invite {
    Invite {
        machine_identifier: server.machine_identifier.clone(),
        invited: invited.to_owned(),
        library_ids: ids,
        settings: ShareSettings::default(),
    }
}

fn raw_http() -> reqwest::Client {
    reqwest::Client::new()
}

#[tokio::test]
async fn account_reports_the_owner_and_whether_plex_pass_is_active() {
    let s = setup().await;
    let account = s.client.account(&s.owner).await.unwrap();
    assert_eq!(account.email, "owner@example.com");
    assert_eq!(account.username, "owner");
    assert!(account.plex_pass);
    assert!(account.id > 0 && !account.uuid.is_empty());

    s.fake.set_plex_pass("owner@example.com", false);
    assert!(!s.client.account(&s.owner).await.unwrap().plex_pass);
    assert_eq!(s.fake.calls("GET /api/v2/user"), 2);
}

#[tokio::test]
async fn validate_knows_accounts_by_email_or_username_and_refuses_strangers() {
    let s = setup().await;
    assert_eq!(
        s.client.validate_user(&s.owner, FRIEND).await.unwrap(),
        Validation::Valid
    );
    assert_eq!(
        s.client.validate_user(&s.owner, "friend").await.unwrap(),
        Validation::Valid
    );
    assert_eq!(
        s.client
            .validate_user(&s.owner, "nobody@example.com")
            .await
            .unwrap(),
        Validation::NotAnAccount
    );
    assert_eq!(s.fake.calls("POST /api/users/validate"), 3);
}

#[tokio::test]
async fn validate_answering_410_means_validation_unavailable_never_invalid() {
    let s = setup().await;
    s.fake.retire_route("POST /api/users/validate");
    assert_eq!(
        s.client.validate_user(&s.owner, FRIEND).await.unwrap(),
        Validation::ValidationUnavailable
    );
    assert_eq!(s.fake.calls("POST /api/users/validate"), 1);
}

#[tokio::test]
async fn owned_servers_lists_only_servers_the_owner_owns_with_their_connections() {
    let s = setup().await;
    let second = s
        .fake
        .add_server(&s.owner_token, "4K", &[("Movies 4K", "movie")]);
    // Another owner shares their server with our owner: visible in resources, but not owned.
    let other_token = s.fake.add_owner("other@example.com");
    let foreign = s
        .fake
        .add_server(&other_token, "Foreign", &[("Films", "movie")]);
    let other = PlexTvClient::new(&config(s.fake.base_url())).unwrap();
    let share = other
        .invite(
            &SecretString::from(other_token),
            &invite_for(&foreign, "owner@example.com", vec![]),
        )
        .await
        .unwrap();
    assert!(s.fake.accept_invite(share.id.0));

    let servers = s.client.owned_servers(&s.owner).await.unwrap();
    let mut ids: Vec<&str> = servers
        .iter()
        .map(|s| s.machine_identifier.as_str())
        .collect();
    ids.sort_unstable();
    let mut expected = vec![
        s.server.machine_identifier.as_str(),
        second.machine_identifier.as_str(),
    ];
    expected.sort_unstable();
    assert_eq!(ids, expected);
    let main = servers
        .iter()
        .find(|x| x.machine_identifier == s.server.machine_identifier)
        .unwrap();
    assert_eq!(main.name, "Main");
    assert!(main.access_token.is_some());
    assert_eq!(main.connections.len(), 1);
    assert!(main.connections[0].local && !main.connections[0].relay);
    assert_eq!(
        main.connections[0].uri.as_str().trim_end_matches('/'),
        s.fake
            .server_url(&s.server.machine_identifier)
            .as_str()
            .trim_end_matches('/')
    );
    assert_eq!(s.fake.calls("GET /api/v2/resources"), 1);
}

#[tokio::test]
async fn server_libraries_gives_global_section_ids_beside_local_keys() {
    let s = setup().await;
    let libraries = s
        .client
        .server_libraries(&s.owner, &s.server.machine_identifier)
        .await
        .unwrap();
    assert_eq!(libraries.name, "Main");
    assert_eq!(libraries.sections.len(), 3);
    for (section, seeded) in libraries.sections.iter().zip(&s.server.libraries) {
        assert_eq!(section.id, PlexSectionId(seeded.global_id));
        assert_eq!(section.key, SectionKey(seeded.key.clone()));
        assert_eq!(section.title, seeded.title);
        assert_eq!(section.kind, seeded.kind);
    }
    assert_eq!(s.fake.calls("GET /api/servers/{machineId}"), 1);
}

#[tokio::test]
async fn invite_sends_global_section_ids_and_skip_friendship() {
    let s = setup().await;
    let ids = global_ids(&s.server, 2);
    let mut invite = invite_for(&s.server, FRIEND, ids.clone());
    invite.settings.allow_sync = true;
    let share = s.client.invite(&s.owner, &invite).await.unwrap();

    assert_eq!(share.state, ShareState::Pending);
    assert_eq!(share.machine_identifier, s.server.machine_identifier);
    assert_eq!(share.invited_email.as_deref(), Some(FRIEND));
    assert_eq!(share.library_ids, ids);
    assert!(share.settings.allow_sync);

    let stored = s.fake.shares_for_email(FRIEND);
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].id, share.id.0);
    assert!(stored[0].skip_friendship);
    assert!(!stored[0].accepted);
    assert_eq!(
        stored[0].library_ids,
        ids.iter().map(|i| i.0).collect::<Vec<_>>()
    );
    assert!(stored[0].settings.allow_sync);
    assert_eq!(s.fake.calls("POST /api/v2/shared_servers"), 1);
}

#[tokio::test]
async fn invite_with_local_section_keys_is_rejected_as_the_real_service_would() {
    let s = setup().await;
    let local_keys = vec![PlexSectionId(1), PlexSectionId(2)];
    let err = s
        .client
        .invite(&s.owner, &invite_for(&s.server, FRIEND, local_keys))
        .await
        .unwrap_err();
    assert!(
        matches!(err, PlexError::Rejected { status: 422, code: Some(c), .. } if c == codes::INVALID_SECTIONS),
        "{err:?}"
    );
    assert!(s.fake.all_shares().is_empty());
}

#[tokio::test]
async fn a_duplicate_invite_is_rejected_with_the_fakes_code_and_not_retried() {
    let s = setup().await;
    let invite = invite_for(&s.server, FRIEND, global_ids(&s.server, 1));
    s.client.invite(&s.owner, &invite).await.unwrap();
    let err = s.client.invite(&s.owner, &invite).await.unwrap_err();
    assert!(
        matches!(&err, PlexError::Rejected { status: 422, code: Some(c), message } if *c == codes::ALREADY_SHARED && !message.is_empty()),
        "{err:?}"
    );
    assert_eq!(err.retry(), Retry::Never);
    // By username too: the same account.
    let by_name = invite_for(&s.server, "friend", global_ids(&s.server, 1));
    assert!(s.client.invite(&s.owner, &by_name).await.is_err());
    assert_eq!(
        s.fake.shares_on_server(&s.server.machine_identifier).len(),
        1
    );
}

#[tokio::test]
async fn the_share_ceiling_counts_pending_invites_and_refuses_one_more() {
    let s = setup().await;
    s.fake.set_share_limit(&s.server.machine_identifier, 1);
    s.fake.add_user_account("second@example.com");
    let ids = global_ids(&s.server, 1);
    s.client
        .invite(&s.owner, &invite_for(&s.server, FRIEND, ids.clone()))
        .await
        .unwrap();
    let err = s
        .client
        .invite(&s.owner, &invite_for(&s.server, "second@example.com", ids))
        .await
        .unwrap_err();
    assert!(
        matches!(err, PlexError::Rejected { status: 422, code: Some(c), .. } if c == codes::SHARE_LIMIT),
        "{err:?}"
    );
    assert!(s.fake.shares_for_email("second@example.com").is_empty());
}

#[tokio::test]
async fn the_default_share_ceiling_is_one_hundred_users() {
    let s = setup().await;
    // The server's own ceiling, not the account's (99 people and the owner): see the next test.
    s.fake.set_seats_per_account(1000);
    let ids = global_ids(&s.server, 1);
    for n in 0..100 {
        let email = format!("user{n}@example.com");
        s.fake.add_user_account(&email);
        s.client
            .invite(&s.owner, &invite_for(&s.server, &email, ids.clone()))
            .await
            .unwrap();
    }
    let err = s
        .client
        .invite(&s.owner, &invite_for(&s.server, FRIEND, ids))
        .await
        .unwrap_err();
    assert!(matches!(err, PlexError::Rejected { code: Some(c), .. } if c == codes::SHARE_LIMIT));
}

#[tokio::test]
async fn an_account_seats_ninety_nine_people_and_its_owner_on_all_its_servers() {
    let s = setup().await;
    let second = s
        .fake
        .add_server(&s.owner_token, "Second", &[("Movies", "movie")]);
    let ids = global_ids(&s.server, 1);
    for n in 0..99 {
        let email = format!("user{n}@example.com");
        s.fake.add_user_account(&email);
        s.client
            .invite(&s.owner, &invite_for(&s.server, &email, ids.clone()))
            .await
            .unwrap();
    }
    assert_eq!(s.fake.seats_used(&s.owner_token), 100);
    let err = s
        .client
        .invite(&s.owner, &invite_for(&s.server, FRIEND, ids))
        .await
        .unwrap_err();
    assert!(
        matches!(err, PlexError::Rejected { status: 422, code: Some(c), .. } if c == codes::SHARE_LIMIT)
    );
    // Someone seated already takes no new seat on another of the account's servers.
    let second_ids = global_ids(&second, 1);
    s.client
        .invite(
            &s.owner,
            &invite_for(&second, "user0@example.com", second_ids),
        )
        .await
        .unwrap();
    let friends = s.client.users(&s.owner).await.unwrap();
    assert_eq!(friends.len(), 0, "nobody accepted yet: no friends");
}

#[tokio::test]
async fn update_share_replaces_the_libraries_and_the_full_settings() {
    let s = setup().await;
    let share = s
        .client
        .invite(
            &s.owner,
            &invite_for(&s.server, FRIEND, global_ids(&s.server, 1)),
        )
        .await
        .unwrap();
    let mut settings = share.settings.clone();
    settings.filter_movies = "contentRating=PG".into();
    let update = ShareUpdate {
        library_ids: global_ids(&s.server, 3),
        settings,
    };
    s.client
        .update_share(&s.owner, share.id, &update)
        .await
        .unwrap();

    let stored = &s.fake.shares_for_email(FRIEND)[0];
    assert_eq!(stored.library_ids.len(), 3);
    assert_eq!(stored.settings.filter_movies, "contentRating=PG");
    assert_eq!(s.fake.calls("POST /api/v2/shared_servers/{id}"), 1);
}

#[tokio::test]
async fn delete_share_cancels_an_invite_and_a_second_delete_is_not_found() {
    let s = setup().await;
    let share = s
        .client
        .invite(
            &s.owner,
            &invite_for(&s.server, FRIEND, global_ids(&s.server, 1)),
        )
        .await
        .unwrap();
    s.client.delete_share(&s.owner, share.id).await.unwrap();
    assert!(s.fake.all_shares().is_empty());

    let err = s.client.delete_share(&s.owner, share.id).await.unwrap_err();
    assert!(matches!(err, PlexError::NotFound { .. }), "{err:?}");
    assert_eq!(err.retry(), Retry::Never);
    assert_eq!(s.fake.calls("DELETE /api/v2/shared_servers/{id}"), 2);
}

#[tokio::test]
async fn listings_split_accepted_shares_from_pending_invites_per_server() {
    let s = setup().await;
    let other_server = s
        .fake
        .add_server(&s.owner_token, "Other", &[("Kids", "movie")]);
    s.fake.add_user_account("second@example.com");
    let ids = global_ids(&s.server, 2);
    let accepted = s
        .client
        .invite(&s.owner, &invite_for(&s.server, FRIEND, ids.clone()))
        .await
        .unwrap();
    let pending = s
        .client
        .invite(&s.owner, &invite_for(&s.server, "second@example.com", ids))
        .await
        .unwrap();
    s.client
        .invite(
            &s.owner,
            &invite_for(&other_server, FRIEND, global_ids(&other_server, 1)),
        )
        .await
        .unwrap();
    // The invitee accepts with their own token, through the real route.
    let friend_token = s.fake.token_for(FRIEND).unwrap();
    let response = raw_http()
        .post(
            s.fake
                .base_url()
                .join(&format!("api/v2/shared_servers/{}/accept", accepted.id))
                .unwrap(),
        )
        .header("X-Plex-Token", friend_token)
        .header("X-Plex-Client-Identifier", "friend-device")
        .header("X-Plex-Product", "Plex Web")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    let mid = &s.server.machine_identifier;
    let listed = s.client.accepted_shares(&s.owner, mid).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, accepted.id);
    assert_eq!(listed[0].state, ShareState::Accepted);
    assert_eq!(listed[0].invited_username.as_deref(), Some("friend"));
    assert_eq!(listed[0].library_ids.len(), 2);

    let waiting = s.client.pending_invites(&s.owner, mid).await.unwrap();
    assert_eq!(waiting.len(), 1);
    assert_eq!(waiting[0].id, pending.id);
    assert_eq!(waiting[0].state, ShareState::Pending);
    assert_eq!(
        waiting[0].invited_email.as_deref(),
        Some("second@example.com")
    );

    assert_eq!(s.fake.calls("GET /api/v2/shared_servers/owned/accepted"), 1);
    assert_eq!(
        s.fake
            .calls("GET /api/v2/shared_servers/invites/owned/pending"),
        1
    );
}

#[tokio::test]
async fn a_revoked_owner_token_is_unauthorized_and_never_retried() {
    let s = setup().await;
    s.fake.revoke_token(&s.owner_token);
    let err = s.client.account(&s.owner).await.unwrap_err();
    assert!(matches!(err, PlexError::Unauthorized), "{err:?}");
    assert_eq!(err.retry(), Retry::Never);
    let err = s
        .client
        .invite(
            &s.owner,
            &invite_for(&s.server, FRIEND, global_ids(&s.server, 1)),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, PlexError::Unauthorized), "{err:?}");
    // One request per call: the client itself never hammers.
    assert_eq!(s.fake.total_calls(), 2);
}

#[tokio::test]
async fn an_unknown_server_is_not_found() {
    let s = setup().await;
    let err = s
        .client
        .server_libraries(&s.owner, "0000000000000000000000000000000000000000")
        .await
        .unwrap_err();
    assert!(matches!(err, PlexError::NotFound { .. }), "{err:?}");
    let mut invite = invite_for(&s.server, FRIEND, vec![]);
    invite.machine_identifier = "unknown".into();
    let err = s.client.invite(&s.owner, &invite).await.unwrap_err();
    assert!(matches!(err, PlexError::NotFound { .. }), "{err:?}");
}

#[tokio::test]
async fn a_410_outside_validation_is_gone_and_never_retried() {
    let s = setup().await;
    s.fake.retire_route("POST /api/v2/shared_servers");
    let err = s
        .client
        .invite(
            &s.owner,
            &invite_for(&s.server, FRIEND, global_ids(&s.server, 1)),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            PlexError::Gone {
                endpoint: "POST /api/v2/shared_servers"
            }
        ),
        "{err:?}"
    );
    assert_eq!(err.retry(), Retry::Never);
    assert!(err.to_string().contains("update Usher"));
}

#[tokio::test]
async fn a_429_is_rate_limited_with_the_retry_after_it_carried() {
    let s = setup().await;
    s.fake.set_faults(Faults {
        rate_limited: 1.0,
        retry_after_secs: Some(7),
        ..Faults::default()
    });
    let err = s.client.account(&s.owner).await.unwrap_err();
    assert!(
        matches!(err, PlexError::RateLimited { retry_after: Some(d) } if d == Duration::from_secs(7)),
        "{err:?}"
    );
    assert_eq!(err.retry(), Retry::After(Some(Duration::from_secs(7))));

    s.fake.set_faults(Faults {
        rate_limited: 1.0,
        retry_after_secs: None,
        ..Faults::default()
    });
    let err = s.client.account(&s.owner).await.unwrap_err();
    assert_eq!(err.retry(), Retry::After(None));
}

#[tokio::test]
async fn a_500_is_a_server_error_the_job_may_retry() {
    let s = setup().await;
    s.fake.set_faults(Faults {
        server_error: 1.0,
        ..Faults::default()
    });
    let err = s
        .client
        .accepted_shares(&s.owner, &s.server.machine_identifier)
        .await
        .unwrap_err();
    assert!(matches!(err, PlexError::Server { status: 500 }), "{err:?}");
    assert_eq!(err.retry(), Retry::After(None));
}

#[tokio::test]
async fn injected_faults_replay_identically_for_the_same_seed() {
    async fn outcomes(seed: u64) -> Vec<bool> {
        let s = setup().await;
        s.fake.set_faults(Faults {
            rate_limited: 0.3,
            server_error: 0.2,
            seed,
            ..Faults::default()
        });
        let mut out = Vec::new();
        for _ in 0..30 {
            out.push(s.client.account(&s.owner).await.is_ok());
        }
        out
    }
    let first = outcomes(42).await;
    assert_eq!(first, outcomes(42).await);
    assert!(first.iter().any(|ok| *ok) && first.iter().any(|ok| !*ok));
}

#[tokio::test]
async fn a_network_failure_is_a_retryable_transport_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let client = PlexTvClient::new(&config(format!("http://{addr}/").parse().unwrap())).unwrap();
    let err = client
        .account(&SecretString::from("tok-en".to_owned()))
        .await
        .unwrap_err();
    assert!(matches!(err, PlexError::Transport { .. }), "{err:?}");
    assert_eq!(err.retry(), Retry::After(None));
}

#[tokio::test]
async fn the_fake_refuses_requests_missing_the_client_headers() {
    let s = setup().await;
    let url = s.fake.base_url().join("api/v2/user").unwrap();
    for (missing, present) in [
        ("X-Plex-Client-Identifier", "X-Plex-Product"),
        ("X-Plex-Product", "X-Plex-Client-Identifier"),
    ] {
        let response = raw_http()
            .get(url.clone())
            .header("Accept", "application/json")
            .header("X-Plex-Token", &s.owner_token)
            .header(present, "x")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "without {missing}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["errors"][0]["code"], codes::MISSING_CLIENT_HEADERS);
    }
    // The same identity as query parameters is accepted, as on plex.tv.
    let mut with_query = url.clone();
    with_query
        .query_pairs_mut()
        .append_pair("X-Plex-Client-Identifier", "cid")
        .append_pair("X-Plex-Product", "Usher")
        .append_pair("X-Plex-Token", &s.owner_token);
    assert_eq!(
        raw_http().get(with_query).send().await.unwrap().status(),
        200
    );
}

#[tokio::test]
async fn the_fake_refuses_missing_tokens_and_malformed_share_bodies() {
    let s = setup().await;
    let url = s.fake.base_url().join("api/v2/shared_servers").unwrap();
    let post = |body: String, json: bool| {
        let mut request = raw_http()
            .post(url.clone())
            .header("Accept", "application/json")
            .header("X-Plex-Token", &s.owner_token)
            .header("X-Plex-Client-Identifier", "cid")
            .header("X-Plex-Product", "Usher")
            .body(body);
        if json {
            request = request.header("Content-Type", "application/json");
        }
        request.send()
    };
    let mid = &s.server.machine_identifier;
    let id = s.server.libraries[0].global_id;
    // Section ids as strings: wrong type.
    let wrong_type = format!(
        r#"{{"machineIdentifier":"{mid}","invitedEmail":"{FRIEND}","librarySectionIds":["{id}"]}}"#
    );
    assert_eq!(post(wrong_type, true).await.unwrap().status(), 400);
    let good = format!(
        r#"{{"machineIdentifier":"{mid}","invitedEmail":"{FRIEND}","librarySectionIds":[{id}],"settings":{{"allowSync":"1"}},"skipFriendship":true}}"#
    );
    // Not declared as JSON.
    assert_eq!(post(good.clone(), false).await.unwrap().status(), 400);
    // Missing field.
    assert_eq!(
        post(format!(r#"{{"machineIdentifier":"{mid}"}}"#), true)
            .await
            .unwrap()
            .status(),
        400
    );
    assert!(s.fake.all_shares().is_empty());
    // The well-formed body (with go-plex-client's "1" string flag) is accepted.
    assert_eq!(post(good, true).await.unwrap().status(), 201);
    assert!(s.fake.all_shares()[0].settings.allow_sync);

    let anonymous = raw_http()
        .get(s.fake.base_url().join("api/v2/user").unwrap())
        .header("X-Plex-Client-Identifier", "cid")
        .header("X-Plex-Product", "Usher")
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
}

#[tokio::test]
async fn the_fake_answers_v2_in_xml_unless_json_is_asked_and_counts_unknown_routes() {
    let s = setup().await;
    let response = raw_http()
        .get(s.fake.base_url().join("api/v2/user").unwrap())
        .header("X-Plex-Token", &s.owner_token)
        .header("X-Plex-Client-Identifier", "cid")
        .header("X-Plex-Product", "Usher")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body = response.text().await.unwrap();
    assert!(body.contains("<user "), "{body}");

    let missing = raw_http()
        .get(s.fake.base_url().join("api/v2/nope").unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    assert_eq!(s.fake.calls("GET /api/v2/nope"), 1);
    assert_eq!(s.fake.total_calls(), 2);
}

#[tokio::test]
async fn the_media_server_reports_its_identity_and_local_section_keys() {
    let s = setup().await;
    let servers = s.client.owned_servers(&s.owner).await.unwrap();
    let main = &servers[0];
    let pms = s.client.media_server(main.connections[0].uri.clone());
    let identity = pms.identity().await.unwrap();
    assert_eq!(identity.machine_identifier, main.machine_identifier);
    assert!(!identity.version.is_empty());

    let token = main.access_token.clone().unwrap();
    let sections = pms.library_sections(&token).await.unwrap();
    let keys: Vec<&str> = sections.iter().map(|x| x.key.0.as_str()).collect();
    assert_eq!(keys, ["1", "2", "3"]);
    assert_eq!(sections[1].title, "TV Shows");
    assert_eq!(sections[1].kind, "show");
    assert_eq!(sections[1].uuid, s.server.libraries[1].uuid);
    assert_eq!(s.fake.calls("GET /pms/{machineId}/identity"), 1);
    assert_eq!(s.fake.calls("GET /pms/{machineId}/library/sections"), 1);
}

#[tokio::test]
async fn the_media_server_refuses_sections_to_a_wrong_token() {
    let s = setup().await;
    let pms = s
        .client
        .media_server(s.fake.server_url(&s.server.machine_identifier));
    let err = pms
        .library_sections(&SecretString::from("not-the-token".to_owned()))
        .await
        .unwrap_err();
    assert!(matches!(err, PlexError::Unauthorized), "{err:?}");
    // The owner's own token is accepted by the owner's server.
    assert_eq!(pms.library_sections(&s.owner).await.unwrap().len(), 3);
}

#[tokio::test]
async fn errors_and_clients_never_show_the_token() {
    let s = setup().await;
    let invite = invite_for(&s.server, FRIEND, global_ids(&s.server, 1));
    s.client.invite(&s.owner, &invite).await.unwrap();
    let mut errors = vec![s.client.invite(&s.owner, &invite).await.unwrap_err()];
    let servers = s.client.owned_servers(&s.owner).await.unwrap();
    assert!(!format!("{servers:?}").contains(&s.server.access_token));
    s.fake.retire_route("GET /api/v2/resources");
    errors.push(s.client.owned_servers(&s.owner).await.unwrap_err());
    s.fake.set_faults(Faults {
        rate_limited: 1.0,
        ..Faults::default()
    });
    errors.push(s.client.account(&s.owner).await.unwrap_err());
    s.fake.set_faults(Faults::default());
    s.fake.revoke_token(&s.owner_token);
    errors.push(s.client.account(&s.owner).await.unwrap_err());

    let dead = PlexTvClient::new(&config("http://127.0.0.1:9/".parse().unwrap())).unwrap();
    errors.push(dead.account(&s.owner).await.unwrap_err());

    for err in &errors {
        let shown = format!("{err} / {err:?} / {:?}", std::error::Error::source(err));
        assert!(!shown.contains(&s.owner_token), "{shown}");
    }
    let client_debug = format!(
        "{:?} {:?}",
        s.client,
        s.client.media_server(s.fake.base_url())
    );
    assert!(!client_debug.contains(&s.owner_token), "{client_debug}");
    assert!(!format!("{:?}", s.owner).contains(&s.owner_token));
}

#[tokio::test]
async fn inviting_a_stranger_or_the_owner_is_rejected_without_creating_a_share() {
    let s = setup().await;
    let ids = global_ids(&s.server, 1);
    let stranger = s
        .client
        .invite(
            &s.owner,
            &invite_for(&s.server, "nobody@example.com", ids.clone()),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(stranger, PlexError::Rejected { code: Some(c), .. } if c == codes::NOT_A_USER),
        "{stranger:?}"
    );
    let own = s
        .client
        .invite(&s.owner, &invite_for(&s.server, "owner@example.com", ids))
        .await
        .unwrap_err();
    assert!(
        matches!(own, PlexError::Rejected { code: Some(c), .. } if c == codes::SELF_SHARE),
        "{own:?}"
    );
    assert!(s.fake.all_shares().is_empty());
}

#[tokio::test]
async fn validate_with_a_revoked_token_is_unauthorized_not_an_answer_about_the_user() {
    let s = setup().await;
    s.fake.revoke_token(&s.owner_token);
    let err = s.client.validate_user(&s.owner, FRIEND).await.unwrap_err();
    assert!(matches!(err, PlexError::Unauthorized), "{err:?}");
    assert_eq!(err.retry(), Retry::Never);
}
