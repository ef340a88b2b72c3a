//! `PlexEmail`: what a subscriber types to name their Plex account — an email address or a Plex
//! username. It owns the one normalisation rule of the product: trimmed and lower-cased, so two
//! spellings of the same account compare equal and a retired account can never come back by
//! changing case or adding spaces.

use std::fmt;
use std::str::FromStr;

/// Longest accepted email address, in bytes of the normalised form (RFC 5321 path limit).
const MAX_EMAIL_LEN: usize = 254;
/// Longest accepted Plex username, in characters.
const MAX_USERNAME_LEN: usize = 64;
/// Characters that are legal in quoted RFC 5322 forms but never in an address we accept; they are
/// also the ones that make header injection possible.
const FORBIDDEN_IN_EMAIL: &[char] = &['<', '>', ',', ';', ':', '"', '(', ')', '[', ']', '\\'];

/// A Plex account reference (email address or username), trimmed and lower-cased.
///
/// Equality, ordering and hashing use the normalised form, so `" Foo@Example.COM "` equals
/// `"foo@example.com"`. Serde reads it through [`PlexEmail::parse`] and writes [`PlexEmail::as_str`].
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(try_from = "String", into = "String")]
pub struct PlexEmail(String);

/// Why a string is not a Plex email address or username. Messages are written for the subscriber.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlexEmailError {
    /// Nothing but whitespace was given.
    #[error("the Plex email or username is empty")]
    Empty,
    /// Longer than an email address or username can be.
    #[error("the Plex email or username is too long (at most {max} characters)")]
    TooLong {
        /// The limit that was exceeded.
        max: usize,
    },
    /// Neither a well-formed email address nor a valid Plex username.
    #[error("\"{}\" is not an email address or Plex username", .0.escape_debug())]
    Invalid(String),
}

impl PlexEmail {
    /// Parses and normalises an email address or Plex username.
    ///
    /// Accepted: an email address (one `@`, non-empty local part, a domain with a dot and no empty
    /// labels, no whitespace, control or quoting characters, at most 254 bytes), or a username of
    /// 1–64 ASCII letters, digits, `_`, `-` and `.`.
    pub fn parse(input: &str) -> Result<Self, PlexEmailError> {
        let normalised = input.trim().to_lowercase();
        if normalised.is_empty() {
            return Err(PlexEmailError::Empty);
        }
        if normalised.contains('@') {
            if normalised.len() > MAX_EMAIL_LEN {
                return Err(PlexEmailError::TooLong { max: MAX_EMAIL_LEN });
            }
            if !is_email(&normalised) {
                return Err(PlexEmailError::Invalid(normalised));
            }
        } else {
            if normalised.chars().count() > MAX_USERNAME_LEN {
                return Err(PlexEmailError::TooLong {
                    max: MAX_USERNAME_LEN,
                });
            }
            if !is_username(&normalised) {
                return Err(PlexEmailError::Invalid(normalised));
            }
        }
        Ok(Self(normalised))
    }

    /// The normalised form.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// True for an email address, false for a Plex username.
    pub fn is_email(&self) -> bool {
        self.0.contains('@')
    }
}

fn is_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.contains('@')
        && domain.contains('.')
        && domain.split('.').all(|label| !label.is_empty())
        && s.chars()
            .all(|c| !c.is_whitespace() && !c.is_control() && !FORBIDDEN_IN_EMAIL.contains(&c))
}

