//! The heart of ban recovery: a flagged subscriber moves to a NEW, proven Plex account.
//!
//! Rules it keeps (PRODUCT.md "Ban recovery" 5–9, "Never"):
//! - Only while "Plex account change processing" is on, and only for a flagged subscriber.
//! - The new account must never have been linked here: not the current one, not anyone else's,
//!   never a retired, banned or refused one — compared by email, username and plex.tv id
//!   ([`identities`]). It is proven by an emailed code (after plex.tv confirms the account
//!   exists) or by Plex sign-in, which names the plex.tv id before anything is linked
//!   ([`proofs`]).
//! - When proven, ONE transaction retires the old identity (as `banned` when its last server's
//!   owner account was banned), links the new one, clears the flag, keeps every payment, note and
//!   history row, stops counting the old shares (their removal on plex.tv is queued) and, for a
//!   subscriber who is permanent or paid up, records the new share on a server chosen by
//!   placement and queues its invite. Others are told the change is done and that paying brings
//!   their access back. If no server fits, the change still stands and the admins are told.

use anyhow::Context as _;
use chrono::Duration;

use crate::app::App;
use crate::domain::{
    Actor, NotificationKind, OwnerAccountState, PlexEmail, PlexIdentityId, ProofId, ProofMethod,
    ProofPurpose, ProofState, RetireReason, ServerId, SubscriberId, VerificationCode,
};
use crate::jobs::{PollSignIn, RemoveShare};
use crate::services::access;
use crate::services::identities::{self, PlexAccountRef};
use crate::services::notify::{self, Kind};
use crate::services::proofs::{
    self, Along, CodeCheck, CodeSent, ProofError, Proven, SignIn, SignInStarted, Subject,
};
use crate::services::settings::{self, plex_account_change_enabled};
use crate::store::proofs::{self as proof_store, ProofRow};
use crate::store::{Tx, audit, is_unique_violation, lifecycle, servers, shares, subscribers};

/// The change is done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeApplied {
    /// The new active identity.
    pub identity: PlexIdentityId,
    /// Where the invite goes; `None` when no server has room yet (admins were told) or the
    /// subscriber is not paid up (they are invited when they pay).
    pub server: Option<ServerId>,
    /// Permanent or inside a paid interval: invited now.
    pub paid_up: bool,
}

/// Checks that `subscriber` may change to `account` now; returns their row.
async fn check_allowed(
    tx: &mut Tx,
    subscriber: SubscriberId,
    account: &PlexAccountRef,
) -> Result<subscribers::SubscriberRow, ProofError> {
    if !plex_account_change_enabled(tx).await? {
        return Err(ProofError::Disabled);
    }
    let row = subscribers::find_subscriber(tx, subscriber)
        .await?
        .ok_or(ProofError::NotSubscriber)?;
    if !row.requires_plex_change {
        return Err(ProofError::NotFlagged);
    }
    if let Some(conflict) = identities::find_conflict(tx, account, Some(subscriber)).await? {
        return Err(conflict.into());
    }
    Ok(row)
}

/// Asks for a change to `email`: checks it, validates it on plex.tv, and emails a code to it.
pub async fn request_change(
    app: &App,
    actor: &Actor,
    subscriber: SubscriberId,
    email: &PlexEmail,
) -> Result<CodeSent, ProofError> {
    let subject = Subject::change(subscriber);
    let account = PlexAccountRef::typed(email.clone());
    {
        let mut tx = app.db.read().await?;
        settings::proof_methods_in(&mut tx)
            .await?
            .require(ProofMethod::EmailCode)?;
        check_allowed(&mut tx, subscriber, &account).await?;
        if let Some(pending) = proofs::find_pending(&mut tx, &subject).await?
            && let Some(wait) = proofs::resend_wait(&pending, app.clock.now())
        {
            return Err(ProofError::ResendTooSoon(wait));
        }
    }
    proofs::validate_on_plex(app, email).await?;

    let now = app.clock.now();
    let mut tx = app.db.begin().await?;
    // Re-check inside the write transaction: the world may have moved during the remote call.
    let row = check_allowed(&mut tx, subscriber, &account).await?;
    let issued = proofs::issue_code(app, &mut tx, &subject, email, Along::default()).await?;
    let detail = serde_json::json!({ "request": issued.request, "new_email": email.as_str() });
    audit::insert_audit(
        &mut tx,
        actor,
        Some(subscriber),
        "account_change.code_sent",
        &detail,
        now,
    )
    .await?;
    tx.commit().await?;
    proofs::mail_code(app, &row.display_name, email, issued).await
}

