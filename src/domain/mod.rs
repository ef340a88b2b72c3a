//! Domain types: values that parse rather than validate. Every type here is checked once, where it
//! enters the system (a door), and trusted afterwards; services never take a `String` where one of
//! these exists. No I/O happens in this module tree.

mod actor;
mod code;
mod discord;
mod ids;
mod money;
mod plex_email;
mod provider_ids;
mod states;
mod text;

pub use actor::Actor;
pub use code::{VerificationCode, VerificationCodeError};
pub use discord::{DiscordId, DiscordIdError};
pub use ids::{
    JobId, LibraryGroupId, LibraryId, OwnerAccountId, ParseIdError, PaymentId, PlanId,
    PlexIdentityId, ProofId, ServerId, ShareId, SubscriberId,
};
pub use money::{Currency, CurrencyError, Money, MoneyError};
pub use plex_email::{PlexEmail, PlexEmailError};
pub use provider_ids::{PaypalPlanId, ProviderIdError, StripePriceId};
pub use states::{
    BillingPeriod, IdentityState, JobState, NotificationChannel, NotificationKind,
    NotificationState, OwnerAccountState, ParseStateError, PaymentStatus, ProofMethod,
    ProofPurpose, ProofState, Provider, RefundKind, RefundStatus, RetireReason, ShareState,
};
pub use text::as_sentence;
