//! Seats on plex.tv: how many people each owner Plex account shares with, as plex.tv counts them.
//!
//! Plex lets one owner account share with about 100 people, the owner and Plex Home members
//! included, and friends are account-wide: a person already on one of the account's servers
//! costs no new seat on another (external-apis.md 1.5b; README "Seats"). Used seats are what
//! plex.tv reports (the owner, Home members, friends, everyone with a share or a pending invite),
//! read by an import and by the hourly reconcile. Usher stores the part that is not its own shares
//! (`seats_outside`) and adds the people it shares the account's servers with at the moment it
//! places someone, so its own invites count at once, between two reads of plex.tv.

use std::collections::HashSet;

use anyhow::anyhow;
use chrono::Duration;

use crate::app::App;
use crate::domain::{OwnerAccountId, OwnerAccountState, PlexEmail};
use crate::integrations::plex::{PlexFriend, SharedServer};
use crate::services::StepError;
use crate::services::shares::{owner_rate_key, seats_used};
use crate::store::imports::{self, SeatedPerson};
use crate::store::{Tx, owner_accounts};

/// How old a seat count may be before a reconcile reads plex.tv's again.
const FRESH_MINUTES: i64 = 50;

/// One person holding a seat, as plex.tv names them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SeatHolder {
    /// By plex.tv account id.
    Id(u64),
    /// By email or username, normalised (plex.tv gave no id).
    Login(String),
}

/// Everyone plex.tv seats on an owner account besides the owner: friends and Home members (from
/// `GET /api/users`) and everyone with a share or pending invite of its servers (users who left
/// hold none).
pub fn seat_holders(users: &[PlexFriend], shares: &[SharedServer]) -> HashSet<SeatHolder> {
    let mut holders: HashSet<SeatHolder> = users.iter().map(|u| SeatHolder::Id(u.id)).collect();
    for share in shares.iter().filter(|s| !s.left) {
        let holder = match share.invited_id {
            Some(id) => SeatHolder::Id(id),
            None => match share
                .invited_email
                .as_deref()
                .or(share.invited_username.as_deref())
            {
                Some(login) => SeatHolder::Login(login.trim().to_lowercase()),
                None => continue,
            },
        };
        holders.insert(holder);
    }
    holders
}

/// Whether a seat holder is one of `people` (Usher's), by plex.tv id, email or username.
fn is_ours(
    holder: &SeatHolder,
    logins: &[(Option<String>, Option<String>, Option<u64>)],
    people: &[SeatedPerson],
) -> bool {
    let (emails, id) = match holder {
        SeatHolder::Id(id) => (
            logins
                .iter()
                .filter(|(.., l)| *l == Some(*id))
                .flat_map(|(e, u, _)| [e.clone(), u.clone()])
                .flatten()
                .collect::<Vec<_>>(),
            Some(*id),
        ),
        SeatHolder::Login(login) => (vec![login.clone()], None),
    };
    people.iter().any(|p| {
        id.is_some_and(|id| p.plex_user_id.and_then(|o| u64::try_from(o).ok()) == Some(id))
            || emails.iter().any(|e| {
                PlexEmail::parse(e).is_ok_and(|e| e == p.email_norm)
                    || p.plex_username.as_deref() == Some(e.to_lowercase().as_str())
            })
    })
}

/// The seats on the account that are not Usher's: the owner, plus every holder not among
/// `people` (the people Usher shares the account's servers with, after the caller's changes).
pub fn seats_outside(
    users: &[PlexFriend],
    shares: &[SharedServer],
    people: &[SeatedPerson],
) -> i32 {
    let logins: Vec<(Option<String>, Option<String>, Option<u64>)> = users
        .iter()
        .map(|u| (u.email.clone(), Some(u.username.clone()), Some(u.id)))
        .chain(shares.iter().map(|s| {
            (
                s.invited_email.clone(),
                s.invited_username.clone(),
                s.invited_id,
            )
        }))
        .collect();
    let outside = seat_holders(users, shares)
        .iter()
        .filter(|h| !is_ours(h, &logins, people))
        .count();
    i32::try_from(outside + 1).unwrap_or(i32::MAX)
}

/// Reads an owner account's seats on plex.tv (friends and Home, shares and pending invites,
/// through the account's rate limit) and stores them. Skipped when read within the last
/// 50 minutes unless `force`.
pub async fn refresh_seats(app: &App, owner: OwnerAccountId, force: bool) -> Result<(), StepError> {
    let now = app.clock.now();
    let token = {
        let mut tx = app.db.read().await?;
        let row = owner_accounts::find_owner_account(&mut tx, owner)
            .await?
            .ok_or_else(|| StepError::Impossible(anyhow!("owner account {owner} is gone")))?;
        if row.state != OwnerAccountState::Active {
            return Ok(());
        }
        let fresh = imports::find_seats(&mut tx)
            .await?
            .into_iter()
            .find(|s| s.id == owner)
            .and_then(|s| s.seats_checked_at)
            .is_some_and(|at| now - at < Duration::minutes(FRESH_MINUTES));
        if fresh && !force {
            return Ok(());
        }
        app.cipher
            .decrypt(&row.token_enc)
            .map_err(|e| StepError::Impossible(anyhow!("opening the owner token: {e}")))?
    };
    let key = owner_rate_key(owner);
    app.queue.throttle(&key).await;
    let users = app.plex.users(&token).await?;
    // Two calls: the accepted shares and the pending invites.
    app.queue.throttle(&key).await;
    app.queue.throttle(&key).await;
    let shares = app.plex.owned_shares(&token).await?;
    let mut tx = app.db.begin().await?;
    store_seats(&mut tx, owner, &users, &shares, now).await?;
    tx.commit().await?;
    Ok(())
}

/// Stores an account's seats from what plex.tv listed, against Usher's shares as they are in `tx`.
pub async fn store_seats(
    tx: &mut Tx,
    owner: OwnerAccountId,
    users: &[PlexFriend],
    shares: &[SharedServer],
    now: chrono::DateTime<chrono::Utc>,
) -> Result<i32, sqlx::Error> {
    let people = imports::find_seated_people(tx, owner).await?;
    let outside = seats_outside(users, shares, &people);
    imports::update_owner_seats(tx, owner, outside, now).await?;
    Ok(outside)
}

/// Seats used on one owner account, as placement counts them now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seats {
    /// The account.
    pub owner: OwnerAccountId,
    /// Seats used (outside Usher + Usher's people).
    pub used: i64,
    /// The ceiling (`plex.seats_per_account`).
    pub ceiling: u32,
    /// Whether plex.tv was ever read for it.
    pub checked: bool,
}

/// Every owner account's seats.
pub async fn all_seats(app: &App) -> anyhow::Result<Vec<Seats>> {
    let mut tx = app.db.read().await?;
    let rows = imports::find_seats(&mut tx).await?;
    Ok(rows
        .iter()
        .map(|row| Seats {
            owner: row.id,
            used: seats_used(row),
            ceiling: app.settings.plex.seats_per_account,
            checked: row.seats_checked_at.is_some(),
        })
        .collect())
}
