//! The one "never reuse" rule (PRODUCT.md "Entities", DESIGN.md rule 6): a Plex identity is its
//! plex.tv account, and an account is the same when its email, its username or its plex.tv id
//! matches one ever linked here. An account that was retired, banned or refused can never be
//! linked again, to anyone; an account in use belongs to its subscriber alone.

use crate::domain::{IdentityState, PlexEmail, SubscriberId};
use crate::store::Tx;
use crate::store::subscribers::{self, AccountKeys, IdentityRow};

/// A plex.tv account as a person named it, with what plex.tv told us about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlexAccountRef {
    /// The email (or username) given.
    pub email: PlexEmail,
    /// The plex.tv id, when known (Plex sign-in, an invite's answer, the share lists).
    pub plex_user_id: Option<i64>,
    /// The plex.tv username, when known.
    pub username: Option<PlexEmail>,
}

impl PlexAccountRef {
    /// An account known only by what a person typed.
    pub fn typed(email: PlexEmail) -> Self {
        Self {
            email,
            plex_user_id: None,
            username: None,
        }
    }

    /// The keys the store matches on.
    pub fn keys(&self) -> AccountKeys<'_> {
        AccountKeys {
            email: &self.email,
            plex_user_id: self.plex_user_id,
            username: self.username.as_ref().map(PlexEmail::as_str),
        }
    }
}

/// Why an account cannot be linked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conflict {
    /// It is the subscriber's own current account.
    Current,
    /// Another subscriber uses it.
    InUse,
    /// It was retired, banned or refused here: never again.
    Retired,
}

/// Whether `account` may become `subscriber`'s (or a new subscriber's, with `None`) account:
/// `None` when it may, else the conflict. A retired, banned or refused match decides first,
/// whoever it belonged to.
pub async fn find_conflict(
    tx: &mut Tx,
    account: &PlexAccountRef,
    subscriber: Option<SubscriberId>,
) -> Result<Option<Conflict>, sqlx::Error> {
    let matches = subscribers::find_identities_of_account(tx, &account.keys()).await?;
    Ok(conflict_of(&matches, subscriber))
}

fn conflict_of(matches: &[IdentityRow], subscriber: Option<SubscriberId>) -> Option<Conflict> {
    if matches.iter().any(|i| i.state != IdentityState::Active) {
        return Some(Conflict::Retired);
    }
    if matches.iter().any(|i| Some(i.subscriber_id) != subscriber) {
        return Some(Conflict::InUse);
    }
    (!matches.is_empty()).then_some(Conflict::Current)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{PlexIdentityId, RetireReason};

    fn row(subscriber: i64, state: IdentityState) -> IdentityRow {
        IdentityRow {
            id: PlexIdentityId::new(1),
            subscriber_id: SubscriberId::new(subscriber),
            email_norm: PlexEmail::parse("a@example.com").unwrap(),
            plex_user_id: Some(7),
            plex_username: None,
            state,
            retire_reason: (state != IdentityState::Active).then_some(RetireReason::Banned),
        }
    }

    #[test]
    fn a_retired_match_wins_over_everything_else() {
        let me = Some(SubscriberId::new(1));
        assert_eq!(conflict_of(&[], me), None);
        assert_eq!(
            conflict_of(&[row(1, IdentityState::Active)], me),
            Some(Conflict::Current)
        );
        assert_eq!(
            conflict_of(&[row(2, IdentityState::Active)], me),
            Some(Conflict::InUse)
        );
        assert_eq!(
            conflict_of(&[row(1, IdentityState::Active)], None),
            Some(Conflict::InUse),
            "a new subscriber can have nobody's account"
        );
        for state in [
            IdentityState::Retired,
            IdentityState::Banned,
            IdentityState::Refused,
        ] {
            assert_eq!(
                conflict_of(&[row(1, IdentityState::Active), row(1, state)], me),
                Some(Conflict::Retired),
                "{state}"
            );
        }
    }
}
