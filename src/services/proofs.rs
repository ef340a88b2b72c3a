//! Proving a Plex account, the same way for every purpose (an account change, joining, claiming):
//! a 6-digit code mailed to the account's email, or Plex sign-in (the PIN flow), which also names
//! the account's plex.tv id before anything is linked.
//!
//! Rules it keeps (PRODUCT.md "Ban recovery" 6, "Getting in"):
//! - A code is stored only as a keyed hash; it expires after 15 minutes, allows 5 wrong tries,
//!   and is re-sent at most once a minute (also when two requests race: the loser is told to wait,
//!   on both databases).
//! - A sign-in token is used for one read of the account (`GET /api/v2/user`) and dropped: never
//!   stored, logged or shown.
//! - The setting `proof_methods` decides which of the two are offered.
//!
//! What a proven account is then used for is the caller's (`account_change`, and later joining
//! and claiming).

use anyhow::Context as _;
use chrono::{DateTime, Duration, Utc};
use secrecy::SecretString;

use crate::app::App;
use crate::domain::{
    DiscordId, OwnerAccountState, PlexEmail, ProofId, ProofMethod, ProofPurpose, ProofState,
    SubscriberId, VerificationCode,
};
use crate::integrations::plex::{PinCheck, PlexError, PlexPinId, Validation};
use crate::services::identities::{Conflict, PlexAccountRef};
use crate::store::proofs::{self, NewProof, ProofRow};
use crate::store::{Tx, is_unique_violation, owner_accounts};

/// How long a code works.
pub const CODE_LIFETIME_MINUTES: i64 = 15;
/// Wrong codes allowed before the request locks.
pub const MAX_WRONG_CODES: i32 = 5;
/// Least time between two sends of a code.
pub const RESEND_AFTER_SECONDS: i64 = 60;
/// How long a Plex sign-in may take.
pub const SIGN_IN_MINUTES: i64 = 15;

/// Why proving (or linking) a Plex account was refused; each is a message for the person.
#[derive(Debug, thiserror::Error)]
pub enum ProofError {
    /// The setting is off.
    #[error("Plex account changes are turned off by the admins")]
    Disabled,
    /// Not flagged.
    #[error("your account does not need a Plex account change")]
    NotFlagged,
    /// Not a subscriber.
    #[error(
        "you are not a subscriber here yet: run `/join` to link your Plex account (or `/plex link` if the admins imported you)"
    )]
    NotSubscriber,
    /// Same as now.
    #[error(
        "that is the Plex account you already use; sign up for a NEW Plex account with a new email"
    )]
    SameAsCurrent,
    /// Retired, banned or refused here.
    #[error(
        "that Plex account was used here before and can never be used again; sign up for a new one"
    )]
    Retired,
    /// Someone else uses it.
    #[error("that Plex account is already in use")]
    InUse,
    /// plex.tv does not know it.
    #[error("there is no plex.tv account for {0}; sign up at plex.tv with that email first")]
    NotPlexAccount(String),
    /// plex.tv cannot check now.
    #[error("we cannot check that account with plex.tv right now; try again in a few minutes")]
    ValidationUnavailable,
    /// Resend too soon.
    #[error("a code was sent less than a minute ago; wait {0} seconds before asking for another")]
    ResendTooSoon(i64),
    /// The code could not be sent.
    #[error("we could not send the code to that address right now; try again in a minute")]
    MailFailed,
    /// No pending request.
    #[error("there is no code waiting for you; start the Plex account change again")]
    NoPendingRequest,
    /// Code expired.
    #[error("that code has expired; ask for a new one")]
    Expired,
    /// Too many wrong codes.
    #[error("too many wrong codes; start the Plex account change again to get a new one")]
    Locked,
    /// Wrong code.
    #[error("that code is not right; {0} tries left")]
    WrongCode(i32),
    /// This way of proving an account is turned off.
    #[error("{0}")]
    MethodOff(&'static str),
    /// No sign-in is waiting.
    #[error("there is no Plex sign-in waiting for you; start it again")]
    NoSignIn,
    /// The sign-in has not been approved yet.
    #[error(
        "Plex has not told us about your sign-in yet: open the link, sign in with your NEW Plex account and approve Usher, then try again"
    )]
    SignInPending,
    /// The sign-in took too long.
    #[error("that Plex sign-in has expired; start it again")]
    SignInExpired,
    /// The sign-in named an account plex.tv could not describe.
    #[error("Plex did not tell us that account's email; sign in again, or use an emailed code")]
    SignInIncomplete,
    /// The request belongs to someone else.
    #[error("that request was made by someone else")]
    NotYours,
    /// Anything else.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<Conflict> for ProofError {
    fn from(conflict: Conflict) -> Self {
        match conflict {
            Conflict::Current => Self::SameAsCurrent,
            Conflict::InUse => Self::InUse,
            Conflict::Retired => Self::Retired,
        }
    }
}

