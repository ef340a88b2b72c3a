//! The admins' hand tools for one subscriber (PRODUCT.md "Getting in": admin add): adding a cash
//! or bank customer, making someone permanent, ending someone's access, linking a member to an
//! imported subscriber, changing a subscriber's plan with their paid time converted.
//!
//! Rules they keep:
//! - One service call per tool, one transaction with the jobs it queues, audited with the admin.
//! - The Plex account is checked like everywhere (never a retired, banned or refused account, never
//!   someone else's, a real plex.tv account); a payment goes through the same path as a provider's
//!   ([`payments::record_manual_payment_in`]), so a transaction id recorded before is refused and
//!   an invite follows when one is due.
//! - Bad input is refused before anything is written.

use anyhow::Context as _;
use chrono::{DateTime, Duration, Utc};

use crate::app::App;
use crate::domain::{Actor, DiscordId, Money, PlanId, PlexEmail, ServerId, SubscriberId};
use crate::jobs::{RemoveShare, UpdateShare};
use crate::services::identities::{self, Conflict, PlexAccountRef};
use crate::services::payments::{self, Coverage, ManualPayment, ManualPaymentError};
use crate::services::{access, lifecycle, proofs};
use crate::store::subscribers::{self, NewSubscriber};
use crate::store::{Tx, audit, is_unique_violation, servers, shares};

/// Why an admin's change to a subscriber was refused; each is a message for the admin, and
/// nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum MemberError {
    /// Unknown subscriber.
    #[error("that user is not a subscriber")]
    NotSubscriber,
    /// The member is a subscriber already.
    #[error("{0} is a subscriber already; record their payment with /admin user pay")]
    AlreadySubscriber(String),
    /// The Plex account cannot be theirs.
    #[error("{0}")]
    PlexAccount(String),
    /// No such plan.
    #[error("there is no plan #{0}")]
    NoSuchPlan(PlanId),
    /// The amount does not parse.
    #[error("the amount `{0}` is not a price like 8 or 7.50")]
    BadAmount(String),
    /// The payment was refused.
    #[error(transparent)]
    Payment(ManualPaymentError),
    /// The subscriber claimed already.
    #[error("that subscriber belongs to a Discord member already")]
    Claimed,
    /// The member is another subscriber.
    #[error("{0} is another subscriber already; one member is one subscriber")]
    MemberTaken(String),
    /// No subscriber has that Plex account.
    #[error("no subscriber has the Plex account {0}")]
    NoSubscriberWithAccount(String),
    /// The plan change confirmation is forged, old or used.
    #[error("that confirmation has expired or was already used; ask again")]
    StaleConfirmation,
    /// Already on that plan.
    #[error("they are on that plan already")]
    SamePlan,
    /// No plan to pay for.
    #[error("they have no plan yet; give them one with /admin user plan first")]
    NoPlan,
    /// Anything else.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<sqlx::Error> for MemberError {
    fn from(err: sqlx::Error) -> Self {
        Self::Unexpected(anyhow::Error::new(err).context("database"))
    }
}

impl From<ManualPaymentError> for MemberError {
    fn from(err: ManualPaymentError) -> Self {
        match err {
            ManualPaymentError::Unexpected(err) => Self::Unexpected(err),
            ManualPaymentError::NotSubscriber => Self::NotSubscriber,
            other => Self::Payment(other),
        }
    }
}

impl From<proofs::ProofError> for MemberError {
    fn from(err: proofs::ProofError) -> Self {
        match err {
            proofs::ProofError::Unexpected(err) => Self::Unexpected(err),
            other => Self::PlexAccount(crate::domain::as_sentence(&other.to_string())),
        }
    }
}

/// How long a subscriber added by hand is paid for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// This many days from now.
    Days(i64),
    /// Up to this moment.
    Until(DateTime<Utc>),
    /// Never expires.
    Permanent,
}

