//! Usher's keys and the two things done with them: signing short tokens (login links, Discord
//! button `custom_id`s, verification-code hashes) and encrypting secrets at rest (owner Plex tokens,
//! provider secrets). It keeps three rules: key bytes are never printed, every MAC is checked in
//! constant time, and each use gets its own key or domain label so a value made for one purpose is
//! never accepted for another.
//!
//! # Keys
//! One master [`SecretKey`] comes from the `secret_key` setting or from a key file created on
//! first start. The file holds the key as standard base64 (padded) on one line, e.g. the output of
//! `openssl rand -base64 32`; it is created with mode 0600. Two independent subkeys are derived from
//! the master with HMAC-SHA256 over fixed labels: a [`SigningKey`] and the [`Cipher`] key.
//!
//! # Tokens
//! [`Signer::sign`] produces `purpose.payload.expiry.mac`: the purpose as given (`[a-z0-9_-]`),
//! the payload in base64url without padding, the expiry in Unix seconds (empty for none) and the
//! full 32-byte HMAC-SHA256 in base64url (43 characters). [`Signer::sign_compact`] has the same
//! shape with a MAC truncated to 12 bytes (16 characters, 96 bits) for Discord `custom_id`s, which
//! may be at most 100 characters; the two forms use different MAC labels and are verified by
//! different functions, so one is never accepted as the other.
//!
//! # Ciphertexts
//! [`Cipher::encrypt`] returns `v1:` followed by standard base64 of a random 24-byte nonce and the
//! XChaCha20-Poly1305 ciphertext with its tag.

use std::fmt;
use std::io::Write as _;
use std::path::Path;

use anyhow::{Context as _, bail};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chacha20poly1305::aead::{Aead as _, KeyInit as _};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use rand::RngCore as _;
use rand::rngs::OsRng;
use secrecy::zeroize::Zeroize as _;
use secrecy::{ExposeSecret as _, SecretString};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Length of the master key and of each subkey, in bytes.
const KEY_LEN: usize = 32;
/// MAC length of compact tokens, in bytes.
const COMPACT_MAC_LEN: usize = 12;
/// Longest compact token: Discord's limit for a component `custom_id`.
pub const MAX_COMPACT_TOKEN_LEN: usize = 100;
const NONCE_LEN: usize = 24;
const CIPHERTEXT_PREFIX: &str = "v1:";

/// The master key. Holds only the two subkeys derived from it; no `Debug` shows their bytes.
pub struct SecretKey {
    signing: SigningKey,
    encryption: Key,
}

impl SecretKey {
    /// A fresh random key (from the operating system's CSPRNG).
    pub fn generate() -> Self {
        let mut master = [0u8; KEY_LEN];
        OsRng.fill_bytes(&mut master);
        let key = Self::derive(&master);
        master.zeroize();
        key
    }

    /// The key configured as `secret_key`: standard base64 of at least 32 bytes.
    pub fn from_config(secret: &SecretString) -> anyhow::Result<Self> {
        Self::decode(secret.expose_secret()).context("the `secret_key` setting is not usable")
    }

