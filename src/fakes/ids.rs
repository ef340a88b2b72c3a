//! Random ids in the shapes the payment providers use (`cs_test_…`, `I-…`, hex txn ids).
//!
//! Owns nothing but the alphabets. Rule kept: ids are random per fake, so tests never depend on
//! one fake's numbering.

use rand::Rng;
use rand::distributions::Alphanumeric;

/// `len` random ASCII letters and digits.
pub(super) fn alphanumeric(len: usize) -> String {
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

/// `len` random upper-case letters and digits (PayPal's ids).
pub(super) fn upper(len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut rng = rand::thread_rng();
    (0..len)
        .map(|_| char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())]))
        .collect()
}

/// `len` random lower-case hex digits (Plisio's ids).
pub(super) fn hex(len: usize) -> String {
    let mut rng = rand::thread_rng();
    (0..len)
        .map(|_| char::from_digit(rng.gen_range(0..16), 16).expect("a hex digit"))
        .collect()
}
