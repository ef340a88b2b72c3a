//! A fake of plex.tv and of Plex Media Servers, as one local axum app.
//!
//! Owns the fake's state (accounts, owned servers, libraries with plex.tv-global ids and local
//! keys, shares and pending invites, sign-in PINs), the seeding and inspection helpers tests use
//! (including approving a PIN as a given account), Plex Home members, friends and shares made
//! outside Usher, the per-account seat ceiling, fault injection, answers held back per route
//! ([`FakePlex::hold`]) and per-route call counters. Rule kept: the fake is never looser than the real
//! service: it demands the identity headers and a live token, JSON bodies of the right types,
//! global section ids, refuses duplicate shares and shares past the server's capacity, answers
//! v1 routes in XML and v2 routes in JSON only when asked (`Accept: application/json`).
//!
//! Routes are named `METHOD /template` (`"POST /api/v2/shared_servers"`,
//! `"GET /pms/{machineId}/library/sections"`) for [`FakePlex::calls`] and
//! [`FakePlex::retire_route`]. Each server's own API lives under [`FakePlex::server_url`].

mod routes;
mod wire;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::task::JoinHandle;
use url::Url;

/// Error codes in the fake's error bodies. 1001–1003 are plex.tv's observed codes; the others are
/// the fake's own until a live run records the real ones.
pub mod codes {
    /// A body that is not JSON or has the wrong field types.
    pub const MALFORMED_REQUEST: i64 = 1000;
    /// Missing, unknown or revoked token.
    pub const UNAUTHORIZED: i64 = 1001;
    /// Unknown route, server or share.
    pub const NOT_FOUND: i64 = 1002;
    /// Rate limited.
    pub const RATE_LIMITED: i64 = 1003;
    /// `X-Plex-Client-Identifier` or `X-Plex-Product` missing.
    pub const MISSING_CLIENT_HEADERS: i64 = 1004;
    /// The invited email or username is not a plex.tv account.
    pub const NOT_A_USER: i64 = 1005;
    /// A section id that is not a plex.tv-global id of the shared server (e.g. a local key).
    pub const INVALID_SECTIONS: i64 = 1006;
    /// The owner invited their own account.
    pub const SELF_SHARE: i64 = 1007;
    /// The user already has this server, accepted or pending.
    pub const ALREADY_SHARED: i64 = 1008;
    /// The server is at its share ceiling (pending invites included).
    pub const SHARE_LIMIT: i64 = 1009;
    /// A sign-in PIN that is unknown, expired or another client's.
    pub const PIN_NOT_FOUND: i64 = 1020;
    /// An injected server error.
    pub const SERVER_ERROR: i64 = 2000;
}

/// Shares a server may have, pending invites included, unless set per server.
pub const DEFAULT_SHARE_LIMIT: usize = 100;

/// People an owner account may share with, the owner and Plex Home members included (friends are
/// account-wide: a person already seated takes no new seat on another of its servers).
pub const DEFAULT_SEATS_PER_ACCOUNT: usize = 100;

/// Random failures to inject on plex.tv routes (not on the servers' own routes).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Faults {
    /// Probability (0..=1) that a call gets 429.
    pub rate_limited: f64,
    /// Probability (0..=1) that a call gets 500.
    pub server_error: f64,
    /// Probability (0..=1) that a write which took effect still answers 502.
    pub error_after_write: f64,
    /// `Retry-After` seconds sent with a 429 (`None` sends no header).
    pub retry_after_secs: Option<u64>,
    /// Seed of the RNG that decides, so a run can be replayed.
    pub seed: u64,
}

impl Default for Faults {
    fn default() -> Self {
        Self {
            rate_limited: 0.0,
            server_error: 0.0,
            error_after_write: 0.0,
            retry_after_secs: Some(1),
            seed: 0,
        }
    }
}

/// A seeded server, as the test needs to know it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeServer {
    /// The machine identifier.
    pub machine_identifier: String,
    /// The name.
    pub name: String,
    /// The server's own token (`accessToken` in resources).
    pub access_token: String,
    /// The libraries, in the order given.
    pub libraries: Vec<FakeLibrary>,
}

