//! The fake's routes: plex.tv (v1 and v2) and each seeded server's own API under `/pms/{id}/`.
//!
//! Owns the request rules. Rule kept: a request is counted, then refused in the order the real
//! service would: retired route (410), injected fault (429/500), missing identity headers (400),
//! bad token (401), then the route's own checks (body types, ownership, global section ids,
//! duplicates, capacity).

use std::fmt::Write as _;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Extension, extract::MatchedPath};
use serde::{Deserialize, Deserializer};
use serde_json::{Value, json};

use super::wire::{self, Wire};
use super::{Account, FakeSettings, FakeShare, Fault, Shared, State as FakeState, codes, lock};

/// The account whose token the request carried (plex.tv routes only).
#[derive(Debug, Clone, Copy)]
struct Caller(u64);

/// The `X-Plex-Client-Identifier` and `X-Plex-Product` the request carried (plex.tv routes only).
#[derive(Debug, Clone)]
struct Client {
    identifier: String,
    product: String,
}

/// plex.tv routes that take no token: a PIN is how a client without one gets one.
const TOKEN_FREE: [&str; 2] = ["POST /api/v2/pins", "GET /api/v2/pins/{id}"];

/// How long a PIN lives: strong (25-character) PINs for sign-in links half an hour, the 4-character
/// PINs typed at plex.tv/link a quarter of an hour.
const STRONG_PIN_SECS: i64 = 1800;
const SHORT_PIN_SECS: i64 = 900;

pub(super) fn router(state: Shared) -> Router {
    Router::new()
        .route("/api/v2/user", get(user))
        .route("/api/v2/pins", post(create_pin))
        .route("/api/v2/pins/{id}", get(check_pin))
        .route("/api/users/validate", get(validate).post(validate))
        .route("/api/v2/resources", get(resources))
        .route("/api/servers/{machineId}", get(server_sections))
        .route("/api/users", get(users))
        .route("/api/v2/shared_servers", post(create_share))
        .route(
            "/api/v2/shared_servers/{id}",
            post(update_share).delete(delete_share),
        )
        .route("/api/v2/shared_servers/{id}/accept", post(accept_share))
        .route(
            "/api/v2/shared_servers/owned/accepted",
            get(accepted_shares),
        )
        .route(
            "/api/v2/shared_servers/invites/owned/pending",
            get(pending_invites),
        )
        .route("/pms/{machineId}/identity", get(pms_identity))
        .route("/pms/{machineId}/library/sections", get(pms_sections))
        .fallback(unknown_route)
        .layer(middleware::from_fn_with_state(state.clone(), gate))
        .with_state(state)
}

/// `X-Plex-*` values may come as headers or as query parameters.
fn plex_value(request: &Request, name: &str) -> Option<String> {
    if let Some(value) = request.headers().get(name).and_then(|v| v.to_str().ok()) {
        return Some(value.to_owned()).filter(|v| !v.is_empty());
    }
    let query = request.uri().query()?;
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(key, _)| key.eq_ignore_ascii_case(name))
        .map(|(_, value)| value.into_owned())
        .filter(|v| !v.is_empty())
}

/// Answers the request, then holds the answer back while its route is held.
async fn gate(State(state): State<Shared>, request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    let matched = request
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned());
    let route = format!(
        "{} {}",
        request.method(),
        matched.as_deref().unwrap_or(&path)
    );
    let response = answer(&state, &route, matched.is_some(), request, next).await;
    let held = lock(&state).holds.get(&route).cloned();
    if let Some(held) = held {
        held.until_released().await;
    }
    response
}

