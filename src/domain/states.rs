//! State and kind enums stored in database text columns. Each has exactly one spelling per variant
//! (`as_str`), read back with `FromStr`; an unknown spelling is an error, never a default.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Days, Months, Utc};

/// A database text value that names no variant of the expected enum.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} \"{}\"", .value.escape_debug())]
pub struct ParseStateError {
    /// The enum that was expected.
    pub kind: &'static str,
    /// The text that was found.
    pub value: String,
}

macro_rules! text_enum {
    ($(#[$meta:meta])* $name:ident as $kind:literal { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            /// The spelling stored in the database.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text),+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = ParseStateError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok(Self::$variant),)+
                    _ => Err(ParseStateError { kind: $kind, value: s.to_owned() }),
                }
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

text_enum!(
    /// Lifecycle of a Plex identity. Once not `Active` it can never be linked to anyone again.
    IdentityState as "identity state" {
        /// Currently linked to its subscriber.
        Active => "active",
        /// Changed away from by its subscriber.
        Retired => "retired",
        /// Banned by plex.tv or by an admin.
        Banned => "banned",
        /// Refused when invited: plex.tv named it as a retired or banned account (its email was
        /// changed on plex.tv). Never linkable.
        Refused => "refused",
    }
);

text_enum!(
    /// Lifecycle of a share of a server with a subscriber.
    ShareState as "share state" {
        /// Invite sent, not yet accepted.
        Pending => "pending",
        /// The subscriber accepted the invite.
        Accepted => "accepted",
        /// The share was removed.
        Removed => "removed",
    }
);

text_enum!(
    /// Lifecycle of a durable job.
    JobState as "job state" {
        /// Waiting for its run time.
        Queued => "queued",
        /// Claimed by a worker.
        Running => "running",
        /// Finished successfully.
        Done => "done",
        /// Gave up after its last retry (dead-lettered).
        Dead => "dead",
        /// Waits for an admin to fix its cause (e.g. a revoked owner token).
        Parked => "parked",
    }
);

text_enum!(
    /// Lifecycle of an owner Plex account.
    OwnerAccountState as "owner account state" {
        /// In use.
        Active => "active",
        /// Banned by Plex; its servers take no new subscribers.
        Banned => "banned",
        /// Removed by the admin; subscribers keep their data, not their assignment.
        Removed => "removed",
    }
);

text_enum!(
    /// Lifecycle of a request to prove a Plex account (an emailed code or Plex sign-in).
    ProofState as "proof state" {
        /// Waiting for the code or the sign-in.
        Pending => "pending",
        /// Proven; what it was for is applied.
        Verified => "verified",
        /// Its time ran out.
        Expired => "expired",
        /// Too many wrong codes.
        Locked => "locked",
        /// Replaced by a newer request.
        Cancelled => "cancelled",
        /// The account proven may not be used here (retired, banned or someone else's).
        Refused => "refused",
    }
);

text_enum!(
    /// What a proof of a Plex account is for.
    ProofPurpose as "proof purpose" {
        /// A flagged subscriber moves to a new Plex account.
        Change => "change",
        /// A new member joins with their Plex account.
        Join => "join",
        /// A member claims the imported subscriber of their Plex account.
        Claim => "claim",
    }
);

text_enum!(
    /// How a Plex account is proven.
    ProofMethod as "proof method" {
        /// A 6-digit code mailed to the account's email.
        EmailCode => "email_code",
        /// Signing in to Plex (the PIN flow), which names the account's plex.tv id.
        PlexSignIn => "plex_sign_in",
    }
);

text_enum!(
    /// Lifecycle of a notification (a DM, an email, an admin alert).
    NotificationState as "notification state" {
        /// Waiting for its delivery job.
        Queued => "queued",
        /// Delivered.
        Sent => "sent",
        /// Discord refused the DM: the member's DMs are closed.
        DmClosed => "dm_closed",
        /// Not sent on purpose (stale, or nowhere to send it).
        Undeliverable => "undeliverable",
        /// Delivery failed for good.
        Failed => "failed",
    }
);

text_enum!(
    /// Where a notification goes.
    NotificationChannel as "notification channel" {
        /// A Discord DM to the subscriber.
        Dm => "dm",
        /// An email.
        Email => "email",
        /// The admins' alert channel.
        Admin => "admin",
    }
);

text_enum!(
    /// What a notification says; each names its template(s) (under `dms/` as `.md.j2`, under
    /// `emails/` as `.txt.j2` + `.html.j2`).
    NotificationKind as "notification kind" {
        /// "Your Plex account must change" (DM with the button).
        Flagged => "flagged",
        /// "Your Plex account is now X; accept the invite" (DM and email).
        ChangeConfirmed => "change_confirmed",
        /// "Your account changed but no server has room yet" (DM).
        WaitingForRoom => "waiting_for_room",
        /// Admins: a re-invite found no server with room.
        AdminNoRoom => "admin_no_room",
        /// "A server had room: accept the invite to X" (DM), after waiting for room.
        Invited => "invited",
        /// "Your subscription ends in N days" (DM and email); not sent once renewed.
        Reminder => "reminder",
        /// "Your subscription ended; access removed; your place is kept until …" (DM).
        Expired => "expired",
        /// "We received your payment; paid until …" (DM).
        Receipt => "receipt",
        /// "Your renewal payment failed; the provider retries; update your payment method" (DM).
        PaymentFailed => "payment_failed",
        /// "Your payment was refunded (or reversed); your paid time is now …" (DM).
        Refunded => "refunded",
        /// "Welcome: your subscription is now linked to you; here is where it stands" (DM), when
        /// a member claims (or an admin links) an imported subscriber, or a member joins.
        Welcome => "welcome",
        /// "That Plex account cannot be used here, and why" (DM): a sign-in or an invite named a
        /// retired, banned or refused account.
        AccountRefused => "account_refused",
        /// Admins: an invite or a reconcile found a retired or banned plex.tv account under a new
        /// email, and refused it.
        AdminAccountRefused => "admin_account_refused",
    }
);

text_enum!(
    /// Why a Plex identity stopped being active.
    RetireReason as "retire reason" {
        /// The subscriber changed to another Plex account.
        Changed => "changed",
        /// The account was banned.
        Banned => "banned",
        /// plex.tv named it as a retired or banned account when it was invited.
        Refused => "refused",
    }
);

text_enum!(
    /// Where a payment came from.
    Provider as "payment provider" {
        /// Stripe.
        Stripe => "stripe",
        /// `PayPal`.
        Paypal => "paypal",
        /// Plisio (crypto).
        Plisio => "plisio",
        /// Recorded by an admin.
        Manual => "manual",
    }
);

text_enum!(
    /// Where a recorded payment stands.
    PaymentStatus as "payment status" {
        /// Recorded, given to nobody yet: waits for its subscription's activation or an admin.
        Unmatched => "unmatched",
        /// Gives its subscriber a paid interval.
        Applied => "applied",
        /// Fully refunded or reversed: its interval no longer counts.
        Refunded => "refunded",
    }
);

text_enum!(
    /// Where a refund or reversal reported by a provider stands.
    RefundStatus as "refund status" {
        /// Its payment has not arrived yet: it is applied when it does.
        Waiting => "waiting",
        /// Applied: the whole payment went back and its interval stopped counting.
        Applied => "applied",
        /// Part of the payment went back: recorded for the admins, access unchanged.
        Partial => "partial",
        /// No payment of Usher's could be found for it: for the admins.
        Unmatched => "unmatched",
    }
);

text_enum!(
    /// How money went back to a payer.
    RefundKind as "refund kind" {
        /// The merchant refunded it.
        Refund => "refund",
        /// A reversal or chargeback (the payer's bank or the provider took it back).
        Reversal => "reversal",
    }
);

text_enum!(
    /// How long one payment of a plan lasts.
    BillingPeriod as "billing period" {
        /// Seven days.
        Week => "week",
        /// One calendar month.
        Month => "month",
        /// Three calendar months.
        Quarter => "quarter",
        /// Six calendar months.
        HalfYear => "half_year",
        /// Twelve calendar months.
        Year => "year",
    }
);

impl BillingPeriod {
    /// The end of one period starting at `start`.
    ///
    /// Calendar periods keep the day of month and clamp to the month's last day (Jan 31 + one
    /// month = Feb 28 or 29). Saturates at the latest representable time instead of panicking.
    pub fn after(self, start: DateTime<Utc>) -> DateTime<Utc> {
        let months = match self {
            Self::Week => {
                return start
                    .checked_add_days(Days::new(7))
                    .unwrap_or(DateTime::<Utc>::MAX_UTC);
            }
            Self::Month => 1,
            Self::Quarter => 3,
            Self::HalfYear => 6,
            Self::Year => 12,
        };
        start
            .checked_add_months(Months::new(months))
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(y: i32, m: u32, d: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, 12, 0, 0).unwrap()
    }

    #[test]
    fn every_variant_round_trips_through_its_text() {
        fn check<T>(all: &[T])
        where
            T: Copy + PartialEq + fmt::Debug + fmt::Display + FromStr<Err = ParseStateError>,
        {
            for v in all {
                assert_eq!(v.to_string().parse::<T>(), Ok(*v));
            }
        }
        check(IdentityState::ALL);
        check(ShareState::ALL);
        check(JobState::ALL);
        check(OwnerAccountState::ALL);
        check(RetireReason::ALL);
        check(Provider::ALL);
        check(BillingPeriod::ALL);
        check(ProofState::ALL);
        check(ProofPurpose::ALL);
        check(ProofMethod::ALL);
        check(NotificationState::ALL);
        check(NotificationChannel::ALL);
        check(NotificationKind::ALL);
        check(PaymentStatus::ALL);
        check(RefundStatus::ALL);
        check(RefundKind::ALL);
    }

    #[test]
    fn an_unknown_spelling_is_an_error_naming_the_kind() {
        let err = "Active".parse::<IdentityState>().unwrap_err();
        assert_eq!(err.to_string(), "unknown identity state \"Active\"");
    }

    #[test]
    fn serde_uses_the_database_spelling() {
        assert_eq!(
            serde_json::to_string(&BillingPeriod::HalfYear).unwrap(),
            "\"half_year\""
        );
        assert_eq!(
            serde_json::from_str::<Provider>("\"paypal\"").unwrap(),
            Provider::Paypal
        );
        assert!(serde_json::from_str::<Provider>("\"PayPal\"").is_err());
    }

    #[test]
    fn billing_periods_add_calendar_time() {
        assert_eq!(BillingPeriod::Week.after(at(2025, 1, 28)), at(2025, 2, 4));
        assert_eq!(BillingPeriod::Month.after(at(2025, 1, 15)), at(2025, 2, 15));
        assert_eq!(
            BillingPeriod::Quarter.after(at(2025, 11, 1)),
            at(2026, 2, 1)
        );
        assert_eq!(
            BillingPeriod::HalfYear.after(at(2025, 3, 1)),
            at(2025, 9, 1)
        );
        assert_eq!(BillingPeriod::Year.after(at(2024, 2, 29)), at(2025, 2, 28));
    }

    #[test]
    fn a_month_after_the_31st_is_the_last_day_of_next_month() {
        assert_eq!(BillingPeriod::Month.after(at(2025, 1, 31)), at(2025, 2, 28));
        assert_eq!(BillingPeriod::Month.after(at(2024, 1, 31)), at(2024, 2, 29));
    }

    #[test]
    fn adding_past_the_end_of_time_saturates() {
        assert_eq!(
            BillingPeriod::Year.after(DateTime::<Utc>::MAX_UTC),
            DateTime::<Utc>::MAX_UTC
        );
        assert_eq!(
            BillingPeriod::Week.after(DateTime::<Utc>::MAX_UTC),
            DateTime::<Utc>::MAX_UTC
        );
    }
}
