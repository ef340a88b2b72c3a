//! The fake's REST routes under `/api/v10`.
//!
//! Owns the request rules. Rule kept: every call is recorded with its answer; the token is
//! checked first (401), then the route's own checks in Discord's order: unknown resource (404 with
//! Discord's code), refused action (403), invalid body (400).

// Refusals are ready-made axum responses carried in `Err`; their size does not matter in a fake.
#![allow(clippy::result_large_err)]

use std::collections::BTreeSet;
use std::sync::{Arc, Weak};

use axum::body::Bytes;
use axum::extract::{MatchedPath, Path, Request, State};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde_json::{Value, json};

use super::guild::{Guild, Overwrite, bits};
use super::wire::{self, error};
use super::{
    Channel, Inner, RecordedAttachment, RecordedCall, RecordedMessage, Reply, ReplyKind,
    State as FakeState, codes, lock, mutate,
};

type Shared = Arc<Inner>;

/// Discord's limit on `content`.
const MAX_CONTENT: usize = 2000;

pub(super) fn router(inner: Weak<Inner>) -> Router {
    let api = Router::new()
        .route("/gateway", get(gateway))
        .route("/gateway/bot", get(gateway_bot))
        .route("/oauth2/applications/@me", get(application))
        .route("/users/@me", get(current_user))
        .route("/users/@me/guilds", get(current_user_guilds))
        .route("/guilds/{guild}", get(get_guild))
        .route("/guilds/{guild}/roles", get(guild_roles))
        .route("/guilds/{guild}/members/{user}", get(guild_member))
        .route("/users/@me/channels", post(create_dm))
        .route("/users/{user}", get(get_user))
        .route("/channels/{channel}", get(get_channel))
        .route("/channels/{channel}/messages", post(create_message))
        .route(
            "/channels/{channel}/messages/{message}",
            get(get_message).patch(edit_message).delete(delete_message),
        )
        .route(
            "/applications/{app}/commands",
            get(list_global_commands).put(put_global_commands),
        )
        .route(
            "/applications/{app}/guilds/{guild}/commands",
            get(list_guild_commands).put(put_guild_commands),
        )
        .route(
            "/interactions/{interaction}/{token}/callback",
            post(callback),
        )
        .route(
            "/guilds/{guild}/members/{user}/roles/{role}",
            axum::routing::put(add_member_role).delete(remove_member_role),
        )
        .route("/webhooks/{app}/{token}", post(followup))
        .route(
            "/webhooks/{app}/{token}/messages/{message}",
            get(get_webhook_message)
                .patch(edit_webhook_message)
                .delete(delete_webhook_message),
        );
    Router::new()
        .nest("/api/v10", api)
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(inner, gate))
}

async fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, 0, "404: Not Found")
}

/// Records the call, checks the token, answers Discord's JSON for 405.
async fn gate(State(weak): State<Weak<Inner>>, mut request: Request, next: Next) -> Response {
    let Some(inner) = weak.upgrade() else {
        return error(StatusCode::SERVICE_UNAVAILABLE, 0, "shutting down");
    };
    let method = request.method().to_string();
    let path = request.uri().path().to_owned();
    let known = request.extensions().get::<MatchedPath>().is_some();
    let authorization = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    // Interaction callbacks and webhook calls are authorised by the interaction token; the
    // gateway URL is public. A token sent there anyway must still be valid.
    let token_routes = ["/api/v10/interactions/", "/api/v10/webhooks/"];
    let public = path == "/api/v10/gateway" || token_routes.iter().any(|p| path.starts_with(p));
    let expected = format!("Bot {}", lock(&inner).options.token);
    let authorised = match authorization {
        Some(value) => value == expected,
        None => public,
    };
    let response = if authorised {
        request.extensions_mut().insert(inner.clone());
        let response = next.run(request).await;
        if response.status() == StatusCode::METHOD_NOT_ALLOWED {
            error(StatusCode::METHOD_NOT_ALLOWED, 0, "405: Method Not Allowed")
        } else {
            response
        }
    } else {
        error(StatusCode::UNAUTHORIZED, 0, "401: Unauthorized")
    };
    let status = response.status().as_u16();
    mutate(&inner, |s| {
        s.calls.push(RecordedCall {
            method,
            path,
            status,
            known,
        });
    });
    response
}