/// A cash or bank customer to add.
#[derive(Debug, Clone)]
pub struct NewMember {
    /// Their Discord member.
    pub member: DiscordId,
    /// Their name.
    pub name: String,
    /// Their Plex account.
    pub plex_email: PlexEmail,
    /// Where receipts and reminders are emailed.
    pub contact_email: Option<String>,
    /// Their plan.
    pub plan: PlanId,
    /// How long they paid for.
    pub standing: Standing,
    /// The payment's transaction id (a receipt number, a bank reference).
    pub transaction: Option<String>,
    /// How much they paid, as the admin typed it, in the plan's currency.
    pub amount: Option<String>,
    /// An admin note.
    pub note: Option<String>,
}

/// What adding a member did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberAdded {
    /// The subscriber.
    pub subscriber: SubscriberId,
    /// An imported (unclaimed) subscriber with that Plex account was completed instead of a new
    /// one made.
    pub completed_import: bool,
    /// Paid until (none for a permanent subscriber).
    pub paid_until: Option<DateTime<Utc>>,
    /// Where they are invited; `None` while no server has room (they wait) or the invite comes
    /// with an existing share.
    pub server: Option<ServerId>,
}

/// Adds a cash or bank customer: checks the Plex account, creates the subscriber (or completes
/// the imported, unclaimed one with that account), records their payment (`manual`, with its
/// transaction id, unique) or makes them permanent, and invites them — all in one transaction.
pub async fn add_member(
    app: &App,
    actor: &Actor,
    new: &NewMember,
) -> Result<MemberAdded, MemberError> {
    let now = app.clock.now();
    check_standing(new.standing, now)?;
    let account = PlexAccountRef::typed(new.plex_email.clone());
    {
        let mut tx = app.db.read().await?;
        find_place_for(&mut tx, new, &account).await?;
    }
    proofs::validate_on_plex(app, &new.plex_email).await?;

    let mut tx = app.db.begin().await?;
    let existing = find_place_for(&mut tx, new, &account).await?;
    let plan = servers::find_plan_name(&mut tx, new.plan)
        .await?
        .ok_or(MemberError::NoSuchPlan(new.plan))?;
    let amount = parse_amount(&mut tx, new.plan, new.amount.as_deref()).await?;
    let (subscriber, identity) = if let Some(unclaimed) = existing {
        if !subscribers::update_claimed(&mut tx, unclaimed, new.member, &new.name, now).await? {
            return Err(MemberError::Claimed);
        }
        let identity = subscribers::find_active_identity(&mut tx, unclaimed)
            .await?
            .context("an unclaimed subscriber has their identity")?;
        (unclaimed, identity.id)
    } else {
        {
            let row = NewSubscriber {
                discord_id: Some(new.member),
                display_name: &new.name,
                contact_email: new.contact_email.as_deref(),
                plan: Some(new.plan),
                notes: new.note.as_deref().unwrap_or_default(),
            };
            let subscriber = match subscribers::insert_new_subscriber(&mut tx, &row, now).await {
                Ok(id) => id,
                Err(err) if is_unique_violation(&err) => {
                    return Err(MemberError::AlreadySubscriber(new.name.clone()));
                }
                Err(err) => return Err(err.into()),
            };
            let identity =
                match subscribers::insert_identity(&mut tx, subscriber, &account.keys(), now).await
                {
                    Ok(id) => id,
                    Err(err) if is_unique_violation(&err) => {
                        return Err(proofs::ProofError::InUse.into());
                    }
                    Err(err) => return Err(err.into()),
                };
            (subscriber, identity)
        }
    };
    subscribers::update_subscriber_plan(&mut tx, subscriber, Some(new.plan), now).await?;
    let mut paid_until = None;
    let mut server = None;
    match new.standing {
        Standing::Permanent => {
            subscribers::update_permanent(&mut tx, subscriber, true, now).await?;
            if shares::find_live_shares_of(&mut tx, subscriber)
                .await?
                .is_empty()
            {
                let placed = access::place_and_invite(
                    app,
                    &mut tx,
                    subscriber,
                    identity,
                    new.plan,
                    Vec::new(),
                    None,
                )
                .await?;
                server = placed.ok();
            }
            lifecycle::enqueue_role_sync(app, &mut tx, subscriber, "added-permanent").await?;
        }
        Standing::Days(_) | Standing::Until(_) => {
            let manual = ManualPayment {
                subscriber,
                plan: new.plan,
                coverage: match new.standing {
                    Standing::Days(days) => Coverage::Days(days),
                    Standing::Until(until) => Coverage::Until(until),
                    Standing::Permanent => unreachable!("handled above"),
                },
                transaction: new.transaction.clone(),
                amount,
                note: new.note.clone(),
                reference: Some("admin-add".into()),
            };
            let paid = payments::record_manual_payment_in(app, &mut tx, actor, &manual).await?;
            paid_until = Some(paid.paid_to);
            server = shares::find_live_shares_of(&mut tx, subscriber)
                .await?
                .first()
                .map(|s| s.server_id);
        }
    }
    let detail = serde_json::json!({
        "member": new.member.to_string(), "plex_email": new.plex_email.as_str(), "plan": plan,
        "standing": format!("{:?}", new.standing), "completed_import": existing.is_some(),
    });
    audit::insert_audit(&mut tx, actor, Some(subscriber), "member.add", &detail, now).await?;
    app.queue.commit(tx).await?;
    Ok(MemberAdded {
        subscriber,
        completed_import: existing.is_some(),
        paid_until,
        server,
    })
}

