//! Outgoing email: an SMTP relay (lettre, rustls) when `email.smtp` is configured, otherwise a
//! local outbox folder of `.eml` files (lettre's file transport), so a fresh install can show
//! what it would send without any mail setup.
//!
//! Rule it keeps: message bodies (which may carry a verification code) are never logged; only the
//! recipient's domain and the outcome are.

use std::path::PathBuf;

use anyhow::Context as _;
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{
    AsyncFileTransport, AsyncSmtpTransport, AsyncTransport as _, Message, Tokio1Executor,
};
use secrecy::ExposeSecret as _;

use crate::config::{Settings, SmtpTls};
use crate::templates::RenderedEmail;

/// Where mail goes.
#[derive(Clone)]
pub enum Mailer {
    /// An SMTP relay.
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    /// `.eml` files in a folder.
    Outbox(AsyncFileTransport<Tokio1Executor>, PathBuf),
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Smtp(_) => f.write_str("Mailer::Smtp"),
            Self::Outbox(_, dir) => write!(f, "Mailer::Outbox({})", dir.display()),
        }
    }
}

/// Why a message was not sent.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// The recipient address does not parse.
    #[error("`{0}` is not an email address mail can be sent to")]
    BadRecipient(String),
    /// Worth trying again (connection trouble, SMTP 4xx, disk full).
    #[error("sending mail failed for now: {0}")]
    Transient(String),
    /// Will not succeed as is (SMTP 5xx, e.g. the mailbox does not exist).
    #[error("the mail server refused the message: {0}")]
    Permanent(String),
}

impl Mailer {
    /// Builds the mailer the configuration asks for; logs where mail goes.
    pub fn from_settings(settings: &Settings) -> anyhow::Result<Self> {
        let Some(smtp) = &settings.email.smtp else {
            let dir = settings.outbox_dir();
            crate::private_fs::ensure_private_dir(&dir)
                .with_context(|| format!("creating the mail outbox {}", dir.display()))?;
            tracing::info!(outbox = %dir.display(), "no SMTP relay configured (email.smtp): mail is written to the outbox folder");
            return Ok(Self::Outbox(AsyncFileTransport::new(&dir), dir));
        };
        let builder = match smtp.tls {
            SmtpTls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&smtp.host)?,
            SmtpTls::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&smtp.host)?,
            SmtpTls::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&smtp.host),
        };
        let default_port = match smtp.tls {
            SmtpTls::Tls => 465,
            SmtpTls::Starttls => 587,
            SmtpTls::None => 25,
        };
        let mut builder = builder.port(smtp.port.unwrap_or(default_port));
        if let (Some(user), Some(password)) = (&smtp.username, &smtp.password) {
            builder = builder.credentials(Credentials::new(
                user.clone(),
                password.expose_secret().to_string(),
            ));
        }
        tracing::info!(host = %smtp.host, "mail goes through the SMTP relay");
        Ok(Self::Smtp(builder.build()))
    }

    /// Checks that mail can go out without sending any: the SMTP relay accepts a connection and
    /// the login (`NOOP` after `AUTH`), or the outbox folder is writable. Used by `usher doctor`.
    pub async fn check(&self) -> Result<(), MailError> {
        match self {
            Self::Smtp(transport) => match transport.test_connection().await {
                Ok(true) => Ok(()),
                Ok(false) => Err(MailError::Transient("the relay did not answer NOOP".into())),
                Err(e) if e.is_permanent() => Err(MailError::Permanent(e.to_string())),
                Err(e) => Err(MailError::Transient(e.to_string())),
            },
            Self::Outbox(_, dir) => {
                let probe = dir.join(format!(".usher-check-{}", uuid::Uuid::new_v4().simple()));
                std::fs::write(&probe, b"")
                    .and_then(|()| std::fs::remove_file(&probe))
                    .map_err(|e| {
                        MailError::Permanent(format!("cannot write to {}: {e}", dir.display()))
                    })
            }
        }
    }

    /// Sends one rendered email (text and HTML alternatives) from `from` to `to`.
    pub async fn send(&self, from: &str, to: &str, email: &RenderedEmail) -> Result<(), MailError> {
        let to_box: Mailbox = to
            .parse()
            .map_err(|_| MailError::BadRecipient(to.to_string()))?;
        let from_box: Mailbox = from
            .parse()
            .map_err(|_| MailError::Permanent("email.from does not parse".into()))?;
        let message = Message::builder()
            .from(from_box)
            .to(to_box)
            .subject(email.subject.clone())
            .multipart(MultiPart::alternative_plain_html(
                email.text.clone(),
                email.html.clone(),
            ))
            .map_err(|e| MailError::Permanent(e.to_string()))?;
        let domain = to.rsplit('@').next().unwrap_or_default();
        match self {
            Self::Smtp(transport) => transport.send(message).await.map(drop).map_err(|e| {
                if e.is_permanent() {
                    MailError::Permanent(e.to_string())
                } else {
                    MailError::Transient(e.to_string())
                }
            }),
            Self::Outbox(transport, dir) => transport
                .send(message)
                .await
                .map_err(|e| MailError::Transient(e.to_string()))
                .and_then(|id| {
                    // A mail holds codes and links: private like the rest of the data folder.
                    crate::private_fs::ensure_private_file(&dir.join(format!("{id}.eml")), false)
                        .map_err(|e| MailError::Transient(format!("{e:#}")))
                }),
        }
        .inspect(|()| tracing::info!(recipient_domain = domain, "mail sent"))
    }
}