/// Who a proof is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subject {
    /// What it is for.
    pub purpose: ProofPurpose,
    /// The subscriber it concerns (change, claim).
    pub subscriber: Option<SubscriberId>,
    /// The member proving (join, claim).
    pub member: Option<DiscordId>,
}

impl Subject {
    /// A flagged subscriber's account change.
    pub fn change(subscriber: SubscriberId) -> Self {
        Self {
            purpose: ProofPurpose::Change,
            subscriber: Some(subscriber),
            member: None,
        }
    }

    /// A member joining with a Plex account.
    pub fn join(member: DiscordId) -> Self {
        Self {
            purpose: ProofPurpose::Join,
            subscriber: None,
            member: Some(member),
        }
    }

    /// A member claiming the imported subscriber with a Plex account.
    pub fn claim(member: DiscordId) -> Self {
        Self {
            purpose: ProofPurpose::Claim,
            subscriber: None,
            member: Some(member),
        }
    }

    fn hash_context(&self, email: &PlexEmail) -> Vec<u8> {
        // The change keeps the context of the release before proofs were shared, so codes in
        // flight across an upgrade still work.
        let who = match (self.subscriber, self.member) {
            (Some(subscriber), _) => subscriber.to_string(),
            (None, Some(member)) => format!("m{member}"),
            (None, None) => String::new(),
        };
        let purpose = match self.purpose {
            ProofPurpose::Change => "account-change",
            other => other.as_str(),
        };
        format!("{purpose}:{who}:{}", email.as_str()).into_bytes()
    }
}

/// A code is on its way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeSent {
    /// The request.
    pub request: ProofId,
    /// Minutes until the code expires.
    pub expires_in_minutes: i64,
}

/// A Plex sign-in was started: the person opens `url`, signs in and approves Usher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignInStarted {
    /// The request.
    pub request: ProofId,
    /// The app.plex.tv page to open.
    pub url: url::Url,
    /// Minutes until the sign-in expires.
    pub expires_in_minutes: i64,
}

/// An account proven by its owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proven {
    /// The request that proved it.
    pub request: ProofId,
    /// The account.
    pub account: PlexAccountRef,
    /// A contact email given with a join.
    pub contact_email: Option<String>,
    /// The name a member joins under.
    pub member_name: Option<String>,
}

/// What a join or claim brings along with its proof, kept on the request (a sign-in finishes in a
/// job, after the member has left the conversation).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Along<'a> {
    /// Where receipts and reminders go, when not the Plex email.
    pub contact_email: Option<&'a str>,
    /// The member's name.
    pub member_name: Option<&'a str>,
}

/// Which ways of proving an account the admins offer (setting `proof_methods`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Methods {
    /// The emailed code.
    pub email_code: bool,
    /// Plex sign-in.
    pub plex_sign_in: bool,
}

impl Methods {
    /// Refuses a method that is turned off.
    pub fn require(self, method: ProofMethod) -> Result<(), ProofError> {
        match method {
            ProofMethod::EmailCode if !self.email_code => Err(ProofError::MethodOff(
                "codes by email are turned off here: use \"Sign in with Plex\"",
            )),
            ProofMethod::PlexSignIn if !self.plex_sign_in => Err(ProofError::MethodOff(
                "Plex sign-in is turned off here: use the emailed code",
            )),
            _ => Ok(()),
        }
    }
}

