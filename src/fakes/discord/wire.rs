//! The JSON shapes the fake sends, pinned to what serenity 0.12.5 deserializes (a missing
//! required field makes serenity drop the whole payload), and multipart body parsing.
//!
//! Snowflakes and permission sets go out as strings, as Discord sends them.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{FakeUser, RecordedAttachment};

/// `@everyone`'s usual permissions in a fresh server: create invite, add reactions, view channel,
/// send messages, embed links, attach files, read history, external emojis, connect, speak,
/// change nickname, use application commands. No administrator or manage-anything bit.
pub const DEFAULT_MEMBER_PERMISSIONS: u64 = (1 << 0)
    | (1 << 6)
    | (1 << 10)
    | (1 << 11)
    | (1 << 14)
    | (1 << 15)
    | (1 << 16)
    | (1 << 18)
    | (1 << 20)
    | (1 << 21)
    | (1 << 26)
    | (1 << 31);

/// What the bot itself may do in a channel (the fake grants it everything but administrator).
const BOT_PERMISSIONS: u64 = 0x0007_ffff_ffff_fff7;

/// Discord's attachment size limit for an unboosted server (10 MiB).
const ATTACHMENT_SIZE_LIMIT: u64 = 10 * 1024 * 1024;

/// Discord's error body: `{"message", "code"}` with a status.
pub fn error(status: StatusCode, code: i64, message: &str) -> Response {
    (status, Json(json!({"message": message, "code": code}))).into_response()
}

pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, false)
}

/// A user object (not a bot).
pub fn user(user: &FakeUser) -> Value {
    json!({
        "id": user.id.to_string(),
        "username": user.name,
        "discriminator": "0",
        "global_name": user.name,
        "avatar": null,
        "bot": false,
        "public_flags": 0,
        "flags": 0,
    })
}

/// The bot's own user object.
pub fn bot_user(id: u64) -> Value {
    json!({
        "id": id.to_string(),
        "username": "Usher",
        "discriminator": "0",
        "global_name": null,
        "avatar": null,
        "bot": true,
        "public_flags": 0,
        "flags": 0,
        "verified": true,
        "mfa_enabled": false,
        "email": null,
    })
}

/// The guild member object interactions carry (`member`).
fn member(user: &FakeUser) -> Value {
    json!({
        "user": self::user(user),
        "nick": null,
        "avatar": null,
        "roles": user.roles.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "joined_at": "2025-01-01T00:00:00.000000+00:00",
        "premium_since": null,
        "deaf": false,
        "mute": false,
        "flags": 0,
        "pending": false,
        "permissions": user.permissions.unwrap_or(DEFAULT_MEMBER_PERMISSIONS).to_string(),
        "communication_disabled_until": null,
    })
}

pub struct InteractionBase<'a> {
    pub id: u64,
    pub application_id: u64,
    pub kind: u8,
    pub token: &'a str,
    pub user: &'a FakeUser,
    pub guild: Option<u64>,
    pub channel_id: u64,
    pub channel: Value,
}

/// An interaction without `data` (and `message`), as `INTERACTION_CREATE` carries it.
pub fn interaction(base: &InteractionBase<'_>) -> Value {
    let mut payload = json!({
        "id": base.id.to_string(),
        "application_id": base.application_id.to_string(),
        "type": base.kind,
        "token": base.token,
        "version": 1,
        "channel_id": base.channel_id.to_string(),
        "channel": base.channel,
        "app_permissions": BOT_PERMISSIONS.to_string(),
        "locale": "en-US",
        "entitlements": [],
        "attachment_size_limit": ATTACHMENT_SIZE_LIMIT,
    });
    if let Some(guild) = base.guild {
        payload["guild_id"] = json!(guild.to_string());
        payload["guild_locale"] = json!("en-US");
        payload["member"] = member(base.user);
        payload["authorizing_integration_owners"] = json!({"0": guild.to_string()});
        payload["context"] = json!(0);
    } else {
        payload["user"] = user(base.user);
        payload["authorizing_integration_owners"] = json!({"0": "0"});
        payload["context"] = json!(1);
    }
    payload
}

/// A full message object from a create/edit body (`content`, `embeds`, `components`, ...).
pub fn message(
    id: u64,
    channel_id: u64,
    author: &Value,
    body: &Value,
    attachments: &[(u64, &RecordedAttachment)],
) -> Value {
    let embeds: Vec<Value> = body["embeds"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|mut embed| {
            if embed.get("type").is_none() {
                embed["type"] = json!("rich");
            }
            embed
        })
        .collect();
    let attachments: Vec<Value> = attachments
        .iter()
        .map(|(attachment_id, a)| {
            let url = format!(
                "https://cdn.discordapp.com/attachments/{channel_id}/{attachment_id}/{}",
                a.filename
            );
            json!({
                "id": attachment_id.to_string(),
                "filename": a.filename,
                "size": a.bytes.len(),
                "url": url,
                "proxy_url": url,
                "content_type": null,
            })
        })
        .collect();
    json!({
        "id": id.to_string(),
        "channel_id": channel_id.to_string(),
        "author": author,
        "content": body["content"].as_str().unwrap_or_default(),
        "timestamp": now(),
        "edited_timestamp": null,
        "tts": body["tts"].as_bool().unwrap_or(false),
        "mention_everyone": false,
        "mentions": [],
        "mention_roles": [],
        "attachments": attachments,
        "embeds": embeds,
        "components": body["components"].as_array().cloned().unwrap_or_default(),
        "pinned": false,
        "type": 0,
        "flags": body["flags"].as_u64().unwrap_or(0),
    })
}