async fn answer(
    state: &Shared,
    route: &str,
    matched: bool,
    mut request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path().to_owned();
    let wire = Wire::of(&path, request.headers());
    let on_server = path.starts_with("/pms/");
    {
        let mut state = lock(state);
        *state.calls.entry(route.to_owned()).or_default() += 1;
        if !matched {
            return wire::not_found(wire);
        }
        if state.retired.contains(route) {
            return wire::gone();
        }
        if !on_server {
            match state.roll_fault() {
                Some(Fault::RateLimited(after)) => return wire::rate_limited(wire, after),
                Some(Fault::ServerError) => {
                    return wire::error(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        wire,
                        codes::SERVER_ERROR,
                        "Internal server error",
                    );
                }
                None => {}
            }
        }
    }
    if on_server {
        return next.run(request).await;
    }
    let (Some(identifier), Some(product)) = (
        plex_value(&request, "X-Plex-Client-Identifier"),
        plex_value(&request, "X-Plex-Product"),
    ) else {
        let missing = if plex_value(&request, "X-Plex-Client-Identifier").is_none() {
            "X-Plex-Client-Identifier"
        } else {
            "X-Plex-Product"
        };
        return wire::error(
            StatusCode::BAD_REQUEST,
            wire,
            codes::MISSING_CLIENT_HEADERS,
            &format!("{missing} is required"),
        );
    };
    request.extensions_mut().insert(Client {
        identifier,
        product,
    });
    if TOKEN_FREE.contains(&route) {
        return next.run(request).await;
    }
    let caller = plex_value(&request, "X-Plex-Token")
        .and_then(|token| lock(state).account_by_token(&token).map(|a| a.id));
    let Some(caller) = caller else {
        let auth_wire = if wire == Wire::V1 { Wire::Xml } else { wire };
        return wire::error(
            StatusCode::UNAUTHORIZED,
            auth_wire,
            codes::UNAUTHORIZED,
            "User could not be authenticated",
        );
    };
    request.extensions_mut().insert(Caller(caller));
    let writes = request.method() != axum::http::Method::GET;
    let response = next.run(request).await;
    // A write that took effect can still answer 5xx (a timeout behind plex.tv's edge): the case
    // that doubles invites in clients that simply retry.
    if writes && response.status().is_success() && lock(state).roll_error_after_write() {
        return wire::error(
            StatusCode::BAD_GATEWAY,
            wire,
            codes::SERVER_ERROR,
            "Bad gateway",
        );
    }
    response
}

async fn unknown_route() -> StatusCode {
    // Never reached: the gate answers unmatched paths itself.
    StatusCode::NOT_FOUND
}

fn account_json(account: &Account) -> Value {
    json!({
        "id": account.id,
        "uuid": account.uuid,
        "username": account.username,
        "title": account.username,
        "email": account.email,
        "friendlyName": account.username,
        "authToken": account.token,
        "thumb": format!("https://plex.tv/users/{}/avatar", account.uuid),
        "home": false,
        "homeAdmin": false,
        "restricted": false,
        "twoFactorEnabled": false,
        "subscription": {
            "active": account.plex_pass,
            "status": if account.plex_pass { "Active" } else { "Inactive" },
            "plan": if account.plex_pass { Some("lifetime") } else { None },
        },
    })
}

async fn user(
    State(state): State<Shared>,
    Extension(Caller(caller)): Extension<Caller>,
    headers: HeaderMap,
) -> Response {
    let state = lock(&state);
    let account = state
        .account_by_id(caller)
        .expect("the gate found this account");
    wire::ok(
        StatusCode::OK,
        Wire::negotiated(&headers),
        "user",
        "user",
        &account_json(account),
    )
}

#[derive(Deserialize)]
struct PinQuery {
    #[serde(default)]
    strong: Option<String>,
}

fn pin_json(pin: &super::Pin) -> Value {
    let expires_at = pin.created_at + chrono::Duration::seconds(pin.expires_in);
    let elapsed = (chrono::Utc::now() - pin.created_at).num_seconds();
    json!({
        "id": pin.id,
        "code": pin.code,
        "product": pin.product,
        "trusted": false,
        "qr": format!("https://plex.tv/api/v2/pins/qr/{}", pin.code),
        "clientIdentifier": pin.client_identifier,
        "location": {
            "code": "NL",
            "european_union_member": true,
            "continent_code": "EU",
            "country": "Netherlands",
            "city": "Amsterdam",
            "time_zone": "Europe/Amsterdam",
            "postal_code": "1012",
            "in_privacy_restricted_country": true,
            "subdivisions": "North Holland",
            "coordinates": "52.3740, 4.8897",
        },
        "expiresIn": (pin.expires_in - elapsed).max(0),
        "createdAt": pin.created_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "expiresAt": expires_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "authToken": pin.auth_token,
        "newRegistration": null,
    })
}

