//! The heart of ban recovery: a flagged subscriber moves to a NEW, verified Plex account.
//!
//! Rules it keeps (PRODUCT.md "Ban recovery" 5–9):
//! - Only while "Plex account change processing" is on, and only for a flagged subscriber.
//! - The new email must differ from the current one, never have been linked here (retired, banned
//!   or in use, in any spelling), and be a real plex.tv account; when plex.tv cannot say, we say so.
//! - A 6-digit code goes to the new address; only its keyed hash is stored. It expires after 15
//!   minutes, allows 5 wrong tries, and can be re-sent once a minute.
//! - On the right code, ONE transaction retires the old identity (as `banned` when its last server's
//!   owner was banned), links the new one, clears the flag, keeps every payment, note and history
//!   row, writes the audit log, and queues the removal of old shares and the invite on a server
//!   chosen by placement. If nothing fits, the change still stands and the admins are told.

use anyhow::Context as _;
use chrono::Duration;

use crate::app::App;
use crate::domain::{
    Actor, ChangeRequestId, ChangeRequestState, IdentityState, OwnerAccountState, PlanId,
    PlexEmail, PlexIdentityId, RetireReason, ServerId, SubscriberId, VerificationCode,
};
use crate::integrations::plex::{PlexError, Validation};
use crate::jobs::RemoveShare;
use crate::services::access;
use crate::services::notify::{self, Kind};
use crate::services::settings::plex_account_change_enabled;
use crate::store::account_changes::{self, NewChangeRequest};
use crate::store::{Tx, audit, is_unique_violation, owner_accounts, servers, shares, subscribers};

/// How long a code works.
pub const CODE_LIFETIME_MINUTES: i64 = 15;
/// Wrong codes allowed before the request locks.
pub const MAX_WRONG_CODES: i32 = 5;
/// Least time between two sends of a code.
pub const RESEND_AFTER_SECONDS: i64 = 60;

/// Why a change was refused; each is a message for the subscriber.
#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    /// The setting is off.
    #[error("Plex account changes are turned off by the admins")]
    Disabled,
    /// Not flagged.
    #[error("your account does not need a Plex account change")]
    NotFlagged,
    /// Not a subscriber.
    #[error("you are not a subscriber here yet")]
    NotSubscriber,
    /// Same as now.
    #[error(
        "that is the Plex account you already use; sign up for a NEW Plex account with a new email"
    )]
    SameAsCurrent,
    /// Retired or banned here.
    #[error(
        "that Plex account was used here before and can never be used again; sign up for a new one"
    )]
    Retired,
    /// Someone else uses it.
    #[error("that Plex account is already in use")]
    InUse,
    /// plex.tv does not know it.
    #[error("there is no plex.tv account for {0}; sign up at plex.tv with that email first")]
    NotPlexAccount(String),
    /// plex.tv cannot check now.
    #[error("we cannot check that account with plex.tv right now; try again in a few minutes")]
    ValidationUnavailable,
    /// Resend too soon.
    #[error("a code was sent less than a minute ago; wait {0} seconds before asking for another")]
    ResendTooSoon(i64),
    /// The code could not be sent.
    #[error("we could not send the code to that address right now; try again in a minute")]
    MailFailed,
    /// No pending request.
    #[error("there is no code waiting for you; start the Plex account change again")]
    NoPendingRequest,
    /// Code expired.
    #[error("that code has expired; ask for a new one")]
    Expired,
    /// Too many wrong codes.
    #[error("too many wrong codes; start the Plex account change again to get a new one")]
    Locked,
    /// Wrong code.
    #[error("that code is not right; {0} tries left")]
    WrongCode(i32),
    /// Anything else.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// A code is on its way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeSent {
    /// The request.
    pub request: ChangeRequestId,
    /// Minutes until the code expires.
    pub expires_in_minutes: i64,
}