/// A seeded library: both of its ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeLibrary {
    /// The plex.tv-global section id (share calls).
    pub global_id: u64,
    /// The server-local key (`/library/sections`).
    pub key: String,
    /// The title.
    pub title: String,
    /// `movie`, `show`, `artist` or `photo`.
    pub kind: String,
    /// The section's uuid.
    pub uuid: String,
}

/// A share as the fake holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(clippy::struct_excessive_bools)] // mirrors the independent flags of the wire object
pub struct FakeShare {
    /// The `shared_server` id.
    pub id: u64,
    /// The shared server.
    pub machine_identifier: String,
    /// The owner's account id.
    pub owner_id: u64,
    /// The invitee's account id.
    pub invited_id: u64,
    /// The invitee's email.
    pub invited_email: String,
    /// The invitee's username.
    pub invited_username: String,
    /// The shared sections' global ids.
    pub library_ids: Vec<u64>,
    /// Shared with an empty id list: every library, future ones included.
    pub all_libraries: bool,
    /// The settings last sent.
    pub settings: FakeSettings,
    /// Accepted by the invitee (else a pending invite).
    pub accepted: bool,
    /// Whether the invite asked not to create a friendship.
    pub skip_friendship: bool,
}

/// Share settings as the fake stored them (string flags normalised to booleans).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[allow(clippy::struct_excessive_bools)] // mirrors the independent flags of the wire object
pub struct FakeSettings {
    /// `allowSync`.
    pub allow_sync: bool,
    /// `allowChannels`.
    pub allow_channels: bool,
    /// `allowCameraUpload`.
    pub allow_camera_upload: bool,
    /// `allowSubtitleAdmin`.
    pub allow_subtitle_admin: bool,
    /// `allowTuners`.
    pub allow_tuners: i64,
    /// `filterMovies`.
    pub filter_movies: String,
    /// `filterTelevision`.
    pub filter_television: String,
    /// `filterMusic`.
    pub filter_music: String,
    /// `filterPhotos`.
    pub filter_photos: Option<String>,
    /// `filterAll`.
    pub filter_all: Option<String>,
}

#[derive(Debug, Clone)]
struct Account {
    id: u64,
    uuid: String,
    email: String,
    username: String,
    token: String,
    plex_pass: bool,
}

#[derive(Debug, Clone)]
struct Server {
    /// plex.tv's numeric id of the server (`serverId` in share objects).
    plex_id: u64,
    seeded: FakeServer,
    owner_id: u64,
    share_limit: usize,
    /// Plex numbers sections upwards and never reuses a deleted section's key.
    next_library_key: u64,
}

/// A sign-in PIN (`POST /api/v2/pins`), bound to the client identifier that created it.
#[derive(Debug, Clone)]
struct Pin {
    id: u64,
    code: String,
    client_identifier: String,
    product: String,
    created_at: chrono::DateTime<chrono::Utc>,
    expires_in: i64,
    /// The approving account's token, once approved.
    auth_token: Option<String>,
}

struct State {
    base_url: Url,
    accounts: Vec<Account>,
    pins: Vec<Pin>,
    next_pin_id: u64,
    servers: Vec<Server>,
    shares: Vec<FakeShare>,
    next_account_id: u64,
    next_share_id: u64,
    next_section_id: u64,
    calls: HashMap<String, usize>,
    faults: Faults,
    rng: StdRng,
    retired: HashSet<String>,
    revoked: HashSet<String>,
    holds: HashMap<String, Arc<HoldGate>>,
    /// Plex Home members: (owner id, member id, managed).
    home: Vec<(u64, u64, bool)>,
    /// Friendships made outside shares: (owner id, friend id).
    friends: Vec<(u64, u64)>,
    /// People one owner account may share with, the owner and Home members included.
    seats_per_account: usize,
}

/// Answers of one route held back until released (see [`FakePlex::hold`]).
#[derive(Debug)]
struct HoldGate {
    open: tokio::sync::watch::Sender<bool>,
    waiting: AtomicUsize,
}