/// `POST /api/v2/pins[?strong=true]`: a PIN bound to the calling client identifier.
async fn create_pin(
    State(state): State<Shared>,
    Extension(client): Extension<Client>,
    Query(query): Query<PinQuery>,
    headers: HeaderMap,
) -> Response {
    let strong = query.strong.as_deref() == Some("true") || query.strong.as_deref() == Some("1");
    let (length, expires_in) = if strong {
        (25, STRONG_PIN_SECS)
    } else {
        (4, SHORT_PIN_SECS)
    };
    let mut state = lock(&state);
    let id = state.next_pin_id;
    state.next_pin_id += 1;
    let pin = super::Pin {
        id,
        code: pin_code(length),
        client_identifier: client.identifier,
        product: client.product,
        created_at: chrono::Utc::now(),
        expires_in,
        auth_token: None,
    };
    let body = pin_json(&pin);
    state.pins.push(pin);
    wire::ok(
        StatusCode::CREATED,
        Wire::negotiated(&headers),
        "pin",
        "pin",
        &body,
    )
}

/// `GET /api/v2/pins/{id}`: the PIN, with `authToken` once approved. Only the client identifier
/// that created it may read it; an unknown, foreign or expired PIN is a 404.
async fn check_pin(
    State(state): State<Shared>,
    Extension(client): Extension<Client>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let wire = Wire::negotiated(&headers);
    let mut state = lock(&state);
    let now = chrono::Utc::now();
    state
        .pins
        .retain(|p| now < p.created_at + chrono::Duration::seconds(p.expires_in));
    let found = id.parse::<u64>().ok().and_then(|id| {
        state
            .pins
            .iter()
            .find(|p| p.id == id && p.client_identifier == client.identifier)
    });
    match found {
        Some(pin) => wire::ok(StatusCode::OK, wire, "pin", "pin", &pin_json(pin)),
        None => wire::error(
            StatusCode::NOT_FOUND,
            wire,
            codes::PIN_NOT_FOUND,
            "Code not found or expired",
        ),
    }
}

/// A PIN code: upper-case letters and digits for the short ones typed by hand, mixed case for
/// the strong ones carried in links.
fn pin_code(length: usize) -> String {
    use rand::Rng as _;
    const SHORT: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    const STRONG: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let alphabet = if length > 4 { STRONG } else { SHORT };
    let mut rng = rand::thread_rng();
    (0..length)
        .map(|_| char::from(alphabet[rng.gen_range(0..alphabet.len())]))
        .collect()
}

#[derive(Deserialize)]
struct ValidateQuery {
    invited_email: Option<String>,
}

async fn validate(State(state): State<Shared>, Query(query): Query<ValidateQuery>) -> Response {
    let Some(login) = query.invited_email.filter(|l| !l.trim().is_empty()) else {
        return wire::v1_response(StatusCode::BAD_REQUEST, 400, "invited_email is required");
    };
    if lock(&state).account_by_login(login.trim()).is_some() {
        wire::v1_response(StatusCode::OK, 0, "Valid user")
    } else {
        wire::v1_response(
            StatusCode::BAD_REQUEST,
            codes::NOT_A_USER,
            "Invalid user: not a Plex account",
        )
    }
}

async fn resources(
    State(state): State<Shared>,
    Extension(Caller(caller)): Extension<Caller>,
    headers: HeaderMap,
) -> Response {
    let state = lock(&state);
    let port = state.base_url.port().unwrap_or(80);
    let resource = |server: &super::Server, owned: bool, token: &str| {
        let url = state.server_url(&server.seeded.machine_identifier);
        let owner = state.account_by_id(server.owner_id);
        json!({
            "name": server.seeded.name,
            "product": "Plex Media Server",
            "productVersion": PMS_VERSION,
            "platform": "Linux",
            "clientIdentifier": server.seeded.machine_identifier,
            "provides": "server",
            "owned": owned,
            "accessToken": token,
            "ownerId": if owned { Value::Null } else { json!(server.owner_id) },
            "sourceTitle": if owned { None } else { owner.map(|o| o.username.clone()) },
            "presence": true,
            "httpsRequired": false,
            "connections": [{
                "protocol": "http",
                "address": "127.0.0.1",
                "port": port,
                "uri": url.as_str().trim_end_matches('/'),
                "local": true,
                "relay": false,
            }],
        })
    };
    let mut list: Vec<Value> = state
        .servers
        .iter()
        .filter(|s| s.owner_id == caller)
        .map(|s| resource(s, true, &s.seeded.access_token))
        .collect();
    for share in state
        .shares
        .iter()
        .filter(|s| s.invited_id == caller && s.accepted)
    {
        if let Some(server) = state.server(&share.machine_identifier) {
            list.push(resource(server, false, &format!("shared-{}", share.id)));
        }
    }
    // Every account also has a browser session, which is not a server.
    list.push(json!({
        "name": "Plex Web (Firefox)",
        "product": "Plex Web",
        "clientIdentifier": format!("web-{caller}"),
        "provides": "client,player,pubsub-player",
        "owned": true,
        "presence": false,
        "connections": [],
    }));
    wire::ok(
        StatusCode::OK,
        Wire::negotiated(&headers),
        "MediaContainer",
        "resource",
        &Value::Array(list),
    )
}