/// Whether the subscriber may start a change now (setting on, flagged): checked before asking
/// them for an email, so nobody types one in only to be told no.
pub async fn can_start(app: &App, subscriber: SubscriberId) -> Result<(), ProofError> {
    let mut tx = app.db.read().await?;
    let enabled = plex_account_change_enabled(&mut tx).await?;
    let row = subscribers::find_subscriber(&mut tx, subscriber).await?;
    tx.rollback().await?;
    if !enabled {
        return Err(ProofError::Disabled);
    }
    match row {
        None => Err(ProofError::NotSubscriber),
        Some(row) if !row.requires_plex_change => Err(ProofError::NotFlagged),
        Some(_) => Ok(()),
    }
}

/// Sends a fresh code for the pending request (same new email), at most once a minute.
pub async fn resend_code(
    app: &App,
    actor: &Actor,
    subscriber: SubscriberId,
) -> Result<CodeSent, ProofError> {
    let pending = {
        let mut tx = app.db.read().await?;
        proofs::find_pending(&mut tx, &Subject::change(subscriber)).await?
    };
    let email = pending
        .filter(|p| p.method == ProofMethod::EmailCode)
        .and_then(|p| p.email_norm)
        .ok_or(ProofError::NoPendingRequest)?;
    request_change(app, actor, subscriber, &email).await
}

/// Checks the code and, when right, applies the change in one transaction.
pub async fn verify_change(
    app: &App,
    actor: &Actor,
    subscriber: SubscriberId,
    code: &VerificationCode,
) -> Result<ChangeApplied, ProofError> {
    let mut tx = app.db.begin().await?;
    if !plex_account_change_enabled(&mut tx).await? {
        return Err(ProofError::Disabled);
    }
    let proven = match proofs::check_code(app, &mut tx, &Subject::change(subscriber), code).await? {
        CodeCheck::Right(proven) => proven,
        CodeCheck::Refused(err) => {
            tx.commit().await?;
            return Err(err);
        }
    };
    let applied = apply_change(app, &mut tx, actor, subscriber, &proven).await?;
    app.queue.commit(tx).await?;
    Ok(applied)
}

/// Starts a Plex sign-in for the change: the subscriber opens the returned link, signs in with
/// their NEW Plex account and approves Usher; a job watches the sign-in and applies the change
/// (or [`finish_sign_in`] does, when they say they are done). `forward` is where plex.tv sends
/// the browser back to afterwards (the web page's own flow).
pub async fn start_sign_in(
    app: &App,
    actor: &Actor,
    subscriber: SubscriberId,
    forward: Option<&url::Url>,
) -> Result<SignInStarted, ProofError> {
    {
        let mut tx = app.db.read().await?;
        settings::proof_methods_in(&mut tx)
            .await?
            .require(ProofMethod::PlexSignIn)?;
    }
    can_start(app, subscriber).await?;
    let pin = proofs::create_pin(app).await?;
    let now = app.clock.now();
    let mut tx = app.db.begin().await?;
    can_start_in(&mut tx, subscriber).await?;
    let started = proofs::issue_sign_in(
        app,
        &mut tx,
        &Subject::change(subscriber),
        &pin,
        forward,
        Along::default(),
    )
    .await?;
    app.queue
        .enqueue(&mut tx, &PollSignIn::new(started.request))
        .await?;
    let detail = serde_json::json!({ "request": started.request });
    audit::insert_audit(
        &mut tx,
        actor,
        Some(subscriber),
        "account_change.sign_in_started",
        &detail,
        now,
    )
    .await?;
    app.queue.commit(tx).await?;
    Ok(started)
}

