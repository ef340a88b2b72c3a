//! Adopting an existing server (issue 14): importing the people an owner already shares with on
//! plex.tv, previewed and then confirmed.
//!
//! Rules it keeps:
//! - Preview, then confirm, like the bulk flag: the preview reads plex.tv and Usher, decides every
//!   person's fate (new, already in Usher, retired or banned here, a Plex Home member) and stores
//!   exactly the work it showed; the confirm applies that stored work and nothing else, so
//!   plex.tv failing half-way can never half-import anyone (it is read before the confirm).
//! - The confirm writes everything in ONE transaction (all servers at once): either every previewed
//!   person is in, or nobody is. At most one import runs at a time (the database enforces it).
//! - An imported person is an unclaimed subscriber (no Discord member yet) with an active identity
//!   (email, username, plex.tv id) and their share(s) as plex.tv holds them (server, plex.tv share
//!   id, accepted or pending, the libraries they had). A person on two servers is one subscriber
//!   with two shares. Their paid time is a `manual` payment with reference `import` through the
//!   payments service (no receipt), or they are permanent.
//! - Never imported: a Plex account retired, banned or refused here (the never-reuse rule, by email,
//!   username or plex.tv id), and Plex Home or managed users (the owner's own; they hold seats).
//! - Idempotent: a person already in Usher is left as they are; a second import adds only people
//!   new on plex.tv.
//! - plex.tv is read through each owner account's rate limit.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use anyhow::Context as _;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::app::App;
use crate::domain::{
    Actor, DiscordId, LibraryGroupId, OwnerAccountId, OwnerAccountState, PlanId, PlexEmail,
    ServerId, ShareState,
};
use crate::integrations::plex::{
    PlexError, PlexFriend, ShareState as PlexShareState, SharedServer,
};
use crate::jobs::InviteShare;
use crate::services::identities::{self, PlexAccountRef};
use crate::services::members::Standing;
use crate::services::payments::{self, Coverage, ManualPayment, ManualPaymentError};
use crate::services::shares::owner_rate_key;
use crate::services::{access, lifecycle, seats};
use crate::store::subscribers::{self, NewSubscriber};
use crate::store::{Tx, audit, imports, is_unique_violation, owner_accounts, servers, shares};

/// How long a preview can be confirmed.
pub const PREVIEW_MINUTES: i64 = 30;
/// A run still `running` after this long died with its process.
const STALE_RUN_MINUTES: i64 = 60;
const PURPOSE: &str = "import";
/// How many names a preview shows.
const FIRST_NAMES: usize = 10;

/// Why an import was refused; each is a message for the admin, and nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// No live server matches the choice.
    #[error("no server to import from: {0}")]
    NoServers(String),
    /// The default plan is unknown or not offered.
    #[error("there is no active plan #{0} to use as the default plan")]
    NoSuchPlan(PlanId),
    /// Zero or negative days.
    #[error("the number of days must be at least 1 (it was {0})")]
    DaysNotPositive(i64),
    /// A paid-until date in the past.
    #[error("{0} is not in the future; give a later date")]
    UntilInPast(String),
    /// plex.tv refused or failed; nothing was read into Usher.
    #[error("plex.tv could not be read for {account}: {error}")]
    Plex {
        /// The owner account.
        account: String,
        /// What plex.tv did.
        error: String,
    },
    /// Forged or for another purpose.
    #[error("that confirmation is not valid; preview the import again")]
    BadToken,
    /// Too old, or already used.
    #[error("that confirmation has expired or was already used; preview the import again")]
    Stale,
    /// Another import is running.
    #[error("another import is running; wait until it is done and preview again")]
    AnotherRunning,
    /// A previewed payment was refused when applied (nothing was written).
    #[error("the import stopped at {who}: {error}; nothing was written")]
    Refused {
        /// The person.
        who: String,
        /// Why.
        error: String,
    },
    /// Anything else.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// What to import from plex.tv.