fn is_username(s: &str) -> bool {
    s.chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

impl fmt::Display for PlexEmail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for PlexEmail {
    type Err = PlexEmailError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for PlexEmail {
    type Error = PlexEmailError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<PlexEmail> for String {
    fn from(value: PlexEmail) -> Self {
        value.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn an_email_is_trimmed_and_lower_cased() {
        let email = PlexEmail::parse("  Foo.Bar@Example.COM \n").unwrap();
        assert_eq!(email.as_str(), "foo.bar@example.com");
        assert!(email.is_email());
    }

    #[test]
    fn two_spellings_of_one_address_are_equal() {
        assert_eq!(
            PlexEmail::parse(" Foo@Example.COM ").unwrap(),
            PlexEmail::parse("foo@example.com").unwrap()
        );
    }

    #[test]
    fn a_plex_username_is_accepted_and_is_not_an_email() {
        let name = PlexEmail::parse("Movie_Fan-42.x").unwrap();
        assert_eq!(name.as_str(), "movie_fan-42.x");
        assert!(!name.is_email());
    }

    #[test]
    fn an_empty_input_says_it_is_empty() {
        assert_eq!(PlexEmail::parse("   "), Err(PlexEmailError::Empty));
        assert_eq!(
            PlexEmailError::Empty.to_string(),
            "the Plex email or username is empty"
        );
    }

    #[test]
    fn malformed_addresses_are_refused_with_a_human_message() {
        for bad in [
            "a@b",
            "@example.com",
            "a@@example.com",
            "a@b@example.com",
            "a b@example.com",
            "a@.com",
            "a@example.",
            "a@exa..mple.com",
            "<a@example.com>",
            "a@example.com\r\nBcc: x@y.z",
            "has space",
            "name!",
        ] {
            let err = PlexEmail::parse(bad).unwrap_err();
            assert!(
                matches!(err, PlexEmailError::Invalid(_)),
                "{bad:?}: {err:?}"
            );
            assert!(
                err.to_string()
                    .ends_with("is not an email address or Plex username"),
                "{err}"
            );
        }
    }

    #[test]
    fn overlong_addresses_and_usernames_are_too_long() {
        let email = format!("{}@example.com", "a".repeat(250));
        assert_eq!(
            PlexEmail::parse(&email),
            Err(PlexEmailError::TooLong { max: 254 })
        );
        assert_eq!(
            PlexEmail::parse(&"u".repeat(65)),
            Err(PlexEmailError::TooLong { max: 64 })
        );
        assert!(PlexEmail::parse(&"u".repeat(64)).is_ok());
    }

    #[test]
    fn serde_goes_through_parse() {
        let email: PlexEmail = serde_json::from_str("\" A@B.CO \"").unwrap();
        assert_eq!(serde_json::to_string(&email).unwrap(), "\"a@b.co\"");
        assert!(serde_json::from_str::<PlexEmail>("\"not an email\"").is_err());
    }

    fn case_and_space_variants() -> impl Strategy<Value = (String, String)> {
        (
            "[a-zA-Z0-9._-]{1,20}@[a-zA-Z0-9-]{1,10}\\.[a-zA-Z]{2,5}",
            "[ \t\n]{0,3}",
            "[ \t\n]{0,3}",
        )
            .prop_map(|(core, before, after)| {
                let shouted = core.to_uppercase();
                (core, format!("{before}{shouted}{after}"))
            })
    }

    proptest! {
        #[test]
        fn parsing_never_panics(input in any::<String>()) {
            let _ = PlexEmail::parse(&input);
        }

        #[test]
        fn parsing_is_idempotent_on_its_output(input in any::<String>()) {
            if let Ok(once) = PlexEmail::parse(&input) {
                prop_assert_eq!(PlexEmail::parse(once.as_str()), Ok(once.clone()));
            }
        }

        #[test]
        fn parsing_ignores_case_and_surrounding_whitespace((plain, noisy) in case_and_space_variants()) {
            prop_assert_eq!(PlexEmail::parse(&plain), PlexEmail::parse(&noisy));
            prop_assert!(PlexEmail::parse(&plain).is_ok());
        }

        #[test]
        fn usernames_ignore_case(name in "[a-zA-Z0-9_.-]{1,64}") {
            let parsed = PlexEmail::parse(&name).unwrap();
            prop_assert_eq!(parsed.as_str(), name.to_lowercase());
            prop_assert_eq!(PlexEmail::parse(&name.to_uppercase()).unwrap(), parsed);
        }
    }
}
