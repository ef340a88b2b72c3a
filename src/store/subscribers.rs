//! Subscribers and their Plex identities.
//!
//! Rule it keeps (enforced by the schema too): a normalised Plex email is linked at most once,
//! ever; a retired or banned identity never becomes active again; a subscriber has at most one
//! active identity.

use chrono::{DateTime, Utc};

use crate::domain::{
    DiscordId, IdentityState, PlanId, PlexEmail, PlexIdentityId, RetireReason, ShareState,
    SubscriberId,
};
use crate::sql;
use crate::store::Tx;

/// Creates a subscriber for a Discord user.
pub async fn insert_subscriber(
    tx: &mut Tx,
    discord_id: DiscordId,
    display_name: &str,
    now: DateTime<Utc>,
) -> Result<SubscriberId, sqlx::Error> {
    let new = NewSubscriber {
        discord_id: Some(discord_id),
        display_name,
        contact_email: None,
        plan: None,
        notes: "",
    };
    insert_new_subscriber(tx, &new, now).await
}

/// A subscriber to create.
#[derive(Debug, Clone)]
pub struct NewSubscriber<'a> {
    /// Their Discord member; `None` while unclaimed (imported).
    pub discord_id: Option<DiscordId>,
    /// Display name.
    pub display_name: &'a str,
    /// Where receipts and reminders are emailed.
    pub contact_email: Option<&'a str>,
    /// Their plan.
    pub plan: Option<PlanId>,
    /// Admin notes.
    pub notes: &'a str,
}

/// Creates a subscriber. Fails with a unique violation when the Discord member is one already.
pub async fn insert_new_subscriber(
    tx: &mut Tx,
    new: &NewSubscriber<'_>,
    now: DateTime<Utc>,
) -> Result<SubscriberId, sqlx::Error> {
    const SQL: &str = "INSERT INTO subscriber (discord_id, display_name, contact_email, plan_id, notes, \
                       created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $6) RETURNING id";
    sql!(tx, query_scalar(SQL), new.discord_id, new.display_name, new.contact_email, new.plan,
        new.notes, now => fetch_one)
}

/// Attaches a Discord member to an unclaimed subscriber. False when the subscriber was claimed
/// already; a unique violation when the member is another subscriber.
pub async fn update_claimed(
    tx: &mut Tx,
    subscriber: SubscriberId,
    member: DiscordId,
    display_name: &str,
    now: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    const SQL: &str = "UPDATE subscriber SET discord_id = $1, display_name = $2, updated_at = $3 \
                       WHERE id = $4 AND discord_id IS NULL";
    Ok(sql!(tx, query(SQL), member, display_name, now, subscriber => execute)? == 1)
}

/// Sets (or clears) the contact email.
pub async fn update_contact_email(
    tx: &mut Tx,
    subscriber: SubscriberId,
    email: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    const SQL: &str = "UPDATE subscriber SET contact_email = $1, updated_at = $2 WHERE id = $3";
    sql!(tx, query(SQL), email, now, subscriber => execute).map(drop)
}

/// A Plex identity as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct IdentityRow {
    /// Row id.
    pub id: PlexIdentityId,
    /// Owner of the identity.
    pub subscriber_id: SubscriberId,
    /// Normalised email or username.
    pub email_norm: PlexEmail,
    /// plex.tv user id, when known.
    pub plex_user_id: Option<i64>,
    /// plex.tv username (normalised), when known.
    pub plex_username: Option<String>,
    /// Its state.
    pub state: IdentityState,
    /// Why it stopped being active.
    pub retire_reason: Option<RetireReason>,
}

/// The plex.tv account behind an identity, as far as Usher knows it.
#[derive(Debug, Clone, Copy)]
pub struct AccountKeys<'a> {
    /// The email (or username) the account was given as.
    pub email: &'a PlexEmail,
    /// Its plex.tv id, when known.
    pub plex_user_id: Option<i64>,
    /// Its plex.tv username, normalised, when known.
    pub username: Option<&'a str>,
}