#[derive(Debug, Clone)]
pub struct PlexImportOptions {
    /// Only this owner account's servers.
    pub owner: Option<OwnerAccountId>,
    /// Only this server.
    pub server: Option<ServerId>,
    /// The plan of people whose libraries match no plan.
    pub default_plan: Option<PlanId>,
    /// Their standing: permanent, or paid for days or until a date.
    pub standing: Standing,
}

/// The standing of imported people, as stored in a preview.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum WorkStanding {
    /// Never expires.
    Permanent,
    /// Paid this many days from the confirm.
    Days(i64),
    /// Paid until this moment.
    Until(DateTime<Utc>),
    /// Neither: no payment is recorded (a CSV row without paid time).
    Unpaid,
}

impl From<Standing> for WorkStanding {
    fn from(standing: Standing) -> Self {
        match standing {
            Standing::Permanent => Self::Permanent,
            Standing::Days(days) => Self::Days(days),
            Standing::Until(until) => Self::Until(until),
        }
    }
}

/// A share to record, as plex.tv holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkShare {
    /// The server.
    pub server: ServerId,
    /// plex.tv's shared-server id.
    pub plex_share_id: Option<i64>,
    /// Accepted (else a pending invite).
    pub accepted: bool,
    /// The plex.tv section ids it shares.
    pub libraries: Vec<i64>,
}

/// One person a preview decided to add.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkPerson {
    /// The Plex email (or username), normalised.
    pub email: String,
    /// The plex.tv username, normalised, when known.
    pub username: Option<String>,
    /// The plex.tv account id, when known.
    pub plex_user_id: Option<i64>,
    /// Display name until they claim.
    pub name: String,
    /// Their plan, if any matched.
    pub plan: Option<PlanId>,
    /// Their Discord member, when known (CSV).
    pub discord_id: Option<u64>,
    /// Where receipts and reminders go (CSV).
    pub contact_email: Option<String>,
    /// An admin note (CSV).
    pub note: Option<String>,
    /// Their standing when it is their own (CSV rows); else the import's.
    pub standing: Option<WorkStanding>,
    /// Their shares.
    pub shares: Vec<WorkShare>,
    /// A server to share with them (a CSV row's `server`): its invite job records the share they
    /// already have there on plex.tv, or invites them.
    #[serde(default)]
    pub invite_on: Option<ServerId>,
}

/// Exactly what a preview showed, applied by the confirm.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Work {
    /// The standing of everyone without their own.
    pub standing: WorkStanding,
    /// The people to add.
    pub people: Vec<WorkPerson>,
    /// Seats outside Usher per owner account after the import, as plex.tv listed them.
    pub seats: Vec<(OwnerAccountId, i32)>,
}

/// Counts for one server in a preview.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerCount {
    /// The server's name.
    pub name: String,
    /// New people with a share on it.
    pub new: usize,
    /// Of those, invites still pending.
    pub pending: usize,
    /// People on it who are in Usher already.
    pub known: usize,
}

/// A person the import leaves out, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// Their email or username.
    pub who: String,
    /// Why.
    pub why: String,
}

/// Seats on one owner account after the import.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeatCount {
    /// The account's name.
    pub account: String,
    /// Seats plex.tv counts as used.
    pub used: i64,
    /// The ceiling.
    pub ceiling: u32,
}

/// What an import would do, shown to the admin before confirming.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportPreview {
    /// Signed, single-use, short-lived confirmation token.
    pub token: String,
    /// People it would add.
    pub new_people: usize,
    /// Per server.
    pub servers: Vec<ServerCount>,
    /// Per plan name (`None`: no plan), by name.
    pub plans: Vec<(Option<String>, usize)>,
    /// The first names it would add.
    pub first_names: Vec<String>,
    /// People it would add without a plan.
    pub without_plan: Vec<String>,
    /// People left out and why (retired or banned here, no email).
    pub skipped: Vec<Skipped>,
    /// People on the servers who are in Usher already.
    pub already: usize,
    /// Plex Home and managed users on the accounts (seats, never imported).
    pub home: usize,
    /// Seats per owner account.
    pub seats: Vec<SeatCount>,
}