/// Asks plex.tv whether `email` is an account, with an active owner account's token. With none,
/// or when plex.tv cannot say, we do not guess.
pub async fn validate_on_plex(app: &App, email: &PlexEmail) -> Result<(), ProofError> {
    let sealed = {
        let mut tx = app.db.read().await.map_err(db)?;
        let owners = owner_accounts::find_owner_accounts(&mut tx)
            .await
            .map_err(db)?;
        owners
            .into_iter()
            .find(|o| o.state == OwnerAccountState::Active)
            .map(|o| o.token_enc)
    };
    let sealed = sealed.ok_or(ProofError::ValidationUnavailable)?;
    let token = app
        .cipher
        .decrypt(&sealed)
        .context("opening an owner token")?;
    match app.plex.validate_user(&token, email.as_str()).await {
        Ok(Validation::Valid) => Ok(()),
        Ok(Validation::NotAnAccount) => Err(ProofError::NotPlexAccount(email.to_string())),
        Ok(Validation::ValidationUnavailable)
        | Err(
            PlexError::RateLimited { .. }
            | PlexError::Server { .. }
            | PlexError::Transport { .. }
            | PlexError::Gone { .. }
            | PlexError::Unauthorized,
        ) => Err(ProofError::ValidationUnavailable),
        Err(err) => Err(ProofError::Unexpected(
            anyhow::Error::new(err).context("validating on plex.tv"),
        )),
    }
}

fn db(err: sqlx::Error) -> ProofError {
    ProofError::Unexpected(anyhow::Error::new(err).context("database"))
}

/// The pending request of `subject` (by subscriber, else by member).
pub async fn find_pending(tx: &mut Tx, subject: &Subject) -> Result<Option<ProofRow>, ProofError> {
    let found = match (subject.subscriber, subject.member) {
        (Some(subscriber), _) => proofs::find_pending(tx, subject.purpose, subscriber).await,
        (None, Some(member)) => proofs::find_pending_of_member(tx, subject.purpose, member).await,
        (None, None) => Ok(None),
    };
    found.map_err(db)
}

/// Seconds to wait before another code may go out, when the last one was sent too recently.
pub fn resend_wait(pending: &ProofRow, now: DateTime<Utc>) -> Option<i64> {
    let wait = RESEND_AFTER_SECONDS - (now - pending.last_sent_at).num_seconds();
    (pending.method == ProofMethod::EmailCode && wait > 0).then_some(wait)
}

/// Replaces `subject`'s pending request with a new one, in the caller's transaction: a code sent
/// less than a minute ago refuses it (so two racing requests end the same on both databases).
async fn replace_pending(
    tx: &mut Tx,
    subject: &Subject,
    new: NewProof<'_>,
    now: DateTime<Utc>,
) -> Result<ProofId, ProofError> {
    let mut new = new;
    if let Some(pending) = find_pending(tx, subject).await? {
        if new.method == ProofMethod::EmailCode
            && let Some(wait) = resend_wait(&pending, now)
        {
            return Err(ProofError::ResendTooSoon(wait));
        }
        if pending.method == ProofMethod::EmailCode && new.method == ProofMethod::EmailCode {
            new.sends = 2;
        }
        proofs::update_state(tx, pending.id, ProofState::Cancelled, now)
            .await
            .map_err(db)?;
    }
    match proofs::insert_proof(tx, &new, now).await {
        Ok(id) => Ok(id),
        // Another request committed between our look and our insert (PostgreSQL; SQLite's
        // writers queue): the person just asked, so they wait like any early resend.
        Err(err) if is_unique_violation(&err) => {
            Err(ProofError::ResendTooSoon(RESEND_AFTER_SECONDS))
        }
        Err(err) => Err(db(err)),
    }
}

/// A code for `email` to mail after the transaction commits.
pub struct IssuedCode {
    /// The request.
    pub request: ProofId,
    code: VerificationCode,
}

/// Records a code request for `subject` in the caller's transaction (replacing a pending one).
/// Mail it with [`mail_code`] after the commit.
pub async fn issue_code(
    app: &App,
    tx: &mut Tx,
    subject: &Subject,
    email: &PlexEmail,
    along: Along<'_>,
) -> Result<IssuedCode, ProofError> {
    let now = app.clock.now();
    let code = VerificationCode::generate();
    let hash = hex::encode(code.hash(&app.signing_key, &subject.hash_context(email)));
    let new = NewProof {
        purpose: subject.purpose,
        subscriber: subject.subscriber,
        member: subject.member,
        method: ProofMethod::EmailCode,
        email: Some(email),
        contact_email: along.contact_email,
        code_hash: Some(&hash),
        pin_id: None,
        pin_code: None,
        expires_at: now + Duration::minutes(CODE_LIFETIME_MINUTES),
        sends: 1,
        member_name: along.member_name,
    };
    let request = replace_pending(tx, subject, new, now).await?;
    Ok(IssuedCode { request, code })
}