impl<'a> AccountKeys<'a> {
    /// An account known only by its email (or username).
    pub fn email(email: &'a PlexEmail) -> Self {
        Self {
            email,
            plex_user_id: None,
            username: None,
        }
    }
}

/// Links a Plex identity to a subscriber as their active one. Fails with a unique violation when
/// the email, plex.tv id or username was ever linked before (to anyone, in any state) or the
/// subscriber already has an active identity.
pub async fn insert_identity(
    tx: &mut Tx,
    subscriber: SubscriberId,
    account: &AccountKeys<'_>,
    now: DateTime<Utc>,
) -> Result<PlexIdentityId, sqlx::Error> {
    const SQL: &str = "INSERT INTO plex_identity (subscriber_id, email_norm, plex_user_id, plex_username, state, created_at) \
                       VALUES ($1, $2, $3, $4, 'active', $5) RETURNING id";
    sql!(tx, query_scalar(SQL), subscriber, account.email, account.plex_user_id, account.username, now => fetch_one)
}

/// Every identity ever linked that is this plex.tv account: the same email or username (either
/// spelled as the other: a username given where an email was expected), or the same plex.tv id.
pub async fn find_identities_of_account(
    tx: &mut Tx,
    account: &AccountKeys<'_>,
) -> Result<Vec<IdentityRow>, sqlx::Error> {
    const SQL: &str = "SELECT id, subscriber_id, email_norm, plex_user_id, plex_username, state, retire_reason \
                       FROM plex_identity WHERE email_norm IN ($1, $2) OR plex_username IN ($1, $2) \
                       OR plex_user_id = $3 ORDER BY id";
    sql!(tx, query_as(SQL), account.email, account.username, account.plex_user_id => fetch_all)
}

/// The identity holding a plex.tv id, if any.
pub async fn find_identity_by_plex_id(
    tx: &mut Tx,
    plex_user_id: i64,
) -> Result<Option<IdentityRow>, sqlx::Error> {
    const SQL: &str = "SELECT id, subscriber_id, email_norm, plex_user_id, plex_username, state, retire_reason \
                       FROM plex_identity WHERE plex_user_id = $1";
    sql!(tx, query_as(SQL), plex_user_id => fetch_optional)
}

/// Records the plex.tv id and username Usher learned for an identity (the invite's answer, the
/// share lists); what is known already stays. Fails with a unique violation when another
/// identity holds that id or username.
pub async fn update_identity_account(
    tx: &mut Tx,
    id: PlexIdentityId,
    plex_user_id: i64,
    username: Option<&str>,
) -> Result<(), sqlx::Error> {
    const SQL: &str = "UPDATE plex_identity SET plex_user_id = COALESCE(plex_user_id, $1), \
                       plex_username = COALESCE(plex_username, $2) WHERE id = $3";
    sql!(tx, query(SQL), plex_user_id, username, id => execute).map(drop)
}

/// Retires an active identity for good. False when it was not active.
pub async fn update_identity_retired(
    tx: &mut Tx,
    id: PlexIdentityId,
    reason: RetireReason,
    now: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    const SQL: &str = "UPDATE plex_identity SET state = $1, retire_reason = $2, retired_at = $3 \
                       WHERE id = $4 AND state = 'active'";
    let state = match reason {
        RetireReason::Changed => IdentityState::Retired,
        RetireReason::Banned => IdentityState::Banned,
        RetireReason::Refused => IdentityState::Refused,
    };
    let n = sql!(tx, query(SQL), state, reason, now, id => execute)?;
    Ok(n == 1)
}

/// Finds the identity ever linked under this email, in any state.
pub async fn find_identity_by_email(
    tx: &mut Tx,
    email: &PlexEmail,
) -> Result<Option<IdentityRow>, sqlx::Error> {
    const SQL: &str = "SELECT id, subscriber_id, email_norm, plex_user_id, plex_username, state, retire_reason \
                       FROM plex_identity WHERE email_norm = $1";
    sql!(tx, query_as(SQL), email => fetch_optional)
}