/// How far a confirm has come.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImportProgress {
    /// People written so far.
    pub done: usize,
    /// People to write.
    pub total: usize,
}

/// What a confirm did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImportDone {
    /// Subscribers added.
    pub added: usize,
    /// Shares recorded.
    pub shares: usize,
    /// Previewed people left out because they joined Usher meanwhile.
    pub skipped: usize,
}

/// A live server chosen for an import.
struct Chosen {
    id: ServerId,
    owner: OwnerAccountId,
    name: String,
    machine_id: String,
    /// plex.tv section id → library group.
    groups: HashMap<i64, LibraryGroupId>,
    all_groups: BTreeSet<LibraryGroupId>,
}

/// Step one of a plex.tv import: reads the chosen servers' shares and pending invites and the
/// owners' friends and Home from plex.tv, decides every person, stores the work and returns the
/// counts, names and a confirmation token. Writes nothing else.
pub async fn preview_plex_import(
    app: &App,
    actor: &Actor,
    options: &PlexImportOptions,
) -> Result<ImportPreview, ImportError> {
    let now = app.clock.now();
    check_standing(options.standing, now)?;
    let (chosen, owners, plans) = {
        let mut tx = app.db.read().await.context("database")?;
        let chosen = chosen_servers(&mut tx, options).await?;
        let owners = owner_accounts::find_owner_accounts(&mut tx)
            .await
            .context("database")?;
        let plans = plan_groups(&mut tx).await?;
        if let Some(plan) = options.default_plan
            && !plans.iter().any(|(id, ..)| *id == plan)
        {
            return Err(ImportError::NoSuchPlan(plan));
        }
        (chosen, owners, plans)
    };

    // plex.tv first, all of it, before anything is decided or written.
    let mut read: Vec<(OwnerAccountId, String, Vec<PlexFriend>, Vec<SharedServer>)> = Vec::new();
    let owner_ids: BTreeSet<OwnerAccountId> = chosen.iter().map(|c| c.owner).collect();
    for owner in owner_ids {
        let row = owners
            .iter()
            .find(|o| o.id == owner)
            .context("a chosen server's owner account exists")?;
        let token = app
            .cipher
            .decrypt(&row.token_enc)
            .map_err(|e| anyhow::anyhow!("opening the owner token: {e}"))?;
        let failed = |err: PlexError| ImportError::Plex {
            account: row.name.clone(),
            error: err.to_string(),
        };
        let key = owner_rate_key(owner);
        app.queue.throttle(&key).await;
        let users = app.plex.users(&token).await.map_err(failed)?;
        // Two calls: the accepted shares and the pending invites.
        app.queue.throttle(&key).await;
        app.queue.throttle(&key).await;
        let shares = app.plex.owned_shares(&token).await.map_err(failed)?;
        read.push((owner, row.name.clone(), users, shares));
    }

    let mut tx = app.db.begin().await.context("database")?;
    let mut people: Vec<WorkPerson> = Vec::new();
    let mut by_key: HashMap<String, usize> = HashMap::new();
    let mut counts: BTreeMap<ServerId, ServerCount> = chosen
        .iter()
        .map(|c| {
            (
                c.id,
                ServerCount {
                    name: c.name.clone(),
                    new: 0,
                    pending: 0,
                    known: 0,
                },
            )
        })
        .collect();
    let mut skipped: Vec<Skipped> = Vec::new();
    let mut skipped_keys: BTreeSet<String> = BTreeSet::new();
    let mut already_keys: BTreeSet<String> = BTreeSet::new();
    let mut home = 0;
    for (owner, _, users, shares) in &read {
        let household: HashMap<u64, &PlexFriend> = users
            .iter()
            .filter(|u| u.home || u.restricted)
            .map(|u| (u.id, u))
            .collect();
        home += household.len();
        let friends: HashMap<u64, &PlexFriend> = users.iter().map(|u| (u.id, u)).collect();
        for share in shares.iter().filter(|s| !s.left) {
            let Some(server) = chosen
                .iter()
                .find(|c| c.owner == *owner && c.machine_id == share.machine_identifier)
            else {
                continue;
            };
            if share
                .invited_id
                .is_some_and(|id| household.contains_key(&id))
            {
                continue;
            }
            let friend = share.invited_id.and_then(|id| friends.get(&id));
            let email = share
                .invited_email
                .clone()
                .or_else(|| friend.and_then(|f| f.email.clone()));
            let username = share
                .invited_username
                .clone()
                .or_else(|| friend.map(|f| f.username.clone()))
                .filter(|u| !u.trim().is_empty());
            let Some(login) = email.clone().or_else(|| username.clone()) else {
                skipped.push(Skipped {
                    who: format!("plex.tv share {}", share.id),
                    why: "plex.tv names no email or username".into(),
                });
                continue;
            };
            let Ok(email) = PlexEmail::parse(&login) else {
                skipped.push(Skipped {
                    who: login,
                    why: "not an email or username Usher can read".into(),
                });
                continue;
            };
            let username = username.and_then(|u| PlexEmail::parse(&u).ok());
            let plex_user_id = share.invited_id.and_then(|id| i64::try_from(id).ok());
            let key = plex_user_id
                .map_or_else(|| format!("e:{}", email.as_str()), |id| format!("i:{id}"));
            let count = counts
                .get_mut(&server.id)
                .context("a chosen server is counted")?;
            if skipped_keys.contains(&key) {
                continue;
            }
            if already_keys.contains(&key) {
                count.known += 1;
                continue;
            }
            let work_share = WorkShare {
                server: server.id,
                plex_share_id: i64::try_from(share.id.0).ok(),
                accepted: share.state == PlexShareState::Accepted,
                libraries: if share.all_libraries {
                    Vec::new()
                } else {
                    share
                        .library_ids
                        .iter()
                        .filter_map(|l| i64::try_from(l.0).ok())
                        .collect()
                },
            };
            if let Some(index) = by_key.get(&key) {
                let person = &mut people[*index];
                if !person.shares.iter().any(|s| s.server == server.id) {
                    count.new += 1;
                    count.pending += usize::from(!work_share.accepted);
                    person.shares.push(work_share);
                }
                continue;
            }
            let account = PlexAccountRef {
                email: email.clone(),
                plex_user_id,
                username: username.clone(),
            };
            match identities::find_conflict(&mut tx, &account, None)
                .await
                .context("database")?
            {
                Some(identities::Conflict::Retired) => {
                    skipped.push(Skipped {
                        who: email.as_str().to_owned(),
                        why: "retired or banned in Usher: never imported".into(),
                    });
                    skipped_keys.insert(key);
                    continue;
                }
                Some(_) => {
                    count.known += 1;
                    already_keys.insert(key);
                    continue;
                }
                None => {}
            }
            count.new += 1;
            count.pending += usize::from(!work_share.accepted);
            by_key.insert(key, people.len());
            people.push(WorkPerson {
                name: username
                    .as_ref()
                    .map_or_else(|| email.as_str().to_owned(), |u| u.as_str().to_owned()),
                email: email.as_str().to_owned(),
                username: username.map(|u| u.as_str().to_owned()),
                plex_user_id,
                plan: None,
                discord_id: None,
                contact_email: None,
                note: None,
                standing: None,
                shares: vec![work_share],
                invite_on: None,
            });
        }
    }

    // Plans: the active plan whose groups are exactly the person's, else the default.
    for person in &mut people {
        let mut groups = BTreeSet::new();
        for share in &person.shares {
            let server = chosen
                .iter()
                .find(|c| c.id == share.server)
                .context("a share's server is chosen")?;
            if share.libraries.is_empty() {
                groups.extend(server.all_groups.iter().copied());
            } else {
                groups.extend(share.libraries.iter().filter_map(|l| server.groups.get(l)));
            }
        }
        person.plan = plans
            .iter()
            .find(|(_, _, plan_groups)| !groups.is_empty() && *plan_groups == groups)
            .map(|(id, ..)| *id)
            .or(options.default_plan);
    }

    // Seats: everyone plex.tv seats, less those who are Usher's once this import is in.
    let mut seats_after = Vec::new();
    let mut seat_counts = Vec::new();
    for (owner, name, users, shares) in &read {
        let mut ours = imports::find_seated_people(&mut tx, *owner)
            .await
            .context("database")?;
        for person in &people {
            let on_owner = person
                .shares
                .iter()
                .any(|s| chosen.iter().any(|c| c.id == s.server && c.owner == *owner));
            if on_owner {
                ours.push(imports::SeatedPerson {
                    plex_user_id: person.plex_user_id,
                    email_norm: PlexEmail::parse(&person.email).context("a parsed email")?,
                    plex_username: person.username.clone(),
                });
            }
        }
        let outside = seats::seats_outside(users, shares, &ours);
        let usher_people = i64::try_from(ours.len()).unwrap_or(i64::MAX);
        seats_after.push((*owner, outside));
        seat_counts.push(SeatCount {
            account: name.clone(),
            used: i64::from(outside) + usher_people,
            ceiling: app.settings.plex.seats_per_account,
        });
    }

    let plan_names: HashMap<PlanId, String> = plans
        .iter()
        .map(|(id, name, _)| (*id, name.clone()))
        .collect();
    let mut per_plan: BTreeMap<Option<String>, usize> = BTreeMap::new();
    for person in &people {
        *per_plan
            .entry(person.plan.and_then(|p| plan_names.get(&p).cloned()))
            .or_default() += 1;
    }
    let work = Work {
        standing: options.standing.into(),
        people,
        seats: seats_after,
    };
    let preview = ImportPreview {
        token: String::new(),
        new_people: work.people.len(),
        servers: counts.into_values().collect(),
        plans: per_plan.into_iter().collect(),
        first_names: work
            .people
            .iter()
            .take(FIRST_NAMES)
            .map(|p| p.name.clone())
            .collect(),
        without_plan: work
            .people
            .iter()
            .filter(|p| p.plan.is_none())
            .map(|p| p.name.clone())
            .collect(),
        skipped,
        already: already_keys.len(),
        home,
        seats: seat_counts,
    };
    store_preview(app, tx, actor, "plex", &work, preview, now).await
}