fn check_standing(standing: Standing, now: DateTime<Utc>) -> Result<(), MemberError> {
    match standing {
        Standing::Days(days) if days < 1 => Err(ManualPaymentError::DaysNotPositive(days).into()),
        Standing::Until(until) if until <= now => {
            Err(ManualPaymentError::UntilInPast(lifecycle::human_date(until)).into())
        }
        _ => Ok(()),
    }
}

/// Where a new member's Plex account goes: `None` for a new subscriber, or the unclaimed
/// subscriber who has it (completed instead). Refuses a member who is a subscriber already and an
/// account that cannot be theirs.
async fn find_place_for(
    tx: &mut Tx,
    new: &NewMember,
    account: &PlexAccountRef,
) -> Result<Option<SubscriberId>, MemberError> {
    if subscribers::find_id_by_discord(tx, new.member)
        .await?
        .is_some()
    {
        return Err(MemberError::AlreadySubscriber(new.name.clone()));
    }
    match identities::find_conflict(tx, account, None).await? {
        None => Ok(None),
        Some(Conflict::InUse) => {
            let holder = subscribers::find_identities_of_account(tx, &account.keys())
                .await?
                .into_iter()
                .map(|i| i.subscriber_id)
                .next();
            match holder {
                Some(holder) => {
                    let row = subscribers::find_subscriber(tx, holder)
                        .await?
                        .context("the identity's subscriber exists")?;
                    if row.discord_id.is_none() {
                        Ok(Some(holder))
                    } else {
                        Err(proofs::ProofError::InUse.into())
                    }
                }
                None => Err(proofs::ProofError::InUse.into()),
            }
        }
        Some(conflict) => Err(proofs::ProofError::from(conflict).into()),
    }
}

async fn parse_amount(
    tx: &mut Tx,
    plan: PlanId,
    amount: Option<&str>,
) -> Result<Option<Money>, MemberError> {
    let Some(text) = amount.map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    let currency = servers::find_plan_currency(tx, plan)
        .await?
        .ok_or(MemberError::NoSuchPlan(plan))?;
    Money::parse(text, currency)
        .map(Some)
        .map_err(|_| MemberError::BadAmount(text.to_owned()))
}

/// Records a cash or bank payment for a subscriber on their plan (`/admin user pay`): `days`
/// from the later of now and their paid end, or until a date. The amount is as the admin typed
/// it, in the plan's currency; the transaction id is unique.
pub async fn record_payment(
    app: &App,
    actor: &Actor,
    subscriber: SubscriberId,
    coverage: Coverage,
    transaction: Option<String>,
    amount: Option<String>,
) -> Result<payments::ManualPaid, MemberError> {
    let mut tx = app.db.begin().await?;
    let row = subscribers::find_subscriber(&mut tx, subscriber)
        .await?
        .ok_or(MemberError::NotSubscriber)?;
    let plan = row.plan_id.ok_or(MemberError::NoPlan)?;
    let amount = parse_amount(&mut tx, plan, amount.as_deref()).await?;
    let manual = ManualPayment {
        subscriber,
        plan,
        coverage,
        transaction,
        amount,
        note: None,
        reference: Some("admin".into()),
    };
    let paid = payments::record_manual_payment_in(app, &mut tx, actor, &manual).await?;
    app.queue.commit(tx).await?;
    Ok(paid)
}