impl HoldGate {
    /// Waits, counted among the held answers, until the gate opens.
    async fn until_released(&self) {
        let mut open = self.open.subscribe();
        self.waiting.fetch_add(1, Ordering::SeqCst);
        // The sender lives in this gate, so the channel cannot close while we wait.
        let _ = open.wait_for(|open| *open).await;
        self.waiting.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A route whose answers the fake holds back, as a slow network or a busy plex.tv edge does: the
/// request has taken effect (a write is written, a list is read) but its answer waits until this
/// is released or dropped.
pub struct Held {
    state: Shared,
    route: String,
    gate: Arc<HoldGate>,
}

impl std::fmt::Debug for Held {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Held")
            .field("route", &self.route)
            .field("waiting", &self.waiting())
            .finish_non_exhaustive()
    }
}

impl Held {
    /// How many answers are waiting now.
    pub fn waiting(&self) -> usize {
        self.gate.waiting.load(Ordering::SeqCst)
    }

    /// Waits until at least `n` answers are held; panics after `timeout` (a stuck test, not a
    /// slow one).
    pub async fn wait_for(&self, n: usize, timeout: std::time::Duration) {
        let started = std::time::Instant::now();
        while self.waiting() < n {
            assert!(
                started.elapsed() < timeout,
                "only {} answers of {} held after {timeout:?}, waiting for {n}",
                self.waiting(),
                self.route
            );
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }

    /// Sends the held answers and stops holding new ones (as dropping it does).
    pub fn release(self) {}
}

impl Drop for Held {
    fn drop(&mut self) {
        let mut state = lock(&self.state);
        if state
            .holds
            .get(&self.route)
            .is_some_and(|gate| Arc::ptr_eq(gate, &self.gate))
        {
            state.holds.remove(&self.route);
        }
        self.gate.open.send_replace(true);
    }
}

/// What an injected fault turns a call into.
enum Fault {
    RateLimited(Option<u64>),
    ServerError,
}

impl State {
    fn account_by_token(&self, token: &str) -> Option<&Account> {
        if self.revoked.contains(token) {
            return None;
        }
        self.accounts.iter().find(|a| a.token == token)
    }

    fn account_by_id(&self, id: u64) -> Option<&Account> {
        self.accounts.iter().find(|a| a.id == id)
    }

    /// Email or username, case-insensitive, as plex.tv matches `invited_email`.
    fn account_by_login(&self, login: &str) -> Option<&Account> {
        self.accounts
            .iter()
            .find(|a| a.email.eq_ignore_ascii_case(login) || a.username.eq_ignore_ascii_case(login))
    }

    /// Everyone holding a seat on an owner account besides the owner: Home members, friends, and
    /// anyone with a share or a pending invite of one of its servers.
    fn seated(&self, owner_id: u64) -> HashSet<u64> {
        let mut seated: HashSet<u64> = self
            .home
            .iter()
            .filter(|(owner, ..)| *owner == owner_id)
            .map(|(_, member, _)| *member)
            .collect();
        seated.extend(
            self.friends
                .iter()
                .filter(|(owner, _)| *owner == owner_id)
                .map(|(_, friend)| *friend),
        );
        seated.extend(
            self.shares
                .iter()
                .filter(|s| s.owner_id == owner_id)
                .map(|s| s.invited_id),
        );
        seated
    }

    fn server(&self, machine_identifier: &str) -> Option<&Server> {
        self.servers
            .iter()
            .find(|s| s.seeded.machine_identifier == machine_identifier)
    }

    fn server_url(&self, machine_identifier: &str) -> Url {
        self.base_url
            .join(&format!("pms/{machine_identifier}/"))
            .expect("a machine identifier is a valid path segment")
    }

    fn roll_error_after_write(&mut self) -> bool {
        let chance = self.faults.error_after_write;
        chance > 0.0 && self.rng.r#gen::<f64>() < chance
    }