async fn server_sections(
    State(state): State<Shared>,
    Extension(Caller(caller)): Extension<Caller>,
    Path(machine_identifier): Path<String>,
) -> Response {
    let state = lock(&state);
    let Some(server) = state
        .server(&machine_identifier)
        .filter(|s| s.owner_id == caller)
    else {
        return wire::not_found(Wire::V1);
    };
    let mut body = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><MediaContainer friendlyName="myPlex" identifier="com.plexapp.plugins.myplex" machineIdentifier="{mid}" size="1"><Server name="{name}" address="127.0.0.1" port="32400" version="{PMS_VERSION}" scheme="http" host="127.0.0.1" localAddresses="127.0.0.1" machineIdentifier="{mid}" owned="1" synced="0">"#,
        mid = server.seeded.machine_identifier,
        name = quick_xml::escape::escape(&server.seeded.name),
    );
    for library in &server.seeded.libraries {
        _ = write!(
            body,
            r#"<Section id="{}" key="{}" type="{}" title="{}"/>"#,
            library.global_id,
            library.key,
            library.kind,
            quick_xml::escape::escape(&library.title)
        );
    }
    body.push_str("</Server></MediaContainer>");
    wire::xml(StatusCode::OK, body)
}

/// `GET /api/users` (v1, XML): the owner's friends and Plex Home members with the servers each
/// has (`pending="1"` while the invite waits). Someone with only a pending invite is not a friend
/// yet and is not listed (the pending invites route lists them).
async fn users(
    State(state): State<Shared>,
    Extension(Caller(caller)): Extension<Caller>,
) -> Response {
    let state = lock(&state);
    let mut listed: Vec<(u64, bool, bool)> = state
        .home
        .iter()
        .filter(|(owner, ..)| *owner == caller)
        .map(|(_, member, managed)| (*member, true, *managed))
        .collect();
    let friends = state
        .friends
        .iter()
        .filter(|(owner, _)| *owner == caller)
        .map(|(_, friend)| *friend)
        .chain(
            state
                .shares
                .iter()
                .filter(|s| s.owner_id == caller && s.accepted)
                .map(|s| s.invited_id),
        );
    for friend in friends {
        if !listed.iter().any(|(id, ..)| *id == friend) {
            listed.push((friend, false, false));
        }
    }
    let mut body = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><MediaContainer friendlyName="myPlex" identifier="com.plexapp.plugins.myplex" size="{}">"#,
        listed.len()
    );
    for (id, home, managed) in listed {
        let Some(account) = state.account_by_id(id) else {
            continue;
        };
        _ = write!(
            body,
            r#"<User id="{}" title="{name}" username="{name}" email="{}" thumb="https://plex.tv/users/{}/avatar" home="{}" restricted="{}" allowSync="0" allowCameraUpload="0" allowChannels="0">"#,
            account.id,
            quick_xml::escape::escape(&account.email),
            account.uuid,
            u8::from(home),
            u8::from(managed),
            name = quick_xml::escape::escape(&account.username),
        );
        for share in state
            .shares
            .iter()
            .filter(|s| s.owner_id == caller && s.invited_id == id)
        {
            let server = state.server(&share.machine_identifier);
            _ = write!(
                body,
                r#"<Server id="{}" serverId="{}" machineIdentifier="{}" name="{}" numLibraries="{}" allLibraries="{}" owned="1" pending="{}"/>"#,
                share.id,
                server.map_or(0, |s| s.plex_id),
                share.machine_identifier,
                server.map_or_else(String::new, |s| quick_xml::escape::escape(&s.seeded.name)
                    .into_owned()),
                share.library_ids.len(),
                u8::from(share.all_libraries),
                u8::from(!share.accepted),
            );
        }
        body.push_str("</User>");
    }
    body.push_str("</MediaContainer>");
    wire::xml(StatusCode::OK, body)
}

