//! Discord's REST API for what Usher sends on its own (DMs, alert-channel posts), outside any
//! interaction. Built on serenity's `Http`, so requests, auth and (in production) Discord's rate
//! limits are handled the way the gateway client handles them.
//!
//! Rule it keeps: the bot token never leaves `Http`; errors carry Discord's code and message only.

use std::sync::Arc;

use poise::serenity_prelude as serenity;
use secrecy::{ExposeSecret as _, SecretString};

/// Discord's JSON error code for "Cannot send messages to this user" (DMs closed or no shared
/// guild).
pub const CANNOT_MESSAGE_USER: isize = 50007;
/// Discord's JSON error code for "Unknown Member" (the user is not in the guild).
pub const UNKNOWN_MEMBER: isize = 10007;

/// A button on a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Button {
    /// Signed `custom_id` (at most 100 characters).
    pub custom_id: String,
    /// Label shown.
    pub label: String,
}

/// A message to send.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutgoingMessage {
    /// Markdown content.
    pub content: String,
    /// Buttons, in one row.
    pub buttons: Vec<Button>,
    /// Up to 25 characters; Discord returns the earlier message instead of posting a second one
    /// when the same nonce was used in the past few minutes (a retry after a crash).
    pub nonce: Option<String>,
}

/// Why a message was not delivered.
#[derive(Debug, thiserror::Error)]
pub enum DiscordError {
    /// The user does not accept DMs from the bot (Discord code 50007).
    #[error("Discord will not deliver messages to this user (DMs closed, code 50007)")]
    CannotMessageUser,
    /// The user is not a member of the guild (Discord code 10007).
    #[error("the user is not a member of the guild (code 10007)")]
    NotAMember,
    /// Worth trying again later: rate limited, Discord unavailable, network trouble.
    #[error("Discord is unavailable for now: {0}")]
    Transient(String),
    /// Will not work by trying again (bad token, unknown channel, missing access…).
    #[error("Discord refused the request: {0}")]
    Refused(String),
}

/// Sends messages through Discord's REST API.
#[derive(Clone)]
pub struct DiscordRest {
    http: Arc<serenity::Http>,
}

impl std::fmt::Debug for DiscordRest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DiscordRest")
    }
}

impl DiscordRest {
    /// A client for `token`. With `api_base` (tests: a local fake) requests go there, with
    /// serenity's own rate limiter off (serenity ignores the base URL while it is on); without it,
    /// requests go to discord.com with the rate limiter on.
    pub fn new(token: &SecretString, api_base: Option<&str>) -> Self {
        Self {
            http: Arc::new(build_http(token, api_base)),
        }
    }

    /// Sends `message` to `user` in a DM.
    pub async fn send_dm(&self, user: u64, message: &OutgoingMessage) -> Result<(), DiscordError> {
        let channel = serenity::UserId::new(user)
            .create_dm_channel(&*self.http)
            .await
            .map_err(classify)?;
        channel
            .id
            .send_message(&*self.http, build_message(message))
            .await
            .map_err(classify)?;
        Ok(())
    }

    /// Gives `user` the role `role` in `guild` (no change when they hold it already).
    pub async fn add_role(&self, guild: u64, user: u64, role: u64) -> Result<(), DiscordError> {
        self.http
            .add_member_role(
                serenity::GuildId::new(guild),
                serenity::UserId::new(user),
                serenity::RoleId::new(role),
                Some("Usher: subscription active"),
            )
            .await
            .map_err(classify)
    }

    /// Takes the role `role` in `guild` from `user` (no change when they do not hold it).
    pub async fn remove_role(&self, guild: u64, user: u64, role: u64) -> Result<(), DiscordError> {
        self.http
            .remove_member_role(
                serenity::GuildId::new(guild),
                serenity::UserId::new(user),
                serenity::RoleId::new(role),
                Some("Usher: subscription ended"),
            )
            .await
            .map_err(classify)
    }

    /// Posts `message` in a guild channel (admin alerts, DM fallbacks).
    pub async fn post(&self, channel: u64, message: &OutgoingMessage) -> Result<(), DiscordError> {
        serenity::ChannelId::new(channel)
            .send_message(&*self.http, build_message(message))
            .await
            .map_err(classify)?;
        Ok(())
    }
}

/// A guild the bot is in, as `GET /users/@me/guilds` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BotGuild {
    /// The guild's id.
    pub id: u64,
    /// Its name.
    pub name: String,
    /// The bot's guild-wide permissions there.
    pub permissions: serenity::Permissions,
}

/// A guild role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuildRole {
    /// The role's id (the guild's id for `@everyone`).
    pub id: u64,
    /// Its name.
    pub name: String,
    /// Its place in the hierarchy (higher is more powerful).
    pub position: u16,
    /// What it grants.
    pub permissions: serenity::Permissions,
}