    fn roll_fault(&mut self) -> Option<Fault> {
        let Faults {
            rate_limited,
            server_error,
            retry_after_secs,
            ..
        } = self.faults;
        if rate_limited <= 0.0 && server_error <= 0.0 {
            return None;
        }
        let roll: f64 = self.rng.r#gen();
        if roll < rate_limited {
            Some(Fault::RateLimited(retry_after_secs))
        } else if roll < rate_limited + server_error {
            Some(Fault::ServerError)
        } else {
            None
        }
    }
}

type Shared = Arc<Mutex<State>>;

fn lock(state: &Shared) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The running fake: plex.tv and every seeded Plex Media Server on one local port.
pub struct FakePlex {
    addr: SocketAddr,
    state: Shared,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for FakePlex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakePlex")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Drop for FakePlex {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakePlex {
    /// Binds 127.0.0.1 on a free port and serves the fake from a tokio task.
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fake plex port");
        let addr = listener.local_addr().expect("the fake plex address");
        let base_url = Url::parse(&format!("http://{addr}/")).expect("a local URL");
        let state = Arc::new(Mutex::new(State {
            base_url,
            accounts: Vec::new(),
            pins: Vec::new(),
            next_pin_id: 2_188_000_001,
            servers: Vec::new(),
            shares: Vec::new(),
            next_account_id: 1_000_001,
            next_share_id: 50_000_001,
            // Far from the small local keys (1, 2, ...) so a local key is never a valid global id.
            next_section_id: 112_155_685,
            calls: HashMap::new(),
            faults: Faults::default(),
            rng: StdRng::seed_from_u64(0),
            retired: HashSet::new(),
            revoked: HashSet::new(),
            holds: HashMap::new(),
            home: Vec::new(),
            friends: Vec::new(),
            seats_per_account: DEFAULT_SEATS_PER_ACCOUNT,
        }));
        let app = routes::router(state.clone());
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .await
                .expect("the fake plex server");
        });
        Self { addr, state, task }
    }

    /// The base URL standing in for `https://plex.tv/` and `https://clients.plex.tv/`.
    pub fn base_url(&self) -> Url {
        lock(&self.state).base_url.clone()
    }

    /// The base URL of one seeded server's own API (`/identity`, `/library/sections`).
    pub fn server_url(&self, machine_identifier: &str) -> Url {
        lock(&self.state).server_url(machine_identifier)
    }

    /// Seeds an owner account (Plex Pass active) and returns its token.
    pub fn add_owner(&self, email: &str) -> String {
        self.add_account(email, true).token
    }

    /// Seeds an ordinary plex.tv account (no Plex Pass) and returns its account id.
    pub fn add_user_account(&self, email: &str) -> u64 {
        self.add_account(email, false).id
    }

    /// Changes an account's email, as its owner can in their plex.tv settings: its id, username,
    /// token and shares stay (the shares are listed under the new email). False when no account has the `from` login.
    pub fn change_email(&self, from: &str, to: &str) -> bool {
        let mut state = lock(&self.state);
        let Some(account) = state
            .accounts
            .iter_mut()
            .find(|a| a.email.eq_ignore_ascii_case(from))
        else {
            return false;
        };
        to.clone_into(&mut account.email);
        // A share belongs to the account: plex.tv lists it under the account's email now.
        let id = account.id;
        for share in state.shares.iter_mut().filter(|s| s.invited_id == id) {
            to.clone_into(&mut share.invited_email);
        }
        true
    }

    /// The token of a seeded account, to act as that user (e.g. to accept an invite).
    pub fn token_for(&self, email: &str) -> Option<String> {
        lock(&self.state)
            .account_by_login(email)
            .map(|a| a.token.clone())
    }

    /// Turns an account's Plex Pass on or off.
    pub fn set_plex_pass(&self, email: &str, active: bool) {
        let mut state = lock(&self.state);
        if let Some(account) = state
            .accounts
            .iter_mut()
            .find(|a| a.email.eq_ignore_ascii_case(email))
        {
            account.plex_pass = active;
        }
    }

    /// Seeds a server owned by the account holding `owner_token`, with `(title, type)` libraries.
    pub fn add_server(
        &self,
        owner_token: &str,
        name: &str,
        libraries: &[(&str, &str)],
    ) -> FakeServer {
        let mut state = lock(&self.state);
        let owner_id = state
            .accounts
            .iter()
            .find(|a| a.token == owner_token)
            .expect("add_server: seed the owner first")
            .id;
        let mut seeded_libraries = Vec::with_capacity(libraries.len());
        for (index, (title, kind)) in libraries.iter().enumerate() {
            let global_id = state.next_section_id;
            state.next_section_id += 1;
            seeded_libraries.push(FakeLibrary {
                global_id,
                key: (index + 1).to_string(),
                title: (*title).to_owned(),
                kind: (*kind).to_owned(),
                uuid: uuid::Uuid::new_v4().to_string(),
            });
        }
        let seeded = FakeServer {
            machine_identifier: hex_id(40),
            name: name.to_owned(),
            access_token: random_token(),
            libraries: seeded_libraries,
        };
        let plex_id = 9_000_001 + state.servers.len() as u64;
        state.servers.push(Server {
            plex_id,
            seeded: seeded.clone(),
            owner_id,
            share_limit: DEFAULT_SHARE_LIMIT,
            next_library_key: libraries.len() as u64 + 1,
        });
        seeded
    }

    /// Adds a library to a seeded server (as if the owner created one) and returns it.
    pub fn add_library(&self, machine_identifier: &str, title: &str, kind: &str) -> FakeLibrary {
        let mut state = lock(&self.state);
        let global_id = state.next_section_id;
        state.next_section_id += 1;
        let server = state
            .servers
            .iter_mut()
            .find(|s| s.seeded.machine_identifier == machine_identifier)
            .expect("add_library: unknown server");
        let next_key = server.next_library_key;
        server.next_library_key += 1;
        let library = FakeLibrary {
            global_id,
            key: next_key.to_string(),
            title: title.to_owned(),
            kind: kind.to_owned(),
            uuid: uuid::Uuid::new_v4().to_string(),
        };
        server.seeded.libraries.push(library.clone());
        library
    }

    /// A seeded server's libraries as (global id, local key), in key order.
    pub fn libraries_of(&self, machine_identifier: &str) -> Vec<(u64, String)> {
        let state = lock(&self.state);
        let mut libraries: Vec<_> = state
            .servers
            .iter()
            .filter(|s| s.seeded.machine_identifier == machine_identifier)
            .flat_map(|s| {
                s.seeded
                    .libraries
                    .iter()
                    .map(|l| (l.global_id, l.key.clone()))
            })
            .collect();
        libraries.sort_by(|a, b| a.1.cmp(&b.1));
        libraries
    }

    /// A seeded library by its plex.tv-global section id.
    pub fn library(&self, global_id: u64) -> Option<FakeLibrary> {
        let state = lock(&self.state);
        state
            .servers
            .iter()
            .flat_map(|s| s.seeded.libraries.iter())
            .find(|l| l.global_id == global_id)
            .cloned()
    }

    /// Deletes a library from a seeded server by its local key.
    pub fn remove_library(&self, machine_identifier: &str, key: &str) {
        let mut state = lock(&self.state);
        if let Some(server) = state
            .servers
            .iter_mut()
            .find(|s| s.seeded.machine_identifier == machine_identifier)
        {
            server.seeded.libraries.retain(|l| l.key != key);
        }
    }

    /// Takes a server off its owner's account (unclaimed, or moved to another account): plex.tv no
    /// longer lists it among the owner's resources.
    pub fn remove_server(&self, machine_identifier: &str) {
        lock(&self.state)
            .servers
            .retain(|s| s.seeded.machine_identifier != machine_identifier);
    }

    /// Claims a seeded server for another account, as its owner does after a ban (sign in to
    /// the server with the new account and claim it): the machine identifier, name and libraries
    /// stay; plex.tv lists it among the new owner's resources, and the shares and invites the
    /// former owner made on it are gone (they were that account's friends, not the server's).
    /// False when no server has that machine identifier.
    pub fn claim_server(&self, machine_identifier: &str, new_owner_token: &str) -> bool {
        let mut state = lock(&self.state);
        let owner_id = state
            .accounts
            .iter()
            .find(|a| a.token == new_owner_token)
            .expect("claim_server: seed the new owner first")
            .id;
        let Some(server) = state
            .servers
            .iter_mut()
            .find(|s| s.seeded.machine_identifier == machine_identifier)
        else {
            return false;
        };
        server.owner_id = owner_id;
        state
            .shares
            .retain(|s| s.machine_identifier != machine_identifier);
        true
    }

    /// Sets how many shares (pending included) a server accepts.
    pub fn set_share_limit(&self, machine_identifier: &str, limit: usize) {
        let mut state = lock(&self.state);
        if let Some(server) = state
            .servers
            .iter_mut()
            .find(|s| s.seeded.machine_identifier == machine_identifier)
        {
            server.share_limit = limit;
        }
    }

    /// Sets how many people every owner account may share with (owner and Home included).
    pub fn set_seats_per_account(&self, seats: usize) {
        lock(&self.state).seats_per_account = seats;
    }

    /// Adds a Plex Home member (`managed`: a managed user without a login of their own) to the
    /// owner's Home; returns their account id.
    pub fn add_home_user(&self, owner_token: &str, email: &str, managed: bool) -> u64 {
        let member = self.add_account(email, false).id;
        let mut state = lock(&self.state);
        let owner = owner_id(&state, owner_token);
        state.home.push((owner, member, managed));
        member
    }

    /// Makes the account with `email` (created when new) a friend of the owner, without a share;
    /// returns its account id.
    pub fn add_friend(&self, owner_token: &str, email: &str) -> u64 {
        let existing = lock(&self.state).account_by_login(email).map(|a| a.id);
        let friend = existing.unwrap_or_else(|| self.add_account(email, false).id);
        let mut state = lock(&self.state);
        let owner = owner_id(&state, owner_token);
        state.friends.push((owner, friend));
        friend
    }

    /// Shares a server with the account with `email` (created when new) as the owner would have
    /// from Plex Web, outside Usher: `libraries` by global id (`None`: every library), accepted
    /// or still pending. Seat and share ceilings are not checked (the world as it was found).
    pub fn seed_share(
        &self,
        machine_identifier: &str,
        email: &str,
        libraries: Option<&[u64]>,
        accepted: bool,
    ) -> FakeShare {
        let existing = lock(&self.state).account_by_login(email).cloned();
        let invited = existing.unwrap_or_else(|| self.add_account(email, false));
        let mut state = lock(&self.state);
        let server = state
            .server(machine_identifier)
            .expect("seed_share: unknown server");
        let owner_id = server.owner_id;
        let all: Vec<u64> = server
            .seeded
            .libraries
            .iter()
            .map(|l| l.global_id)
            .collect();
        let id = state.next_share_id;
        state.next_share_id += 1;
        let share = FakeShare {
            id,
            machine_identifier: machine_identifier.to_owned(),
            owner_id,
            invited_id: invited.id,
            invited_email: invited.email,
            invited_username: invited.username,
            library_ids: libraries.map_or(all, <[u64]>::to_vec),
            all_libraries: libraries.is_none(),
            settings: FakeSettings::default(),
            accepted,
            skip_friendship: false,
        };
        state.shares.push(share.clone());
        share
    }

    /// How many seats the owner account with this token uses: itself, Home members, friends and
    /// everyone with a share or pending invite of its servers.
    pub fn seats_used(&self, owner_token: &str) -> usize {
        let state = lock(&self.state);
        let owner = owner_id(&state, owner_token);
        1 + state.seated(owner).len()
    }

    /// Every seeded server, as seeded (libraries added since included).
    pub fn all_servers(&self) -> Vec<FakeServer> {
        lock(&self.state)
            .servers
            .iter()
            .map(|s| s.seeded.clone())
            .collect()
    }

    /// Every share (pending or accepted) whose invitee has this email, case-insensitive.
    pub fn shares_for_email(&self, email: &str) -> Vec<FakeShare> {
        self.shares_where(|s| s.invited_email.eq_ignore_ascii_case(email))
    }

    /// Every share (pending or accepted) of one server.
    pub fn shares_on_server(&self, machine_identifier: &str) -> Vec<FakeShare> {
        self.shares_where(|s| s.machine_identifier == machine_identifier)
    }

    /// Every share the fake holds.
    pub fn all_shares(&self) -> Vec<FakeShare> {
        self.shares_where(|_| true)
    }

    /// Accepts a pending invite as its invitee would; false when no such pending invite exists.
    pub fn accept_invite(&self, share_id: u64) -> bool {
        let mut state = lock(&self.state);
        match state
            .shares
            .iter_mut()
            .find(|s| s.id == share_id && !s.accepted)
        {
            Some(share) => {
                share.accepted = true;
                true
            }
            None => false,
        }
    }

    /// Approves the sign-in PIN with this code as the account with this email would on
    /// app.plex.tv: the next poll of the PIN carries the account's token. False when no live PIN
    /// has that code or no account that email.
    pub fn approve_pin(&self, code: &str, email: &str) -> bool {
        let mut state = lock(&self.state);
        let Some(token) = state.account_by_login(email).map(|a| a.token.clone()) else {
            return false;
        };
        match state.pins.iter_mut().find(|p| p.code == code) {
            Some(pin) => {
                pin.auth_token = Some(token);
                true
            }
            None => false,
        }
    }

    /// Forgets the sign-in PIN with this code, as plex.tv does when it expires.
    pub fn expire_pin(&self, code: &str) {
        lock(&self.state).pins.retain(|p| p.code != code);
    }

    /// The codes of the sign-in PINs plex.tv holds now, oldest first.
    pub fn pin_codes(&self) -> Vec<String> {
        lock(&self.state)
            .pins
            .iter()
            .map(|p| p.code.clone())
            .collect()
    }

    /// Injects random 429/500 answers on plex.tv routes, deterministically from `faults.seed`.
    pub fn set_faults(&self, faults: Faults) {
        let mut state = lock(&self.state);
        state.rng = StdRng::seed_from_u64(faults.seed);
        state.faults = faults;
    }

    /// Holds back the answers of a plex.tv route (`"POST /api/v2/shared_servers"`) from now until
    /// the returned [`Held`] is released or dropped: each request takes effect as usual (an
    /// invite is written, a list is read at that moment) and only its answer waits, injected
    /// faults included. A second hold of the same route replaces the first for new requests.
    pub fn hold(&self, route: &str) -> Held {
        let gate = Arc::new(HoldGate {
            open: tokio::sync::watch::Sender::new(false),
            waiting: AtomicUsize::new(0),
        });
        lock(&self.state)
            .holds
            .insert(route.to_owned(), Arc::clone(&gate));
        Held {
            state: Arc::clone(&self.state),
            route: route.to_owned(),
            gate,
        }
    }

    /// Makes a route (`"POST /api/users/validate"`) answer 410 Gone from now on.
    pub fn retire_route(&self, route: &str) {
        lock(&self.state).retired.insert(route.to_owned());
    }

    /// Gives an account a new token, as plex.tv does when its owner signs out of all devices
    /// (or changes the password) and signs in again: the old token gets 401 from then on.
    /// Returns the new token; `None` when no account has that email.
    pub fn rotate_token(&self, email: &str) -> Option<String> {
        let mut state = lock(&self.state);
        let account = state
            .accounts
            .iter_mut()
            .find(|a| a.email.eq_ignore_ascii_case(email))?;
        account.token = random_token();
        Some(account.token.clone())
    }

    /// Makes plex.tv answer 401 to this token from now on.
    pub fn revoke_token(&self, token: &str) {
        lock(&self.state).revoked.insert(token.to_owned());
    }

    /// How many requests reached a route (`"GET /api/v2/user"`), refused ones included.
    pub fn calls(&self, route: &str) -> usize {
        lock(&self.state).calls.get(route).copied().unwrap_or(0)
    }

    /// How many requests reached the fake, refused and unknown ones included.
    pub fn total_calls(&self) -> usize {
        lock(&self.state).calls.values().sum()
    }

    fn add_account(&self, email: &str, plex_pass: bool) -> Account {
        let mut state = lock(&self.state);
        let id = state.next_account_id;
        state.next_account_id += 1;
        let account = Account {
            id,
            uuid: hex_id(16),
            email: email.to_owned(),
            username: email.split('@').next().unwrap_or(email).to_owned(),
            token: random_token(),
            plex_pass,
        };
        state.accounts.push(account.clone());
        account
    }

    fn shares_where(&self, keep: impl Fn(&FakeShare) -> bool) -> Vec<FakeShare> {
        lock(&self.state)
            .shares
            .iter()
            .filter(|s| keep(s))
            .cloned()
            .collect()
    }
}

fn owner_id(state: &State, owner_token: &str) -> u64 {
    state
        .accounts
        .iter()
        .find(|a| a.token == owner_token)
        .expect("seed the owner first")
        .id
}

fn random_token() -> String {
    use rand::distributions::Alphanumeric;
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(20)
        .map(char::from)
        .collect()
}

fn hex_id(len: usize) -> String {
    let mut rng = rand::thread_rng();
    (0..len)
        .map(|_| char::from_digit(rng.gen_range(0..16), 16).expect("a hex digit"))
        .collect()
}