/// Stores the work of a preview and signs its confirmation.
pub(crate) async fn store_preview(
    app: &App,
    mut tx: Tx,
    actor: &Actor,
    source: &str,
    work: &Work,
    mut preview: ImportPreview,
    now: DateTime<Utc>,
) -> Result<ImportPreview, ImportError> {
    let expires = now + Duration::minutes(PREVIEW_MINUTES);
    let plan = serde_json::to_string(work).context("the import's work serialises")?;
    let people = i32::try_from(work.people.len()).unwrap_or(i32::MAX);
    let run = imports::insert_import_run(
        &mut tx,
        source,
        &actor.to_string(),
        &plan,
        people,
        now,
        expires,
    )
    .await
    .context("database")?;
    tx.commit().await.context("database")?;
    preview.token = app.signer.sign(PURPOSE, &run.to_string(), Some(expires));
    Ok(preview)
}

/// Step two: applies exactly the previewed work, in one transaction, reporting progress as it
/// goes. Refused while another import runs; a confirmation works once.
pub async fn confirm_import(
    app: &App,
    actor: &Actor,
    token: &str,
    progress: &(dyn Fn(ImportProgress) + Send + Sync),
) -> Result<ImportDone, ImportError> {
    let now = app.clock.now();
    let run: i64 = match app.signer.verify(PURPOSE, token, now) {
        Ok(payload) => payload.parse().map_err(|_| ImportError::BadToken)?,
        Err(crate::crypto::SignatureError::Expired) => return Err(ImportError::Stale),
        Err(_) => return Err(ImportError::BadToken),
    };
    {
        let mut tx = app.db.begin().await.context("database")?;
        imports::update_stale_runs_failed(&mut tx, now - Duration::minutes(STALE_RUN_MINUTES), now)
            .await
            .context("database")?;
        match imports::update_run_started(&mut tx, run, now).await {
            Ok(true) => {}
            Ok(false) => return Err(ImportError::Stale),
            Err(err) if is_unique_violation(&err) => return Err(ImportError::AnotherRunning),
            Err(err) => return Err(anyhow::Error::new(err).context("database").into()),
        }
        tx.commit().await.context("database")?;
    }
    let applied = apply(app, actor, run, progress).await;
    if applied.is_err() {
        let mut tx = app.db.begin().await.context("database")?;
        imports::update_run_finished(&mut tx, run, false, 0, app.clock.now())
            .await
            .context("database")?;
        tx.commit().await.context("database")?;
    }
    applied
}

