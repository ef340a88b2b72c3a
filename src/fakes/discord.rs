//! A fake of Discord: the REST API under `/api/v10` and the gateway websocket, for the real
//! serenity 0.12 / poise 0.7 client.
//!
//! Owns the fake's state (the application and its bot user, registered commands, users, DM and
//! guild channels, the messages the bot sent, the interactions the test delivered and every reply
//! the bot made to them), the gateway sessions and the test-side API: deliver interactions and
//! await the bot's answers, inspect DMs, inject the "cannot DM this user" fault.
//!
//! Rule kept: the fake is never looser than Discord. REST calls need `Authorization: Bot <token>`
//! (401 otherwise); an interaction is acknowledged once (40060 after); a followup needs an
//! acknowledged interaction; messages need content, embeds, components or files (50006); unknown
//! channels, users and messages answer Discord's 10003/10013/10008; unknown routes answer
//! `404: Not Found` and stay visible in [`FakeDiscord::calls`]. The payloads the fake sends carry
//! every field serenity 0.12.5 requires: serenity drops a payload that misses one with only a
//! DEBUG log line, so the shapes in `wire` are pinned to that version.
//!
//! Point the bot at [`FakeDiscord::api_base`] (serenity `HttpBuilder::proxy` with the ratelimiter
//! off); serenity then finds the gateway through `GET /api/v10/gateway`.

mod gateway;
mod guild;
mod rest;
mod wire;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

/// Discord's JSON error codes the fake answers with.
pub mod codes {
    /// Unknown channel.
    pub const UNKNOWN_CHANNEL: i64 = 10_003;
    /// Unknown guild.
    pub const UNKNOWN_GUILD: i64 = 10_004;
    /// Missing access (the bot is not in the guild, or cannot see the channel).
    pub const MISSING_ACCESS: i64 = 50_001;
    /// Unknown member (the user is not in the guild).
    pub const UNKNOWN_MEMBER: i64 = 10_007;
    /// Unknown role.
    pub const UNKNOWN_ROLE: i64 = 10_011;
    /// Missing permissions (e.g. the role is above the bot's highest role).
    pub const MISSING_PERMISSIONS: i64 = 50_013;
    /// Unknown message.
    pub const UNKNOWN_MESSAGE: i64 = 10_008;
    /// Unknown user.
    pub const UNKNOWN_USER: i64 = 10_013;
    /// Unknown webhook (also: a followup to an interaction that was never acknowledged).
    pub const UNKNOWN_WEBHOOK: i64 = 10_015;
    /// Unknown interaction.
    pub const UNKNOWN_INTERACTION: i64 = 10_062;
    /// Cannot send an empty message.
    pub const EMPTY_MESSAGE: i64 = 50_006;
    /// Cannot send messages to this user (DMs closed, no shared guild, or blocked).
    pub const CANNOT_MESSAGE_USER: i64 = 50_007;
    /// Invalid form body.
    pub const INVALID_FORM_BODY: i64 = 50_035;
    /// Interaction has already been acknowledged.
    pub const ALREADY_ACKNOWLEDGED: i64 = 40_060;
}

pub use guild::{INVITED_BOT_PERMISSIONS, bits};
pub use wire::DEFAULT_MEMBER_PERMISSIONS;

/// The bot token the fake expects unless started with another.
pub const DEFAULT_TOKEN: &str = "fake-discord-bot-token";

/// How long the test-side waits without an explicit timeout last.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(10);

/// How the fake starts.
#[derive(Debug, Clone)]
pub struct Options {
    /// The bot token REST calls and IDENTIFY must carry.
    pub token: String,
    /// The `heartbeat_interval` sent in HELLO, in milliseconds (Discord sends 41250).
    pub heartbeat_interval_ms: u64,
    /// The permissions of the bot's own role in every guild it joins (what the invite granted).
    pub bot_permissions: u64,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            token: DEFAULT_TOKEN.to_owned(),
            heartbeat_interval_ms: 41_250,
            bot_permissions: INVITED_BOT_PERMISSIONS,
        }
    }
}

/// A Discord user as the test describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeUser {
    /// The user's snowflake.
    pub id: u64,
    /// The username.
    pub name: String,
    /// Role ids the member holds in guild interactions.
    pub roles: Vec<u64>,
    /// The member's computed permissions in the channel (guild interactions); `None` sends
    /// `@everyone`'s usual set ([`DEFAULT_MEMBER_PERMISSIONS`]), without administrator.
    pub permissions: Option<u64>,
}

impl FakeUser {
    /// A user without roles and with `@everyone`'s default permissions.
    pub fn new(id: u64, name: &str) -> Self {
        Self {
            id,
            name: name.to_owned(),
            roles: Vec::new(),
            permissions: None,
        }
    }