/// The change is done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeApplied {
    /// The new active identity.
    pub identity: PlexIdentityId,
    /// Where the invite goes; `None` when no server has room yet (admins were told).
    pub server: Option<ServerId>,
}

fn hash_context(subscriber: SubscriberId, email: &PlexEmail) -> Vec<u8> {
    format!("account-change:{subscriber}:{}", email.as_str()).into_bytes()
}

/// Checks that a subscriber may change to `email` now; returns their row.
async fn check_allowed(
    tx: &mut Tx,
    subscriber: SubscriberId,
    email: &PlexEmail,
) -> Result<subscribers::SubscriberRow, ChangeError> {
    if !plex_account_change_enabled(tx).await? {
        return Err(ChangeError::Disabled);
    }
    let row = subscribers::find_subscriber(tx, subscriber)
        .await?
        .ok_or(ChangeError::NotSubscriber)?;
    if !row.requires_plex_change {
        return Err(ChangeError::NotFlagged);
    }
    if let Some(existing) = subscribers::find_identity_by_email(tx, email).await? {
        return Err(match existing.state.as_str() {
            s if s == IdentityState::Active.as_str() && existing.subscriber_id == subscriber => {
                ChangeError::SameAsCurrent
            }
            s if s == IdentityState::Active.as_str() => ChangeError::InUse,
            _ => ChangeError::Retired,
        });
    }
    Ok(row)
}

/// Asks for a change to `email`: checks it, validates it on plex.tv, and emails a code to it.
pub async fn request_change(
    app: &App,
    actor: &Actor,
    subscriber: SubscriberId,
    email: &PlexEmail,
) -> Result<CodeSent, ChangeError> {
    let now = app.clock.now();
    let (row, owner_token) = {
        let mut tx = app.db.read().await?;
        let row = check_allowed(&mut tx, subscriber, email).await?;
        if let Some(pending) = account_changes::find_pending(&mut tx, subscriber).await? {
            let wait = RESEND_AFTER_SECONDS - (now - pending.last_sent_at).num_seconds();
            if wait > 0 {
                return Err(ChangeError::ResendTooSoon(wait));
            }
        }
        let owners = owner_accounts::find_owner_accounts(&mut tx).await?;
        let token = owners
            .iter()
            .find(|o| o.state == OwnerAccountState::Active)
            .map(|o| o.token_enc.clone());
        (row, token)
    };
    // plex.tv answers only to an owner's token; with none, or when it cannot say, we do not guess.
    let token = owner_token.ok_or(ChangeError::ValidationUnavailable)?;
    let token = app
        .cipher
        .decrypt(&token)
        .context("opening an owner token")?;
    match app.plex.validate_user(&token, email.as_str()).await {
        Ok(Validation::Valid) => {}
        Ok(Validation::NotAnAccount) => return Err(ChangeError::NotPlexAccount(email.to_string())),
        Ok(Validation::ValidationUnavailable)
        | Err(
            PlexError::RateLimited { .. }
            | PlexError::Server { .. }
            | PlexError::Transport { .. }
            | PlexError::Gone { .. }
            | PlexError::Unauthorized,
        ) => {
            return Err(ChangeError::ValidationUnavailable);
        }
        Err(err) => {
            return Err(ChangeError::Unexpected(
                anyhow::Error::new(err).context("validating on plex.tv"),
            ));
        }
    }

    let code = VerificationCode::generate();
    let hash = hex::encode(code.hash(&app.signing_key, &hash_context(subscriber, email)));
    let mut tx = app.db.begin().await?;
    // Re-check inside the write transaction: the world may have moved during the remote call.
    check_allowed(&mut tx, subscriber, email).await?;
    let sends = match account_changes::find_pending(&mut tx, subscriber).await? {
        Some(pending) => {
            account_changes::update_state(&mut tx, pending.id, ChangeRequestState::Cancelled, now)
                .await?;
            2
        }
        None => 1,
    };
    let request = NewChangeRequest {
        subscriber,
        email,
        code_hash: &hash,
        expires_at: now + Duration::minutes(CODE_LIFETIME_MINUTES),
        sends,
    };
    let id = account_changes::insert_request(&mut tx, &request, now).await?;
    let detail = serde_json::json!({ "request": id, "new_email": email.as_str() });
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

    // Sent after the commit, never from inside it; the code exists only in this message.
    let context = serde_json::json!({ "name": row.display_name, "code": code.expose_for_delivery(), "expires_minutes": CODE_LIFETIME_MINUTES });
    let rendered = app
        .templates
        .render_email("verification_code", context)
        .context("rendering the code email")?;
    if let Err(err) = app
        .mailer
        .send(&app.settings.email.from, email.as_str(), &rendered)
        .await
    {
        tracing::warn!(subscriber = %subscriber, error = %err, "sending a verification code failed");
        return Err(ChangeError::MailFailed);
    }
    Ok(CodeSent {
        request: id,
        expires_in_minutes: CODE_LIFETIME_MINUTES,
    })
}

