//! Reading the catalogue into placement's terms, and enqueueing share jobs. The pure rules live in
//! [`crate::services::placement`]; this module only loads what they need.

use std::collections::{BTreeMap, BTreeSet};

use crate::domain::{LibraryGroupId, OwnerAccountId, OwnerAccountState, PlanId, ServerId, ShareId};
use crate::jobs::{NewJob, Queue};
use crate::services::placement::{PlanNeeds, ServerCandidate};
use crate::store::{Tx, servers};

/// Every server as a placement candidate, with its live user count and groups.
pub async fn load_candidates(tx: &mut Tx) -> Result<Vec<ServerCandidate>, sqlx::Error> {
    let rows = servers::find_servers(tx).await?;
    let mut groups: BTreeMap<i64, BTreeSet<LibraryGroupId>> = BTreeMap::new();
    for (server, group) in servers::find_server_groups(tx).await? {
        groups
            .entry(server)
            .or_default()
            .insert(LibraryGroupId::new(group));
    }
    Ok(rows
        .into_iter()
        .map(|row| ServerCandidate {
            id: ServerId::new(row.id),
            owner: OwnerAccountId::new(row.owner_account_id),
            owner_usable: row.owner_state == OwnerAccountState::Active.as_str(),
            enabled: row.enabled,
            allow_new_subscriptions: row.allow_new_subscriptions,
            allow_trials: row.allow_trials,
            max_users: u32::try_from(row.max_users).unwrap_or(0),
            users: u32::try_from(row.users).unwrap_or(u32::MAX),
            groups: groups.remove(&row.id).unwrap_or_default(),
            location: row.location,
        })
        .collect())
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

/// Job kind: send the plex.tv invite for a share.
pub const INVITE: &str = "plex.invite";
/// Job kind: bring a share's libraries in line with the plan.
pub const UPDATE: &str = "plex.update_share";
/// Job kind: delete a share on plex.tv.
pub const REMOVE: &str = "plex.remove_share";
/// Job kind: remove a lapsed subscriber's library access (the paid time ended), keeping the share
/// row and its place on the server.
pub const SUSPEND: &str = "plex.suspend_share";
/// Job kind: give up a suspended share's place after the grace days (mark it removed).
pub const RELEASE: &str = "plex.release_share";

/// Job kind: compare a server's shares with plex.tv's and record drift.
pub const RECONCILE: &str = "plex.reconcile";

/// Arguments of the reconcile job.
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
pub struct ReconcileJob {
    /// The server.
    pub server: ServerId,
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
        if server.owner_state != OwnerAccountState::Active.as_str() {
            continue;
        }
        let id = ServerId::new(server.id);
        let job = NewJob::new(
            RECONCILE,
            &ReconcileJob { server: id },
            format!("{RECONCILE}:{id}:{period}"),
        )
        .rate_limited_by(owner_rate_key(OwnerAccountId::new(server.owner_account_id)));
        if queue.enqueue(tx, &job).await? {
            added += 1;
        }
    }
    Ok(added)
}

/// Arguments of every share job.
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
pub struct ShareJob {
    /// The share.
    pub share: ShareId,
}

/// Enqueues a share job in the caller's transaction, rate-limited by the server's owner account.
/// `generation` separates repeated updates of one share (e.g. the plan's change time).
pub async fn enqueue_share_job(
    queue: &Queue,
    tx: &mut Tx,
    kind: &'static str,
    share: ShareId,
    owner: OwnerAccountId,
    generation: &str,
) -> Result<bool, sqlx::Error> {
    let job = NewJob::new(
        kind,
        &ShareJob { share },
        format!("{kind}:{share}:{generation}"),
    )
    .rate_limited_by(owner_rate_key(owner));
    queue.enqueue(tx, &job).await
}

/// The rate-limit key of an owner account's plex.tv calls.
pub fn owner_rate_key(owner: OwnerAccountId) -> String {
    format!("plex-owner:{owner}")
}