    /// The same user holding these roles.
    #[must_use]
    pub fn with_roles(mut self, roles: &[u64]) -> Self {
        self.roles = roles.to_vec();
        self
    }

    /// The same user with these computed permissions (e.g. `0x8`, administrator).
    #[must_use]
    pub fn with_permissions(mut self, permissions: u64) -> Self {
        self.permissions = Some(permissions);
        self
    }
}

/// One REST call that reached the fake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedCall {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The path, e.g. `/api/v10/users/@me/channels`.
    pub path: String,
    /// The status the fake answered.
    pub status: u16,
    /// Whether the fake knows the route (false: answered `404: Not Found` as unknown).
    pub known: bool,
}

/// A file sent with a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedAttachment {
    /// The file name.
    pub filename: String,
    /// The content.
    pub bytes: Vec<u8>,
}

/// A message the bot created in a channel (DM or guild).
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedMessage {
    /// The message's id.
    pub id: u64,
    /// The channel it went to.
    pub channel_id: u64,
    /// `content` (empty when absent).
    pub content: String,
    /// `embeds` as sent.
    pub embeds: Vec<Value>,
    /// `components` as sent.
    pub components: Vec<Value>,
    /// The files sent with it.
    pub attachments: Vec<RecordedAttachment>,
}

/// An interaction callback (`POST /interactions/{id}/{token}/callback`).
#[derive(Debug, Clone, PartialEq)]
pub struct Callback {
    /// The callback type: 4 message, 5 deferred message, 6 deferred update, 7 update message,
    /// 8 autocomplete result, 9 modal.
    pub kind: u8,
    /// `data` (null when absent).
    pub data: Value,
}

/// What kind of answer the bot made to an interaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyKind {
    /// The interaction callback, with its type.
    Callback(u8),
    /// `POST /webhooks/{app}/{token}`.
    Followup,
    /// `PATCH /webhooks/{app}/{token}/messages/@original`.
    EditOriginal,
    /// `PATCH /webhooks/{app}/{token}/messages/{id}`.
    EditFollowup,
    /// `DELETE /webhooks/{app}/{token}/messages/@original`.
    DeleteOriginal,
    /// `DELETE /webhooks/{app}/{token}/messages/{id}`.
    DeleteFollowup,
}

/// One answer the bot made to an interaction, in arrival order.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// Which call it was.
    pub kind: ReplyKind,
    /// The message it created or touched, when any.
    pub message_id: Option<u64>,
    /// The JSON body (`payload_json` for multipart; null for deletes). For a callback, the whole
    /// body (`{"type", "data"}`).
    pub body: Value,
    /// Files sent with it.
    pub attachments: Vec<RecordedAttachment>,
}

impl Reply {
    /// The message content this reply carries: `data.content` for a callback, `content` else.
    pub fn content(&self) -> Option<&str> {
        match self.kind {
            ReplyKind::Callback(_) => self.body["data"]["content"].as_str(),
            _ => self.body["content"].as_str(),
        }
    }
}

struct Interaction {
    id: u64,
    token: String,
    kind: u8,
    channel_id: u64,
    /// The message a component interaction came from.
    message_id: Option<u64>,
    acknowledged: bool,
    /// The original response message once a callback created one.
    original: Option<u64>,
    followups: Vec<u64>,
    replies: Vec<Reply>,
}

enum Channel {
    Dm {
        user_id: u64,
    },
    Guild {
        guild_id: u64,
        name: String,
        overwrites: Vec<guild::Overwrite>,
    },
}

/// The gateway side: the live session and the dispatches waiting for one.
#[derive(Default)]
struct Gateway {
    /// Outbound queue of the identified connection, if one is live.
    live: Option<(u64, mpsc::UnboundedSender<String>)>,
    /// The session serenity may RESUME.
    session_id: Option<String>,
    seq: u64,
    /// Dispatches made while no session was live, sent after the next READY/RESUMED.
    pending: Vec<(String, Value)>,
    connections: usize,
    identifies: usize,
    resumes: usize,
    heartbeats: usize,
    next_connection: u64,
}

impl Gateway {
    /// The frame of the next dispatch; bumps the sequence.
    fn frame(&mut self, event: &str, data: &Value) -> String {
        self.seq += 1;
        json!({"op": 0, "s": self.seq, "t": event, "d": data}).to_string()
    }
}