/// Finds a subscriber's active identity.
pub async fn find_active_identity(
    tx: &mut Tx,
    subscriber: SubscriberId,
) -> Result<Option<IdentityRow>, sqlx::Error> {
    const SQL: &str = "SELECT id, subscriber_id, email_norm, plex_user_id, plex_username, state, retire_reason \
                       FROM plex_identity WHERE subscriber_id = $1 AND state = 'active'";
    sql!(tx, query_as(SQL), subscriber => fetch_optional)
}

/// Sets the plan a subscriber is on.
pub async fn update_subscriber_plan(
    tx: &mut Tx,
    subscriber: SubscriberId,
    plan: Option<PlanId>,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    const SQL: &str = "UPDATE subscriber SET plan_id = $1, updated_at = $2 WHERE id = $3";
    sql!(tx, query(SQL), plan, now, subscriber => execute).map(drop)
}

/// A subscriber as the account-change and placement flows need it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SubscriberRow {
    /// Row id.
    pub id: SubscriberId,
    /// Discord id; `None` while unclaimed (imported).
    pub discord_id: Option<DiscordId>,
    /// Display name.
    pub display_name: String,
    /// Plan.
    pub plan_id: Option<PlanId>,
    /// Flagged for a Plex account change.
    pub requires_plex_change: bool,
    /// Chosen location.
    pub preferred_location: Option<String>,
}

/// One subscriber.
pub async fn find_subscriber(
    tx: &mut Tx,
    id: SubscriberId,
) -> Result<Option<SubscriberRow>, sqlx::Error> {
    const SQL: &str = "SELECT id, discord_id, display_name, plan_id, requires_plex_change, preferred_location FROM subscriber WHERE id = $1";
    sql!(tx, query_as(SQL), id => fetch_optional)
}

/// Sets or clears the "requires Plex account change" flag. False when nothing changed.
pub async fn update_flag(
    tx: &mut Tx,
    id: SubscriberId,
    flagged: bool,
    now: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    const SQL: &str = "UPDATE subscriber SET requires_plex_change = $1, \
                       flagged_at = CASE WHEN $1 THEN $2 ELSE NULL END, updated_at = $2 \
                       WHERE id = $3 AND requires_plex_change <> $1";
    let n = sql!(tx, query(SQL), flagged, now, id => execute)?;
    Ok(n == 1)
}

/// Everything `/account` and `/admin user show` display about one subscriber.
#[derive(Debug, Clone, sqlx::FromRow)]
#[allow(clippy::struct_excessive_bools)] // independent facts, shown side by side
pub struct StatusRow {
    /// Row id.
    pub id: SubscriberId,
    /// Discord id; `None` while unclaimed.
    pub discord_id: Option<DiscordId>,
    /// Display name.
    pub display_name: String,
    /// Contact email.
    pub contact_email: Option<String>,
    /// Active Plex identity's email.
    pub plex_email: Option<PlexEmail>,
    /// Plan name.
    pub plan: Option<String>,
    /// Server of the newest live share on an active owner account's server.
    pub server: Option<String>,
    /// That share's state (`pending` or `accepted`).
    pub share_state: Option<ShareState>,
    /// End of the latest applied paid interval.
    pub paid_until: Option<DateTime<Utc>>,
    /// Now lies inside an applied paid interval.
    pub paid_now: bool,
    /// Never expires.
    pub permanent: bool,
    /// Flagged for a Plex account change.
    pub requires_plex_change: bool,
    /// A code is waiting (not expired).
    pub code_pending: bool,
    /// No server had room the last time a share was due.
    pub waiting_for_room: bool,
    /// Admin notes.
    pub notes: String,
}