/// Mails an issued code (after the commit, never from inside it; the code exists only in this
/// message).
pub async fn mail_code(
    app: &App,
    name: &str,
    email: &PlexEmail,
    issued: IssuedCode,
) -> Result<CodeSent, ProofError> {
    let context = serde_json::json!({
        "name": name,
        "code": issued.code.expose_for_delivery(),
        "expires_minutes": CODE_LIFETIME_MINUTES,
    });
    let rendered = app
        .templates
        .render_email("verification_code", context)
        .context("rendering the code email")?;
    if let Err(err) = app
        .mailer
        .send(&app.settings.email.from, email.as_str(), &rendered)
        .await
    {
        tracing::warn!(request = %issued.request, error = %err, "sending a verification code failed");
        return Err(ProofError::MailFailed);
    }
    Ok(CodeSent {
        request: issued.request,
        expires_in_minutes: CODE_LIFETIME_MINUTES,
    })
}

/// How a code check went, in the caller's transaction.
#[derive(Debug)]
pub enum CodeCheck {
    /// The right code: the account is proven (the request is still pending; the caller marks it
    /// verified with what it applies).
    Right(Proven),
    /// Not right; the attempt is counted. Commit, then refuse with the error.
    Refused(ProofError),
}

/// Checks `code` against `subject`'s pending code request.
pub async fn check_code(
    app: &App,
    tx: &mut Tx,
    subject: &Subject,
    code: &VerificationCode,
) -> Result<CodeCheck, ProofError> {
    let now = app.clock.now();
    let pending = find_pending(tx, subject)
        .await?
        .filter(|p| p.method == ProofMethod::EmailCode)
        .ok_or(ProofError::NoPendingRequest)?;
    if now >= pending.expires_at {
        proofs::update_state(tx, pending.id, ProofState::Expired, now)
            .await
            .map_err(db)?;
        return Ok(CodeCheck::Refused(ProofError::Expired));
    }
    let email = pending
        .email_norm
        .clone()
        .context("a code request has its email")?;
    let stored = hex::decode(pending.code_hash.as_deref().unwrap_or_default())
        .context("stored code hash")?;
    if !code.matches(&app.signing_key, &subject.hash_context(&email), &stored) {
        let failed = proofs::update_failed_attempt(tx, pending.id)
            .await
            .map_err(db)?;
        if failed >= MAX_WRONG_CODES {
            proofs::update_state(tx, pending.id, ProofState::Locked, now)
                .await
                .map_err(db)?;
            return Ok(CodeCheck::Refused(ProofError::Locked));
        }
        return Ok(CodeCheck::Refused(ProofError::WrongCode(
            MAX_WRONG_CODES - failed,
        )));
    }
    Ok(CodeCheck::Right(Proven {
        request: pending.id,
        account: PlexAccountRef::typed(email),
        contact_email: pending.contact_email,
        member_name: pending.member_name,
    }))
}

/// A new PIN at plex.tv, for a sign-in request (no transaction may be open).
pub async fn create_pin(app: &App) -> Result<crate::integrations::plex::PlexPin, ProofError> {
    app.plex.create_pin().await.map_err(|err| match err {
        PlexError::RateLimited { .. }
        | PlexError::Server { .. }
        | PlexError::Transport { .. }
        | PlexError::Gone { .. } => ProofError::ValidationUnavailable,
        other => ProofError::Unexpected(anyhow::Error::new(other).context("creating a Plex PIN")),
    })
}

