//! The admins' recovery board: how far a ban recovery has come, in counts and per subscriber,
//! including whether the "must change" DM reached them.

use crate::app::App;
use crate::domain::{DiscordId, NotificationState, ShareState, SubscriberId};
use crate::store::recovery;

/// Where one subscriber stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Flagged; has not asked for a code (or it expired).
    Flagged,
    /// A code is waiting.
    CodeSent,
    /// Changed account; no server had room yet.
    VerifiedNoServer,
    /// Changed account; invite sent, not accepted yet.
    Invited,
    /// Accepted the invite: done.
    Accepted,
}

/// One line of the board.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoardEntry {
    /// Subscriber.
    pub subscriber: SubscriberId,
    /// Their Discord user.
    pub discord_id: Option<DiscordId>,
    /// Display name.
    pub name: String,
    /// Stage.
    pub stage: Stage,
    /// How the "must change" DM went.
    pub dm: DmStatus,
}

/// Delivery of the "must change" DM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DmStatus {
    /// None was made (flagged before notifications existed, or not flagged by a flag).
    None,
    /// Waiting to be sent.
    Queued,
    /// Delivered.
    Sent,
    /// Not delivered: DMs closed, no bot configured, or Discord refused.
    Failed,
}

/// The board: counts per stage and the list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Board {
    /// Still flagged (flagged + code sent).
    pub flagged: usize,
    /// Whose "must change" DM was delivered.
    pub notified: usize,
    /// Whose "must change" DM could not be delivered.
    pub dm_failed: usize,
    /// With a code waiting.
    pub code_sent: usize,
    /// Changed their account.
    pub verified: usize,
    /// Invited and not yet accepted.
    pub invited: usize,
    /// Accepted.
    pub accepted: usize,
    /// Changed but waiting for a server with room.
    pub waiting_for_room: usize,
    /// Everyone in the recovery.
    pub entries: Vec<BoardEntry>,
}

/// Reads the board.
pub async fn board(app: &App) -> anyhow::Result<Board> {
    let mut tx = app.db.read().await?;
    let rows = recovery::find_board(&mut tx, app.clock.now()).await?;
    tx.rollback().await?;
    let mut board = Board::default();
    for row in rows {
        let stage = match (row.flagged, row.code_pending, row.verified, row.share_state) {
            (true, true, ..) => Stage::CodeSent,
            (true, false, ..) => Stage::Flagged,
            (false, _, _, Some(ShareState::Accepted)) => Stage::Accepted,
            (false, _, _, Some(_)) => Stage::Invited,
            (false, ..) => Stage::VerifiedNoServer,
        };
        match stage {
            Stage::Flagged => board.flagged += 1,
            Stage::CodeSent => {
                board.flagged += 1;
                board.code_sent += 1;
            }
            Stage::VerifiedNoServer => {
                board.verified += 1;
                board.waiting_for_room += 1;
            }
            Stage::Invited => {
                board.verified += 1;
                board.invited += 1;
            }
            Stage::Accepted => {
                board.verified += 1;
                board.accepted += 1;
            }
        }
        let dm = match row.flag_dm_state {
            None => DmStatus::None,
            Some(NotificationState::Queued) => DmStatus::Queued,
            Some(NotificationState::Sent) => DmStatus::Sent,
            Some(_) => DmStatus::Failed,
        };
        match dm {
            DmStatus::Sent => board.notified += 1,
            DmStatus::Failed => board.dm_failed += 1,
            DmStatus::None | DmStatus::Queued => {}
        }
        board.entries.push(BoardEntry {
            subscriber: row.id,
            discord_id: Some(row.discord_id),
            name: row.display_name,
            stage,
            dm,
        });
    }
    Ok(board)
}