async fn can_start_in(tx: &mut Tx, subscriber: SubscriberId) -> Result<(), ProofError> {
    if !plex_account_change_enabled(tx).await? {
        return Err(ProofError::Disabled);
    }
    match subscribers::find_subscriber(tx, subscriber).await? {
        None => Err(ProofError::NotSubscriber),
        Some(row) if !row.requires_plex_change => Err(ProofError::NotFlagged),
        Some(_) => Ok(()),
    }
}

/// The subscriber's pending sign-in, with its link to open again.
pub async fn pending_sign_in(
    app: &App,
    subscriber: SubscriberId,
) -> Result<Option<(ProofId, url::Url)>, ProofError> {
    let mut tx = app.db.read().await?;
    let pending = proofs::find_pending(&mut tx, &Subject::change(subscriber)).await?;
    Ok(pending
        .filter(|p| p.method == ProofMethod::PlexSignIn)
        .and_then(|p| {
            let pin = crate::integrations::plex::PlexPin {
                id: crate::integrations::plex::PlexPinId(u64::try_from(p.pin_id?).ok()?),
                code: p.pin_code?,
                expires_at: None,
            };
            Some((p.id, app.plex.sign_in_url(&pin, None)))
        }))
}

/// Where a sign-in ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignInOutcome {
    /// Not approved on plex.tv yet.
    Waiting,
    /// The change is applied.
    Applied(ChangeApplied),
    /// Nothing to do any more (applied, refused, expired or replaced before).
    Settled,
}

/// Looks at a sign-in request and, once Plex has the person's approval, applies the change for
/// the account plex.tv names — or refuses it (retired, banned, refused or someone else's,
/// checked by email, username AND plex.tv id before anything is linked), records why, and tells
/// the subscriber. `who`, when given, must be the request's subscriber (a button press).
pub async fn finish_sign_in(
    app: &App,
    request: ProofId,
    who: Option<SubscriberId>,
) -> Result<SignInOutcome, ProofError> {
    let row = {
        let mut tx = app.db.read().await?;
        proof_store::find_proof(&mut tx, request)
            .await?
            .ok_or(ProofError::NoSignIn)?
    };
    let subscriber = row
        .subscriber_id
        .context("a change request has its subscriber")?;
    if who.is_some_and(|who| who != subscriber) {
        return Err(ProofError::NotYours);
    }
    if row.state != ProofState::Pending
        || row.purpose != ProofPurpose::Change
        || row.method != ProofMethod::PlexSignIn
    {
        return Ok(SignInOutcome::Settled);
    }
    let proven = match proofs::read_sign_in(app, &row).await? {
        SignIn::Waiting => return Ok(SignInOutcome::Waiting),
        SignIn::Expired => {
            let mut tx = app.db.begin().await?;
            proof_store::update_state(&mut tx, request, ProofState::Expired, app.clock.now())
                .await?;
            tx.commit().await?;
            return Err(ProofError::SignInExpired);
        }
        SignIn::Signed(proven) => proven,
    };
    let actor = Actor::Subscriber(subscriber);
    let mut tx = app.db.begin().await?;
    // Settled by another poll or a button press meanwhile?
    let still = proof_store::find_proof(&mut tx, request).await?;
    if still.is_none_or(|r| r.state != ProofState::Pending) {
        return Ok(SignInOutcome::Settled);
    }
    proofs::record_signed_in(&mut tx, &proven).await?;
    match apply_change(app, &mut tx, &actor, subscriber, &proven).await {
        Ok(applied) => {
            app.queue.commit(tx).await?;
            Ok(SignInOutcome::Applied(applied))
        }
        // The watching job and the button finished it at once: the other one applied it.
        Err(ProofError::NoPendingRequest) => Ok(SignInOutcome::Settled),
        Err(err @ (ProofError::Retired | ProofError::InUse | ProofError::SameAsCurrent)) => {
            drop(tx);
            refuse_sign_in(app, &row, &proven, &err).await?;
            Err(err)
        }
        Err(err) => Err(err),
    }
}

