//! Who acts: every service call names its actor, and the audit log records it.

use std::fmt;

use crate::domain::{DiscordId, Provider, SubscriberId};

/// The person or system behind a change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// An admin, by Discord id.
    Admin(DiscordId),
    /// A subscriber acting for themselves.
    Subscriber(SubscriberId),
    /// A Discord member who is not a subscriber yet (joining or claiming).
    Member(DiscordId),
    /// A payment provider's webhook.
    Webhook(Provider),
    /// Usher itself (scheduler, jobs, command line).
    System,
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Admin(id) => write!(f, "discord:{}", id.get()),
            Self::Subscriber(id) => write!(f, "subscriber:{id}"),
            Self::Member(id) => write!(f, "member:{}", id.get()),
            Self::Webhook(provider) => write!(f, "webhook:{provider}"),
            Self::System => f.write_str("system"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actors_render_as_stable_audit_names() {
        assert_eq!(
            Actor::Admin(DiscordId::new(42).unwrap()).to_string(),
            "discord:42"
        );
        assert_eq!(
            Actor::Subscriber(SubscriberId::new(7)).to_string(),
            "subscriber:7"
        );
        assert_eq!(
            Actor::Member(DiscordId::new(42).unwrap()).to_string(),
            "member:42"
        );
        assert_eq!(
            Actor::Webhook(Provider::Stripe).to_string(),
            "webhook:stripe"
        );
        assert_eq!(Actor::System.to_string(), "system");
    }
}