/// A settings flag: JSON boolean or the `"0"`/`"1"` strings some clients send.
fn flag<'de, D: Deserializer<'de>>(de: D) -> Result<bool, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Flag {
        Bool(bool),
        Text(String),
    }
    match Flag::deserialize(de)? {
        Flag::Bool(b) => Ok(b),
        Flag::Text(t) if t == "1" => Ok(true),
        Flag::Text(t) if t == "0" => Ok(false),
        Flag::Text(t) => Err(serde::de::Error::custom(format!("bad flag {t:?}"))),
    }
}

/// `allowTuners`: an integer, or the same as a string.
fn level<'de, D: Deserializer<'de>>(de: D) -> Result<i64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Level {
        Int(i64),
        Text(String),
    }
    match Level::deserialize(de)? {
        Level::Int(i) => Ok(i),
        Level::Text(t) => t.parse().map_err(serde::de::Error::custom),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(clippy::struct_excessive_bools)] // mirrors the wire object
struct SettingsBody {
    #[serde(default, deserialize_with = "flag")]
    allow_sync: bool,
    #[serde(default, deserialize_with = "flag")]
    allow_channels: bool,
    #[serde(default, deserialize_with = "flag")]
    allow_camera_upload: bool,
    #[serde(default, deserialize_with = "flag")]
    allow_subtitle_admin: bool,
    #[serde(default, deserialize_with = "level")]
    allow_tuners: i64,
    #[serde(default)]
    filter_movies: Option<String>,
    #[serde(default)]
    filter_television: Option<String>,
    #[serde(default)]
    filter_music: Option<String>,
    #[serde(default)]
    filter_photos: Option<String>,
    #[serde(default)]
    filter_all: Option<String>,
}