/// Records a refused sign-in (the account it named may not be linked) and tells the subscriber.
async fn refuse_sign_in(
    app: &App,
    row: &ProofRow,
    proven: &Proven,
    why: &ProofError,
) -> Result<(), ProofError> {
    let now = app.clock.now();
    let subscriber = row
        .subscriber_id
        .context("a change request has its subscriber")?;
    let reason = crate::domain::as_sentence(&why.to_string());
    let mut tx = app.db.begin().await?;
    proofs::record_signed_in(&mut tx, proven).await?;
    if !proof_store::update_refused(&mut tx, row.id, &reason).await? {
        return Ok(());
    }
    let detail = serde_json::json!({
        "request": row.id, "email": proven.account.email.as_str(),
        "plex_user_id": proven.account.plex_user_id, "reason": reason,
    });
    audit::insert_audit(
        &mut tx,
        &Actor::Subscriber(subscriber),
        Some(subscriber),
        "account_change.refused",
        &detail,
        now,
    )
    .await?;
    let dm = serde_json::json!({ "plex_account": proven.account.email.as_str(), "reason": reason });
    notify::enqueue_dm(
        app,
        &mut tx,
        subscriber,
        NotificationKind::AccountRefused,
        &dm,
        &format!("refused-{}", row.id),
    )
    .await?;
    app.queue.commit(tx).await?;
    Ok(())
}

/// The sign-in job's step: `Ok(true)` when settled (applied, refused or expired), `Ok(false)` to
/// look again in a moment.
pub async fn poll_sign_in(app: &App, request: ProofId) -> anyhow::Result<bool> {
    match finish_sign_in(app, request, None).await {
        Ok(SignInOutcome::Waiting) => Ok(false),
        Err(ProofError::Unexpected(err)) => Err(err),
        // Applied, settled before, refused (and told), expired, or the flow was closed
        // meanwhile: nothing more to do.
        Ok(SignInOutcome::Applied(_) | SignInOutcome::Settled) | Err(_) => Ok(true),
    }
}

