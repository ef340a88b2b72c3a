//! How domain types sit in database columns, for both backends: id newtypes as `BIGINT`, state
//! enums as their one text spelling, [`PlexEmail`] as its normalised text, [`DiscordId`] as the
//! `BIGINT` bit pattern. Row structs use the domain types as field types directly, so a value is
//! parsed once, here, and a stored text that names no variant is a decode error naming the column
//! and the value (sqlx reports the column; [`ParseStateError`](crate::domain::ParseStateError)
//! the value).
//!
//! The impls live in `store/` (not `domain/`) so the domain stays free of database code; the
//! orphan rule allows them because every type is this crate's.

use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::{Database, Decode, Encode, Postgres, Sqlite, Type};

use crate::domain::{
    BillingPeriod, Currency, DiscordId, IdentityState, JobId, JobState, LibraryGroupId, LibraryId,
    Money, NotificationChannel, NotificationKind, NotificationState, OwnerAccountId,
    OwnerAccountState, PaymentId, PaymentStatus, PlanId, PlexEmail, PlexIdentityId, ProofId,
    ProofMethod, ProofPurpose, ProofState, Provider, RefundKind, RefundStatus, RetireReason,
    ServerId, ShareId, ShareState, SubscriberId,
};

/// Maps a type onto a column of type `$raw` on both backends: `$to` turns the value into the raw
/// column value, `$from` parses a raw value back (an error becomes the column's decode error).
macro_rules! column {
    ($ty:ty, $raw:ty, |$v:ident| $to:expr, |$r:ident| $from:expr) => {
        column!(@backend Sqlite, $ty, $raw, |$v| $to, |$r| $from);
        column!(@backend Postgres, $ty, $raw, |$v| $to, |$r| $from);
    };
    (@backend $db:ident, $ty:ty, $raw:ty, |$v:ident| $to:expr, |$r:ident| $from:expr) => {
        impl Type<$db> for $ty {
            fn type_info() -> <$db as Database>::TypeInfo {
                <$raw as Type<$db>>::type_info()
            }
            fn compatible(ty: &<$db as Database>::TypeInfo) -> bool {
                <$raw as Type<$db>>::compatible(ty)
            }
        }
        impl<'r> Decode<'r, $db> for $ty {
            fn decode(value: <$db as Database>::ValueRef<'r>) -> Result<Self, BoxDynError> {
                let $r = <$raw as Decode<'r, $db>>::decode(value)?;
                Ok($from?)
            }
        }
        impl<'q> Encode<'q, $db> for $ty {
            fn encode_by_ref(
                &self,
                buf: &mut <$db as Database>::ArgumentBuffer<'q>,
            ) -> Result<IsNull, BoxDynError> {
                let $v = self;
                <$raw as Encode<'q, $db>>::encode($to, buf)
            }
        }
    };
}

macro_rules! id_columns {
    ($($ty:ty),* $(,)?) => {$(
        column!($ty, i64, |v| v.get(), |raw| Ok::<_, BoxDynError>(<$ty>::new(raw)));
    )*};
}

id_columns!(
    SubscriberId,
    PlexIdentityId,
    OwnerAccountId,
    ServerId,
    LibraryId,
    LibraryGroupId,
    PlanId,
    PaymentId,
    ShareId,
    ProofId,
    JobId,
);

/// State enums: stored as their `as_str` spelling, read back with `FromStr`.
macro_rules! text_columns {
    ($($ty:ty),* $(,)?) => {$(
        column!($ty, String, |v| v.as_str().to_owned(), |raw| raw.parse::<$ty>());
    )*};
}

text_columns!(
    IdentityState,
    OwnerAccountState,
    RetireReason,
    ShareState,
    JobState,
    Provider,
    BillingPeriod,
    ProofState,
    ProofPurpose,
    ProofMethod,
    NotificationState,
    NotificationChannel,
    NotificationKind,
    PaymentStatus,
    RefundStatus,
    RefundKind,
    Currency,
);

/// A [`Money`] is two columns, `amount_minor` and `currency` (alias others to these names): a
/// row field `#[sqlx(flatten)] amount: Money` reads both, and a bad currency is a decode error
/// naming the column.
macro_rules! money_rows {
    ($($row:ty),*) => {$(
        impl<'r> sqlx::FromRow<'r, $row> for Money {
            fn from_row(row: &'r $row) -> Result<Self, sqlx::Error> {
                use sqlx::Row as _;
                let minor: i64 = row.try_get("amount_minor")?;
                let currency: Currency = row.try_get("currency")?;
                Ok(Money::new(minor, currency))
            }
        }
    )*};
}

money_rows!(sqlx::sqlite::SqliteRow, sqlx::postgres::PgRow);

column!(PlexEmail, String, |v| v.as_str().to_owned(), |raw| {
    PlexEmail::parse(&raw)
});

column!(DiscordId, i64, |v| v.to_db(), |raw| DiscordId::from_db(raw));

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, sqlx::FromRow)]
    #[allow(dead_code)] // read only through its decode error
    struct Row {
        state: IdentityState,
    }

    #[derive(Debug, sqlx::FromRow)]
    struct Priced {
        #[sqlx(flatten)]
        amount: Money,
        status: PaymentStatus,
    }

    #[tokio::test]
    async fn domain_types_round_trip_through_sqlite_and_bad_text_names_the_column() {
        let pool = sqlx::SqlitePool::connect("sqlite::memory:").await.unwrap();
        let row: (ShareId, IdentityState, PlexEmail) =
            sqlx::query_as("SELECT $1 AS id, $2 AS state, $3 AS email")
                .bind(ShareId::new(7))
                .bind(IdentityState::Banned)
                .bind(PlexEmail::parse("A@Example.com").unwrap())
                .fetch_one(&pool)
                .await
                .unwrap();
        assert_eq!(row.0, ShareId::new(7));
        assert_eq!(row.1, IdentityState::Banned);
        assert_eq!(row.2.as_str(), "a@example.com");

        let err = sqlx::query_as::<_, Row>("SELECT 'Active' AS state")
            .fetch_one(&pool)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("state"), "{err}");
        assert!(err.contains("unknown identity state \"Active\""), "{err}");
    }

    #[tokio::test]
    async fn money_reads_from_two_columns_and_a_bad_currency_names_the_column() {
        let pool = sqlx::SqlitePool::connect("sqlite::memory:").await.unwrap();
        let priced: Priced =
            sqlx::query_as("SELECT 1250 AS amount_minor, 'usd' AS currency, 'refunded' AS status")
                .fetch_one(&pool)
                .await
                .unwrap();
        assert_eq!(priced.amount.to_string(), "12.50 USD");
        assert_eq!(priced.status, PaymentStatus::Refunded);
        let err = sqlx::query_as::<_, Priced>(
            "SELECT 1 AS amount_minor, 'dollars' AS currency, 'applied' AS status",
        )
        .fetch_one(&pool)
        .await
        .unwrap_err()
        .to_string();
        assert!(err.contains("currency"), "{err}");
    }
}