async fn apply(
    app: &App,
    actor: &Actor,
    run: i64,
    progress: &(dyn Fn(ImportProgress) + Send + Sync),
) -> Result<ImportDone, ImportError> {
    let now = app.clock.now();
    let work: Work = {
        let mut tx = app.db.read().await.context("database")?;
        let plan = imports::find_run_plan(&mut tx, run)
            .await
            .context("database")?
            .context("a started run has its work")?;
        serde_json::from_str(&plan).context("reading the import's work")?
    };
    let total = work.people.len();
    // Reported before the write transaction opens: a door may show it (or look around) at once.
    progress(ImportProgress { done: 0, total });
    let mut tx = app.db.begin().await.context("database")?;
    let mut done = ImportDone {
        added: 0,
        shares: 0,
        skipped: 0,
    };
    for (index, person) in work.people.iter().enumerate() {
        if add_person(app, &mut tx, actor, run, &work, person, now).await? {
            done.added += 1;
            done.shares += person.shares.len();
        } else {
            done.skipped += 1;
        }
        if (index + 1) % 100 == 0 || index + 1 == total {
            progress(ImportProgress {
                done: index + 1,
                total,
            });
        }
    }
    for (owner, outside) in &work.seats {
        imports::update_owner_seats(&mut tx, *owner, *outside, now)
            .await
            .context("database")?;
    }
    let added = i32::try_from(done.added).unwrap_or(i32::MAX);
    imports::update_run_finished(&mut tx, run, true, added, now)
        .await
        .context("database")?;
    let detail = serde_json::json!({
        "run": run, "added": done.added, "shares": done.shares, "skipped": done.skipped,
    });
    audit::insert_audit(&mut tx, actor, None, "import.done", &detail, now)
        .await
        .context("database")?;
    app.queue.commit(tx).await.context("database")?;
    Ok(done)
}

