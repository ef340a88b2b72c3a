//! What a subscriber's account looks like: the status `/account` shows, and the few things an
//! admin changes on one subscriber (notes). Flags and Plex account changes live in
//! [`account_change`](crate::services::account_change).

use chrono::{DateTime, Utc};

use crate::app::App;
use crate::domain::{Actor, DiscordId, PlexEmail, ShareState, SubscriberId};
use crate::store::{audit, subscribers};

/// Longest admin note kept.
pub const MAX_NOTE_CHARS: usize = 1000;

/// A subscriber's account as shown to them (and to admins).
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(clippy::struct_excessive_bools)] // independent facts, shown side by side
pub struct AccountStatus {
    /// Subscriber id.
    pub subscriber: SubscriberId,
    /// Display name.
    pub name: String,
    /// Current Plex account email.
    pub plex_email: Option<PlexEmail>,
    /// Plan name.
    pub plan: Option<String>,
    /// End of the latest paid interval.
    pub paid_until: Option<DateTime<Utc>>,
    /// Never expires.
    pub permanent: bool,
    /// Permanent, or paid for now.
    pub active: bool,
    /// Server of the live share.
    pub server: Option<String>,
    /// Invite state: pending (not accepted yet) or accepted.
    pub invite: Option<ShareState>,
    /// Must change Plex account.
    pub flagged: bool,
    /// A code is waiting.
    pub code_pending: bool,
    /// No server had room when a share was due; they are invited as soon as one has.
    pub waiting_for_room: bool,
    /// Admin notes (shown to admins only).
    pub notes: String,
}

impl AccountStatus {
    /// Whether "Re-invite me" applies: paid up, not flagged, a Plex account and a plan on file,
    /// and no live share or pending invite (access lost, or never placed).
    pub fn can_reinvite(&self) -> bool {
        self.active
            && !self.flagged
            && self.server.is_none()
            && self.plex_email.is_some()
            && self.plan.is_some()
    }

    fn from_row(r: subscribers::StatusRow) -> Self {
        Self {
            subscriber: r.id,
            name: r.display_name,
            plex_email: r.plex_email,
            plan: r.plan,
            paid_until: r.paid_until,
            permanent: r.permanent,
            active: r.permanent || r.paid_now,
            server: r.server,
            invite: r.share_state,
            flagged: r.requires_plex_change,
            code_pending: r.code_pending,
            waiting_for_room: r.waiting_for_room,
            notes: r.notes,
        }
    }
}

/// The subscriber behind a Discord user, with their status; `None` for someone unknown.
pub async fn status(app: &App, user: DiscordId) -> anyhow::Result<Option<AccountStatus>> {
    let mut tx = app.db.read().await?;
    let row = subscribers::find_status_by_discord(&mut tx, user, app.clock.now()).await?;
    tx.rollback().await?;
    Ok(row.map(AccountStatus::from_row))
}

/// One subscriber's status (the My Account page: the session names the subscriber).
pub async fn status_of(
    app: &App,
    subscriber: SubscriberId,
) -> anyhow::Result<Option<AccountStatus>> {
    let mut tx = app.db.read().await?;
    let row = subscribers::find_status(&mut tx, subscriber, app.clock.now()).await?;
    tx.rollback().await?;
    Ok(row.map(AccountStatus::from_row))
}

/// The subscriber id of a Discord user, if they are one.
pub async fn subscriber_of(app: &App, user: DiscordId) -> anyhow::Result<Option<SubscriberId>> {
    let mut tx = app.db.read().await?;
    let id = subscribers::find_id_by_discord(&mut tx, user).await?;
    tx.rollback().await?;
    Ok(id)
}

/// Why a note was refused.
#[derive(Debug, thiserror::Error)]
pub enum NoteError {
    /// Too long.
    #[error("a note can be at most {MAX_NOTE_CHARS} characters; this one has {0}")]
    TooLong(usize),
    /// Unknown subscriber.
    #[error("that user is not a subscriber")]
    NotSubscriber,
    /// Anything else.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// Replaces a subscriber's admin note (empty clears it); audited with the old and new text.
pub async fn set_note(
    app: &App,
    actor: &Actor,
    subscriber: SubscriberId,
    note: &str,
) -> Result<(), NoteError> {
    let note = note.trim();
    let chars = note.chars().count();
    if chars > MAX_NOTE_CHARS {
        return Err(NoteError::TooLong(chars));
    }
    let now = app.clock.now();
    let mut tx = app.db.begin().await?;
    if !subscribers::update_notes(&mut tx, subscriber, note, now).await? {
        return Err(NoteError::NotSubscriber);
    }
    let detail = serde_json::json!({ "note": note });
    audit::insert_audit(
        &mut tx,
        actor,
        Some(subscriber),
        "subscriber.note",
        &detail,
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(())
}