struct State {
    options: Options,
    api_base: String,
    gateway_url: String,
    application_id: u64,
    bot_user_id: u64,
    owner_id: u64,
    next_id: u64,
    calls: Vec<RecordedCall>,
    /// Registered commands: `None` global, `Some(guild)` per guild.
    commands: BTreeMap<Option<u64>, Vec<Value>>,
    registrations: usize,
    users: HashMap<u64, FakeUser>,
    channels: HashMap<u64, Channel>,
    dm_channels: HashMap<u64, u64>,
    guild_general: HashMap<u64, u64>,
    /// Every message object the fake produced (channel messages, interaction responses), by id.
    message_objects: HashMap<u64, Value>,
    messages: Vec<RecordedMessage>,
    failing_dms: HashSet<u64>,
    interactions: HashMap<u64, Interaction>,
    /// Guilds by id: roles, positions, permissions, the bot's own role.
    guilds: BTreeMap<u64, guild::Guild>,
    /// Guild members (guild, user) and the roles each holds.
    members: BTreeMap<(u64, u64), BTreeSet<u64>>,
    /// Every dispatch the test sent (event name, `d`), in order.
    dispatched: Vec<(String, Value)>,
    gateway: Gateway,
}

impl State {
    /// A fresh snowflake: strictly increasing, shaped like 2020s ids.
    fn snowflake(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    fn dm_channel(&mut self, user_id: u64) -> u64 {
        if let Some(id) = self.dm_channels.get(&user_id) {
            return *id;
        }
        let id = self.snowflake();
        self.dm_channels.insert(user_id, id);
        self.channels.insert(id, Channel::Dm { user_id });
        id
    }

    fn general_channel(&mut self, guild_id: u64) -> u64 {
        if let Some(id) = self.guild_general.get(&guild_id) {
            return *id;
        }
        self.guild(guild_id);
        let id = self.snowflake();
        self.guild_general.insert(guild_id, id);
        self.channels.insert(
            id,
            Channel::Guild {
                guild_id,
                name: "general".to_owned(),
                overwrites: Vec::new(),
            },
        );
        id
    }

    /// The guild, made on first mention: the bot is a member with its own role.
    fn guild(&mut self, guild_id: u64) -> &mut guild::Guild {
        if !self.guilds.contains_key(&guild_id) {
            let bot_role = self.snowflake();
            let permissions = self.options.bot_permissions;
            self.guilds.insert(
                guild_id,
                guild::Guild::new(guild_id, self.owner_id, bot_role, permissions),
            );
            self.members
                .insert((guild_id, self.bot_user_id), BTreeSet::from([bot_role]));
        }
        self.guilds.get_mut(&guild_id).expect("inserted above")
    }

    /// The roles the bot holds in a guild; `None` when it is not a member.
    fn bot_roles(&self, guild_id: u64) -> Option<&BTreeSet<u64>> {
        self.members.get(&(guild_id, self.bot_user_id))
    }

    fn user_json(&self, user_id: u64) -> Option<Value> {
        if user_id == self.bot_user_id {
            return Some(wire::bot_user(self.bot_user_id));
        }
        self.users.get(&user_id).map(wire::user)
    }

    fn interaction_by_token(&mut self, token: &str) -> Option<&mut Interaction> {
        self.interactions.values_mut().find(|i| i.token == token)
    }
}

struct Inner {
    state: Mutex<State>,
    /// Bumped on every recorded change; waiters re-check their condition on each bump.
    changed: watch::Sender<u64>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    api_addr: SocketAddr,
}

impl Drop for Inner {
    fn drop(&mut self) {
        for task in self
            .tasks
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .drain(..)
        {
            task.abort();
        }
    }
}

type Shared = Arc<Inner>;

fn lock(inner: &Inner) -> MutexGuard<'_, State> {
    inner.state.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Records a change under `f` and wakes every waiter.
fn mutate<T>(inner: &Inner, f: impl FnOnce(&mut State) -> T) -> T {
    let out = f(&mut lock(inner));
    inner.changed.send_modify(|v| *v += 1);
    out
}

/// Waits until `check` finds something or `timeout` passes; re-checks on every change.
async fn wait_for<T>(
    inner: &Inner,
    timeout: Duration,
    mut check: impl FnMut(&State) -> Option<T>,
) -> Option<T> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut changes = inner.changed.subscribe();
    loop {
        if let Some(found) = check(&lock(inner)) {
            return Some(found);
        }
        match tokio::time::timeout_at(deadline, changes.changed()).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) | Err(_) => return check(&lock(inner)),
        }
    }
}

/// The running fake: REST on one local port, the gateway on another. Cheap to clone; the servers
/// stop when the last clone is dropped.
#[derive(Clone)]
pub struct FakeDiscord {
    inner: Shared,
}