/// Adds one previewed person; false when they became Usher's meanwhile (left as they are).
async fn add_person(
    app: &App,
    tx: &mut Tx,
    actor: &Actor,
    run: i64,
    work: &Work,
    person: &WorkPerson,
    now: DateTime<Utc>,
) -> Result<bool, ImportError> {
    let email = PlexEmail::parse(&person.email).context("a previewed email parses")?;
    let username = person
        .username
        .as_deref()
        .map(PlexEmail::parse)
        .transpose()
        .context("a previewed username parses")?;
    let account = PlexAccountRef {
        email,
        plex_user_id: person.plex_user_id,
        username,
    };
    if identities::find_conflict(tx, &account, None)
        .await
        .context("database")?
        .is_some()
    {
        return Ok(false);
    }
    let discord_id = person
        .discord_id
        .map(|id| DiscordId::new(id).context("a previewed Discord id"))
        .transpose()?;
    if let Some(member) = discord_id
        && subscribers::find_id_by_discord(tx, member)
            .await
            .context("database")?
            .is_some()
    {
        return Ok(false);
    }
    let row = NewSubscriber {
        discord_id,
        display_name: &person.name,
        contact_email: person.contact_email.as_deref(),
        plan: person.plan,
        notes: person.note.as_deref().unwrap_or_default(),
    };
    let subscriber = subscribers::insert_new_subscriber(tx, &row, now)
        .await
        .context("database")?;
    let identity = subscribers::insert_identity(tx, subscriber, &account.keys(), now)
        .await
        .context("database")?;
    for share in &person.shares {
        let state = if share.accepted {
            ShareState::Accepted
        } else {
            ShareState::Pending
        };
        let libraries = share
            .libraries
            .iter()
            .map(i64::to_string)
            .collect::<Vec<_>>()
            .join(",");
        imports::insert_imported_share(
            tx,
            subscriber,
            share.server,
            identity,
            share.plex_share_id,
            state,
            &libraries,
            now,
        )
        .await
        .context("database")?;
    }
    if let (Some(server), Some(_)) = (person.invite_on, person.plan) {
        let owner = servers::find_server_owner(tx, server)
            .await
            .context("database")?
            .context("a previewed server exists")?
            .owner_account_id;
        let share =
            shares::insert_share(tx, subscriber, server, identity, ShareState::Pending, now)
                .await
                .context("database")?;
        app.queue
            .enqueue(tx, &InviteShare::new(share, owner, "import"))
            .await
            .context("database")?;
    }
    let standing = person.standing.unwrap_or(work.standing);
    match (standing, person.plan) {
        (WorkStanding::Permanent, plan) => {
            subscribers::update_permanent(tx, subscriber, true, now)
                .await
                .context("database")?;
            if let Some(plan) = plan
                && person.shares.is_empty()
                && person.invite_on.is_none()
            {
                // Nothing fits: they wait for room, like anyone placed.
                let _placed =
                    access::place_and_invite(app, tx, subscriber, identity, plan, Vec::new(), None)
                        .await?;
            }
            if discord_id.is_some() {
                lifecycle::enqueue_role_sync(app, tx, subscriber, "imported-permanent").await?;
            }
        }
        (WorkStanding::Days(_) | WorkStanding::Until(_), Some(plan)) => {
            let manual = ManualPayment {
                subscriber,
                plan,
                coverage: match standing {
                    WorkStanding::Days(days) => Coverage::Days(days),
                    WorkStanding::Until(until) => Coverage::Until(until),
                    WorkStanding::Permanent | WorkStanding::Unpaid => {
                        unreachable!("handled above")
                    }
                },
                transaction: Some(format!("import-{run}-{subscriber}")),
                amount: None,
                note: person.note.clone(),
                reference: Some("import".into()),
            };
            payments::record_manual_payment_in(app, tx, actor, &manual)
                .await
                .map_err(|err| match err {
                    ManualPaymentError::Unexpected(err) => ImportError::Unexpected(err),
                    other => ImportError::Refused {
                        who: person.name.clone(),
                        error: other.to_string(),
                    },
                })?;
        }
        // No plan, or no paid time: no payment; they keep the access they have until an admin
        // gives them a plan or records one.
        (WorkStanding::Days(_) | WorkStanding::Until(_), None) | (WorkStanding::Unpaid, _) => {}
    }
    Ok(true)
}

