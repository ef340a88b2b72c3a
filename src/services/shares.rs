//! Reading the catalogue into placement's terms, and the periodic reconciles. The pure rules live
//! in [`crate::services::placement`]; this module only loads what they need.

use std::collections::{BTreeMap, BTreeSet};

use crate::domain::{LibraryGroupId, OwnerAccountId, OwnerAccountState, PlanId, ServerId};
use crate::jobs::{Queue, ReconcileServer};
use crate::services::placement::{PlanNeeds, ServerCandidate};
use crate::store::{Tx, imports, servers};

/// Every server as a placement candidate, with its live user count, groups and the seats left on
/// its owner account (`seats_per_account` less the seats outside Usher plex.tv reported and the
/// people Usher shares the account's servers with; the owner alone until plex.tv was read).
pub async fn load_candidates(
    tx: &mut Tx,
    seats_per_account: u32,
) -> Result<Vec<ServerCandidate>, sqlx::Error> {
    let rows = servers::find_servers(tx).await?;
    let seats: BTreeMap<OwnerAccountId, i64> = imports::find_seats(tx)
        .await?
        .into_iter()
        .map(|row| (row.id, seats_used(&row)))
        .collect();
    let mut groups: BTreeMap<ServerId, BTreeSet<LibraryGroupId>> = BTreeMap::new();
    for (server, group) in servers::find_server_groups(tx).await? {
        groups.entry(server).or_default().insert(group);
    }
    Ok(rows
        .into_iter()
        .map(|row| ServerCandidate {
            id: row.id,
            owner: row.owner_account_id,
            owner_usable: row.owner_state == OwnerAccountState::Active && !row.retired,
            enabled: row.enabled,
            allow_new_subscriptions: row.allow_new_subscriptions,
            allow_trials: row.allow_trials,
            max_users: u32::try_from(row.max_users).unwrap_or(0),
            users: u32::try_from(row.users).unwrap_or(u32::MAX),
            account_seats_free: u32::try_from(
                i64::from(seats_per_account)
                    - seats.get(&row.owner_account_id).copied().unwrap_or(1),
            )
            .unwrap_or(0),
            groups: groups.remove(&row.id).unwrap_or_default(),
            location: row.location,
        })
        .collect())
}

/// The seats an owner account uses on plex.tv: those outside Usher (the owner alone until plex.tv
/// was read) and the people Usher shares its servers with.
pub fn seats_used(row: &imports::SeatRow) -> i64 {
    i64::from(row.seats_outside.unwrap_or(1)) + row.usher_people
}

/// What a plan needs of a server.
pub async fn plan_needs(tx: &mut Tx, plan: PlanId) -> Result<Option<PlanNeeds>, sqlx::Error> {
    let Some(trial) = servers::find_plan_trial(tx, plan).await? else {
        return Ok(None);
    };
    let groups = servers::find_plan_groups(tx, plan)
        .await?
        .into_iter()
        .collect();
    Ok(Some(PlanNeeds {
        plan,
        groups,
        trial,
    }))
}

/// Enqueues a reconcile of every server of an active owner account, once per `period` label
/// (e.g. the hour), so ticks that overlap or repeat add nothing.
pub async fn enqueue_reconciles(
    queue: &Queue,
    tx: &mut Tx,
    period: &str,
) -> Result<usize, sqlx::Error> {
    let mut added = 0;
    for server in servers::find_servers(tx).await? {
        if server.owner_state != OwnerAccountState::Active {
            continue;
        }
        let job = ReconcileServer::new(server.id, server.owner_account_id, period);
        if queue.enqueue(tx, &job).await? {
            added += 1;
        }
    }
    Ok(added)
}

/// The rate-limit key of an owner account's plex.tv calls.
pub fn owner_rate_key(owner: OwnerAccountId) -> String {
    format!("plex-owner:{owner}")
}
