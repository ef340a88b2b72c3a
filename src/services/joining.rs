//! Getting in as a Discord member (PRODUCT.md "Getting in"): `/join` makes a new subscriber with a
//! proven Plex account; `/plex link` attaches the member to the imported (unclaimed) subscriber who
//! has the account.
//!
//! Rules it keeps:
//! - Only members of Usher's home guild. `/join` only while registration is `open`, or `role` for
//!   members holding one of `discord.registration_role_ids`; `closed` means the admins add people.
//!   Claiming an imported subscriber is open to anyone who proves the account (they are a
//!   customer already). Refusals say how to get in, and write nothing.
//! - One member is one subscriber; one subscriber is one member.
//! - The Plex account is proven the same way as an account change ([`proofs`]: an emailed code,
//!   or Plex sign-in, which names the plex.tv id) and may never be one used here by someone else,
//!   nor a retired, banned or refused one (by email, username and plex.tv id). A join naming the
//!   account of an unclaimed subscriber claims that subscriber: the person proved it is theirs.
//! - The new subscriber (or the claim), the proof's verification and the welcome DM commit in one
//!   transaction.

use anyhow::Context as _;

use crate::app::App;
use crate::domain::{
    Actor, DiscordId, IdentityState, PlexEmail, ProofId, ProofMethod, ProofPurpose, ProofState,
    SubscriberId, VerificationCode,
};
use crate::jobs::PollSignIn;
use crate::services::identities::{self, Conflict, PlexAccountRef};
use crate::services::members::{self, MemberError};
use crate::services::proofs::{
    self, Along, CodeCheck, CodeSent, ProofError, Proven, SignIn, SignInStarted, Subject,
};
use crate::services::settings::{self, Registration};
use crate::store::proofs::{self as proof_store, ProofRow};
use crate::store::subscribers::{self, NewSubscriber};
use crate::store::{Tx, audit, is_unique_violation};

/// Why joining or claiming was refused; each is a message for the member, and nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    /// Not in the home guild (or in a DM).
    #[error("run this in Usher's Discord server: only its members can join")]
    NotHome,
    /// Registration is closed.
    #[error("joining is closed here: the admins add new members, so ask one of them")]
    Closed,
    /// Registration needs a role the member lacks.
    #[error(
        "joining is open to members with one of the roles the admins chose for new members, and you have none of them: ask an admin"
    )]
    RoleMissing,
    /// The member is a subscriber already.
    #[error("you have joined already: `/account` shows where you stand")]
    AlreadyJoined,
    /// Nobody imported has that account (claiming only).
    #[error(
        "no imported subscriber here has the Plex account {0}: if you are new, use `/join` instead"
    )]
    NotImported(String),
    /// The contact email does not parse.
    #[error("the contact email `{0}` is not an email address")]
    BadContactEmail(String),
    /// A sign-in named an account that may not be used; the reason was recorded.
    #[error("{0}")]
    Refused(String),
    /// The proof was refused.
    #[error(transparent)]
    Proof(ProofError),
    /// The claim was refused.
    #[error(transparent)]
    Member(MemberError),
    /// Anything else.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<ProofError> for JoinError {
    fn from(err: ProofError) -> Self {
        match err {
            ProofError::Unexpected(err) => Self::Unexpected(err),
            other => Self::Proof(other),
        }
    }
}

impl From<MemberError> for JoinError {
    fn from(err: MemberError) -> Self {
        match err {
            MemberError::Unexpected(err) => Self::Unexpected(err),
            other => Self::Member(other),
        }
    }
}

/// The member asking, as the door saw them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applicant {
    /// Their Discord member.
    pub member: DiscordId,
    /// Their name.
    pub name: String,
    /// The guild the command came from (`None` in a DM).
    pub guild: Option<u64>,
    /// Their roles in that guild.
    pub roles: Vec<u64>,
}

/// A member got in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Joined {
    /// Their subscriber.
    pub subscriber: SubscriberId,
    /// An imported subscriber was claimed (else a new one was made).
    pub claimed: bool,
    /// The Plex account.
    pub plex_account: PlexEmail,
    /// Free trials are offered now (what to suggest next).
    pub trials_offered: bool,
}