/// The status query, up to its `WHERE`: `$2` is now. The share shown is the newest live one on a
/// usable server: a share on a banned owner's server, or one whose access was removed when the paid
/// time ended, is access already lost.
const STATUS_SQL: &str = "SELECT s.id, s.discord_id, s.display_name, s.contact_email, i.email_norm AS plex_email, \
    p.name AS plan, sv.name AS server, sh.state AS share_state, \
    (SELECT MAX(paid_to) FROM payment WHERE subscriber_id = s.id AND status = 'applied') AS paid_until, \
    EXISTS (SELECT 1 FROM payment WHERE subscriber_id = s.id AND status = 'applied' \
            AND paid_from <= $2 AND paid_to > $2) AS paid_now, \
    s.permanent, s.requires_plex_change, \
    EXISTS (SELECT 1 FROM proof_request r WHERE r.purpose = 'change' AND r.subscriber_id = s.id AND r.state = 'pending' \
            AND r.expires_at > $2) AS code_pending, \
    s.waiting_for_room_since IS NOT NULL AS waiting_for_room, \
    s.notes \
    FROM subscriber s \
    LEFT JOIN plex_identity i ON i.subscriber_id = s.id AND i.state = 'active' \
    LEFT JOIN plan p ON p.id = s.plan_id \
    LEFT JOIN share sh ON sh.id = (SELECT MAX(x.id) FROM share x JOIN server xs ON xs.id = x.server_id \
        JOIN owner_account xo ON xo.id = xs.owner_account_id \
        WHERE x.subscriber_id = s.id AND x.state <> 'removed' AND x.suspended_at IS NULL \
        AND xo.state = 'active') \
    LEFT JOIN server sv ON sv.id = sh.server_id ";

/// The status of the subscriber with this Discord id.
pub async fn find_status_by_discord(
    tx: &mut Tx,
    discord_id: DiscordId,
    now: DateTime<Utc>,
) -> Result<Option<StatusRow>, sqlx::Error> {
    let sql = format!("{STATUS_SQL} WHERE s.discord_id = $1");
    sql!(tx, query_as(&sql), discord_id, now => fetch_optional)
}

/// The status of one subscriber.
pub async fn find_status(
    tx: &mut Tx,
    id: SubscriberId,
    now: DateTime<Utc>,
) -> Result<Option<StatusRow>, sqlx::Error> {
    let sql = format!("{STATUS_SQL} WHERE s.id = $1");
    sql!(tx, query_as(&sql), id, now => fetch_optional)
}

/// Marks a subscriber as waiting for a server with room (from now, unless already waiting), or
/// clears the mark.
pub async fn update_waiting_for_room(
    tx: &mut Tx,
    id: SubscriberId,
    waiting: bool,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    const SQL: &str = "UPDATE subscriber SET waiting_for_room_since = \
                       CASE WHEN $1 THEN COALESCE(waiting_for_room_since, $2) ELSE NULL END WHERE id = $3";
    sql!(tx, query(SQL), waiting, now, id => execute).map(drop)
}

/// A subscriber waiting for a server with room who may be invited now.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct WaitingRow {
    /// Subscriber id.
    pub id: SubscriberId,
    /// Their plan.
    pub plan_id: PlanId,
    /// Chosen location.
    pub preferred_location: Option<String>,
    /// Their active Plex identity.
    pub identity_id: PlexIdentityId,
    /// Its email.
    pub email_norm: PlexEmail,
}

/// Subscribers waiting for room who are paid up (or permanent), not flagged, have a plan and an
/// active Plex identity and no live share on a usable server (a share on a banned owner's server
/// is access lost, on its way out); longest waiting first.
pub async fn find_waiting_for_room(
    tx: &mut Tx,
    now: DateTime<Utc>,
) -> Result<Vec<WaitingRow>, sqlx::Error> {
    const SQL: &str = "SELECT s.id, s.plan_id, s.preferred_location, i.id AS identity_id, i.email_norm \
        FROM subscriber s JOIN plex_identity i ON i.subscriber_id = s.id AND i.state = 'active' \
        WHERE s.waiting_for_room_since IS NOT NULL AND s.plan_id IS NOT NULL AND NOT s.requires_plex_change \
        AND (s.permanent OR EXISTS (SELECT 1 FROM payment p WHERE p.subscriber_id = s.id \
             AND p.status = 'applied' AND p.paid_from <= $1 AND p.paid_to > $1)) \
        AND NOT EXISTS (SELECT 1 FROM share sh JOIN server sv ON sv.id = sh.server_id \
             JOIN owner_account o ON o.id = sv.owner_account_id \
             WHERE sh.subscriber_id = s.id AND sh.state <> 'removed' AND o.state = 'active') \
        ORDER BY s.waiting_for_room_since, s.id";
    sql!(tx, query_as(SQL), now => fetch_all)
}