/// What making a subscriber permanent (or not) did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PermanentSet {
    /// The flag changed (false: it was so already).
    pub changed: bool,
    /// A newly permanent subscriber without access was placed: the server, or why not.
    pub placed: Option<Result<ServerId, String>>,
}

/// Makes a subscriber permanent (never expires, like a paid-up one) or not, audited. A newly
/// permanent subscriber with a plan and a Plex account but no live share is placed and invited in
/// the same transaction (not while flagged: the account change invites them); their Discord roles
/// follow their standing.
pub async fn set_permanent(
    app: &App,
    actor: &Actor,
    subscriber: SubscriberId,
    permanent: bool,
) -> Result<PermanentSet, MemberError> {
    let now = app.clock.now();
    let mut tx = app.db.begin().await?;
    let row = subscribers::find_subscriber(&mut tx, subscriber)
        .await?
        .ok_or(MemberError::NotSubscriber)?;
    let changed = subscribers::update_permanent(&mut tx, subscriber, permanent, now).await?;
    let mut placed = None;
    if changed && permanent && !row.requires_plex_change {
        let live = shares::find_live_shares_of(&mut tx, subscriber).await?;
        let identity = subscribers::find_active_identity(&mut tx, subscriber).await?;
        if let (true, Some(plan), Some(identity)) = (live.is_empty(), row.plan_id, identity) {
            let previous = shares::find_previous_servers(&mut tx, subscriber).await?;
            placed = Some(
                access::place_and_invite(
                    app,
                    &mut tx,
                    subscriber,
                    identity.id,
                    plan,
                    previous,
                    row.preferred_location.clone(),
                )
                .await?,
            );
        }
    }
    if changed {
        let event = format!("permanent-{permanent}-{}", now.timestamp_micros());
        lifecycle::enqueue_role_sync(app, &mut tx, subscriber, &event).await?;
        let detail = serde_json::json!({ "permanent": permanent });
        audit::insert_audit(
            &mut tx,
            actor,
            Some(subscriber),
            "subscriber.permanent",
            &detail,
            now,
        )
        .await?;
    }
    app.queue.commit(tx).await?;
    Ok(PermanentSet { changed, placed })
}

/// What ending a subscriber's access did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessEnded {
    /// Shares whose removal on plex.tv was queued.
    pub shares: usize,
    /// The paid end it had (cut to now).
    pub paid_until: Option<DateTime<Utc>>,
}

/// Ends a subscriber's access now: not permanent any more, their paid time ends now (the payments
/// stay on record), every live share is removed on plex.tv, their roles are taken. Their data
/// stays; paying again brings access back as for anyone.
pub async fn end_access(
    app: &App,
    actor: &Actor,
    subscriber: SubscriberId,
) -> Result<AccessEnded, MemberError> {
    let now = app.clock.now();
    let mut tx = app.db.begin().await?;
    subscribers::find_subscriber(&mut tx, subscriber)
        .await?
        .ok_or(MemberError::NotSubscriber)?;
    subscribers::update_permanent(&mut tx, subscriber, false, now).await?;
    let (before, _) =
        payments::keep_paid_time_in(&mut tx, subscriber, Duration::zero(), now).await?;
    let live = shares::find_live_shares_of(&mut tx, subscriber).await?;
    for share in &live {
        shares::update_share_removed(&mut tx, share.id, now).await?;
        let remove = RemoveShare::new(share.id, share.owner_account_id, "admin-removed");
        app.queue.enqueue(&mut tx, &remove).await?;
    }
    subscribers::update_waiting_for_room(&mut tx, subscriber, false, now).await?;
    let event = format!("removed-{}", now.timestamp_micros());
    lifecycle::enqueue_role_sync(app, &mut tx, subscriber, &event).await?;
    let detail = serde_json::json!({ "shares": live.len(), "paid_until_was": before });
    audit::insert_audit(
        &mut tx,
        actor,
        Some(subscriber),
        "member.access_ended",
        &detail,
        now,
    )
    .await?;
    app.queue.commit(tx).await?;
    Ok(AccessEnded {
        shares: live.len(),
        paid_until: before.filter(|end| *end > now),
    })
}