/// Where a sign-in for a join or claim stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignInOutcome {
    /// Not approved on plex.tv yet.
    Waiting,
    /// Done now.
    Joined(Joined),
    /// Done before (by the watching job or an earlier press).
    Settled,
}

fn subject(purpose: ProofPurpose, member: DiscordId) -> Subject {
    match purpose {
        ProofPurpose::Claim => Subject::claim(member),
        _ => Subject::join(member),
    }
}

fn check_home(app: &App, applicant: &Applicant) -> Result<(), JoinError> {
    let home = &app.settings.discord.guild_ids;
    match applicant.guild {
        Some(guild) if home.is_empty() || home.contains(&guild) => Ok(()),
        _ => Err(JoinError::NotHome),
    }
}

/// A member may start: registration (for a join) and not a subscriber yet.
async fn check_open(
    app: &App,
    tx: &mut Tx,
    applicant: &Applicant,
    purpose: ProofPurpose,
) -> Result<(), JoinError> {
    if purpose == ProofPurpose::Join {
        match settings::registration_in(tx).await? {
            Registration::Open => {}
            Registration::Closed => return Err(JoinError::Closed),
            Registration::Role => {
                let wanted = &app.settings.discord.registration_role_ids;
                if !applicant.roles.iter().any(|r| wanted.contains(r)) {
                    return Err(JoinError::RoleMissing);
                }
            }
        }
    }
    check_not_member(tx, applicant.member).await
}

async fn check_not_member(tx: &mut Tx, member: DiscordId) -> Result<(), JoinError> {
    match subscribers::find_id_by_discord(tx, member).await? {
        Some(_) => Err(JoinError::AlreadyJoined),
        None => Ok(()),
    }
}

/// Whose the account is: `None` for a new one, or the unclaimed subscriber holding it.
async fn check_account(
    tx: &mut Tx,
    purpose: ProofPurpose,
    account: &PlexAccountRef,
) -> Result<Option<SubscriberId>, JoinError> {
    match identities::find_conflict(tx, account, None).await? {
        None if purpose == ProofPurpose::Claim => {
            Err(JoinError::NotImported(account.email.to_string()))
        }
        None => Ok(None),
        Some(Conflict::InUse) => {
            let holders = subscribers::find_identities_of_account(tx, &account.keys()).await?;
            let Some(active) = holders.iter().find(|i| i.state == IdentityState::Active) else {
                return Err(ProofError::InUse.into());
            };
            // Every match must be that one subscriber (an email of one and a plex.tv id of
            // another is two people), and nobody may have claimed them.
            if holders
                .iter()
                .any(|i| i.subscriber_id != active.subscriber_id)
            {
                return Err(ProofError::InUse.into());
            }
            let row = subscribers::find_subscriber(tx, active.subscriber_id)
                .await?
                .context("an identity's subscriber exists")?;
            if row.discord_id.is_some() {
                return Err(ProofError::InUse.into());
            }
            Ok(Some(active.subscriber_id))
        }
        Some(conflict) => Err(ProofError::from(conflict).into()),
    }
}

/// A contact email, checked by the product's one email rule (trimmed, lower-cased, well formed).
fn parse_contact(text: Option<&str>) -> Result<Option<String>, JoinError> {
    let Some(text) = text.map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    PlexEmail::parse(text)
        .ok()
        .filter(|e| e.as_str().contains('@'))
        .map(|e| Some(e.as_str().to_owned()))
        .ok_or_else(|| JoinError::BadContactEmail(text.to_owned()))
}

fn audit_name(purpose: ProofPurpose, step: &str) -> String {
    let what = if purpose == ProofPurpose::Claim {
        "claim"
    } else {
        "join"
    };
    format!("{what}.{step}")
}

/// Whether the member may start a join (or claim) now: checked before asking them for an
/// email, so nobody types one in only to be told no.
pub async fn can_start(
    app: &App,
    applicant: &Applicant,
    purpose: ProofPurpose,
) -> Result<(), JoinError> {
    check_home(app, applicant)?;
    let mut tx = app.db.read().await?;
    check_open(app, &mut tx, applicant, purpose).await
}