/// Whether any subscriber waits for a server with room.
pub async fn find_anyone_waiting_for_room(tx: &mut Tx) -> Result<bool, sqlx::Error> {
    const SQL: &str =
        "SELECT EXISTS (SELECT 1 FROM subscriber WHERE waiting_for_room_since IS NOT NULL)";
    sql!(tx, query_scalar(SQL) => fetch_one)
}

/// Makes a subscriber permanent or not. False when it was so already (or no such subscriber).
pub async fn update_permanent(
    tx: &mut Tx,
    id: SubscriberId,
    permanent: bool,
    now: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    const SQL: &str =
        "UPDATE subscriber SET permanent = $1, updated_at = $2 WHERE id = $3 AND permanent <> $1";
    Ok(sql!(tx, query(SQL), permanent, now, id => execute)? == 1)
}

/// Replaces a subscriber's admin notes. False when there is no such subscriber.
pub async fn update_notes(
    tx: &mut Tx,
    id: SubscriberId,
    notes: &str,
    now: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    const SQL: &str = "UPDATE subscriber SET notes = $1, updated_at = $2 WHERE id = $3";
    let n = sql!(tx, query(SQL), notes, now, id => execute)?;
    Ok(n == 1)
}

/// The subscriber id of a Discord user, if they are one.
pub async fn find_id_by_discord(
    tx: &mut Tx,
    discord_id: DiscordId,
) -> Result<Option<SubscriberId>, sqlx::Error> {
    const SQL: &str = "SELECT id FROM subscriber WHERE discord_id = $1";
    sql!(tx, query_scalar(SQL), discord_id => fetch_optional)
}

/// Which subscribers a listing shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberFilter {
    /// Everyone.
    All,
    /// Paid time ends within this many days (and has not ended).
    ExpiringWithin(i64),
    /// Paid once, not permanent, and not paid now.
    Expired,
    /// Imported, no Discord member yet.
    Unclaimed,
    /// Inside a trial now.
    Trial,
    /// No server had room when a share was due.
    WaitingForRoom,
    /// Must change Plex account.
    Flagged,
    /// On this plan.
    Plan(PlanId),
    /// With a live share on this server.
    Server(crate::domain::ServerId),
}

/// One subscriber as a listing shows them.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MemberLine {
    /// Row id.
    pub id: SubscriberId,
    /// Discord member; `None` while unclaimed.
    pub discord_id: Option<DiscordId>,
    /// Name.
    pub display_name: String,
    /// Active Plex account.
    pub plex_email: Option<PlexEmail>,
    /// Plan name.
    pub plan: Option<String>,
    /// End of the latest paid interval.
    pub paid_until: Option<DateTime<Utc>>,
    /// Never expires.
    pub permanent: bool,
    /// Must change Plex account.
    pub requires_plex_change: bool,
}

const MEMBER_SELECT: &str = "SELECT s.id, s.discord_id, s.display_name, i.email_norm AS plex_email, p.name AS plan, \
    (SELECT MAX(x.paid_to) FROM payment x WHERE x.subscriber_id = s.id AND x.status = 'applied') AS paid_until, \
    s.permanent, s.requires_plex_change FROM subscriber s \
    LEFT JOIN plex_identity i ON i.subscriber_id = s.id AND i.state = 'active' \
    LEFT JOIN plan p ON p.id = s.plan_id";