/// Whether the subscriber may start a change now (setting on, flagged): checked before asking
/// them for an email, so nobody types one in only to be told no.
pub async fn can_start(app: &App, subscriber: SubscriberId) -> Result<(), ChangeError> {
    let mut tx = app.db.read().await?;
    let enabled = plex_account_change_enabled(&mut tx).await?;
    let row = subscribers::find_subscriber(&mut tx, subscriber).await?;
    tx.rollback().await?;
    if !enabled {
        return Err(ChangeError::Disabled);
    }
    match row {
        None => Err(ChangeError::NotSubscriber),
        Some(row) if !row.requires_plex_change => Err(ChangeError::NotFlagged),
        Some(_) => Ok(()),
    }
}

/// Sends a fresh code for the pending request (same new email), at most once a minute.
pub async fn resend_code(
    app: &App,
    actor: &Actor,
    subscriber: SubscriberId,
) -> Result<CodeSent, ChangeError> {
    let pending = {
        let mut tx = app.db.read().await?;
        let pending = account_changes::find_pending(&mut tx, subscriber).await?;
        tx.rollback().await?;
        pending.ok_or(ChangeError::NoPendingRequest)?
    };
    let email = pending.new_email_norm;
    request_change(app, actor, subscriber, &email).await
}

/// Checks the code and, when right, applies the change in one transaction.
pub async fn verify_change(
    app: &App,
    actor: &Actor,
    subscriber: SubscriberId,
    code: &VerificationCode,
) -> Result<ChangeApplied, ChangeError> {
    let now = app.clock.now();
    let mut tx = app.db.begin().await?;
    if !plex_account_change_enabled(&mut tx).await? {
        return Err(ChangeError::Disabled);
    }
    let pending = account_changes::find_pending(&mut tx, subscriber)
        .await?
        .ok_or(ChangeError::NoPendingRequest)?;
    let request = pending.id;
    if now >= pending.expires_at {
        account_changes::update_state(&mut tx, request, ChangeRequestState::Expired, now).await?;
        tx.commit().await?;
        return Err(ChangeError::Expired);
    }
    let email = pending.new_email_norm;
    let stored = hex::decode(&pending.code_hash).context("stored code hash")?;
    if !code.matches(&app.signing_key, &hash_context(subscriber, &email), &stored) {
        let failed = account_changes::update_failed_attempt(&mut tx, request).await?;
        if failed >= MAX_WRONG_CODES {
            account_changes::update_state(&mut tx, request, ChangeRequestState::Locked, now)
                .await?;
            tx.commit().await?;
            return Err(ChangeError::Locked);
        }
        tx.commit().await?;
        return Err(ChangeError::WrongCode(MAX_WRONG_CODES - failed));
    }

    let row = check_allowed(&mut tx, subscriber, &email).await?;
    let old = subscribers::find_active_identity(&mut tx, subscriber).await?;
    if let Some(old) = &old {
        let old_id = old.id;
        let reason = if shares::find_last_owner_banned(&mut tx, old_id).await? {
            RetireReason::Banned
        } else {
            RetireReason::Changed
        };
        subscribers::update_identity_retired(&mut tx, old_id, reason, now).await?;
    }
    let identity = match subscribers::insert_identity(&mut tx, subscriber, &email, None, now).await
    {
        Ok(id) => id,
        Err(err) if is_unique_violation(&err) => return Err(ChangeError::InUse),
        Err(err) => return Err(err.into()),
    };
    subscribers::update_flag(&mut tx, subscriber, false, now).await?;
    account_changes::update_state(&mut tx, request, ChangeRequestState::Verified, now).await?;

    // Old shares go: through plex.tv unless the owner account was removed (then there is nothing
    // to call).
    let previous = shares::find_previous_servers(&mut tx, subscriber).await?;
    for share in shares::find_live_shares_of(&mut tx, subscriber).await? {
        if share.owner_state == OwnerAccountState::Removed {
            shares::update_share_removed(&mut tx, share.id, now).await?;
        } else {
            let remove = RemoveShare::new(share.id, share.owner_account_id, "account-change");
            app.queue.enqueue(&mut tx, &remove).await?;
        }
    }
    let placed = match row.plan_id {
        Some(plan) => Some(
            access::place_and_invite(
                app,
                &mut tx,
                subscriber,
                identity,
                plan,
                previous,
                row.preferred_location,
            )
            .await?,
        ),
        None => None,
    };
    let server = placed.as_ref().and_then(|p| p.as_ref().ok().copied());
    tell_about_change(
        app,
        &mut tx,
        subscriber,
        request,
        &email,
        row.plan_id,
        placed,
    )
    .await?;
    let detail = serde_json::json!({
        "request": request, "old_identity": old.as_ref().map(|o| o.id), "new_identity": identity,
        "new_email": email.as_str(), "server": server,
    });
    audit::insert_audit(
        &mut tx,
        actor,
        Some(subscriber),
        "account_change.applied",
        &detail,
        now,
    )
    .await?;
    app.queue.commit(tx).await?;
    Ok(ChangeApplied { identity, server })
}

