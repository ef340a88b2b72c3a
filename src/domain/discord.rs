//! `DiscordId`: a Discord snowflake (user, role, guild, channel). It keeps one rule: an id is never
//! zero, and it survives the trip through a signed `BIGINT` column bit for bit.

use std::fmt;
use std::num::NonZeroU64;
use std::str::FromStr;

/// A non-zero Discord snowflake.
///
/// Parsed from decimal digits (the way Discord sends ids in JSON). In the database it is stored as
/// `i64` by reinterpreting the bits ([`DiscordId::to_db`] / [`DiscordId::from_db`]), so every `u64`
/// round-trips even though real snowflakes never use the top bit. Serde writes a string and reads a
/// string or an integer (so configuration files may write ids either way).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DiscordId(NonZeroU64);

/// Why a value is not a Discord id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DiscordIdError {
    /// Nothing was given.
    #[error("the Discord id is empty")]
    Empty,
    /// Something other than decimal digits was given.
    #[error("a Discord id is a number made of digits only")]
    NotDigits,
    /// The digits do not fit in 64 bits.
    #[error("the Discord id is too large")]
    TooLarge,
    /// Zero is never a snowflake.
    #[error("a Discord id cannot be zero")]
    Zero,
}

impl DiscordId {
    /// Wraps a raw snowflake; zero is refused.
    pub fn new(raw: u64) -> Result<Self, DiscordIdError> {
        NonZeroU64::new(raw).map(Self).ok_or(DiscordIdError::Zero)
    }

    /// Parses decimal digits, ignoring surrounding whitespace.
    pub fn parse(input: &str) -> Result<Self, DiscordIdError> {
        let digits = input.trim();
        if digits.is_empty() {
            return Err(DiscordIdError::Empty);
        }
        if !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(DiscordIdError::NotDigits);
        }
        let raw: u64 = digits.parse().map_err(|_| DiscordIdError::TooLarge)?;
        Self::new(raw)
    }

    /// The snowflake.
    pub const fn get(self) -> u64 {
        self.0.get()
    }

    /// The value to store in a signed 64-bit column (bit-for-bit reinterpretation).
    pub const fn to_db(self) -> i64 {
        self.0.get().cast_signed()
    }

    /// Reads a value written by [`DiscordId::to_db`].
    pub fn from_db(raw: i64) -> Result<Self, DiscordIdError> {
        Self::new(raw.cast_unsigned())
    }
}

impl fmt::Display for DiscordId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for DiscordId {
    type Err = DiscordIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl serde::Serialize for DiscordId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for DiscordId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;

        impl serde::de::Visitor<'_> for Visitor {
            type Value = DiscordId;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a Discord id (digits, as a string or an integer)")
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<DiscordId, E> {
                DiscordId::parse(v).map_err(E::custom)
            }

            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<DiscordId, E> {
                DiscordId::new(v).map_err(E::custom)
            }

            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<DiscordId, E> {
                let raw = u64::try_from(v).map_err(|_| E::custom(DiscordIdError::NotDigits))?;
                DiscordId::new(raw).map_err(E::custom)
            }
        }

        deserializer.deserialize_any(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_snowflake_parses_from_digits() {
        let id = DiscordId::parse(" 80351110224678912 ").unwrap();
        assert_eq!(id.get(), 80_351_110_224_678_912);
        assert_eq!(id.to_string(), "80351110224678912");
    }

    #[test]
    fn bad_inputs_get_specific_errors() {
        assert_eq!(DiscordId::parse(""), Err(DiscordIdError::Empty));
        assert_eq!(DiscordId::parse("12a"), Err(DiscordIdError::NotDigits));
        assert_eq!(DiscordId::parse("-5"), Err(DiscordIdError::NotDigits));
        assert_eq!(DiscordId::parse("0"), Err(DiscordIdError::Zero));
        assert_eq!(
            DiscordId::parse("18446744073709551616"),
            Err(DiscordIdError::TooLarge)
        );
        assert_eq!(DiscordId::from_db(0), Err(DiscordIdError::Zero));
    }

    #[test]
    fn the_largest_id_survives_the_database() {
        let id = DiscordId::new(u64::MAX).unwrap();
        assert_eq!(id.to_db(), -1);
        assert_eq!(DiscordId::from_db(-1), Ok(id));
    }

    #[test]
    fn serde_writes_a_string_and_reads_a_string_or_a_number() {
        let id = DiscordId::new(42).unwrap();
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"42\"");
        assert_eq!(serde_json::from_str::<DiscordId>("\"42\"").unwrap(), id);
        assert_eq!(serde_json::from_str::<DiscordId>("42").unwrap(), id);
        assert!(serde_json::from_str::<DiscordId>("0").is_err());
        assert!(serde_json::from_str::<DiscordId>("-1").is_err());
    }

    proptest! {
        #[test]
        fn every_id_round_trips_through_text_and_the_database(raw in 1..=u64::MAX) {
            let id = DiscordId::new(raw).unwrap();
            prop_assert_eq!(DiscordId::parse(&id.to_string()), Ok(id));
            prop_assert_eq!(DiscordId::from_db(id.to_db()), Ok(id));
        }

        #[test]
        fn parsing_never_panics(input in any::<String>()) {
            let _ = DiscordId::parse(&input);
        }
    }
}