fn snowflake(raw: &str) -> Result<u64, Response> {
    raw.parse()
        .map_err(|_| error(StatusCode::NOT_FOUND, 0, "404: Not Found"))
}

fn invalid_form(field: &str, code: &str, message: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({
            "message": "Invalid Form Body",
            "code": codes::INVALID_FORM_BODY,
            "errors": {field: {"_errors": [{"code": code, "message": message}]}},
        })),
    )
        .into_response()
}

/// A JSON body, or multipart with `payload_json` and files (as serenity sends attachments).
fn parse_body(
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<(Value, Vec<RecordedAttachment>), Response> {
    let invalid_json = || {
        error(
            StatusCode::BAD_REQUEST,
            50_109,
            "The request body contains invalid JSON.",
        )
    };
    let content_type = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if content_type.starts_with("multipart/form-data") {
        let parts = wire::multipart(content_type, body).ok_or_else(invalid_json)?;
        let mut payload = Value::Null;
        let mut files = Vec::new();
        for part in parts {
            if part.name == "payload_json" {
                payload = serde_json::from_slice(&part.data).map_err(|_| invalid_json())?;
            } else if let Some(filename) = part.filename {
                files.push(RecordedAttachment {
                    filename,
                    bytes: part.data,
                });
            }
        }
        if payload.is_null() {
            payload = json!({});
        }
        return Ok((payload, files));
    }
    if body.is_empty() {
        return Ok((json!({}), Vec::new()));
    }
    let value: Value = serde_json::from_slice(body).map_err(|_| invalid_json())?;
    Ok((value, Vec::new()))
}

/// Discord's checks on a message body: not empty, content within 2000 characters.
fn check_message(
    body: &Value,
    files: &[RecordedAttachment],
    creating: bool,
) -> Result<(), Response> {
    if let Some(content) = body["content"].as_str()
        && content.chars().count() > MAX_CONTENT
    {
        return Err(invalid_form(
            "content",
            "BASE_TYPE_MAX_LENGTH",
            "Must be 2000 or fewer in length.",
        ));
    }
    if body["embeds"].as_array().is_some_and(|e| e.len() > 10) {
        return Err(invalid_form(
            "embeds",
            "BASE_TYPE_MAX_LENGTH",
            "Must be 10 or fewer in length.",
        ));
    }
    let non_empty = |field: &str| match &body[field] {
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Null => false,
        _ => true,
    };
    let empty = !["content", "embeds", "components", "sticker_ids", "poll"]
        .iter()
        .any(|f| non_empty(f))
        && files.is_empty();
    if creating && empty {
        return Err(error(
            StatusCode::BAD_REQUEST,
            codes::EMPTY_MESSAGE,
            "Cannot send an empty message",
        ));
    }
    Ok(())
}

/// Creates a message object the fake keeps, with attachment ids.
fn store_message(
    s: &mut FakeState,
    channel_id: u64,
    body: &Value,
    files: &[RecordedAttachment],
) -> (u64, Value) {
    let id = s.snowflake();
    let attachments: Vec<(u64, &RecordedAttachment)> =
        files.iter().map(|f| (s.snowflake(), f)).collect();
    let message = wire::message(
        id,
        channel_id,
        &wire::bot_user(s.bot_user_id),
        body,
        &attachments,
    );
    s.message_objects.insert(id, message.clone());
    (id, message)
}

async fn gateway(Extension(inner): Extension<Shared>) -> Json<Value> {
    Json(json!({"url": lock(&inner).gateway_url}))
}

async fn gateway_bot(Extension(inner): Extension<Shared>) -> Json<Value> {
    Json(json!({
        "url": lock(&inner).gateway_url,
        "shards": 1,
        "session_start_limit": {"total": 1000, "remaining": 999, "reset_after": 0, "max_concurrency": 1},
    }))
}

async fn application(Extension(inner): Extension<Shared>) -> Json<Value> {
    let s = lock(&inner);
    let owner = s
        .user_json(s.owner_id)
        .unwrap_or_else(|| wire::user(&super::FakeUser::new(s.owner_id, "owner")));
    Json(wire::application(s.application_id, s.bot_user_id, &owner))
}

async fn current_user(Extension(inner): Extension<Shared>) -> Json<Value> {
    Json(wire::bot_user(lock(&inner).bot_user_id))
}

async fn get_user(Extension(inner): Extension<Shared>, Path(user): Path<String>) -> Response {
    let id = match snowflake(&user) {
        Ok(id) => id,
        Err(response) => return response,
    };
    match lock(&inner).user_json(id) {
        Some(user) => Json(user).into_response(),
        None => error(StatusCode::NOT_FOUND, codes::UNKNOWN_USER, "Unknown User"),
    }
}

async fn create_dm(
    Extension(inner): Extension<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (body, _) = match parse_body(&headers, &body) {
        Ok(parsed) => parsed,
        Err(response) => return response,
    };
    let recipient = match &body["recipient_id"] {
        Value::String(s) => s.parse::<u64>().ok(),
        Value::Number(n) => n.as_u64(),
        _ => None,
    };
    let Some(recipient) = recipient else {
        return invalid_form(
            "recipient_id",
            "BASE_TYPE_REQUIRED",
            "This field is required",
        );
    };
    mutate(&inner, |s| {
        let Some(user) = s.users.get(&recipient).map(wire::user) else {
            return error(StatusCode::NOT_FOUND, codes::UNKNOWN_USER, "Unknown User");
        };
        let channel = s.dm_channel(recipient);
        Json(wire::dm_channel(channel, &user)).into_response()
    })
}

fn missing_access() -> Response {
    error(
        StatusCode::FORBIDDEN,
        codes::MISSING_ACCESS,
        "Missing Access",
    )
}

fn missing_permissions() -> Response {
    error(
        StatusCode::FORBIDDEN,
        codes::MISSING_PERMISSIONS,
        "Missing Permissions",
    )
}

/// The guild the bot is a member of, with the roles it holds there; Discord's 404/403 otherwise.
fn bot_guild(s: &FakeState, guild: u64) -> Result<(&Guild, &BTreeSet<u64>), Response> {
    let Some(found) = s.guilds.get(&guild) else {
        return Err(error(
            StatusCode::NOT_FOUND,
            codes::UNKNOWN_GUILD,
            "Unknown Guild",
        ));
    };
    let roles = s.bot_roles(guild).ok_or_else(missing_access)?;
    Ok((found, roles))
}

/// `PUT` (add) or `DELETE` (remove) one role of a guild member. Discord answers 204 with no body
/// either way, also when the member already had (or lacked) the role; unknown guild, member or role
/// is a 404 with its own code; a bot outside the guild gets 50001, and one without Manage Roles,
/// or whose highest role is not above the role, 50013.
fn change_member_role(inner: &Inner, raw: &(String, String, String), add: bool) -> Response {
    let (guild, user, role) = match (snowflake(&raw.0), snowflake(&raw.1), snowflake(&raw.2)) {
        (Ok(g), Ok(u), Ok(r)) => (g, u, r),
        (Err(response), ..) | (_, Err(response), _) | (.., Err(response)) => return response,
    };
    mutate(inner, |s| {
        let (found, bot_roles) = match bot_guild(s, guild) {
            Ok(found) => found,
            Err(response) => return response,
        };
        let Some(target) = found.roles.get(&role) else {
            return error(StatusCode::NOT_FOUND, codes::UNKNOWN_ROLE, "Unknown Role");
        };
        let permissions = found.base_permissions(guild, s.bot_user_id, bot_roles);
        if permissions & bits::MANAGE_ROLES == 0
            || found.highest_position(bot_roles) <= target.position
        {
            return missing_permissions();
        }
        let Some(held) = s.members.get_mut(&(guild, user)) else {
            return error(
                StatusCode::NOT_FOUND,
                codes::UNKNOWN_MEMBER,
                "Unknown Member",
            );
        };
        if add {
            held.insert(role);
        } else {
            held.remove(&role);
        }
        StatusCode::NO_CONTENT.into_response()
    })
}

async fn add_member_role(
    Extension(inner): Extension<Shared>,
    Path(raw): Path<(String, String, String)>,
) -> Response {
    change_member_role(&inner, &raw, true)
}

async fn remove_member_role(
    Extension(inner): Extension<Shared>,
    Path(raw): Path<(String, String, String)>,
) -> Response {
    change_member_role(&inner, &raw, false)
}

/// The bot's permissions in a guild channel; 50001 when it is not in the guild.
fn bot_channel_permissions(
    s: &FakeState,
    guild_id: u64,
    overwrites: &[Overwrite],
) -> Result<u64, Response> {
    let (found, roles) = bot_guild(s, guild_id)?;
    Ok(found.channel_permissions(guild_id, s.bot_user_id, roles, overwrites))
}

async fn get_channel(Extension(inner): Extension<Shared>, Path(channel): Path<String>) -> Response {
    let id = match snowflake(&channel) {
        Ok(id) => id,
        Err(response) => return response,
    };
    let s = lock(&inner);
    match s.channels.get(&id) {
        Some(Channel::Dm { user_id }) => {
            let user = s.user_json(*user_id).unwrap_or(Value::Null);
            Json(wire::dm_channel(id, &user)).into_response()
        }
        Some(Channel::Guild {
            guild_id,
            name,
            overwrites,
        }) => {
            match bot_channel_permissions(&s, *guild_id, overwrites) {
                Ok(permissions) if permissions & bits::VIEW_CHANNEL != 0 => {}
                Ok(_) => return missing_access(),
                Err(response) => return response,
            }
            Json(json!({
                "id": id.to_string(),
                "type": 0,
                "guild_id": guild_id.to_string(),
                "name": name,
                "position": 0,
                "permission_overwrites": overwrites.iter().map(Overwrite::json).collect::<Vec<_>>(),
                "nsfw": false,
                "parent_id": null,
                "last_message_id": null,
                "rate_limit_per_user": 0,
                "topic": null,
                "flags": 0,
            }))
            .into_response()
        }
        None => error(
            StatusCode::NOT_FOUND,
            codes::UNKNOWN_CHANNEL,
            "Unknown Channel",
        ),
    }
}

/// `GET /users/@me/guilds`: the guilds the bot is in, with its permissions in each.
async fn current_user_guilds(Extension(inner): Extension<Shared>) -> Json<Value> {
    let s = lock(&inner);
    let guilds: Vec<Value> = s
        .guilds
        .iter()
        .filter_map(|(id, found)| {
            let roles = s.bot_roles(*id)?;
            Some(json!({
                "id": id.to_string(),
                "name": found.name,
                "icon": null,
                "banner": null,
                "owner": found.owner_id == s.bot_user_id,
                "permissions": found.base_permissions(*id, s.bot_user_id, roles).to_string(),
                "features": [],
            }))
        })
        .collect();
    Json(Value::Array(guilds))
}

/// `GET /guilds/{guild}`: the guild with its roles.
async fn get_guild(Extension(inner): Extension<Shared>, Path(guild): Path<String>) -> Response {
    let id = match snowflake(&guild) {
        Ok(id) => id,
        Err(response) => return response,
    };
    let s = lock(&inner);
    let found = match bot_guild(&s, id) {
        Ok((found, _)) => found,
        Err(response) => return response,
    };
    let roles: Vec<Value> = found
        .roles
        .iter()
        .map(|(role, r)| Guild::role_json(*role, r, s.bot_user_id))
        .collect();
    Json(json!({
        "id": id.to_string(),
        "name": found.name,
        "icon": null,
        "splash": null,
        "discovery_splash": null,
        "owner_id": found.owner_id.to_string(),
        "afk_channel_id": null,
        "afk_timeout": 300,
        "verification_level": 0,
        "default_message_notifications": 0,
        "explicit_content_filter": 0,
        "roles": roles,
        "emojis": [],
        "features": [],
        "mfa_level": 0,
        "application_id": null,
        "system_channel_id": null,
        "system_channel_flags": 0,
        "rules_channel_id": null,
        "vanity_url_code": null,
        "description": null,
        "banner": null,
        "premium_tier": 0,
        "preferred_locale": "en-US",
        "public_updates_channel_id": null,
        "nsfw_level": 0,
        "premium_progress_bar_enabled": false,
        "safety_alerts_channel_id": null,
    }))
    .into_response()
}

/// `GET /guilds/{guild}/roles`.
async fn guild_roles(Extension(inner): Extension<Shared>, Path(guild): Path<String>) -> Response {
    let id = match snowflake(&guild) {
        Ok(id) => id,
        Err(response) => return response,
    };
    let s = lock(&inner);
    match bot_guild(&s, id) {
        Ok((found, _)) => Json(Value::Array(
            found
                .roles
                .iter()
                .map(|(role, r)| Guild::role_json(*role, r, s.bot_user_id))
                .collect(),
        ))
        .into_response(),
        Err(response) => response,
    }
}

/// `GET /guilds/{guild}/members/{user}` (no privileged intent needed for one member).
async fn guild_member(
    Extension(inner): Extension<Shared>,
    Path((guild, user)): Path<(String, String)>,
) -> Response {
    let (guild, user) = match (snowflake(&guild), snowflake(&user)) {
        (Ok(g), Ok(u)) => (g, u),
        (Err(response), _) | (_, Err(response)) => return response,
    };
    let s = lock(&inner);
    if let Err(response) = bot_guild(&s, guild) {
        return response;
    }
    let (Some(roles), Some(user_json)) = (s.members.get(&(guild, user)), s.user_json(user)) else {
        return error(
            StatusCode::NOT_FOUND,
            codes::UNKNOWN_MEMBER,
            "Unknown Member",
        );
    };
    Json(json!({
        "user": user_json,
        "nick": null,
        "avatar": null,
        "banner": null,
        "roles": roles.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "joined_at": wire::now(),
        "premium_since": null,
        "deaf": false,
        "mute": false,
        "flags": 0,
        "pending": false,
        "communication_disabled_until": null,
    }))
    .into_response()
}

async fn create_message(
    Extension(inner): Extension<Shared>,
    Path(channel): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let channel_id = match snowflake(&channel) {
        Ok(id) => id,
        Err(response) => return response,
    };
    let (body, files) = match parse_body(&headers, &body) {
        Ok(parsed) => parsed,
        Err(response) => return response,
    };
    mutate(&inner, |s| {
        match s.channels.get(&channel_id) {
            None => {
                return error(
                    StatusCode::NOT_FOUND,
                    codes::UNKNOWN_CHANNEL,
                    "Unknown Channel",
                );
            }
            Some(Channel::Dm { user_id }) if s.failing_dms.contains(user_id) => {
                return error(
                    StatusCode::FORBIDDEN,
                    codes::CANNOT_MESSAGE_USER,
                    "Cannot send messages to this user",
                );
            }
            Some(Channel::Guild {
                guild_id,
                overwrites,
                ..
            }) => match bot_channel_permissions(s, *guild_id, overwrites) {
                Ok(p) if p & bits::VIEW_CHANNEL == 0 => return missing_access(),
                Ok(p) if p & bits::SEND_MESSAGES == 0 => return missing_permissions(),
                Ok(_) => {}
                Err(response) => return response,
            },
            Some(Channel::Dm { .. }) => {}
        }
        if let Err(response) = check_message(&body, &files, true) {
            return response;
        }
        let (id, message) = store_message(s, channel_id, &body, &files);
        s.messages.push(RecordedMessage {
            id,
            channel_id,
            content: body["content"].as_str().unwrap_or_default().to_owned(),
            embeds: body["embeds"].as_array().cloned().unwrap_or_default(),
            components: body["components"].as_array().cloned().unwrap_or_default(),
            attachments: files,
        });
        Json(message).into_response()
    })
}

/// The message id in `/channels/{channel}/messages/{message}` if it is the bot's message there.
fn channel_message(s: &FakeState, channel: &str, message: &str) -> Result<u64, Response> {
    let channel_id = snowflake(channel)?;
    let message_id = snowflake(message)?;
    if !s.channels.contains_key(&channel_id) {
        return Err(error(
            StatusCode::NOT_FOUND,
            codes::UNKNOWN_CHANNEL,
            "Unknown Channel",
        ));
    }
    match s.message_objects.get(&message_id) {
        Some(m) if m["channel_id"].as_str() == Some(channel_id.to_string().as_str()) => {
            Ok(message_id)
        }
        _ => Err(error(
            StatusCode::NOT_FOUND,
            codes::UNKNOWN_MESSAGE,
            "Unknown Message",
        )),
    }
}

async fn get_message(
    Extension(inner): Extension<Shared>,
    Path((channel, message)): Path<(String, String)>,
) -> Response {
    let s = lock(&inner);
    match channel_message(&s, &channel, &message) {
        Ok(id) => Json(s.message_objects[&id].clone()).into_response(),
        Err(response) => response,
    }
}

async fn edit_message(
    Extension(inner): Extension<Shared>,
    Path((channel, message)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (body, files) = match parse_body(&headers, &body) {
        Ok(parsed) => parsed,
        Err(response) => return response,
    };
    mutate(&inner, |s| {
        let id = match channel_message(s, &channel, &message) {
            Ok(id) => id,
            Err(response) => return response,
        };
        if let Err(response) = check_message(&body, &files, false) {
            return response;
        }
        let object = s.message_objects.get_mut(&id).expect("checked above");
        wire::edit_message(object, &body);
        let object = object.clone();
        if let Some(recorded) = s.messages.iter_mut().find(|m| m.id == id) {
            object["content"]
                .as_str()
                .unwrap_or_default()
                .clone_into(&mut recorded.content);
            recorded.embeds = object["embeds"].as_array().cloned().unwrap_or_default();
            recorded.components = object["components"].as_array().cloned().unwrap_or_default();
        }
        Json(object).into_response()
    })
}

async fn delete_message(
    Extension(inner): Extension<Shared>,
    Path((channel, message)): Path<(String, String)>,
) -> Response {
    mutate(&inner, |s| {
        let id = match channel_message(s, &channel, &message) {
            Ok(id) => id,
            Err(response) => return response,
        };
        s.message_objects.remove(&id);
        StatusCode::NO_CONTENT.into_response()
    })
}

fn check_application(s: &FakeState, app: &str) -> Result<(), Response> {
    if snowflake(app)? == s.application_id {
        Ok(())
    } else {
        Err(error(StatusCode::FORBIDDEN, 50_001, "Missing Access"))
    }
}

async fn list_global_commands(
    Extension(inner): Extension<Shared>,
    Path(app): Path<String>,
) -> Response {
    list_commands(&inner, &app, None)
}

async fn list_guild_commands(
    Extension(inner): Extension<Shared>,
    Path((app, guild)): Path<(String, String)>,
) -> Response {
    match snowflake(&guild) {
        Ok(guild) => list_commands(&inner, &app, Some(guild)),
        Err(response) => response,
    }
}

fn list_commands(inner: &Inner, app: &str, guild: Option<u64>) -> Response {
    let s = lock(inner);
    if let Err(response) = check_application(&s, app) {
        return response;
    }
    Json(s.commands.get(&guild).cloned().unwrap_or_default()).into_response()
}

async fn put_global_commands(
    Extension(inner): Extension<Shared>,
    Path(app): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    put_commands(&inner, &app, None, &headers, &body)
}

async fn put_guild_commands(
    Extension(inner): Extension<Shared>,
    Path((app, guild)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match snowflake(&guild) {
        Ok(guild) => put_commands(&inner, &app, Some(guild), &headers, &body),
        Err(response) => response,
    }
}

/// Bulk overwrite: the list replaces the scope's commands; a name kept keeps its id.
fn put_commands(
    inner: &Inner,
    app: &str,
    guild: Option<u64>,
    headers: &HeaderMap,
    body: &Bytes,
) -> Response {
    let (body, _) = match parse_body(headers, body) {
        Ok(parsed) => parsed,
        Err(response) => return response,
    };
    let Some(list) = body.as_array() else {
        return invalid_form(
            "_errors",
            "MODEL_TYPE_CONVERT",
            "Only iterables may be used in a ListType",
        );
    };
    for (index, command) in list.iter().enumerate() {
        let name = command["name"].as_str().unwrap_or_default();
        let kind = command["type"].as_u64().unwrap_or(1);
        let name_ok = (1..=32).contains(&name.chars().count())
            && (kind != 1
                || name
                    .chars()
                    .all(|c| c.is_lowercase() || c.is_ascii_digit() || c == '-' || c == '_'));
        if !name_ok {
            return invalid_form(
                &format!("{index}.name"),
                "APPLICATION_COMMAND_INVALID_NAME",
                "Command name is invalid",
            );
        }
        let description = command["description"].as_str().unwrap_or_default();
        if kind == 1 && !(1..=100).contains(&description.chars().count()) {
            return invalid_form(
                &format!("{index}.description"),
                "BASE_TYPE_BAD_LENGTH",
                "Must be between 1 and 100 in length.",
            );
        }
        if list[..index]
            .iter()
            .any(|c| c["name"] == command["name"] && c["type"].as_u64().unwrap_or(1) == kind)
        {
            return invalid_form(
                &format!("{index}.name"),
                "APPLICATION_COMMANDS_DUPLICATE_NAME",
                "Application command names must be unique",
            );
        }
    }
    mutate(inner, |s| {
        if let Err(response) = check_application(s, app) {
            return response;
        }
        let old = s.commands.get(&guild).cloned().unwrap_or_default();
        let mut stored = Vec::with_capacity(list.len());
        for command in list {
            let kind = command["type"].as_u64().unwrap_or(1);
            let id = old
                .iter()
                .find(|c| c["name"] == command["name"] && c["type"] == kind)
                .and_then(|c| c["id"].as_str().and_then(|id| id.parse().ok()))
                .unwrap_or_else(|| s.snowflake());
            let version = s.snowflake();
            let mut stored_command = command.clone();
            stored_command["id"] = json!(id.to_string());
            stored_command["application_id"] = json!(s.application_id.to_string());
            stored_command["version"] = json!(version.to_string());
            stored_command["type"] = json!(kind);
            stored_command["guild_id"] = guild.map_or(Value::Null, |g| json!(g.to_string()));
            for (field, default) in [
                ("description", json!("")),
                ("options", json!([])),
                ("default_member_permissions", Value::Null),
                ("nsfw", json!(false)),
                ("integration_types", json!([0])),
            ] {
                if stored_command.get(field).is_none_or(Value::is_null) {
                    stored_command[field] = default;
                }
            }
            stored.push(stored_command);
        }
        s.commands.insert(guild, stored.clone());
        s.registrations += 1;
        Json(stored).into_response()
    })
}

async fn callback(
    Extension(inner): Extension<Shared>,
    Path((interaction, token)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let unknown = || {
        error(
            StatusCode::NOT_FOUND,
            codes::UNKNOWN_INTERACTION,
            "Unknown interaction",
        )
    };
    let Ok(interaction_id) = interaction.parse::<u64>() else {
        return unknown();
    };
    let (body, files) = match parse_body(&headers, &body) {
        Ok(parsed) => parsed,
        Err(response) => return response,
    };
    mutate(&inner, |s| {
        let Some(interaction) = s
            .interactions
            .get(&interaction_id)
            .filter(|i| i.token == token)
        else {
            return unknown();
        };
        if interaction.acknowledged {
            return error(
                StatusCode::BAD_REQUEST,
                codes::ALREADY_ACKNOWLEDGED,
                "Interaction has already been acknowledged.",
            );
        }
        let Some(kind) = body["type"].as_u64().and_then(|k| u8::try_from(k).ok()) else {
            return invalid_form("type", "BASE_TYPE_REQUIRED", "This field is required");
        };
        // Which callback types each interaction type accepts.
        let allowed: &[u8] = match interaction.kind {
            2 => &[4, 5, 9],
            3 => &[4, 5, 6, 7, 9],
            4 => &[8],
            5 => &[4, 5, 6, 7],
            _ => &[1],
        };
        if !allowed.contains(&kind) {
            return error(
                StatusCode::BAD_REQUEST,
                40_043,
                "Interaction callback type is not valid for this interaction type",
            );
        }
        let data = body["data"].clone();
        if (kind == 4 || kind == 7)
            && let Err(response) = check_message(&data, &files, kind == 4)
        {
            return response;
        }
        let (channel_id, component_message) = (interaction.channel_id, interaction.message_id);
        let mut message_id = None;
        match kind {
            4 | 5 => {
                let mut content = data.clone();
                if kind == 5 {
                    let flags = data["flags"].as_u64().unwrap_or(0) | 128;
                    content = json!({"content": "", "flags": flags});
                }
                if content.is_null() {
                    content = json!({});
                }
                let (id, _) = store_message(s, channel_id, &content, &files);
                message_id = Some(id);
            }
            6 => message_id = component_message,
            7 => {
                if let Some(id) = component_message
                    && let Some(object) = s.message_objects.get_mut(&id)
                {
                    wire::edit_message(object, &data);
                }
                message_id = component_message;
            }
            _ => {}
        }
        let interaction = s
            .interactions
            .get_mut(&interaction_id)
            .expect("found above");
        interaction.acknowledged = true;
        interaction.original = message_id;
        interaction.replies.push(Reply {
            kind: ReplyKind::Callback(kind),
            message_id,
            body,
            attachments: files,
        });
        StatusCode::NO_CONTENT.into_response()
    })
}

fn unknown_webhook() -> Response {
    error(
        StatusCode::NOT_FOUND,
        codes::UNKNOWN_WEBHOOK,
        "Unknown Webhook",
    )
}

async fn followup(
    Extension(inner): Extension<Shared>,
    Path((app, token)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (body, files) = match parse_body(&headers, &body) {
        Ok(parsed) => parsed,
        Err(response) => return response,
    };
    mutate(&inner, |s| {
        if app.parse::<u64>().ok() != Some(s.application_id) {
            return unknown_webhook();
        }
        let Some(interaction) = s.interaction_by_token(&token).filter(|i| i.acknowledged) else {
            return unknown_webhook();
        };
        let (interaction_id, channel_id) = (interaction.id, interaction.channel_id);
        if let Err(response) = check_message(&body, &files, true) {
            return response;
        }
        let (id, message) = store_message(s, channel_id, &body, &files);
        let interaction = s
            .interactions
            .get_mut(&interaction_id)
            .expect("found above");
        interaction.followups.push(id);
        interaction.replies.push(Reply {
            kind: ReplyKind::Followup,
            message_id: Some(id),
            body,
            attachments: files,
        });
        Json(message).into_response()
    })
}

/// The interaction and message a webhook message route names (`@original` or a followup id).
fn webhook_message(
    s: &mut FakeState,
    app: &str,
    token: &str,
    message: &str,
) -> Result<(u64, u64, bool), Response> {
    if app.parse::<u64>().ok() != Some(s.application_id) {
        return Err(unknown_webhook());
    }
    let interaction = s
        .interaction_by_token(token)
        .filter(|i| i.acknowledged)
        .ok_or_else(unknown_webhook)?;
    let unknown_message = || {
        error(
            StatusCode::NOT_FOUND,
            codes::UNKNOWN_MESSAGE,
            "Unknown Message",
        )
    };
    let (message_id, original) = if message == "@original" {
        (interaction.original.ok_or_else(unknown_message)?, true)
    } else {
        let id = message.parse::<u64>().map_err(|_| unknown_message())?;
        if interaction.followups.contains(&id) {
            (id, false)
        } else if interaction.original == Some(id) {
            (id, true)
        } else {
            return Err(unknown_message());
        }
    };
    let interaction_id = interaction.id;
    if !s.message_objects.contains_key(&message_id) {
        return Err(unknown_message());
    }
    Ok((interaction_id, message_id, original))
}

async fn get_webhook_message(
    Extension(inner): Extension<Shared>,
    Path((app, token, message)): Path<(String, String, String)>,
) -> Response {
    let mut s = lock(&inner);
    match webhook_message(&mut s, &app, &token, &message) {
        Ok((_, id, _)) => Json(s.message_objects[&id].clone()).into_response(),
        Err(response) => response,
    }
}

async fn edit_webhook_message(
    Extension(inner): Extension<Shared>,
    Path((app, token, message)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (body, files) = match parse_body(&headers, &body) {
        Ok(parsed) => parsed,
        Err(response) => return response,
    };
    mutate(&inner, |s| {
        let (interaction_id, id, original) = match webhook_message(s, &app, &token, &message) {
            Ok(found) => found,
            Err(response) => return response,
        };
        if let Err(response) = check_message(&body, &files, false) {
            return response;
        }
        let object = s.message_objects.get_mut(&id).expect("checked above");
        wire::edit_message(object, &body);
        // An edit after a deferred reply ends the "thinking…" state.
        if let Some(flags) = object["flags"].as_u64() {
            object["flags"] = json!(flags & !128);
        }
        let object = object.clone();
        let interaction = s
            .interactions
            .get_mut(&interaction_id)
            .expect("found above");
        interaction.replies.push(Reply {
            kind: if original {
                ReplyKind::EditOriginal
            } else {
                ReplyKind::EditFollowup
            },
            message_id: Some(id),
            body,
            attachments: files,
        });
        Json(object).into_response()
    })
}

async fn delete_webhook_message(
    Extension(inner): Extension<Shared>,
    Path((app, token, message)): Path<(String, String, String)>,
) -> Response {
    mutate(&inner, |s| {
        let (interaction_id, id, original) = match webhook_message(s, &app, &token, &message) {
            Ok(found) => found,
            Err(response) => return response,
        };
        s.message_objects.remove(&id);
        let interaction = s
            .interactions
            .get_mut(&interaction_id)
            .expect("found above");
        if original {
            interaction.original = None;
        }
        interaction.replies.push(Reply {
            kind: if original {
                ReplyKind::DeleteOriginal
            } else {
                ReplyKind::DeleteFollowup
            },
            message_id: Some(id),
            body: Value::Null,
            attachments: Vec::new(),
        });
        StatusCode::NO_CONTENT.into_response()
    })
}