fn check_standing(standing: Standing, now: DateTime<Utc>) -> Result<(), ImportError> {
    match standing {
        Standing::Days(days) if days < 1 => Err(ImportError::DaysNotPositive(days)),
        Standing::Until(until) if until <= now => Err(ImportError::UntilInPast(
            crate::services::lifecycle::human_date(until),
        )),
        _ => Ok(()),
    }
}

/// The live servers of active owner accounts the options choose, with their libraries' groups.
async fn chosen_servers(
    tx: &mut Tx,
    options: &PlexImportOptions,
) -> Result<Vec<Chosen>, ImportError> {
    let mut chosen = Vec::new();
    for row in servers::find_servers(tx).await.context("database")? {
        if row.retired
            || row.owner_state != OwnerAccountState::Active
            || options.owner.is_some_and(|o| o != row.owner_account_id)
            || options.server.is_some_and(|s| s != row.id)
        {
            continue;
        }
        let libraries = servers::find_libraries(tx, row.id)
            .await
            .context("database")?;
        let groups: HashMap<i64, LibraryGroupId> = libraries
            .iter()
            .filter_map(|l| l.group_id.map(|g| (l.section_id, g)))
            .collect();
        let all_groups = groups.values().copied().collect();
        chosen.push(Chosen {
            id: row.id,
            owner: row.owner_account_id,
            name: row.name,
            machine_id: row.machine_id,
            groups,
            all_groups,
        });
    }
    if chosen.is_empty() {
        return Err(ImportError::NoServers(
            match (options.owner, options.server) {
                (_, Some(_)) => "that server is not a live server of an active owner account",
                (Some(_), None) => "that owner account has no live servers",
                (None, None) => "add an owner Plex account and its servers first",
            }
            .into(),
        ));
    }
    Ok(chosen)
}