/// Links a Discord member to the imported (unclaimed) subscriber with this Plex account, for them.
/// One member is one subscriber: a member who is a subscriber already, or a subscriber claimed
/// already, is refused.
pub async fn link_member(
    app: &App,
    actor: &Actor,
    member: DiscordId,
    name: &str,
    plex_email: &PlexEmail,
) -> Result<SubscriberId, MemberError> {
    let now = app.clock.now();
    let mut tx = app.db.begin().await?;
    let subscriber = claim_in(app, &mut tx, member, name, plex_email).await?;
    let detail =
        serde_json::json!({ "member": member.to_string(), "plex_email": plex_email.as_str() });
    audit::insert_audit(
        &mut tx,
        actor,
        Some(subscriber),
        "member.link",
        &detail,
        now,
    )
    .await?;
    app.queue.commit(tx).await?;
    Ok(subscriber)
}

/// Attaches `member` to the unclaimed subscriber whose active Plex account is `plex_email`, in the
/// caller's transaction, and queues what a claim brings (roles when active, a welcome DM).
pub async fn claim_in(
    app: &App,
    tx: &mut Tx,
    member: DiscordId,
    name: &str,
    plex_email: &PlexEmail,
) -> Result<SubscriberId, MemberError> {
    if let Some(_already) = subscribers::find_id_by_discord(tx, member).await? {
        return Err(MemberError::MemberTaken(name.to_owned()));
    }
    let account = PlexAccountRef::typed(plex_email.clone());
    let holder = subscribers::find_identities_of_account(tx, &account.keys())
        .await?
        .into_iter()
        .find(|i| i.state == crate::domain::IdentityState::Active)
        .ok_or_else(|| MemberError::NoSubscriberWithAccount(plex_email.to_string()))?;
    attach_in(app, tx, member, name, holder.subscriber_id, &account).await?;
    Ok(holder.subscriber_id)
}

/// Attaches `member` to the unclaimed `subscriber` whose Plex account is `account`, in the
/// caller's transaction: the plex.tv id and username a sign-in named are learnt, roles follow
/// their standing, and a welcome DM tells them where they stand.
pub async fn attach_in(
    app: &App,
    tx: &mut Tx,
    member: DiscordId,
    name: &str,
    subscriber: SubscriberId,
    account: &PlexAccountRef,
) -> Result<(), MemberError> {
    let now = app.clock.now();
    match subscribers::update_claimed(tx, subscriber, member, name, now).await {
        Ok(true) => {}
        Ok(false) => return Err(MemberError::Claimed),
        Err(err) if is_unique_violation(&err) => {
            return Err(MemberError::MemberTaken(name.to_owned()));
        }
        Err(err) => return Err(err.into()),
    }
    if let (Some(plex_user_id), Some(identity)) = (
        account.plex_user_id,
        subscribers::find_active_identity(tx, subscriber).await?,
    ) {
        let username = account.username.as_ref().map(PlexEmail::as_str);
        subscribers::update_identity_account(tx, identity.id, plex_user_id, username).await?;
    }
    lifecycle::enqueue_role_sync(app, tx, subscriber, "claimed").await?;
    welcome_in(app, tx, subscriber, &account.email, "claimed").await
}

/// Queues the welcome DM of a member who just got in (joined or claimed): their Plex account and
/// where they stand, or what to do next.
pub async fn welcome_in(
    app: &App,
    tx: &mut Tx,
    subscriber: SubscriberId,
    plex_email: &PlexEmail,
    event: &str,
) -> Result<(), MemberError> {
    let now = app.clock.now();
    let status = subscribers::find_status(tx, subscriber, now)
        .await?
        .context("the subscriber exists")?;
    let trials = crate::services::settings::trials_in(tx).await?;
    let detail = serde_json::json!({
        "plex_account": plex_email.as_str(), "plan_name": status.plan,
        "paid_until": status.paid_until.map(lifecycle::human_date),
        "permanent": status.permanent, "server_name": status.server,
        "trials": trials.on,
    });
    crate::services::notify::enqueue_dm(
        app,
        tx,
        subscriber,
        crate::domain::NotificationKind::Welcome,
        &detail,
        event,
    )
    .await?;
    Ok(())
}