/// Queues the news of an applied change: DM and email to the new address, and when no server had
/// room, an alert to the admins.
async fn tell_about_change(
    app: &App,
    tx: &mut Tx,
    subscriber: SubscriberId,
    request: ChangeRequestId,
    email: &PlexEmail,
    plan: Option<PlanId>,
    placed: Option<Result<ServerId, String>>,
) -> Result<(), ChangeError> {
    let event = format!("change-{request}");
    let plan_name = match plan {
        Some(plan) => servers::find_plan_name(tx, plan).await?,
        None => None,
    };
    let (kind, detail) = match placed {
        Some(Ok(server)) => {
            let server_name = servers::find_server(tx, server).await?.map(|s| s.name);
            let detail =
                serde_json::json!({ "plex_account": email.as_str(), "server_name": server_name });
            (Kind::ChangeConfirmed, detail)
        }
        None => {
            let detail = serde_json::json!({ "plex_account": email.as_str(), "server_name": null });
            (Kind::ChangeConfirmed, detail)
        }
        Some(Err(reason)) => {
            let detail = serde_json::json!({
                "plex_account": email.as_str(), "plan_name": plan_name, "reason": reason,
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
    notify::enqueue_email(app, tx, subscriber, kind, email.as_str(), &detail, &event).await?;
    Ok(())
}

/// Flags or unflags one subscriber for a Plex account change. False when nothing changed.
pub async fn set_flag(
    app: &App,
    actor: &Actor,
    subscriber: SubscriberId,
    flagged: bool,
) -> Result<bool, ChangeError> {
    let now = app.clock.now();
    let mut tx = app.db.begin().await?;
    subscribers::find_subscriber(&mut tx, subscriber)
        .await?
        .ok_or(ChangeError::NotSubscriber)?;
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