impl std::fmt::Debug for FakeDiscord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeDiscord")
            .field("api", &self.inner.api_addr)
            .finish_non_exhaustive()
    }
}

impl FakeDiscord {
    /// Starts the fake with the default token ([`DEFAULT_TOKEN`]).
    pub async fn start() -> Self {
        Self::start_with(Options::default()).await
    }

    /// Binds 127.0.0.1 on two free ports (REST, gateway) and serves the fake from tokio tasks.
    pub async fn start_with(options: Options) -> Self {
        let api = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fake Discord REST port");
        let ws = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fake Discord gateway port");
        let api_addr = api.local_addr().expect("the fake Discord REST address");
        let ws_addr = ws.local_addr().expect("the fake Discord gateway address");
        let base: u64 = 1_300_000_000_000_000_000;
        let state = State {
            options,
            api_base: format!("http://{api_addr}"),
            gateway_url: format!("ws://{ws_addr}"),
            application_id: base + 1,
            bot_user_id: base + 1,
            owner_id: base + 2,
            next_id: base + 100,
            calls: Vec::new(),
            commands: BTreeMap::new(),
            registrations: 0,
            users: HashMap::new(),
            channels: HashMap::new(),
            dm_channels: HashMap::new(),
            guild_general: HashMap::new(),
            message_objects: HashMap::new(),
            messages: Vec::new(),
            failing_dms: HashSet::new(),
            interactions: HashMap::new(),
            guilds: BTreeMap::new(),
            members: BTreeMap::new(),
            dispatched: Vec::new(),
            gateway: Gateway::default(),
        };
        let (changed, _) = watch::channel(0);
        let inner = Arc::new(Inner {
            state: Mutex::new(state),
            changed,
            tasks: Mutex::new(Vec::new()),
            api_addr,
        });
        // The tasks hold weak references so dropping the last FakeDiscord stops them.
        let router = rest::router(Arc::downgrade(&inner));
        let rest_task = tokio::spawn(async move {
            axum::serve(api, router)
                .await
                .expect("the fake Discord REST server");
        });
        let gateway_task = tokio::spawn(gateway::serve(ws, Arc::downgrade(&inner)));
        inner
            .tasks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend([rest_task, gateway_task]);
        Self { inner }
    }

    /// The base URL standing in for `https://discord.com` (serenity `HttpBuilder::proxy`).
    pub fn api_base(&self) -> String {
        lock(&self.inner).api_base.clone()
    }

    /// The gateway URL `GET /api/v10/gateway` hands out.
    pub fn gateway_url(&self) -> String {
        lock(&self.inner).gateway_url.clone()
    }

    /// The bot token the fake accepts.
    pub fn token(&self) -> String {
        lock(&self.inner).options.token.clone()
    }

    /// The application's id (also the bot user's id, as on Discord).
    pub fn application_id(&self) -> u64 {
        lock(&self.inner).application_id
    }

    /// The bot user's id.
    pub fn bot_user_id(&self) -> u64 {
        lock(&self.inner).bot_user_id
    }

    /// The application owner's user id.
    pub fn owner_id(&self) -> u64 {
        lock(&self.inner).owner_id
    }

    /// Makes a user known (so the bot can open a DM with them). Interactions add their user.
    pub fn add_user(&self, user: &FakeUser) {
        mutate(&self.inner, |s| {
            s.users.insert(user.id, user.clone());
        });
    }

    /// Makes `role` exist in `guild` (the subscriber role the installation configures), below
    /// the bot's own role and with no permissions.
    pub fn add_guild_role(&self, guild: u64, role: u64) {
        mutate(&self.inner, |s| s.guild(guild).add_role(role));
    }

    /// Puts `role` above the bot's highest role: changing it is refused with 50013, as Discord
    /// does.
    pub fn lock_role(&self, role: u64) {
        mutate(&self.inner, |s| {
            for guild in s.guilds.values_mut() {
                guild.lock_role(role);
            }
        });
    }

    /// Names a guild (made on first mention as `Guild {id}`).
    pub fn name_guild(&self, guild: u64, name: &str) {
        mutate(&self.inner, |s| name.clone_into(&mut s.guild(guild).name));
    }

    /// Sets what `@everyone` may do in `guild` (Discord's usual set by default).
    pub fn set_everyone_permissions(&self, guild: u64, permissions: u64) {
        mutate(&self.inner, |s| {
            if let Some(role) = s.guild(guild).roles.get_mut(&guild) {
                role.permissions = permissions;
            }
        });
    }