/// A plan change waiting for the admin's confirmation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanChangePreview {
    /// The plan now.
    pub from_plan: String,
    /// The plan after.
    pub to_plan: String,
    /// The paid end now.
    pub old_end: Option<DateTime<Utc>>,
    /// The paid end after the conversion.
    pub new_end: Option<DateTime<Utc>>,
    /// Signed confirmation (the confirm applies exactly this).
    pub token: String,
}

const PLAN_CHANGE_PURPOSE: &str = "plan-change";
/// How long a plan change preview can be confirmed.
const PLAN_CHANGE_MINUTES: i64 = 10;

/// Converts the time left at the ratio of the two plans' daily prices (Streams Manager's credit
/// rule): 20 days left on 10 a month become 10 days on 20 a month. A plan that costs nothing keeps
/// the time as it is.
fn converted(
    left: Duration,
    from: (Money, crate::domain::BillingPeriod),
    to: (Money, crate::domain::BillingPeriod),
    now: DateTime<Utc>,
) -> Duration {
    let secs = |period: crate::domain::BillingPeriod| {
        i128::from((period.after(now) - now).num_seconds().max(1))
    };
    let (old, new) = (i128::from(from.0.minor()), i128::from(to.0.minor()));
    if old <= 0 || new <= 0 {
        return left;
    }
    // left × (old price / old period) ÷ (new price / new period), in whole seconds.
    let kept = i128::from(left.num_seconds()) * old * secs(to.1) / (secs(from.1) * new);
    Duration::seconds(i64::try_from(kept).unwrap_or(i64::MAX / 1000))
}

/// Shows what moving a subscriber to `plan` does (old end → new end) and a confirmation.
pub async fn preview_plan_change(
    app: &App,
    subscriber: SubscriberId,
    plan: PlanId,
) -> Result<PlanChangePreview, MemberError> {
    let now = app.clock.now();
    let mut tx = app.db.read().await?;
    let row = subscribers::find_subscriber(&mut tx, subscriber)
        .await?
        .ok_or(MemberError::NotSubscriber)?;
    if row.plan_id == Some(plan) {
        return Err(MemberError::SamePlan);
    }
    let to = servers::find_plan_price(&mut tx, plan)
        .await?
        .ok_or(MemberError::NoSuchPlan(plan))?;
    let from = match row.plan_id {
        Some(old) => servers::find_plan_price(&mut tx, old).await?,
        None => None,
    };
    let old_end = payments::paid_end_in(&mut tx, subscriber).await?;
    let new_end = match (old_end, &from) {
        (Some(end), Some(from)) if end > now => Some(
            now + converted(
                end - now,
                (from.price, from.period),
                (to.price, to.period),
                now,
            ),
        ),
        _ => old_end,
    };
    let payload = format!(
        "{subscriber}:{plan}:{}",
        old_end.map_or(0, |e| e.timestamp())
    );
    let token = app.signer.sign(
        PLAN_CHANGE_PURPOSE,
        &payload,
        Some(now + Duration::minutes(PLAN_CHANGE_MINUTES)),
    );
    Ok(PlanChangePreview {
        from_plan: from.map_or_else(|| "no plan".into(), |f| f.name),
        to_plan: to.name,
        old_end,
        new_end,
        token,
    })
}

/// What a confirmed plan change did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanChanged {
    /// The subscriber.
    pub subscriber: SubscriberId,
    /// The plan's name now.
    pub plan: String,
    /// Paid end after.
    pub new_end: Option<DateTime<Utc>>,
    /// Shares whose libraries are being updated on plex.tv.
    pub shares_updated: usize,
}

