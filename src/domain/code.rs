//! `VerificationCode`: the 6-digit code emailed to a new Plex address to prove the subscriber owns
//! it. The rule it keeps: a code is never printed. It has no `Debug` and no `Display`; the only way
//! to read it is [`VerificationCode::expose_for_delivery`] (for the email template), and it is
//! stored only as a keyed hash, compared in constant time.

use rand::Rng as _;
use rand::rngs::OsRng;
use secrecy::{ExposeSecret as _, SecretString};

use crate::crypto::SigningKey;

/// Number of digits in a code.
const DIGITS: usize = 6;
/// MAC domain label for code hashes, distinct from every other use of the signing key.
const HASH_LABEL: &str = "usher/v1/verification-code";

/// A 6-digit verification code (`000000`–`999999`), wiped from memory on drop.
pub struct VerificationCode(SecretString);

/// Why a typed code was refused. The message never repeats what was typed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerificationCodeError {
    /// Nothing was typed.
    #[error("enter the 6-digit code from the email")]
    Empty,
    /// Something other than exactly six digits was typed.
    #[error("the code is exactly 6 digits, like 123456")]
    NotSixDigits,
}

impl VerificationCode {
    /// A fresh code, uniform over `000000`–`999999`, from the operating system's CSPRNG.
    pub fn generate() -> Self {
        let n: u32 = OsRng.gen_range(0..1_000_000);
        Self(SecretString::from(format!("{n:06}")))
    }

    /// Reads a code typed by a subscriber: surrounding whitespace is ignored, then exactly six
    /// ASCII digits are required.
    pub fn parse(input: &str) -> Result<Self, VerificationCodeError> {
        let code = input.trim();
        if code.is_empty() {
            return Err(VerificationCodeError::Empty);
        }
        if code.len() != DIGITS || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(VerificationCodeError::NotSixDigits);
        }
        Ok(Self(SecretString::from(code.to_owned())))
    }

    /// The digits, for the verification email only. Never log or display them anywhere else.
    pub fn expose_for_delivery(&self) -> &str {
        self.0.expose_secret()
    }

    /// The value to store: HMAC-SHA256 of the code under `key`, bound to `context` (for example the
    /// change request id and the new address, so a code is only good for the request it was sent for).
    pub fn hash(&self, key: &SigningKey, context: &[u8]) -> [u8; 32] {
        key.digest(HASH_LABEL, &[context, self.0.expose_secret().as_bytes()])
    }

    /// Whether this code is the one whose [`VerificationCode::hash`] for `context` is `stored`,
    /// compared in constant time.
    pub fn matches(&self, key: &SigningKey, context: &[u8], stored: &[u8]) -> bool {
        key.verify_digest(
            HASH_LABEL,
            &[context, self.0.expose_secret().as_bytes()],
            stored,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::SecretKey;
    use proptest::prelude::*;

    #[test]
    fn generated_codes_are_six_digits_and_vary() {
        let codes: std::collections::HashSet<String> = (0..50)
            .map(|_| {
                VerificationCode::generate()
                    .expose_for_delivery()
                    .to_owned()
            })
            .collect();
        assert!(
            codes
                .iter()
                .all(|c| c.len() == 6 && c.bytes().all(|b| b.is_ascii_digit()))
        );
        assert!(
            codes.len() > 40,
            "50 draws from a million collided too often"
        );
    }

    #[test]
    fn a_typed_code_is_trimmed() {
        let code = VerificationCode::parse(" 012345\n").unwrap();
        assert_eq!(code.expose_for_delivery(), "012345");
    }

    #[test]
    fn wrong_shapes_get_messages_that_do_not_repeat_the_input() {
        assert_eq!(
            VerificationCode::parse("  ").err(),
            Some(VerificationCodeError::Empty)
        );
        for bad in ["12345", "1234567", "12 345", "12345a", "١٢٣٤٥٦"] {
            let err = VerificationCode::parse(bad).err();
            assert_eq!(err, Some(VerificationCodeError::NotSixDigits), "{bad}");
        }
        let typed = "98765";
        let message = VerificationCode::parse(typed).err().unwrap().to_string();
        assert!(!message.contains(typed), "{message}");
    }

    #[test]
    fn the_right_code_matches_its_hash_and_others_do_not() {
        let key = SecretKey::generate().signing_key();
        let sent = VerificationCode::parse("424242").unwrap();
        let stored = sent.hash(&key, b"request:7");
        assert!(
            VerificationCode::parse("424242")
                .unwrap()
                .matches(&key, b"request:7", &stored)
        );
        assert!(
            !VerificationCode::parse("424243")
                .unwrap()
                .matches(&key, b"request:7", &stored)
        );
        assert!(
            !sent.matches(&key, b"request:8", &stored),
            "bound to its context"
        );
        let other_key = SecretKey::generate().signing_key();
        assert!(
            !sent.matches(&other_key, b"request:7", &stored),
            "bound to the key"
        );
        assert!(
            !sent.matches(&key, b"request:7", &stored[..16]),
            "a truncated hash is refused"
        );
    }

    #[test]
    fn the_hash_does_not_contain_the_digits() {
        let key = SecretKey::generate().signing_key();
        let code = VerificationCode::parse("123456").unwrap();
        let stored = hex::encode(code.hash(&key, b""));
        assert!(!stored.contains("123456"));
    }

    proptest! {
        #[test]
        fn any_six_digits_are_accepted(digits in "[0-9]{6}", pad in "[ \t\n]{0,2}") {
            let code = VerificationCode::parse(&format!("{pad}{digits}{pad}")).unwrap();
            prop_assert_eq!(code.expose_for_delivery(), digits.as_str());
        }

        #[test]
        fn only_six_ascii_digits_are_accepted(input in any::<String>()) {
            let trimmed = input.trim();
            let valid = trimmed.len() == 6 && trimmed.bytes().all(|b| b.is_ascii_digit());
            prop_assert_eq!(VerificationCode::parse(&input).is_ok(), valid);
        }
    }
}