    /// Sets the permissions of the bot's own role in `guild`, as an admin editing it would.
    pub fn set_bot_permissions(&self, guild: u64, permissions: u64) {
        mutate(&self.inner, |s| {
            let g = s.guild(guild);
            let bot_role = g.bot_role;
            if let Some(role) = g.roles.get_mut(&bot_role) {
                role.permissions = permissions;
            }
        });
    }

    /// Kicks the bot out of `guild`: it is no longer listed among its guilds and every call there
    /// is refused.
    pub fn remove_bot_from_guild(&self, guild: u64) {
        mutate(&self.inner, |s| {
            s.guild(guild);
            let bot = s.bot_user_id;
            s.members.remove(&(guild, bot));
        });
    }

    /// Adds an overwrite to a guild channel that denies the bot's role `permissions` there.
    pub fn deny_bot_in_channel(&self, channel: u64, permissions: u64) {
        mutate(&self.inner, |s| {
            let Some(Channel::Guild { guild_id, .. }) = s.channels.get(&channel) else {
                return;
            };
            let guild_id = *guild_id;
            let bot_role = s.guild(guild_id).bot_role;
            if let Some(Channel::Guild { overwrites, .. }) = s.channels.get_mut(&channel) {
                overwrites.push(guild::Overwrite {
                    id: bot_role,
                    kind: 0,
                    allow: 0,
                    deny: permissions,
                });
            }
        });
    }

    /// Makes a known user a member of `guild` (also adds the user) with no roles.
    pub fn add_member(&self, guild: u64, user: &FakeUser) {
        mutate(&self.inner, |s| {
            s.guild(guild);
            s.users.insert(user.id, user.clone());
            s.members.entry((guild, user.id)).or_default();
        });
    }

    /// The roles a guild member holds now, ascending; `None` when not a member.
    pub fn member_roles(&self, guild: u64, user: u64) -> Option<Vec<u64>> {
        lock(&self.inner)
            .members
            .get(&(guild, user))
            .map(|roles| roles.iter().copied().collect())
    }

    /// Creates a text channel in a guild and returns its id.
    pub fn add_guild_channel(&self, guild_id: u64, name: &str) -> u64 {
        mutate(&self.inner, |s| {
            s.guild(guild_id);
            let id = s.snowflake();
            s.channels.insert(
                id,
                Channel::Guild {
                    guild_id,
                    name: name.to_owned(),
                    overwrites: Vec::new(),
                },
            );
            id
        })
    }

    /// The commands registered globally (`None`) or in one guild, as stored (with ids).
    pub fn registered_commands(&self, guild: Option<u64>) -> Vec<Value> {
        lock(&self.inner)
            .commands
            .get(&guild)
            .cloned()
            .unwrap_or_default()
    }

    /// Waits until the bot has registered commands (bulk overwrite, global or in any guild);
    /// false on timeout.
    pub async fn wait_registered(&self, timeout: Duration) -> bool {
        wait_for(&self.inner, timeout, |s| {
            (s.registrations > 0).then_some(())
        })
        .await
        .is_some()
    }

    /// Waits until a gateway session has identified and got READY; false on timeout.
    pub async fn wait_ready(&self, timeout: Duration) -> bool {
        wait_for(&self.inner, timeout, |s| {
            (s.gateway.identifies > 0 && s.gateway.live.is_some()).then_some(())
        })
        .await
        .is_some()
    }

    /// Sends a gateway dispatch (`op 0`) to the live session, or queues it for the next one.
    pub fn dispatch(&self, event: &str, data: Value) {
        gateway::dispatch(&self.inner, event, data);
    }

    /// Every dispatch sent or queued so far (event name, `d`), oldest first: e.g. to check an
    /// `INTERACTION_CREATE` payload against serenity's model.
    pub fn dispatched(&self) -> Vec<(String, Value)> {
        lock(&self.inner).dispatched.clone()
    }

    /// Gateway connections accepted so far (reconnects included).
    pub fn gateway_connections(&self) -> usize {
        lock(&self.inner).gateway.connections
    }

    /// IDENTIFYs answered with READY so far.
    pub fn identifies(&self) -> usize {
        lock(&self.inner).gateway.identifies
    }

    /// RESUMEs answered with RESUMED so far.
    pub fn resumes(&self) -> usize {
        lock(&self.inner).gateway.resumes
    }

    /// Heartbeats (op 1) acknowledged so far.
    pub fn heartbeats(&self) -> usize {
        lock(&self.inner).gateway.heartbeats
    }

    /// Waits until at least `count` heartbeats were acknowledged; false on timeout.
    pub async fn wait_heartbeats(&self, count: usize, timeout: Duration) -> bool {
        wait_for(&self.inner, timeout, |s| {
            (s.gateway.heartbeats >= count).then_some(())
        })
        .await
        .is_some()
    }