/// Records a sign-in request for `subject` with a PIN from [`create_pin`], in the caller's
/// transaction (replacing a pending request). Returns the request and the link to open.
pub async fn issue_sign_in(
    app: &App,
    tx: &mut Tx,
    subject: &Subject,
    pin: &crate::integrations::plex::PlexPin,
    forward: Option<&url::Url>,
    along: Along<'_>,
) -> Result<SignInStarted, ProofError> {
    let now = app.clock.now();
    let pin_id = i64::try_from(pin.id.0).context("PIN id out of range")?;
    let new = NewProof {
        purpose: subject.purpose,
        subscriber: subject.subscriber,
        member: subject.member,
        method: ProofMethod::PlexSignIn,
        email: None,
        contact_email: along.contact_email,
        code_hash: None,
        pin_id: Some(pin_id),
        pin_code: Some(&pin.code),
        expires_at: now + Duration::minutes(SIGN_IN_MINUTES),
        sends: 1,
        member_name: along.member_name,
    };
    let request = replace_pending(tx, subject, new, now).await?;
    Ok(SignInStarted {
        request,
        url: app.plex.sign_in_url(pin, forward),
        expires_in_minutes: SIGN_IN_MINUTES,
    })
}

/// Where a sign-in stands.
#[derive(Debug)]
pub enum SignIn {
    /// Not approved yet.
    Waiting,
    /// Plex forgot the PIN, or our time ran out: the request is expired.
    Expired,
    /// Approved: the account plex.tv names (the request is still pending).
    Signed(Proven),
}

/// Reads a pending sign-in request at plex.tv: the PIN, and once approved the account behind the
/// token (one `GET /api/v2/user`; the token is dropped here). No transaction may be open.
pub async fn read_sign_in(app: &App, request: &ProofRow) -> Result<SignIn, ProofError> {
    if app.clock.now() >= request.expires_at {
        return Ok(SignIn::Expired);
    }
    let pin = request
        .pin_id
        .and_then(|id| u64::try_from(id).ok())
        .context("a sign-in request has its PIN")?;
    let token: SecretString = match app.plex.check_pin(PlexPinId(pin)).await {
        Ok(PinCheck::Expired) => return Ok(SignIn::Expired),
        Ok(PinCheck::Approved(token)) => token,
        // Not approved yet, or plex.tv is busy: look again in a moment.
        Ok(PinCheck::Waiting)
        | Err(
            PlexError::RateLimited { .. } | PlexError::Server { .. } | PlexError::Transport { .. },
        ) => return Ok(SignIn::Waiting),
        Err(err) => {
            return Err(ProofError::Unexpected(
                anyhow::Error::new(err).context("checking a Plex PIN"),
            ));
        }
    };
    let account = match app.plex.account(&token).await {
        Ok(account) => account,
        Err(
            PlexError::RateLimited { .. } | PlexError::Server { .. } | PlexError::Transport { .. },
        ) => return Ok(SignIn::Waiting),
        Err(err) => {
            return Err(ProofError::Unexpected(
                anyhow::Error::new(err).context("reading the signed-in Plex account"),
            ));
        }
    };
    drop(token);
    let email = PlexEmail::parse(&account.email).map_err(|_| ProofError::SignInIncomplete)?;
    let username = PlexEmail::parse(&account.username).ok();
    let plex_user_id = i64::try_from(account.id).context("plex.tv id out of range")?;
    Ok(SignIn::Signed(Proven {
        request: request.id,
        account: PlexAccountRef {
            email,
            plex_user_id: Some(plex_user_id),
            username,
        },
        contact_email: request.contact_email.clone(),
        member_name: request.member_name.clone(),
    }))
}

/// Marks a sign-in request with the account it named (so the admins see who tried), in the
/// caller's transaction.
pub async fn record_signed_in(tx: &mut Tx, proven: &Proven) -> Result<(), ProofError> {
    let Some(plex_user_id) = proven.account.plex_user_id else {
        return Ok(());
    };
    proofs::update_signed_in(
        tx,
        proven.request,
        &proven.account.email,
        plex_user_id,
        proven.account.username.as_ref().map(PlexEmail::as_str),
    )
    .await
    .map_err(db)
}

/// What a request is for (`None` when there is no such request), for the sign-in watch to hand
/// it to the flow it belongs to.
pub async fn purpose_of(app: &App, request: ProofId) -> anyhow::Result<Option<ProofPurpose>> {
    let mut tx = app.db.read().await?;
    Ok(proofs::find_proof(&mut tx, request)
        .await?
        .map(|row| row.purpose))
}