/// Applies a proven change in the caller's transaction (see the module rules). The proof is
/// claimed first (pending → verified); when it was not pending any more the change was applied
/// (or ended) by someone else, and this one is refused with [`ProofError::NoPendingRequest`].
async fn apply_change(
    app: &App,
    tx: &mut Tx,
    actor: &Actor,
    subscriber: SubscriberId,
    proven: &Proven,
) -> Result<ChangeApplied, ProofError> {
    let now = app.clock.now();
    // The proof is used first: a second finisher of the same proof (the right code submitted
    // twice at once, or the sign-in watch and the button) waits here for the first and finds
    // it used, on both databases, instead of racing it through the rest.
    if !proof_store::update_state(tx, proven.request, ProofState::Verified, now).await? {
        return Err(ProofError::NoPendingRequest);
    }
    let row = check_allowed(tx, subscriber, &proven.account).await?;
    let old = subscribers::find_active_identity(tx, subscriber).await?;
    if let Some(old) = &old {
        let reason = if shares::find_last_owner_banned(tx, old.id).await? {
            RetireReason::Banned
        } else {
            RetireReason::Changed
        };
        subscribers::update_identity_retired(tx, old.id, reason, now).await?;
    }
    let identity =
        match subscribers::insert_identity(tx, subscriber, &proven.account.keys(), now).await {
            Ok(id) => id,
            Err(err) if is_unique_violation(&err) => return Err(ProofError::InUse),
            Err(err) => return Err(err.into()),
        };
    subscribers::update_flag(tx, subscriber, false, now).await?;

    // The old shares stop counting now (the new one may be on the same server); plex.tv sees
    // them removed before it sees the new invite (the invite job removes leftovers first).
    let previous = shares::find_previous_servers(tx, subscriber).await?;
    for share in shares::find_live_shares_of(tx, subscriber).await? {
        shares::update_share_removed(tx, share.id, now).await?;
        if share.owner_state == OwnerAccountState::Removed {
            shares::update_share_unshared(tx, share.id, now).await?;
        } else {
            let remove = RemoveShare::new(share.id, share.owner_account_id, "account-change");
            app.queue.enqueue(tx, &remove).await?;
        }
    }
    let paid_up = lifecycle::find_standing(tx, subscriber, now)
        .await?
        .is_some_and(|s| s.active);
    let placed = match row.plan_id {
        Some(plan) if paid_up => Some(
            access::place_and_invite(
                app,
                tx,
                subscriber,
                identity,
                plan,
                previous,
                row.preferred_location,
            )
            .await?,
        ),
        _ => None,
    };
    let server = placed.as_ref().and_then(|p| p.as_ref().ok().copied());
    tell_about_change(app, tx, subscriber, proven, row.plan_id, paid_up, placed).await?;
    let detail = serde_json::json!({
        "request": proven.request, "old_identity": old.as_ref().map(|o| o.id), "new_identity": identity,
        "new_email": proven.account.email.as_str(), "plex_user_id": proven.account.plex_user_id,
        "server": server, "paid_up": paid_up,
    });
    audit::insert_audit(
        tx,
        actor,
        Some(subscriber),
        "account_change.applied",
        &detail,
        now,
    )
    .await?;
    Ok(ChangeApplied {
        identity,
        server,
        paid_up,
    })
}

/// Queues the news of an applied change: DM and email to the new address, and when no server had
/// room, an alert to the admins.
async fn tell_about_change(
    app: &App,
    tx: &mut Tx,
    subscriber: SubscriberId,
    proven: &Proven,
    plan: Option<crate::domain::PlanId>,
    paid_up: bool,
    placed: Option<Result<ServerId, String>>,
) -> Result<(), ProofError> {
    let event = format!("change-{}", proven.request);
    let email = proven.account.email.as_str();
    let plan_name = match plan {
        Some(plan) => servers::find_plan_name(tx, plan).await?,
        None => None,
    };
    let not_paid = plan.is_some() && !paid_up;
    let (kind, detail) = match placed {
        Some(Ok(server)) => {
            let server_name = servers::find_server(tx, server).await?.map(|s| s.name);
            let detail = serde_json::json!({ "plex_account": email, "server_name": server_name });
            (Kind::ChangeConfirmed, detail)
        }
        None => {
            let detail = serde_json::json!({
                "plex_account": email, "server_name": null, "not_paid": not_paid,
                "plan_name": plan_name,
            });
            (Kind::ChangeConfirmed, detail)
        }
        Some(Err(reason)) => {
            let detail = serde_json::json!({
                "plex_account": email, "plan_name": plan_name, "reason": reason,
            });
            notify::enqueue_admin_alert(
                app,
                tx,
                Some(subscriber),
                Kind::AdminNoRoom,
                &detail,
                &event,
            )
            .await?;
            (Kind::WaitingForRoom, detail)
        }
    };
    notify::enqueue_dm(app, tx, subscriber, kind, &detail, &event).await?;
    notify::enqueue_email(app, tx, subscriber, kind, email, &detail, &event).await?;
    Ok(())
}