/// Asks for a join (or claim) with `plex_email`: checks the member and the account, validates a
/// new account on plex.tv, and emails a code to it.
pub async fn request_code(
    app: &App,
    applicant: &Applicant,
    purpose: ProofPurpose,
    plex_email: &PlexEmail,
    contact_email: Option<&str>,
) -> Result<CodeSent, JoinError> {
    check_home(app, applicant)?;
    let contact = parse_contact(contact_email)?;
    let subject = subject(purpose, applicant.member);
    let account = PlexAccountRef::typed(plex_email.clone());
    let holder = {
        let mut tx = app.db.read().await?;
        settings::proof_methods_in(&mut tx)
            .await?
            .require(ProofMethod::EmailCode)?;
        check_open(app, &mut tx, applicant, purpose).await?;
        let holder = check_account(&mut tx, purpose, &account).await?;
        if let Some(pending) = proofs::find_pending(&mut tx, &subject).await?
            && let Some(wait) = proofs::resend_wait(&pending, app.clock.now())
        {
            return Err(ProofError::ResendTooSoon(wait).into());
        }
        holder
    };
    // An imported account came from plex.tv; a new one must be a real plex.tv account.
    if holder.is_none() {
        proofs::validate_on_plex(app, plex_email).await?;
    }
    let now = app.clock.now();
    let mut tx = app.db.begin().await?;
    check_open(app, &mut tx, applicant, purpose).await?;
    check_account(&mut tx, purpose, &account).await?;
    let along = Along {
        contact_email: contact.as_deref(),
        member_name: Some(&applicant.name),
    };
    let issued = proofs::issue_code(app, &mut tx, &subject, plex_email, along).await?;
    let detail = serde_json::json!({
        "request": issued.request, "member": applicant.member.to_string(),
        "plex_email": plex_email.as_str(),
    });
    let actor = Actor::Member(applicant.member);
    audit::insert_audit(
        &mut tx,
        &actor,
        None,
        &audit_name(purpose, "code_sent"),
        &detail,
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(proofs::mail_code(app, &applicant.name, plex_email, issued).await?)
}

/// Sends a fresh code for the member's pending request (same account), at most once a minute.
pub async fn resend_code(
    app: &App,
    applicant: &Applicant,
    purpose: ProofPurpose,
) -> Result<CodeSent, JoinError> {
    let pending = {
        let mut tx = app.db.read().await?;
        proofs::find_pending(&mut tx, &subject(purpose, applicant.member)).await?
    };
    let pending = pending
        .filter(|p| p.method == ProofMethod::EmailCode)
        .ok_or(ProofError::NoPendingRequest)?;
    let email = pending
        .email_norm
        .clone()
        .context("a code request has its email")?;
    request_code(
        app,
        applicant,
        purpose,
        &email,
        pending.contact_email.as_deref(),
    )
    .await
}

/// Checks the member's code and, when right, joins (or claims) in one transaction.
pub async fn verify_code(
    app: &App,
    member: DiscordId,
    purpose: ProofPurpose,
    code: &VerificationCode,
) -> Result<Joined, JoinError> {
    let mut tx = app.db.begin().await?;
    let proven = match proofs::check_code(app, &mut tx, &subject(purpose, member), code).await? {
        CodeCheck::Right(proven) => proven,
        CodeCheck::Refused(err) => {
            tx.commit().await?;
            return Err(err.into());
        }
    };
    let joined = apply(app, &mut tx, member, purpose, &proven)
        .await?
        .ok_or(ProofError::NoPendingRequest)?;
    app.queue.commit(tx).await?;
    Ok(joined)
}

/// Starts a Plex sign-in for a join (or claim): the member opens the returned link, signs in
/// and approves Usher; a job watches the sign-in and finishes (or [`finish_sign_in`] does, when
/// they say they are done).
pub async fn start_sign_in(
    app: &App,
    applicant: &Applicant,
    purpose: ProofPurpose,
    contact_email: Option<&str>,
) -> Result<SignInStarted, JoinError> {
    check_home(app, applicant)?;
    let contact = parse_contact(contact_email)?;
    {
        let mut tx = app.db.read().await?;
        settings::proof_methods_in(&mut tx)
            .await?
            .require(ProofMethod::PlexSignIn)?;
        check_open(app, &mut tx, applicant, purpose).await?;
    }
    let pin = proofs::create_pin(app).await?;
    let now = app.clock.now();
    let mut tx = app.db.begin().await?;
    check_open(app, &mut tx, applicant, purpose).await?;
    let along = Along {
        contact_email: contact.as_deref(),
        member_name: Some(&applicant.name),
    };
    let started = proofs::issue_sign_in(
        app,
        &mut tx,
        &subject(purpose, applicant.member),
        &pin,
        None,
        along,
    )
    .await?;
    app.queue
        .enqueue(&mut tx, &PollSignIn::new(started.request))
        .await?;
    let detail = serde_json::json!({
        "request": started.request, "member": applicant.member.to_string(),
    });
    audit::insert_audit(
        &mut tx,
        &Actor::Member(applicant.member),
        None,
        &audit_name(purpose, "sign_in_started"),
        &detail,
        now,
    )
    .await?;
    app.queue.commit(tx).await?;
    Ok(started)
}

/// Looks at a join or claim sign-in and, once Plex has the approval, finishes it for the account
/// plex.tv names — or refuses it (checked by email, username AND plex.tv id before anything is
/// linked) and records why. `who`, when given, must be the member who started it (a button press);
/// a press after the watching job refused it is told why.
pub async fn finish_sign_in(
    app: &App,
    request: ProofId,
    who: Option<DiscordId>,
) -> Result<SignInOutcome, JoinError> {
    let row = {
        let mut tx = app.db.read().await?;
        proof_store::find_proof(&mut tx, request)
            .await?
            .ok_or(ProofError::NoSignIn)?
    };
    let member = row.discord_id.context("a join request has its member")?;
    if who.is_some_and(|who| who != member) {
        return Err(ProofError::NotYours.into());
    }
    if row.purpose == ProofPurpose::Change || row.method != ProofMethod::PlexSignIn {
        return Ok(SignInOutcome::Settled);
    }
    match row.state {
        ProofState::Pending => {}
        ProofState::Refused => {
            return Err(JoinError::Refused(row.refusal.clone().unwrap_or_default()));
        }
        ProofState::Expired => return Err(ProofError::SignInExpired.into()),
        _ => return Ok(SignInOutcome::Settled),
    }
    let proven = match proofs::read_sign_in(app, &row).await? {
        SignIn::Waiting => return Ok(SignInOutcome::Waiting),
        SignIn::Expired => {
            let mut tx = app.db.begin().await?;
            proof_store::update_state(&mut tx, request, ProofState::Expired, app.clock.now())
                .await?;
            tx.commit().await?;
            return Err(ProofError::SignInExpired.into());
        }
        SignIn::Signed(proven) => proven,
    };
    let mut tx = app.db.begin().await?;
    let still = proof_store::find_proof(&mut tx, request).await?;
    if still.is_none_or(|r| r.state != ProofState::Pending) {
        return Ok(SignInOutcome::Settled);
    }
    proofs::record_signed_in(&mut tx, &proven).await?;
    match apply(app, &mut tx, member, row.purpose, &proven).await {
        Ok(Some(joined)) => {
            app.queue.commit(tx).await?;
            Ok(SignInOutcome::Joined(joined))
        }
        Ok(None) => Ok(SignInOutcome::Settled),
        Err(JoinError::Unexpected(err)) => Err(JoinError::Unexpected(err)),
        Err(err) => {
            drop(tx);
            refuse_sign_in(app, &row, &proven, &err).await?;
            Err(err)
        }
    }
}

/// Records why a sign-in was refused, with the account it named (for the admins).
async fn refuse_sign_in(
    app: &App,
    row: &ProofRow,
    proven: &Proven,
    why: &JoinError,
) -> Result<(), JoinError> {
    let reason = crate::domain::as_sentence(&why.to_string());
    let mut tx = app.db.begin().await?;
    proofs::record_signed_in(&mut tx, proven).await?;
    if !proof_store::update_refused(&mut tx, row.id, &reason).await? {
        return Ok(());
    }
    let member = row.discord_id.context("a join request has its member")?;
    let detail = serde_json::json!({
        "request": row.id, "email": proven.account.email.as_str(),
        "plex_user_id": proven.account.plex_user_id, "reason": reason,
    });
    audit::insert_audit(
        &mut tx,
        &Actor::Member(member),
        None,
        &audit_name(row.purpose, "refused"),
        &detail,
        app.clock.now(),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// The sign-in job's step for a join or claim: `Ok(true)` when settled, `Ok(false)` to look
/// again in a moment.
pub async fn poll_sign_in(app: &App, request: ProofId) -> anyhow::Result<bool> {
    match finish_sign_in(app, request, None).await {
        Ok(SignInOutcome::Waiting) => Ok(false),
        Err(JoinError::Unexpected(err)) => Err(err),
        Ok(SignInOutcome::Joined(_) | SignInOutcome::Settled) | Err(_) => Ok(true),
    }
}

/// Finishes a proven join or claim in the caller's transaction (see the module rules). The proof
/// is used first: `None` when it was not pending any more (a second finisher of the same proof —
/// the watching job and the button, or the right code entered twice at once — waits for the
/// first and finds it settled, on both databases).
async fn apply(
    app: &App,
    tx: &mut Tx,
    member: DiscordId,
    purpose: ProofPurpose,
    proven: &Proven,
) -> Result<Option<Joined>, JoinError> {
    let now = app.clock.now();
    if !proof_store::update_state(tx, proven.request, ProofState::Verified, now).await? {
        return Ok(None);
    }
    if purpose == ProofPurpose::Join && settings::registration_in(tx).await? == Registration::Closed
    {
        return Err(JoinError::Closed);
    }
    check_not_member(tx, member).await?;
    let name = proven
        .member_name
        .clone()
        .unwrap_or_else(|| format!("member {member}"));
    let holder = check_account(tx, purpose, &proven.account).await?;
    let subscriber = if let Some(holder) = holder {
        members::attach_in(app, tx, member, &name, holder, &proven.account).await?;
        if let Some(contact) = &proven.contact_email {
            subscribers::update_contact_email(tx, holder, Some(contact), now).await?;
        }
        holder
    } else {
        let row = NewSubscriber {
            discord_id: Some(member),
            display_name: &name,
            contact_email: proven.contact_email.as_deref(),
            plan: None,
            notes: "",
        };
        let subscriber = match subscribers::insert_new_subscriber(tx, &row, now).await {
            Ok(id) => id,
            Err(err) if is_unique_violation(&err) => return Err(JoinError::AlreadyJoined),
            Err(err) => return Err(err.into()),
        };
        match subscribers::insert_identity(tx, subscriber, &proven.account.keys(), now).await {
            Ok(_) => {}
            Err(err) if is_unique_violation(&err) => return Err(ProofError::InUse.into()),
            Err(err) => return Err(err.into()),
        }
        members::welcome_in(app, tx, subscriber, &proven.account.email, "joined").await?;
        subscriber
    };
    let detail = serde_json::json!({
        "request": proven.request, "member": member.to_string(),
        "plex_email": proven.account.email.as_str(), "plex_user_id": proven.account.plex_user_id,
    });
    let step = if holder.is_some() {
        "claimed"
    } else {
        "joined"
    };
    audit::insert_audit(
        tx,
        &Actor::Member(member),
        Some(subscriber),
        &format!("member.{step}"),
        &detail,
        now,
    )
    .await?;
    Ok(Some(Joined {
        subscriber,
        claimed: holder.is_some(),
        plex_account: proven.account.email.clone(),
        trials_offered: settings::trials_in(tx).await?.on,
    }))
}