    /// Closes the live gateway connection as Discord does before a restart (close code 4000
    /// would be an error; this sends op 7 RECONNECT), so serenity reconnects and resumes.
    pub fn request_reconnect(&self) {
        gateway::request_reconnect(&self.inner);
    }

    /// Delivers a slash command (`INTERACTION_CREATE`, type 2). `name` must be registered (in
    /// `guild` or globally); `options` is Discord's option array (subcommands as type 1/2 with
    /// nested `options`), or null for none.
    pub fn slash(
        &self,
        user: &FakeUser,
        guild: Option<u64>,
        name: &str,
        options: Value,
    ) -> InteractionHandle {
        self.command_interaction(user, guild, name, options, 2)
    }

    /// Delivers an autocomplete request (type 4): like [`Self::slash`], with the option being
    /// typed marked `"focused": true`.
    pub fn autocomplete(
        &self,
        user: &FakeUser,
        guild: Option<u64>,
        name: &str,
        options: Value,
    ) -> InteractionHandle {
        self.command_interaction(user, guild, name, options, 4)
    }

    /// Delivers a button click (type 3) on `message_id`, or when `None` on the latest message
    /// the bot sent that has a component with this `custom_id` (else a stub bot message).
    pub fn click(
        &self,
        user: &FakeUser,
        guild: Option<u64>,
        custom_id: &str,
        message_id: Option<u64>,
    ) -> InteractionHandle {
        let (payload, id) = mutate(&self.inner, |s| {
            s.users.insert(user.id, user.clone());
            let message = match message_id {
                Some(id) => s
                    .message_objects
                    .get(&id)
                    .cloned()
                    .unwrap_or_else(|| panic!("click: the bot sent no message {id}")),
                None => latest_with_component(s, custom_id).unwrap_or_else(|| {
                    let channel_id = match guild {
                        Some(g) => s.general_channel(g),
                        None => s.dm_channel(user.id),
                    };
                    let id = s.snowflake();
                    let message = wire::message(
                        id,
                        channel_id,
                        &wire::bot_user(s.bot_user_id),
                        &json!({"content": "", "components": [{"type": 1, "components": [
                            {"type": 2, "style": 1, "label": custom_id, "custom_id": custom_id}
                        ]}]}),
                        &[],
                    );
                    s.message_objects.insert(id, message.clone());
                    message
                }),
            };
            let channel_id = message["channel_id"]
                .as_str()
                .and_then(|c| c.parse().ok())
                .expect("a message object has a channel_id");
            let base = new_interaction(s, user, guild, Some(channel_id), 3);
            let message_id = message["id"].as_str().and_then(|id| id.parse().ok());
            if let Some(interaction) = s.interactions.get_mut(&base.id) {
                interaction.message_id = message_id;
            }
            let mut payload = base.payload;
            payload["data"] = json!({"custom_id": custom_id, "component_type": 2});
            payload["message"] = message;
            (payload, base.id)
        });
        self.deliver(payload, id)
    }

    /// Delivers a modal submit (type 5): one action row per `(custom_id, value)` text input.
    pub fn submit_modal(
        &self,
        user: &FakeUser,
        guild: Option<u64>,
        custom_id: &str,
        fields: &[(&str, &str)],
    ) -> InteractionHandle {
        let (payload, id) = mutate(&self.inner, |s| {
            s.users.insert(user.id, user.clone());
            let base = new_interaction(s, user, guild, None, 5);
            let mut payload = base.payload;
            let rows: Vec<Value> = fields
                .iter()
                .map(|(id, value)| {
                    json!({"type": 1, "components": [
                        {"type": 4, "custom_id": id, "value": value}
                    ]})
                })
                .collect();
            payload["data"] = json!({"custom_id": custom_id, "components": rows});
            (payload, base.id)
        });
        self.deliver(payload, id)
    }

    /// Makes creating a message in this user's DM channel answer 403/50007, as Discord does when
    /// the user closed DMs or blocked the bot.
    pub fn fail_dms_to(&self, user_id: u64) {
        mutate(&self.inner, |s| {
            s.failing_dms.insert(user_id);
        });
    }

    /// Lifts [`Self::fail_dms_to`].
    pub fn allow_dms_to(&self, user_id: u64) {
        mutate(&self.inner, |s| {
            s.failing_dms.remove(&user_id);
        });
    }

    /// The DM channel the bot opened with this user, if it did.
    pub fn dm_channel_of(&self, user_id: u64) -> Option<u64> {
        lock(&self.inner).dm_channels.get(&user_id).copied()
    }