/// Flags or unflags one subscriber for a Plex account change. False when nothing changed.
pub async fn set_flag(
    app: &App,
    actor: &Actor,
    subscriber: SubscriberId,
    flagged: bool,
) -> Result<bool, ProofError> {
    let now = app.clock.now();
    let mut tx = app.db.begin().await?;
    subscribers::find_subscriber(&mut tx, subscriber)
        .await?
        .ok_or(ProofError::NotSubscriber)?;
    let changed = subscribers::update_flag(&mut tx, subscriber, flagged, now).await?;
    if changed {
        let action = if flagged {
            "subscriber.flag"
        } else {
            "subscriber.unflag"
        };
        audit::insert_audit(
            &mut tx,
            actor,
            Some(subscriber),
            action,
            &serde_json::json!({}),
            now,
        )
        .await?;
        if flagged {
            notify::enqueue_flagged(app, &mut tx, subscriber, now).await?;
        }
    }
    app.queue.commit(tx).await?;
    Ok(changed)
}

/// How long a bulk-flag preview can be confirmed.
pub const PREVIEW_MINUTES: i64 = 10;

/// What a bulk flag would do, shown to the admin before confirming.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BulkFlagPreview {
    /// Subscribers that would be flagged.
    pub count: i64,
    /// The first ten of them.
    pub first_names: Vec<String>,
    /// Signed, single-use, short-lived confirmation token.
    pub token: String,
}

/// Why a bulk flag confirm was refused.
#[derive(Debug, thiserror::Error)]
pub enum BulkFlagError {
    /// Forged, tampered or for another purpose.
    #[error("that confirmation is not valid; preview the bulk flag again")]
    BadToken,
    /// Too old, or already used.
    #[error("that confirmation has expired or was already used; preview the bulk flag again")]
    Stale,
    /// Anything else.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

const BULK_FLAG_PURPOSE: &str = "bulk-flag";

/// Step one of a bulk flag: records exactly who matches now and returns the count, the first ten
/// names and a confirmation token.
pub async fn preview_bulk_flag(
    app: &App,
    actor: &Actor,
    filter: crate::store::bulk_flags::FlagFilter,
) -> Result<BulkFlagPreview, BulkFlagError> {
    let now = app.clock.now();
    let expires = now + Duration::minutes(PREVIEW_MINUTES);
    let mut tx = app.db.begin().await?;
    let (preview, count) =
        crate::store::bulk_flags::insert_preview(&mut tx, filter, &actor.to_string(), now, expires)
            .await?;
    let first_names = crate::store::bulk_flags::find_preview_names(&mut tx, preview, 10).await?;
    tx.commit().await?;
    let token = app
        .signer
        .sign(BULK_FLAG_PURPOSE, &preview.to_string(), Some(expires));
    Ok(BulkFlagPreview {
        count,
        first_names,
        token,
    })
}

/// Step two: flags exactly the previewed set (minus anyone flagged meanwhile) in one statement.
/// Returns how many were flagged.
pub async fn confirm_bulk_flag(
    app: &App,
    actor: &Actor,
    token: &str,
) -> Result<u64, BulkFlagError> {
    let now = app.clock.now();
    let preview: i64 = match app.signer.verify(BULK_FLAG_PURPOSE, token, now) {
        Ok(payload) => payload.parse().map_err(|_| BulkFlagError::BadToken)?,
        Err(crate::crypto::SignatureError::Expired) => return Err(BulkFlagError::Stale),
        Err(_) => return Err(BulkFlagError::BadToken),
    };
    let mut tx = app.db.begin().await?;
    if !crate::store::bulk_flags::update_preview_confirmed(&mut tx, preview, now).await? {
        return Err(BulkFlagError::Stale);
    }
    let flagged = crate::store::bulk_flags::update_flag_members(&mut tx, preview, now).await?;
    let detail = serde_json::json!({ "preview": preview, "flagged": flagged });
    audit::insert_audit(&mut tx, actor, None, "subscriber.bulk_flag", &detail, now).await?;
    notify::enqueue_flag_fanout(app, &mut tx, preview).await?;
    app.queue.commit(tx).await?;
    Ok(flagged)
}