/// Applies an edit body to a message object: the fields present replace the old ones.
pub fn edit_message(message: &mut Value, body: &Value) {
    for field in ["content", "embeds", "components", "flags"] {
        if let Some(value) = body.get(field).filter(|v| !v.is_null()) {
            message[field] = value.clone();
        }
    }
    if let Some(embeds) = message["embeds"].as_array_mut() {
        for embed in embeds {
            if embed.get("type").is_none() {
                embed["type"] = json!("rich");
            }
        }
    }
    message["edited_timestamp"] = json!(now());
}

/// A DM channel object.
pub fn dm_channel(id: u64, recipient: &Value) -> Value {
    json!({
        "id": id.to_string(),
        "type": 1,
        "last_message_id": null,
        "flags": 0,
        "recipients": [recipient],
    })
}

/// `READY`'s `d`.
pub fn ready(bot_user_id: u64, application_id: u64, session_id: &str, gateway_url: &str) -> Value {
    let mut user = bot_user(bot_user_id);
    user["verified"] = json!(true);
    json!({
        "v": 10,
        "user": user,
        "guilds": [],
        "session_id": session_id,
        "resume_gateway_url": gateway_url,
        "shard": [0, 1],
        "application": {"id": application_id.to_string(), "flags": 0},
        "private_channels": [],
        "relationships": [],
        "user_settings": {},
        "presences": [],
        "guild_join_requests": [],
        "geo_ordered_rtc_regions": [],
    })
}

/// `GET /oauth2/applications/@me`.
pub fn application(application_id: u64, bot_user_id: u64, owner: &Value) -> Value {
    json!({
        "id": application_id.to_string(),
        "name": "Usher",
        "icon": null,
        "description": "",
        "summary": "",
        "type": null,
        "bot_public": false,
        "bot_require_code_grant": false,
        "verify_key": "0".repeat(64),
        "flags": 0,
        "owner": owner,
        "team": null,
        "bot": bot_user(bot_user_id),
        "redirect_uris": [],
        "interactions_endpoint_url": null,
        "integration_types_config": {"0": {}},
    })
}

/// One part of a `multipart/form-data` body.
pub struct Part {
    pub name: String,
    pub filename: Option<String>,
    pub data: Vec<u8>,
}

/// Splits a `multipart/form-data` body; `None` when it is malformed.
pub fn multipart(content_type: &str, body: &[u8]) -> Option<Vec<Part>> {
    let boundary = content_type
        .split(';')
        .map(str::trim)
        .find_map(|p| p.strip_prefix("boundary="))?
        .trim_matches('"');
    let delimiter = format!("--{boundary}").into_bytes();
    let mut parts = Vec::new();
    let mut rest = &body[find(body, &delimiter)? + delimiter.len()..];
    loop {
        if rest.starts_with(b"--") {
            return Some(parts);
        }
        rest = rest.strip_prefix(b"\r\n")?;
        let end = find(rest, &delimiter)?;
        let part = &rest[..end];
        let part = part.strip_suffix(b"\r\n").unwrap_or(part);
        let split = find(part, b"\r\n\r\n")?;
        let headers = std::str::from_utf8(&part[..split]).ok()?;
        let data = part[split + 4..].to_vec();
        let disposition = headers
            .lines()
            .find(|l| l.to_ascii_lowercase().starts_with("content-disposition:"))?;
        let param = |key: &str| {
            disposition.split(';').map(str::trim).find_map(|p| {
                p.strip_prefix(key)
                    .and_then(|v| v.strip_prefix('='))
                    .map(|v| v.trim_matches('"').to_owned())
            })
        };
        parts.push(Part {
            name: param("name")?,
            filename: param("filename"),
            data,
        });
        rest = &rest[end + delimiter.len()..];
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::multipart;

    #[test]
    fn multipart_bodies_split_into_named_parts() {
        let body = b"--XyZ\r\nContent-Disposition: form-data; name=\"payload_json\"\r\n\r\n{\"content\":\"hi\"}\r\n--XyZ\r\nContent-Disposition: form-data; name=\"files[0]\"; filename=\"a.csv\"\r\nContent-Type: text/csv\r\n\r\nx,y\r\n1,2\r\n--XyZ--\r\n";
        let parts = multipart("multipart/form-data; boundary=XyZ", body).expect("parses");
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].name, "payload_json");
        assert_eq!(parts[0].data, b"{\"content\":\"hi\"}");
        assert_eq!(parts[1].name, "files[0]");
        assert_eq!(parts[1].filename.as_deref(), Some("a.csv"));
        assert_eq!(parts[1].data, b"x,y\r\n1,2");
    }
}