/// A guild text channel and its permission overwrites.
#[derive(Debug, Clone)]
pub struct GuildChannel {
    /// The guild it belongs to.
    pub guild_id: u64,
    /// Its name.
    pub name: String,
    /// Its overwrites.
    pub overwrites: Vec<serenity::PermissionOverwrite>,
}

impl DiscordRest {
    /// The bot user's id and name (`GET /users/@me`): the call that proves the token.
    pub async fn current_user(&self) -> Result<(u64, String), DiscordError> {
        let user = self.http.get_current_user().await.map_err(classify)?;
        Ok((user.id.get(), user.name.clone()))
    }

    /// The application's id (`GET /oauth2/applications/@me`), which the invite link names.
    pub async fn application_id(&self) -> Result<u64, DiscordError> {
        let app = self
            .http
            .get_current_application_info()
            .await
            .map_err(classify)?;
        Ok(app.id.get())
    }

    /// The guilds the bot is in (the first 200), with its permissions in each.
    pub async fn guilds(&self) -> Result<Vec<BotGuild>, DiscordError> {
        let guilds = self.http.get_guilds(None, None).await.map_err(classify)?;
        Ok(guilds
            .into_iter()
            .map(|g| BotGuild {
                id: g.id.get(),
                name: g.name,
                permissions: g.permissions,
            })
            .collect())
    }

    /// Every role of a guild, `@everyone` included.
    pub async fn roles(&self, guild: u64) -> Result<Vec<GuildRole>, DiscordError> {
        let roles = self
            .http
            .get_guild_roles(serenity::GuildId::new(guild))
            .await
            .map_err(classify)?;
        Ok(roles
            .into_iter()
            .map(|r| GuildRole {
                id: r.id.get(),
                name: r.name,
                position: r.position,
                permissions: r.permissions,
            })
            .collect())
    }

    /// The roles a member holds in a guild (one member by id: no privileged intent needed).
    pub async fn member_roles(&self, guild: u64, user: u64) -> Result<Vec<u64>, DiscordError> {
        let member = self
            .http
            .get_member(serenity::GuildId::new(guild), serenity::UserId::new(user))
            .await
            .map_err(classify)?;
        Ok(member.roles.iter().map(|r| r.get()).collect())
    }

    /// A guild channel with its overwrites; refused (50001) when the bot cannot see it.
    pub async fn guild_channel(&self, channel: u64) -> Result<GuildChannel, DiscordError> {
        match self
            .http
            .get_channel(serenity::ChannelId::new(channel))
            .await
            .map_err(classify)?
        {
            serenity::Channel::Guild(c) => Ok(GuildChannel {
                guild_id: c.guild_id.get(),
                name: c.name,
                overwrites: c.permission_overwrites,
            }),
            _ => Err(DiscordError::Refused(format!(
                "channel {channel} is not a guild channel"
            ))),
        }
    }
}

/// serenity's `Http` for `token`, pointed at `api_base` when given (see [`DiscordRest::new`]).
pub fn build_http(token: &SecretString, api_base: Option<&str>) -> serenity::Http {
    let builder = serenity::HttpBuilder::new(token.expose_secret());
    match api_base {
        Some(base) => builder
            .proxy(base.trim_end_matches('/'))
            .ratelimiter_disabled(true)
            .build(),
        None => builder.build(),
    }
}

fn build_message(message: &OutgoingMessage) -> serenity::CreateMessage {
    let mut create = serenity::CreateMessage::new().content(&message.content);
    if let Some(nonce) = &message.nonce {
        create = create
            .nonce(serenity::Nonce::String(nonce.clone()))
            .enforce_nonce(true);
    }
    if !message.buttons.is_empty() {
        let buttons = message
            .buttons
            .iter()
            .map(|b| {
                serenity::CreateButton::new(&b.custom_id)
                    .label(&b.label)
                    .style(serenity::ButtonStyle::Primary)
            })
            .collect();
        create = create.components(vec![serenity::CreateActionRow::Buttons(buttons)]);
    }
    create
}

/// Sorts serenity's error into what the caller can act on.
fn classify(err: serenity::Error) -> DiscordError {
    match err {
        serenity::Error::Http(serenity::HttpError::UnsuccessfulRequest(response)) => {
            let status = response.status_code.as_u16();
            if response.error.code == CANNOT_MESSAGE_USER {
                DiscordError::CannotMessageUser
            } else if response.error.code == UNKNOWN_MEMBER {
                DiscordError::NotAMember
            } else if status == 429 || status >= 500 {
                DiscordError::Transient(format!("HTTP {status}: {}", response.error.message))
            } else {
                DiscordError::Refused(format!(
                    "HTTP {status}, code {}: {}",
                    response.error.code, response.error.message
                ))
            }
        }
        serenity::Error::Http(serenity::HttpError::Request(err)) => {
            DiscordError::Transient(err.without_url().to_string())
        }
        other => DiscordError::Transient(other.to_string()),
    }
}
