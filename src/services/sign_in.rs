//! Signing in to My Account: one-time links handed out in Discord, and the browser sessions they
//! open.
//!
//! Rules it keeps (issue 6, PRODUCT.md "Never"):
//! - A link is signed (purpose `account-login`, subscriber, random nonce, 15-minute expiry; 24 hours
//!   in an email) AND
//!   recorded; signing in consumes the record in the same transaction that opens the session, so
//!   a link works exactly once, and a forged, altered, expired or reused link opens nothing.
//! - The session cookie carries a random secret; the database keeps only its keyed digest. Each
//!   session has its own CSRF token that every form posts back.
//! - Nothing here logs a link, a cookie or a token.

use chrono::{DateTime, Duration, Utc};
use url::Url;

use crate::app::App;
use crate::crypto::{SignatureError, random_token};
use crate::domain::{Actor, SubscriberId};
use crate::store::{audit, web};

/// Signed-token purpose of sign-in links.
const PURPOSE: &str = "account-login";
/// How long a sign-in link works.
pub const LINK_MINUTES: i64 = 15;
/// How long a session lasts without signing in again.
pub const SESSION_DAYS: i64 = 7;
/// Digest label of session secrets.
const SESSION_LABEL: &str = "usher/v1/web-session";

/// A sign-in link just issued.
#[derive(Clone, PartialEq, Eq)]
pub struct LoginLink {
    /// The link to open (carries the signed token: treat as a secret).
    pub url: Url,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
}

impl std::fmt::Debug for LoginLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginLink")
            .field("url", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// Why a sign-in link was refused. The page shows one message for all of them on purpose
/// (an attacker learns nothing); the variant goes to the log.
#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    /// Not one of our links, or altered.
    #[error("the sign-in link is not valid")]
    Forged,
    /// Past its 15 minutes.
    #[error("the sign-in link has expired")]
    Expired,
    /// Already used once (or never issued).
    #[error("the sign-in link was already used")]
    Used,
    /// Anything else.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// A session just opened: the cookie value to set and when it ends.
pub struct NewSession {
    /// The cookie's secret value.
    pub cookie: String,
    /// Whose session it is.
    pub subscriber: SubscriberId,
    /// When it ends.
    pub expires_at: DateTime<Utc>,
}

impl std::fmt::Debug for NewSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewSession")
            .field("cookie", &"<redacted>")
            .field("subscriber", &self.subscriber)
            .finish_non_exhaustive()
    }
}

/// A live session, as a request sees it.
#[derive(Clone, PartialEq, Eq)]
pub struct Session {
    /// The signed-in subscriber.
    pub subscriber: SubscriberId,
    /// The token every form must post back.
    pub csrf_token: String,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("subscriber", &self.subscriber)
            .finish_non_exhaustive()
    }
}

/// Issues a one-time sign-in link for `subscriber`, valid for [`LINK_MINUTES`].
pub async fn issue_link(app: &App, subscriber: SubscriberId) -> anyhow::Result<LoginLink> {
    issue_link_valid_for(app, subscriber, Duration::minutes(LINK_MINUTES)).await
}

/// How long the sign-in link in an email works: mail is read later than a Discord reply, and an
/// unclaimed subscriber has no Discord to ask for a fresh one.
pub const EMAIL_LINK_HOURS: i64 = 24;

/// Issues a one-time sign-in link for `subscriber` that works for `valid` (signed with that
/// expiry and recorded, so it still works once only).
pub async fn issue_link_valid_for(
    app: &App,
    subscriber: SubscriberId,
    valid: Duration,
) -> anyhow::Result<LoginLink> {
    let now = app.clock.now();
    let expires_at = now + valid;
    let nonce = random_token(16);
    let token = app
        .signer
        .sign(PURPOSE, &format!("{subscriber}.{nonce}"), Some(expires_at));
    let mut tx = app.db.begin().await?;
    web::insert_login_link(&mut tx, &nonce, subscriber, expires_at, now).await?;
    tx.commit().await?;
    let mut url = app.settings.public_link("account/login");
    url.query_pairs_mut().append_pair("token", &token);
    Ok(LoginLink { url, expires_at })
}

/// Signs in with a link's token: checks it, consumes it and opens a session, in one transaction.
pub async fn sign_in(app: &App, token: &str) -> Result<NewSession, SignInError> {
    let now = app.clock.now();
    let payload = app
        .signer
        .verify(PURPOSE, token, now)
        .map_err(|err| match err {
            SignatureError::Expired => SignInError::Expired,
            SignatureError::Malformed
            | SignatureError::BadSignature
            | SignatureError::WrongPurpose => SignInError::Forged,
        })?;
    let (subscriber, nonce) = payload
        .split_once('.')
        .and_then(|(id, nonce)| Some((SubscriberId::new(id.parse().ok()?), nonce)))
        .ok_or(SignInError::Forged)?;
    let mut tx = app.db.begin().await?;
    if !web::update_login_link_used(&mut tx, nonce, subscriber, now).await? {
        return Err(SignInError::Used);
    }
    let cookie = random_token(32);
    let csrf = random_token(24);
    let expires_at = now + Duration::days(SESSION_DAYS);
    web::insert_session(
        &mut tx,
        &session_digest(app, &cookie),
        subscriber,
        &csrf,
        expires_at,
        now,
    )
    .await?;
    audit::insert_audit(
        &mut tx,
        &Actor::Subscriber(subscriber),
        Some(subscriber),
        "web.signed_in",
        &serde_json::json!({}),
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(NewSession {
        cookie,
        subscriber,
        expires_at,
    })
}

/// The live session a cookie belongs to, if any.
pub async fn session(app: &App, cookie: &str) -> anyhow::Result<Option<Session>> {
    let mut tx = app.db.read().await?;
    let row = web::find_session(&mut tx, &session_digest(app, cookie), app.clock.now()).await?;
    tx.rollback().await?;
    Ok(row.map(|r| Session {
        subscriber: r.subscriber_id,
        csrf_token: r.csrf_token,
    }))
}

/// Ends the session of a cookie (signing out); false when it was not live.
pub async fn sign_out(app: &App, cookie: &str) -> anyhow::Result<bool> {
    let mut tx = app.db.begin().await?;
    let ended =
        web::update_session_ended(&mut tx, &session_digest(app, cookie), app.clock.now()).await?;
    tx.commit().await?;
    Ok(ended)
}

fn session_digest(app: &App, cookie: &str) -> String {
    hex::encode(app.signing_key.digest(SESSION_LABEL, &[cookie.as_bytes()]))
}