/// Active, non-trial plans with their groups, lowest id first.
async fn plan_groups(
    tx: &mut Tx,
) -> Result<Vec<(PlanId, String, BTreeSet<LibraryGroupId>)>, ImportError> {
    let mut plans = Vec::new();
    let mut rows = servers::find_plans(tx).await.context("database")?;
    rows.sort_by_key(|p| p.id);
    for plan in rows.into_iter().filter(|p| p.active) {
        if servers::find_plan_trial(tx, plan.id)
            .await
            .context("database")?
            .unwrap_or(true)
        {
            continue;
        }
        let groups = servers::find_plan_groups(tx, plan.id)
            .await
            .context("database")?
            .into_iter()
            .collect();
        plans.push((plan.id, plan.name, groups));
    }
    Ok(plans)
}

impl ImportPreview {
    /// The preview as plain lines (both doors show them): per server, per plan, the first names,
    /// people without a plan, people left out and why, Home users, seats.
    pub fn lines(&self) -> Vec<String> {
        let mut lines = Vec::new();
        for server in &self.servers {
            lines.push(format!(
                "{}: {} new ({} pending), {} in Usher already",
                server.name, server.new, server.pending, server.known
            ));
        }
        for (plan, count) in &self.plans {
            lines.push(format!(
                "plan {}: {count}",
                plan.as_deref().unwrap_or("(none)")
            ));
        }
        if !self.first_names.is_empty() {
            let more = self.new_people.saturating_sub(self.first_names.len());
            lines.push(format!(
                "first: {}{}",
                self.first_names.join(", "),
                if more > 0 {
                    format!(" and {more} more")
                } else {
                    String::new()
                }
            ));
        }
        if !self.without_plan.is_empty() {
            lines.push(format!(
                "without a plan ({}): {}",
                self.without_plan.len(),
                self.without_plan.join(", ")
            ));
        }
        for skipped in &self.skipped {
            lines.push(format!("skipped {}: {}", skipped.who, skipped.why));
        }
        lines.push(format!(
            "Plex Home and managed users (seats, not imported): {}",
            self.home
        ));
        for seats in &self.seats {
            lines.push(format!(
                "seats on {}: {}/{}",
                seats.account, seats.used, seats.ceiling
            ));
        }
        lines
    }
}