    /// The messages the bot sent into this user's DM channel, oldest first.
    pub fn messages_to(&self, user_id: u64) -> Vec<RecordedMessage> {
        let state = lock(&self.inner);
        match state.dm_channels.get(&user_id) {
            Some(channel) => messages_in(&state, *channel),
            None => Vec::new(),
        }
    }

    /// The messages the bot created in a channel, oldest first.
    pub fn channel_messages(&self, channel_id: u64) -> Vec<RecordedMessage> {
        messages_in(&lock(&self.inner), channel_id)
    }

    /// Every message the bot created in any channel, oldest first.
    pub fn all_messages(&self) -> Vec<RecordedMessage> {
        lock(&self.inner).messages.clone()
    }

    /// Waits for the first DM to this user; `None` on timeout.
    pub async fn wait_for_dm(&self, user_id: u64, timeout: Duration) -> Option<RecordedMessage> {
        wait_for(&self.inner, timeout, |s| {
            let channel = s.dm_channels.get(&user_id)?;
            messages_in(s, *channel).into_iter().next()
        })
        .await
    }

    /// Every REST call so far, refused and unknown ones included, in arrival order.
    pub fn calls(&self) -> Vec<RecordedCall> {
        lock(&self.inner).calls.clone()
    }

    /// The calls the fake answered `404: Not Found` because it does not know the route.
    pub fn unknown_calls(&self) -> Vec<RecordedCall> {
        lock(&self.inner)
            .calls
            .iter()
            .filter(|c| !c.known)
            .cloned()
            .collect()
    }

    fn command_interaction(
        &self,
        user: &FakeUser,
        guild: Option<u64>,
        name: &str,
        options: Value,
        kind: u8,
    ) -> InteractionHandle {
        let (payload, id) = mutate(&self.inner, |s| {
            s.users.insert(user.id, user.clone());
            let command = guild
                .and_then(|g| s.commands.get(&Some(g)))
                .into_iter()
                .chain(s.commands.get(&None))
                .flatten()
                .find(|c| c["name"] == name)
                .cloned()
                .unwrap_or_else(|| {
                    panic!(
                        "/{name} is not registered {}: registered {:?}",
                        guild.map_or("globally".to_owned(), |g| format!(
                            "in guild {g} or globally"
                        )),
                        s.commands
                            .iter()
                            .map(|(g, cs)| (
                                *g,
                                cs.iter().map(|c| c["name"].clone()).collect::<Vec<_>>()
                            ))
                            .collect::<Vec<_>>()
                    )
                });
            let base = new_interaction(s, user, guild, None, kind);
            let mut payload = base.payload;
            let mut data = json!({
                "id": command["id"],
                "name": name,
                "type": command["type"].as_u64().unwrap_or(1),
            });
            if let Some(g) = command["guild_id"].as_str() {
                data["guild_id"] = json!(g);
            }
            // Discord resolves user options (type 6) to their user objects, as serenity expects.
            let users: serde_json::Map<String, Value> = user_option_ids(&options)
                .into_iter()
                .filter_map(|id| s.users.get(&id).map(|u| (id.to_string(), wire::user(u))))
                .collect();
            if !users.is_empty() {
                data["resolved"] = json!({ "users": users });
            }
            if !options.is_null() {
                data["options"] = options;
            }
            payload["data"] = data;
            (payload, base.id)
        });
        self.deliver(payload, id)
    }

    fn deliver(&self, payload: Value, id: u64) -> InteractionHandle {
        gateway::dispatch(&self.inner, "INTERACTION_CREATE", payload);
        InteractionHandle {
            inner: self.inner.clone(),
            id,
            cursor: Arc::new(AtomicUsize::new(0)),
        }
    }
}

/// The ids given to user options (type 6) anywhere in an option tree.
fn user_option_ids(options: &Value) -> Vec<u64> {
    options
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|option| {
            let own = (option["type"] == 6)
                .then(|| match &option["value"] {
                    Value::String(id) => id.parse().ok(),
                    other => other.as_u64(),
                })
                .flatten();
            own.into_iter().chain(user_option_ids(&option["options"]))
        })
        .collect()
}

struct NewInteraction {
    id: u64,
    payload: Value,
}