    /// Reads the key file at `path`, or creates it with a new random key if it does not exist.
    ///
    /// Creation is atomic and race-free: the key is written and synced to a temporary file (mode
    /// 0600) in the same directory, which is then hard-linked to `path`; if another process created
    /// `path` first, its key is read and used instead.
    pub fn load_or_create(path: &Path) -> anyhow::Result<Self> {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                return Self::decode(&text)
                    .with_context(|| format!("the key file {} is not usable", path.display()));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(e).with_context(|| format!("reading the key file {}", path.display()));
            }
        }
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating the key directory {}", dir.display()))?;

        let mut master = [0u8; KEY_LEN];
        OsRng.fill_bytes(&mut master);
        let mut encoded = STANDARD.encode(master);
        let tmp = dir.join(format!(".usher-key-{:016x}.tmp", OsRng.next_u64()));
        let written = write_new_private(&tmp, &encoded)
            .with_context(|| format!("writing the new key file {}", tmp.display()));
        encoded.zeroize();
        let linked = written.and_then(|()| match std::fs::hard_link(&tmp, path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(e).with_context(|| format!("creating the key file {}", path.display())),
        });
        // The temporary name is never needed again, whatever happened.
        let _ = std::fs::remove_file(&tmp);
        let key = if linked? {
            Self::derive(&master)
        } else {
            // Another process won the race; use its key.
            Self::load_or_create(path)?
        };
        master.zeroize();
        Ok(key)
    }

    /// The key for signatures and verification-code hashes.
    pub fn signing_key(&self) -> SigningKey {
        self.signing.clone()
    }

    /// A token signer using the signing key.
    pub fn signer(&self) -> Signer {
        Signer {
            key: self.signing.clone(),
        }
    }

    /// The at-rest cipher using the encryption key.
    pub fn cipher(&self) -> Cipher {
        Cipher {
            aead: XChaCha20Poly1305::new(&self.encryption.0.into()),
        }
    }

    fn decode(text: &str) -> anyhow::Result<Self> {
        let mut bytes = STANDARD
            .decode(text.trim())
            .context("it is not standard base64 (make one with `openssl rand -base64 32`)")?;
        let len = bytes.len();
        if len < KEY_LEN {
            bytes.zeroize();
            bail!("it decodes to {len} bytes; at least {KEY_LEN} are needed");
        }
        let key = Self::derive(&bytes);
        bytes.zeroize();
        Ok(key)
    }

    fn derive(master: &[u8]) -> Self {
        let subkey = |label: &[u8]| {
            let mut mac =
                <HmacSha256 as Mac>::new_from_slice(master).expect("HMAC takes keys of any length");
            mac.update(label);
            Key(mac.finalize().into_bytes().into())
        };
        Self {
            signing: SigningKey(subkey(b"usher/v1/subkey/signing")),
            encryption: subkey(b"usher/v1/subkey/encryption"),
        }
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

/// Creates `path` (which must not exist) readable by the owner only and writes `contents` to it.
fn write_new_private(path: &Path, contents: &str) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(contents.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()
}

/// 32 key bytes, wiped on drop.
#[derive(Clone)]
struct Key([u8; KEY_LEN]);

impl Drop for Key {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

/// `bytes` random bytes from the operating system, URL-safe base64 without padding: session
/// secrets, CSRF tokens and link nonces.
pub fn random_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    OsRng.fill_bytes(&mut buf);
    let token = URL_SAFE_NO_PAD.encode(&buf);
    buf.zeroize();
    token
}

/// The subkey for MACs. Its bytes are never shown.
#[derive(Clone)]
pub struct SigningKey(Key);

impl SigningKey {
    /// HMAC-SHA256 under `label` over `parts`, each length-prefixed so no two inputs collide.
    fn mac(&self, label: &str, parts: &[&[u8]]) -> HmacSha256 {
        let mut mac =
            <HmacSha256 as Mac>::new_from_slice(&self.0.0).expect("HMAC takes keys of any length");
        for part in std::iter::once(label.as_bytes()).chain(parts.iter().copied()) {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        mac
    }

    /// The HMAC-SHA256 of `parts` under the domain `label`.
    pub fn digest(&self, label: &str, parts: &[&[u8]]) -> [u8; 32] {
        self.mac(label, parts).finalize().into_bytes().into()
    }

    /// Checks, in constant time, that `expected` is the [`SigningKey::digest`] of `parts` under
    /// `label`.
    pub fn verify_digest(&self, label: &str, parts: &[&[u8]], expected: &[u8]) -> bool {
        self.mac(label, parts).verify_slice(expected).is_ok()
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningKey(<redacted>)")
    }
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// Not a token of this form at all.
    #[error("the link or button is malformed")]
    Malformed,
    /// The MAC does not match: forged or altered.
    #[error("the link or button signature is not valid")]
    BadSignature,
    /// Genuine, but past its expiry time.
    #[error("the link or button has expired")]
    Expired,
    /// Genuine, but made for another purpose.
    #[error("the link or button is not meant for this")]
    WrongPurpose,
}

/// A compact token would exceed Discord's 100-character `custom_id` limit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a compact token of {len} characters exceeds {MAX_COMPACT_TOKEN_LEN}")]
pub struct TokenTooLong {
    /// The length the token would have had.
    pub len: usize,
}

/// Signs and verifies short payloads as URL-safe tokens (format in the module documentation).
#[derive(Clone, Debug)]
pub struct Signer {
    key: SigningKey,
}

const FULL_LABEL: &str = "usher/v1/token/full";
const COMPACT_LABEL: &str = "usher/v1/token/compact";

impl Signer {
    /// A token for `payload`, valid for `purpose` until `expires_at` (or forever), with a full MAC.
    ///
    /// # Panics
    /// If `purpose` is empty or uses characters other than `[a-z0-9_-]` (purposes are constants).
    pub fn sign(&self, purpose: &str, payload: &str, expires_at: Option<DateTime<Utc>>) -> String {
        self.token(FULL_LABEL, None, purpose, payload, expires_at)
    }

    /// Like [`Signer::sign`] with a 12-byte MAC, for Discord `custom_id`s (at most 100 characters).
    ///
    /// # Panics
    /// As [`Signer::sign`].
    pub fn sign_compact(
        &self,
        purpose: &str,
        payload: &str,
        expires_at: Option<DateTime<Utc>>,
    ) -> Result<String, TokenTooLong> {
        let token = self.token(
            COMPACT_LABEL,
            Some(COMPACT_MAC_LEN),
            purpose,
            payload,
            expires_at,
        );
        if token.len() > MAX_COMPACT_TOKEN_LEN {
            return Err(TokenTooLong { len: token.len() });
        }
        Ok(token)
    }

    /// The payload of a token made by [`Signer::sign`] for `purpose`, if it is genuine and
    /// unexpired at `now`.
    pub fn verify(
        &self,
        purpose: &str,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<String, SignatureError> {
        self.check(FULL_LABEL, 32, purpose, token, now)
    }

    /// The payload of a token made by [`Signer::sign_compact`]; see [`Signer::verify`].
    pub fn verify_compact(
        &self,
        purpose: &str,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<String, SignatureError> {
        self.check(COMPACT_LABEL, COMPACT_MAC_LEN, purpose, token, now)
    }

    fn token(
        &self,
        label: &str,
        truncate: Option<usize>,
        purpose: &str,
        payload: &str,
        expires_at: Option<DateTime<Utc>>,
    ) -> String {
        assert!(
            is_purpose(purpose),
            "token purpose {purpose:?} must be non-empty [a-z0-9_-]"
        );
        let payload = URL_SAFE_NO_PAD.encode(payload);
        let expiry = expires_at.map_or_else(String::new, |t| t.timestamp().to_string());
        let mac = self
            .key
            .digest(label, &signed_parts(purpose, &payload, &expiry));
        let mac = &mac[..truncate.unwrap_or(mac.len())];
        format!(
            "{purpose}.{payload}.{expiry}.{}",
            URL_SAFE_NO_PAD.encode(mac)
        )
    }

    fn check(
        &self,
        label: &str,
        mac_len: usize,
        purpose: &str,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<String, SignatureError> {
        let mut fields = token.split('.');
        let (Some(token_purpose), Some(payload), Some(expiry), Some(mac), None) = (
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
        ) else {
            return Err(SignatureError::Malformed);
        };
        let mac = URL_SAFE_NO_PAD
            .decode(mac)
            .map_err(|_| SignatureError::Malformed)?;
        if mac.len() != mac_len || !is_purpose(token_purpose) {
            return Err(SignatureError::Malformed);
        }
        let expected = self
            .key
            .mac(label, &signed_parts(token_purpose, payload, expiry));
        expected
            .verify_truncated_left(&mac)
            .map_err(|_| SignatureError::BadSignature)?;
        // Only genuine tokens get past this point, so the errors below never help a forger.
        if token_purpose != purpose {
            return Err(SignatureError::WrongPurpose);
        }
        if !expiry.is_empty() {
            let expires: i64 = expiry.parse().map_err(|_| SignatureError::Malformed)?;
            if now.timestamp() >= expires {
                return Err(SignatureError::Expired);
            }
        }
        let payload = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| SignatureError::Malformed)?;
        String::from_utf8(payload).map_err(|_| SignatureError::Malformed)
    }
}

fn signed_parts<'a>(purpose: &'a str, payload: &'a str, expiry: &'a str) -> [&'a [u8]; 3] {
    [purpose.as_bytes(), payload.as_bytes(), expiry.as_bytes()]
}

fn is_purpose(purpose: &str) -> bool {
    !purpose.is_empty()
        && purpose
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// Why a stored ciphertext could not be decrypted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    /// Not a `v1:` ciphertext (or a later version this build does not know).
    #[error("the stored secret has an unknown format")]
    UnknownFormat,
    /// Not valid base64, or too short to hold a nonce and a tag.
    #[error("the stored secret is malformed")]
    Malformed,
    /// Altered, or encrypted under another key.
    #[error("the stored secret cannot be decrypted with this key (altered, or another secret_key)")]
    Decrypt,
}

/// Encrypts secrets for storage with XChaCha20-Poly1305 under the derived encryption key.
#[derive(Clone)]
pub struct Cipher {
    aead: XChaCha20Poly1305,
}

impl Cipher {
    /// `v1:` + base64(nonce || ciphertext) with a fresh random nonce.
    pub fn encrypt(&self, plaintext: &str) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        OsRng.fill_bytes(&mut nonce);
        let sealed = self
            .aead
            .encrypt(XNonce::from_slice(&nonce), plaintext.as_bytes())
            .expect("XChaCha20-Poly1305 only fails on inputs of hundreds of gigabytes");
        let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        format!("{CIPHERTEXT_PREFIX}{}", STANDARD.encode(out))
    }

    /// The plaintext of a value made by [`Cipher::encrypt`] under the same key.
    pub fn decrypt(&self, stored: &str) -> Result<SecretString, CryptoError> {
        let encoded = stored
            .strip_prefix(CIPHERTEXT_PREFIX)
            .ok_or(CryptoError::UnknownFormat)?;
        let bytes = STANDARD
            .decode(encoded)
            .map_err(|_| CryptoError::Malformed)?;
        if bytes.len() < NONCE_LEN + 16 {
            return Err(CryptoError::Malformed);
        }
        let (nonce, sealed) = bytes.split_at(NONCE_LEN);
        let plain = self
            .aead
            .decrypt(XNonce::from_slice(nonce), sealed)
            .map_err(|_| CryptoError::Decrypt)?;
        // Only we encrypt, and only from `&str`; a non-UTF-8 plaintext means a foreign value.
        String::from_utf8(plain)
            .map(SecretString::from)
            .map_err(|e| {
                e.into_bytes().zeroize();
                CryptoError::Decrypt
            })
    }
}

impl fmt::Debug for Cipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Cipher(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeDelta;

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_750_000_000, 0).unwrap()
    }

    #[test]
    fn a_key_file_is_created_once_private_and_read_back_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("usher.key");
        let first = SecretKey::load_or_create(&path).unwrap();
        let token = first.signer().sign("login", "42", None);
        let second = SecretKey::load_or_create(&path).unwrap();
        assert_eq!(
            second.signer().verify("login", &token, now()).unwrap(),
            "42"
        );
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(STANDARD.decode(text.trim()).unwrap().len(), 32);
        let leftovers: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(leftovers, vec![std::ffi::OsString::from("usher.key")]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn a_broken_key_file_is_a_clear_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("usher.key");
        std::fs::write(&path, STANDARD.encode([7u8; 16])).unwrap();
        let err = format!("{:#}", SecretKey::load_or_create(&path).unwrap_err());
        assert!(err.contains("usher.key"), "{err}");
        assert!(err.contains("16 bytes; at least 32"), "{err}");
    }

    #[test]
    fn a_configured_key_must_be_base64_of_at_least_32_bytes() {
        let short = SecretString::from(STANDARD.encode([1u8; 31]));
        let err = format!("{:#}", SecretKey::from_config(&short).unwrap_err());
        assert!(
            err.contains("secret_key") && err.contains("31 bytes"),
            "{err}"
        );
        let garbage = SecretString::from("not base64 at all!".to_owned());
        let err = format!("{:#}", SecretKey::from_config(&garbage).unwrap_err());
        assert!(err.contains("openssl rand -base64 32"), "{err}");
        let long = SecretString::from(STANDARD.encode([1u8; 48]));
        assert!(SecretKey::from_config(&long).is_ok());
    }

    #[test]
    fn the_same_configured_key_gives_the_same_subkeys() {
        let secret = SecretString::from(STANDARD.encode([9u8; 32]));
        let a = SecretKey::from_config(&secret).unwrap();
        let b = SecretKey::from_config(&secret).unwrap();
        let token = a.signer().sign("login", "x", None);
        assert_eq!(b.signer().verify("login", &token, now()).unwrap(), "x");
        let sealed = a.cipher().encrypt("plex-token");
        assert_eq!(
            b.cipher().decrypt(&sealed).unwrap().expose_secret(),
            "plex-token"
        );
    }

    #[test]
    fn signing_and_encryption_keys_are_independent() {
        let key = SecretKey::generate();
        assert_ne!(key.signing.0.0, key.encryption.0);
    }

    #[test]
    fn debug_output_never_shows_key_bytes() {
        let key = SecretKey::generate();
        assert_eq!(format!("{key:?}"), "SecretKey(<redacted>)");
        assert_eq!(
            format!("{:?}", key.signer()),
            "Signer { key: SigningKey(<redacted>) }"
        );
        assert_eq!(format!("{:?}", key.cipher()), "Cipher(<redacted>)");
    }

    #[test]
    fn a_signed_token_verifies_and_returns_its_payload() {
        let signer = SecretKey::generate().signer();
        let token = signer.sign(
            "login",
            "subscriber:42 ü",
            Some(now() + TimeDelta::minutes(15)),
        );
        assert!(
            token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        );
        assert_eq!(
            signer.verify("login", &token, now()).unwrap(),
            "subscriber:42 ü"
        );
    }

    #[test]
    fn an_expired_token_is_refused() {
        let signer = SecretKey::generate().signer();
        let token = signer.sign("login", "42", Some(now()));
        assert_eq!(
            signer.verify("login", &token, now()),
            Err(SignatureError::Expired)
        );
        assert!(
            signer
                .verify("login", &token, now() - TimeDelta::seconds(1))
                .is_ok()
        );
    }

    #[test]
    fn a_token_for_another_purpose_is_refused() {
        let signer = SecretKey::generate().signer();
        let token = signer.sign("login", "42", None);
        assert_eq!(
            signer.verify("unsubscribe", &token, now()),
            Err(SignatureError::WrongPurpose)
        );
    }

    #[test]
    fn an_altered_or_foreign_token_is_refused() {
        let signer = SecretKey::generate().signer();
        let token = signer.sign("login", "42", Some(now() + TimeDelta::days(1)));
        let forged = token.replacen(".NDI.", ".NDM.", 1);
        assert_ne!(forged, token);
        assert_eq!(
            signer.verify("login", &forged, now()),
            Err(SignatureError::BadSignature)
        );
        let retargeted = token.replacen("login.", "admin.", 1);
        assert_eq!(
            signer.verify("admin", &retargeted, now()),
            Err(SignatureError::BadSignature)
        );
        let other = SecretKey::generate().signer();
        assert_eq!(
            other.verify("login", &token, now()),
            Err(SignatureError::BadSignature)
        );
    }

    #[test]
    fn garbage_is_malformed() {
        let signer = SecretKey::generate().signer();
        for bad in [
            "",
            "a.b.c",
            "a.b.c.d.e",
            "login.NDI..!!!",
            "login.NDI..AAAA",
            "LOGIN.NDI..AAAAAAAAAAAAAAAA",
        ] {
            assert_eq!(
                signer.verify("login", bad, now()),
                Err(SignatureError::Malformed),
                "{bad}"
            );
        }
    }

    #[test]
    fn compact_tokens_fit_a_discord_custom_id_and_are_not_full_tokens() {
        let signer = SecretKey::generate().signer();
        let token = signer
            .sign_compact(
                "flagdm",
                "123456789012345678",
                Some(now() + TimeDelta::days(30)),
            )
            .unwrap();
        assert!(token.len() <= MAX_COMPACT_TOKEN_LEN, "{}", token.len());
        assert_eq!(
            signer.verify_compact("flagdm", &token, now()).unwrap(),
            "123456789012345678"
        );
        assert_eq!(
            signer.verify("flagdm", &token, now()),
            Err(SignatureError::Malformed)
        );
        let full = signer.sign("flagdm", "1", None);
        assert_eq!(
            signer.verify_compact("flagdm", &full, now()),
            Err(SignatureError::Malformed)
        );
    }

    #[test]
    fn a_compact_token_that_would_be_too_long_is_refused() {
        let signer = SecretKey::generate().signer();
        let err = signer.sign_compact("p", &"x".repeat(80), None).unwrap_err();
        assert!(err.len > MAX_COMPACT_TOKEN_LEN);
    }

    #[test]
    #[should_panic(expected = "token purpose")]
    fn a_purpose_with_a_dot_is_a_programming_error() {
        let _ = SecretKey::generate().signer().sign("a.b", "x", None);
    }

    #[test]
    fn encryption_round_trips_and_hides_the_plaintext() {
        let cipher = SecretKey::generate().cipher();
        let sealed = cipher.encrypt("my-plex-token");
        assert!(sealed.starts_with("v1:"));
        assert!(!sealed.contains("my-plex-token"));
        assert_ne!(sealed, cipher.encrypt("my-plex-token"), "nonces are random");
        assert_eq!(
            cipher.decrypt(&sealed).unwrap().expose_secret(),
            "my-plex-token"
        );
    }

    #[test]
    fn a_tampered_or_foreign_ciphertext_is_refused() {
        let cipher = SecretKey::generate().cipher();
        let sealed = cipher.encrypt("secret");
        let mut bytes = STANDARD.decode(&sealed[3..]).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        let tampered = format!("v1:{}", STANDARD.encode(&bytes));
        assert_eq!(cipher.decrypt(&tampered).err(), Some(CryptoError::Decrypt));
        let other = SecretKey::generate().cipher();
        assert_eq!(other.decrypt(&sealed).err(), Some(CryptoError::Decrypt));
        assert_eq!(
            cipher.decrypt("secret").err(),
            Some(CryptoError::UnknownFormat)
        );
        assert_eq!(cipher.decrypt("v1:%%%").err(), Some(CryptoError::Malformed));
        assert_eq!(
            cipher.decrypt("v1:AAAA").err(),
            Some(CryptoError::Malformed)
        );
    }
}