/// The value a listing's condition binds as `$2`.
enum MemberParam {
    None,
    Id(i64),
    At(DateTime<Utc>),
}

/// The condition of a filter on `s`; `$1` is now, `$2` the filter's value.
fn member_condition(filter: MemberFilter, now: DateTime<Utc>) -> (&'static str, MemberParam) {
    match filter {
        MemberFilter::All => ("$2 IS NULL", MemberParam::None),
        MemberFilter::ExpiringWithin(days) => (
            "NOT s.permanent AND (SELECT MAX(x.paid_to) FROM payment x WHERE x.subscriber_id = s.id \
             AND x.status = 'applied') > $1 AND (SELECT MAX(x.paid_to) FROM payment x \
             WHERE x.subscriber_id = s.id AND x.status = 'applied') <= $2",
            MemberParam::At(now + chrono::Duration::days(days)),
        ),
        MemberFilter::Expired => (
            "$2 IS NULL AND NOT s.permanent AND EXISTS (SELECT 1 FROM payment x WHERE x.subscriber_id = s.id \
             AND x.status IN ('applied', 'refunded')) AND NOT EXISTS (SELECT 1 FROM payment x \
             WHERE x.subscriber_id = s.id AND x.status = 'applied' AND x.paid_from <= $1 AND x.paid_to > $1)",
            MemberParam::None,
        ),
        MemberFilter::Unclaimed => ("$2 IS NULL AND s.discord_id IS NULL", MemberParam::None),
        MemberFilter::Trial => (
            "$2 IS NULL AND EXISTS (SELECT 1 FROM payment x WHERE x.subscriber_id = s.id AND x.status = 'applied' \
             AND x.reference = 'trial' AND x.paid_from <= $1 AND x.paid_to > $1)",
            MemberParam::None,
        ),
        MemberFilter::WaitingForRoom => (
            "$2 IS NULL AND s.waiting_for_room_since IS NOT NULL",
            MemberParam::None,
        ),
        MemberFilter::Flagged => ("$2 IS NULL AND s.requires_plex_change", MemberParam::None),
        MemberFilter::Plan(plan) => ("s.plan_id = $2", MemberParam::Id(plan.get())),
        MemberFilter::Server(server) => (
            "EXISTS (SELECT 1 FROM share x WHERE x.subscriber_id = s.id AND x.state <> 'removed' AND x.server_id = $2)",
            MemberParam::Id(server.get()),
        ),
    }
}

/// One page of subscribers matching `filter`, sorted by paid end (soonest first; permanent and
/// never-paid last), and how many match in all.
pub async fn find_member_page(
    tx: &mut Tx,
    filter: MemberFilter,
    now: DateTime<Utc>,
    offset: i64,
    limit: i64,
) -> Result<(Vec<MemberLine>, i64), sqlx::Error> {
    let (condition, param) = member_condition(filter, now);
    let page = format!(
        "SELECT * FROM ({MEMBER_SELECT} WHERE {condition}) m \
         ORDER BY m.permanent, m.paid_until IS NULL, m.paid_until, m.id LIMIT $3 OFFSET $4"
    );
    let count = format!("SELECT COUNT(*) FROM subscriber s WHERE {condition}");
    let (lines, total) = match param {
        MemberParam::None => (
            sql!(tx, query_as(&page), now, None::<i64>, limit, offset => fetch_all)?,
            sql!(tx, query_scalar(&count), now, None::<i64> => fetch_one)?,
        ),
        MemberParam::Id(id) => (
            sql!(tx, query_as(&page), now, id, limit, offset => fetch_all)?,
            sql!(tx, query_scalar(&count), now, id => fetch_one)?,
        ),
        MemberParam::At(at) => (
            sql!(tx, query_as(&page), now, at, limit, offset => fetch_all)?,
            sql!(tx, query_scalar(&count), now, at => fetch_one)?,
        ),
    };
    Ok((lines, total))
}