impl From<SettingsBody> for FakeSettings {
    fn from(body: SettingsBody) -> Self {
        Self {
            allow_sync: body.allow_sync,
            allow_channels: body.allow_channels,
            allow_camera_upload: body.allow_camera_upload,
            allow_subtitle_admin: body.allow_subtitle_admin,
            allow_tuners: body.allow_tuners,
            filter_movies: body.filter_movies.unwrap_or_default(),
            filter_television: body.filter_television.unwrap_or_default(),
            filter_music: body.filter_music.unwrap_or_default(),
            filter_photos: body.filter_photos,
            filter_all: body.filter_all,
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateBody {
    machine_identifier: String,
    invited_email: String,
    library_section_ids: Vec<u64>,
    #[serde(default)]
    settings: Option<SettingsBody>,
    #[serde(default)]
    skip_friendship: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UpdateBody {
    settings: SettingsBody,
    library_section_ids: Vec<u64>,
}

/// Why the fake refuses a request, rendered in the route family's error shape.
struct Refusal {
    status: StatusCode,
    code: i64,
    message: String,
}

impl Refusal {
    fn new(status: StatusCode, code: i64, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    fn render(&self, wire: Wire) -> Response {
        wire::error(self.status, wire, self.code, &self.message)
    }
}

/// Parses a JSON request body strictly: JSON content type, right field types.
fn json_body<T: serde::de::DeserializeOwned>(
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<T, Refusal> {
    let is_json = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !is_json {
        return Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            codes::MALFORMED_REQUEST,
            "Content-Type must be application/json",
        ));
    }
    serde_json::from_slice(body).map_err(|e| {
        Refusal::new(
            StatusCode::BAD_REQUEST,
            codes::MALFORMED_REQUEST,
            format!("Invalid request body: {e}"),
        )
    })
}

fn share_json(state: &FakeState, share: &FakeShare) -> Value {
    let server = state.server(&share.machine_identifier);
    let libraries: Vec<Value> = server
        .map(|s| {
            s.seeded
                .libraries
                .iter()
                .filter(|l| share.library_ids.contains(&l.global_id))
                .map(|l| json!({"id": l.global_id, "key": l.key.parse::<u64>().ok(), "title": l.title, "type": l.kind}))
                .collect()
        })
        .unwrap_or_default();
    let invited = state.account_by_id(share.invited_id);
    let settings = &share.settings;
    json!({
        "id": share.id,
        "ownerId": share.owner_id,
        "invitedId": share.invited_id,
        "invitedEmail": share.invited_email,
        "serverId": server.map(|s| s.plex_id),
        "machineIdentifier": share.machine_identifier,
        "accepted": share.accepted,
        "acceptedAt": if share.accepted { Some(chrono::Utc::now().timestamp()) } else { None },
        "inviteToken": format!("invite-{}", share.id),
        "numLibraries": share.library_ids.len(),
        "allLibraries": share.all_libraries,
        "invited": invited.map(|a| json!({
            "id": a.id,
            "uuid": a.uuid,
            "title": a.username,
            "username": a.username,
            "restricted": false,
            "thumb": format!("https://plex.tv/users/{}/avatar", a.uuid),
            "status": if share.accepted { "accepted" } else { "pending" },
        })),
        "sharingSettings": {
            "allowSync": settings.allow_sync,
            "allowChannels": settings.allow_channels,
            "allowCameraUpload": settings.allow_camera_upload,
            "allowSubtitleAdmin": settings.allow_subtitle_admin,
            "allowTuners": settings.allow_tuners,
            "filterMovies": settings.filter_movies,
            "filterTelevision": settings.filter_television,
            "filterMusic": settings.filter_music,
            "filterPhotos": settings.filter_photos,
            "filterAll": settings.filter_all,
        },
        "libraries": libraries,
    })
}

/// Checks every id is a plex.tv-global section id of the server; empty means "all libraries".
fn check_sections(
    state: &FakeState,
    machine_identifier: &str,
    ids: &[u64],
) -> Result<(Vec<u64>, bool), Refusal> {
    let server = state
        .server(machine_identifier)
        .expect("checked by the caller");
    let known: Vec<u64> = server
        .seeded
        .libraries
        .iter()
        .map(|l| l.global_id)
        .collect();
    if ids.is_empty() {
        return Ok((known, true));
    }
    if let Some(bad) = ids.iter().find(|id| !known.contains(id)) {
        return Err(Refusal::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            codes::INVALID_SECTIONS,
            format!("Library section {bad} does not belong to this server"),
        ));
    }
    let mut ids = ids.to_vec();
    ids.sort_unstable();
    ids.dedup();
    Ok((ids, false))
}

async fn create_share(
    State(state): State<Shared>,
    Extension(Caller(caller)): Extension<Caller>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let wire = Wire::negotiated(&headers);
    let request: CreateBody = match json_body(&headers, &body) {
        Ok(request) => request,
        Err(refusal) => return refusal.render(wire),
    };
    let mut state = lock(&state);
    let Some(server) = state
        .server(&request.machine_identifier)
        .filter(|s| s.owner_id == caller)
    else {
        return wire::not_found(wire);
    };
    let share_limit = server.share_limit;
    let (library_ids, all_libraries) = match check_sections(
        &state,
        &request.machine_identifier,
        &request.library_section_ids,
    ) {
        Ok(found) => found,
        Err(refusal) => return refusal.render(wire),
    };
    let Some(invited) = state
        .account_by_login(request.invited_email.trim())
        .cloned()
    else {
        return wire::error(
            StatusCode::UNPROCESSABLE_ENTITY,
            wire,
            codes::NOT_A_USER,
            "The invited user is not a Plex account",
        );
    };
    if invited.id == caller {
        return wire::error(
            StatusCode::UNPROCESSABLE_ENTITY,
            wire,
            codes::SELF_SHARE,
            "You cannot share a server with yourself",
        );
    }
    let on_server: Vec<&FakeShare> = state
        .shares
        .iter()
        .filter(|s| s.machine_identifier == request.machine_identifier)
        .collect();
    if on_server.iter().any(|s| s.invited_id == invited.id) {
        return wire::error(
            StatusCode::UNPROCESSABLE_ENTITY,
            wire,
            codes::ALREADY_SHARED,
            "Account already has access to this server",
        );
    }
    let seated = state.seated(caller);
    if !seated.contains(&invited.id) && 1 + seated.len() >= state.seats_per_account {
        return wire::error(
            StatusCode::UNPROCESSABLE_ENTITY,
            wire,
            codes::SHARE_LIMIT,
            "This account has reached its limit of shared users",
        );
    }
    if on_server.len() >= share_limit {
        return wire::error(
            StatusCode::UNPROCESSABLE_ENTITY,
            wire,
            codes::SHARE_LIMIT,
            "This server has reached its limit of shared users",
        );
    }
    let id = state.next_share_id;
    state.next_share_id += 1;
    let share = FakeShare {
        id,
        machine_identifier: request.machine_identifier,
        owner_id: caller,
        invited_id: invited.id,
        invited_email: invited.email,
        invited_username: invited.username,
        library_ids,
        all_libraries,
        settings: request.settings.map(FakeSettings::from).unwrap_or_default(),
        accepted: false,
        skip_friendship: request.skip_friendship,
    };
    let answer = share_json(&state, &share);
    state.shares.push(share);
    wire::ok(
        StatusCode::CREATED,
        wire,
        "SharedServer",
        "SharedServer",
        &answer,
    )
}

fn share_id(raw: &str) -> Option<u64> {
    raw.parse().ok()
}

async fn update_share(
    State(state): State<Shared>,
    Extension(Caller(caller)): Extension<Caller>,
    Path(raw_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let wire = Wire::negotiated(&headers);
    let request: UpdateBody = match json_body(&headers, &body) {
        Ok(request) => request,
        Err(refusal) => return refusal.render(wire),
    };
    let mut state = lock(&state);
    let Some(index) = share_id(&raw_id).and_then(|id| {
        state
            .shares
            .iter()
            .position(|s| s.id == id && s.owner_id == caller)
    }) else {
        return wire::not_found(wire);
    };
    let machine_identifier = state.shares[index].machine_identifier.clone();
    let (library_ids, all_libraries) =
        match check_sections(&state, &machine_identifier, &request.library_section_ids) {
            Ok(found) => found,
            Err(refusal) => return refusal.render(wire),
        };
    let share = &mut state.shares[index];
    share.library_ids = library_ids;
    share.all_libraries = all_libraries;
    share.settings = request.settings.into();
    let share = share.clone();
    wire::ok(
        StatusCode::OK,
        wire,
        "SharedServer",
        "SharedServer",
        &share_json(&state, &share),
    )
}

async fn delete_share(
    State(state): State<Shared>,
    Extension(Caller(caller)): Extension<Caller>,
    Path(raw_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let wire = Wire::negotiated(&headers);
    let mut state = lock(&state);
    let Some(index) = share_id(&raw_id).and_then(|id| {
        state
            .shares
            .iter()
            .position(|s| s.id == id && s.owner_id == caller)
    }) else {
        return wire::not_found(wire);
    };
    state.shares.remove(index);
    Response::builder()
        .status(StatusCode::NO_CONTENT)
        .body(axum::body::Body::empty())
        .expect("a bare 204")
}

async fn accept_share(
    State(state): State<Shared>,
    Extension(Caller(caller)): Extension<Caller>,
    Path(raw_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let wire = Wire::negotiated(&headers);
    let mut state = lock(&state);
    // Only the invitee's own token can accept.
    let Some(share) = share_id(&raw_id).and_then(|id| {
        state
            .shares
            .iter_mut()
            .find(|s| s.id == id && s.invited_id == caller && !s.accepted)
    }) else {
        return wire::not_found(wire);
    };
    share.accepted = true;
    let share = share.clone();
    wire::ok(
        StatusCode::OK,
        wire,
        "SharedServer",
        "SharedServer",
        &share_json(&state, &share),
    )
}

async fn accepted_shares(
    State(state): State<Shared>,
    Extension(Caller(caller)): Extension<Caller>,
    headers: HeaderMap,
) -> Response {
    let state = lock(&state);
    let list: Vec<Value> = state
        .shares
        .iter()
        .filter(|s| s.owner_id == caller && s.accepted)
        .map(|s| share_json(&state, s))
        .collect();
    wire::ok(
        StatusCode::OK,
        Wire::negotiated(&headers),
        "MediaContainer",
        "SharedServer",
        &Value::Array(list),
    )
}

async fn pending_invites(
    State(state): State<Shared>,
    Extension(Caller(caller)): Extension<Caller>,
    headers: HeaderMap,
) -> Response {
    let state = lock(&state);
    let pending: Vec<&FakeShare> = state
        .shares
        .iter()
        .filter(|s| s.owner_id == caller && !s.accepted)
        .collect();
    let mut invitees: Vec<u64> = pending.iter().map(|s| s.invited_id).collect();
    invitees.sort_unstable();
    invitees.dedup();
    let list: Vec<Value> = invitees
        .into_iter()
        .map(|invitee| {
            let account = state.account_by_id(invitee);
            json!({
                "id": invitee,
                "friend": false,
                "server": true,
                "home": false,
                "invited": account.map(|a| json!({"id": a.id, "uuid": a.uuid, "username": a.username, "title": a.username})),
                "sharedServers": pending
                    .iter()
                    .filter(|s| s.invited_id == invitee)
                    .map(|s| share_json(&state, s))
                    .collect::<Vec<_>>(),
            })
        })
        .collect();
    wire::ok(
        StatusCode::OK,
        Wire::negotiated(&headers),
        "MediaContainer",
        "Invite",
        &Value::Array(list),
    )
}

/// The version every fake server reports.
const PMS_VERSION: &str = "1.41.3.9314-a0bfb8370";

async fn pms_identity(
    State(state): State<Shared>,
    Path(machine_identifier): Path<String>,
    headers: HeaderMap,
) -> Response {
    let state = lock(&state);
    let wire = Wire::negotiated(&headers);
    if state.server(&machine_identifier).is_none() {
        return wire::error(StatusCode::NOT_FOUND, wire, codes::NOT_FOUND, "Not Found");
    }
    let container = json!({
        "size": 0,
        "claimed": true,
        "machineIdentifier": machine_identifier,
        "version": PMS_VERSION,
    });
    pms_ok(wire, &container)
}

async fn pms_sections(
    State(state): State<Shared>,
    Path(machine_identifier): Path<String>,
    request: Request,
) -> Response {
    let state = lock(&state);
    let wire = Wire::negotiated(request.headers());
    let Some(server) = state.server(&machine_identifier) else {
        return wire::error(StatusCode::NOT_FOUND, wire, codes::NOT_FOUND, "Not Found");
    };
    let owner_token = state
        .account_by_id(server.owner_id)
        .filter(|a| !state.revoked.contains(&a.token))
        .map(|a| a.token.clone());
    let token = plex_value(&request, "X-Plex-Token");
    let allowed =
        token.is_some_and(|t| t == server.seeded.access_token || Some(&t) == owner_token.as_ref());
    if !allowed {
        // A real server answers an HTML page here.
        return Response::builder()
            .status(StatusCode::UNAUTHORIZED)
            .header(CONTENT_TYPE, "text/html")
            .body(axum::body::Body::from(
                "<html><head><title>Unauthorized</title></head><body><h1>401 Unauthorized</h1></body></html>",
            ))
            .expect("a static 401");
    }
    let directories: Vec<Value> = server
        .seeded
        .libraries
        .iter()
        .map(|l| {
            json!({
                "allowSync": true,
                "key": l.key,
                "type": l.kind,
                "title": l.title,
                "agent": "tv.plex.agents.none",
                "scanner": "Plex Video Files Scanner",
                "language": "en-US",
                "uuid": l.uuid,
                "updatedAt": 1_700_000_000,
                "Location": [{"id": l.key, "path": format!("/data/{}", l.title)}],
            })
        })
        .collect();
    pms_ok(
        wire,
        &json!({"size": directories.len(), "title1": "Plex Library", "Directory": directories}),
    )
}

/// A PMS answer: `{"MediaContainer": {...}}` as JSON, or the container's attributes and children
/// as XML (`Directory`, `Location` elements named as in the real server).
fn pms_ok(wire: Wire, container: &Value) -> Response {
    if wire == Wire::Json {
        return wire::ok(
            StatusCode::OK,
            wire,
            "",
            "",
            &json!({"MediaContainer": container}),
        );
    }
    let mut out = String::from(r#"<?xml version="1.0" encoding="UTF-8"?><MediaContainer"#);
    let mut children = String::new();
    for (key, value) in container.as_object().expect("a container object") {
        match value {
            Value::Array(items) => {
                for item in items {
                    children.push_str(&pms_element(key, item));
                }
            }
            other => _ = write!(out, r#" {key}="{}""#, attribute(other)),
        }
    }
    if children.is_empty() {
        out.push_str("/>");
    } else {
        out.push('>');
        out.push_str(&children);
        out.push_str("</MediaContainer>");
    }
    wire::xml(StatusCode::OK, out)
}

fn pms_element(name: &str, value: &Value) -> String {
    let mut attrs = String::new();
    let mut children = String::new();
    for (key, field) in value.as_object().into_iter().flatten() {
        match field {
            Value::Array(items) => {
                for item in items {
                    children.push_str(&pms_element(key, item));
                }
            }
            other => _ = write!(attrs, r#" {key}="{}""#, attribute(other)),
        }
    }
    if children.is_empty() {
        format!("<{name}{attrs}/>")
    } else {
        format!("<{name}{attrs}>{children}</{name}>")
    }
}

fn attribute(value: &Value) -> String {
    let text = match value {
        Value::Bool(b) => u8::from(*b).to_string(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    quick_xml::escape::escape(&text).into_owned()
}