/// Applies a previewed plan change: the plan, the paid time converted, and the live shares'
/// libraries updated to the new plan on plex.tv (the update job), in one transaction. A preview
/// made before the paid time moved (a payment meanwhile) is refused: preview again.
pub async fn confirm_plan_change(
    app: &App,
    actor: &Actor,
    token: &str,
) -> Result<PlanChanged, MemberError> {
    let now = app.clock.now();
    let payload = app
        .signer
        .verify(PLAN_CHANGE_PURPOSE, token, now)
        .map_err(|_| MemberError::StaleConfirmation)?;
    let mut parts = payload.split(':');
    let (Some(subscriber), Some(plan), Some(end)) = (
        parts.next().and_then(|p| p.parse::<SubscriberId>().ok()),
        parts.next().and_then(|p| p.parse::<PlanId>().ok()),
        parts.next().and_then(|p| p.parse::<i64>().ok()),
    ) else {
        return Err(MemberError::StaleConfirmation);
    };
    let mut tx = app.db.begin().await?;
    payments::lock_subscriber_in(&mut tx, subscriber).await?;
    let row = subscribers::find_subscriber(&mut tx, subscriber)
        .await?
        .ok_or(MemberError::NotSubscriber)?;
    if row.plan_id == Some(plan) {
        return Err(MemberError::StaleConfirmation);
    }
    let old_end = payments::paid_end_in(&mut tx, subscriber).await?;
    if old_end.map_or(0, |e| e.timestamp()) != end {
        return Err(MemberError::StaleConfirmation);
    }
    let to = servers::find_plan_price(&mut tx, plan)
        .await?
        .ok_or(MemberError::NoSuchPlan(plan))?;
    let from = match row.plan_id {
        Some(old) => servers::find_plan_price(&mut tx, old).await?,
        None => None,
    };
    let mut new_end = old_end;
    if let (Some(end), Some(from)) = (old_end, &from)
        && end > now
    {
        let keep = converted(
            end - now,
            (from.price, from.period),
            (to.price, to.period),
            now,
        );
        if keep < end - now {
            new_end = payments::keep_paid_time_in(&mut tx, subscriber, keep, now)
                .await?
                .1;
        } else if keep > end - now {
            let extra = (keep - (end - now)).num_seconds();
            new_end = Some(payments::add_credit_in(app, &mut tx, subscriber, plan, extra).await?);
        }
    }
    subscribers::update_subscriber_plan(&mut tx, subscriber, Some(plan), now).await?;
    let generation = format!("plan-{plan}-{}", now.timestamp_micros());
    let live = shares::find_live_shares_of(&mut tx, subscriber).await?;
    for share in &live {
        let update = UpdateShare::new(share.id, share.owner_account_id, &generation);
        app.queue.enqueue(&mut tx, &update).await?;
    }
    let detail = serde_json::json!({
        "from_plan": row.plan_id, "to_plan": plan, "old_end": old_end, "new_end": new_end,
    });
    audit::insert_audit(
        &mut tx,
        actor,
        Some(subscriber),
        "member.plan_change",
        &detail,
        now,
    )
    .await?;
    app.queue.commit(tx).await?;
    Ok(PlanChanged {
        subscriber,
        plan: to.name,
        new_end,
        shares_updated: live.len(),
    })
}

/// Subscribers shown per page of a listing.
pub const PAGE_SIZE: i64 = 20;

/// One page of the subscriber listing.
#[derive(Debug, Clone)]
pub struct MemberPage {
    /// The subscribers on this page.
    pub lines: Vec<subscribers::MemberLine>,
    /// How many match in all.
    pub total: i64,
    /// This page, from 0.
    pub page: i64,
    /// How many pages there are (at least 1).
    pub pages: i64,
}

/// One page of the subscribers matching `filter`, sorted by paid end (`/admin users list`,
/// `usher users list`). A page past the end shows the last one.
pub async fn list_members(
    app: &App,
    filter: subscribers::MemberFilter,
    page: i64,
) -> anyhow::Result<MemberPage> {
    let now = app.clock.now();
    let mut tx = app.db.read().await?;
    let (_, total) = subscribers::find_member_page(&mut tx, filter, now, 0, 0).await?;
    let pages = ((total + PAGE_SIZE - 1) / PAGE_SIZE).max(1);
    let page = page.clamp(0, pages - 1);
    let (lines, total) =
        subscribers::find_member_page(&mut tx, filter, now, page * PAGE_SIZE, PAGE_SIZE).await?;
    tx.rollback().await?;
    Ok(MemberPage {
        lines,
        total,
        page,
        pages,
    })
}