/// The fields every interaction type shares, and the interaction's record.
fn new_interaction(
    s: &mut State,
    user: &FakeUser,
    guild: Option<u64>,
    channel_id: Option<u64>,
    kind: u8,
) -> NewInteraction {
    let id = s.snowflake();
    let token = format!("aW50ZXJhY3Rpb246{id}:{}", uuid::Uuid::new_v4().simple());
    let channel_id = channel_id.unwrap_or_else(|| match guild {
        Some(g) => s.general_channel(g),
        None => s.dm_channel(user.id),
    });
    let channel = match s.channels.get(&channel_id) {
        Some(Channel::Guild { name, .. }) => {
            json!({"id": channel_id.to_string(), "type": 0, "name": name})
        }
        _ => json!({"id": channel_id.to_string(), "type": 1}),
    };
    let payload = wire::interaction(&wire::InteractionBase {
        id,
        application_id: s.application_id,
        kind,
        token: &token,
        user,
        guild,
        channel_id,
        channel,
    });
    s.interactions.insert(
        id,
        Interaction {
            id,
            token,
            kind,
            channel_id,
            message_id: None,
            acknowledged: false,
            original: None,
            followups: Vec::new(),
            replies: Vec::new(),
        },
    );
    NewInteraction { id, payload }
}

fn latest_with_component(s: &State, custom_id: &str) -> Option<Value> {
    s.message_objects
        .values()
        .filter(|m| {
            m["components"].as_array().is_some_and(|rows| {
                rows.iter().any(|row| {
                    row["components"]
                        .as_array()
                        .is_some_and(|cs| cs.iter().any(|c| c["custom_id"] == custom_id))
                })
            })
        })
        .max_by_key(|m| m["id"].as_str().and_then(|id| id.parse::<u64>().ok()))
        .cloned()
}

fn messages_in(s: &State, channel_id: u64) -> Vec<RecordedMessage> {
    s.messages
        .iter()
        .filter(|m| m.channel_id == channel_id)
        .cloned()
        .collect()
}

/// A delivered interaction: await and read the bot's answers to it.
#[derive(Clone)]
pub struct InteractionHandle {
    inner: Shared,
    id: u64,
    /// How many replies [`Self::next_message`] has consumed.
    cursor: Arc<AtomicUsize>,
}

impl std::fmt::Debug for InteractionHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InteractionHandle")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl InteractionHandle {
    /// The interaction's id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The interaction's token.
    pub fn token(&self) -> String {
        lock(&self.inner).interactions[&self.id].token.clone()
    }

    /// The first callback, waiting up to [`DEFAULT_WAIT`]; panics (listing the REST calls the
    /// fake saw) if the bot never answered.
    pub async fn response(&self) -> Callback {
        match self.try_response(DEFAULT_WAIT).await {
            Some(callback) => callback,
            None => panic!(
                "the bot did not answer interaction {} within {DEFAULT_WAIT:?}; calls: {:#?}",
                self.id,
                lock(&self.inner).calls
            ),
        }
    }

    /// The first callback, or `None` after `timeout`.
    pub async fn try_response(&self, timeout: Duration) -> Option<Callback> {
        let id = self.id;
        wait_for(&self.inner, timeout, |s| {
            s.interactions[&id]
                .replies
                .iter()
                .find_map(|r| match r.kind {
                    ReplyKind::Callback(kind) => Some(Callback {
                        kind,
                        data: r.body["data"].clone(),
                    }),
                    _ => None,
                })
        })
        .await
    }

    /// Every answer so far (callback, followups, edits, deletes), in arrival order.
    pub fn responses(&self) -> Vec<Reply> {
        lock(&self.inner).interactions[&self.id].replies.clone()
    }

    /// The next followup or edit not yet returned by this method (callbacks and deletes are
    /// skipped), waiting up to [`DEFAULT_WAIT`]; panics on timeout.
    pub async fn next_message(&self) -> Reply {
        match self.try_next_message(DEFAULT_WAIT).await {
            Some(reply) => reply,
            None => panic!(
                "no followup or edit for interaction {} within {DEFAULT_WAIT:?}; replies so far: {:#?}",
                self.id,
                self.responses()
            ),
        }
    }

    /// The next followup or edit, or `None` after `timeout`.
    pub async fn try_next_message(&self, timeout: Duration) -> Option<Reply> {
        let id = self.id;
        let start = self.cursor.load(Ordering::SeqCst);
        let (index, reply) = wait_for(&self.inner, timeout, |s| {
            s.interactions[&id]
                .replies
                .iter()
                .enumerate()
                .skip(start)
                .find(|(_, r)| {
                    matches!(
                        r.kind,
                        ReplyKind::Followup | ReplyKind::EditOriginal | ReplyKind::EditFollowup
                    )
                })
                .map(|(i, r)| (i, r.clone()))
        })
        .await?;
        self.cursor.store(index + 1, Ordering::SeqCst);
        Some(reply)
    }

    /// The original response message as it stands now (after edits), if one exists.
    pub fn original(&self) -> Option<Value> {
        let state = lock(&self.inner);
        let original = state.interactions[&self.id].original?;
        state.message_objects.get(&original).cloned()
    }
}
