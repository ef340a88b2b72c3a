//! Typed configuration: built-in defaults, then an optional `usher.toml`, then `USHER_*`
//! environment variables (`__` separates nesting: `USHER_WEB__ADDR` sets `web.addr`).
//!
//! Rules it keeps: every key is documented in `usher.example.toml`; an unknown or ill-typed key is
//! one precise error naming it; cross-field checks run once, here, at load; secrets are
//! `SecretString` and serialise masked, so printing the effective config can never leak one.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize, Serializer};
use url::Url;

/// What went wrong loading the configuration. Always names the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file or an environment variable could not be read into the typed settings.
    #[error("configuration error: {0}")]
    Parse(String),
    /// A value parsed but breaks a rule.
    #[error("configuration error: `{key}`: {message}")]
    Invalid {
        /// The dotted key, as written in `usher.toml`.
        key: &'static str,
        /// What is wrong with it and what is expected.
        message: String,
    },
}

/// The whole configuration of one Usher installation.
#[derive(Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Folder holding the SQLite database, the generated secret key and the mail outbox.
    pub data_dir: PathBuf,
    /// Key that signs links and button ids and encrypts stored tokens. Generated into
    /// `data_dir/secret.key` when unset.
    #[serde(serialize_with = "mask_opt")]
    pub secret_key: Option<SecretString>,
    /// Public base URL of the web door (links in DMs and emails). Defaults to `http://{web.addr}`.
    pub public_url: Option<Url>,
    /// Folder whose template files override the built-in ones of the same name.
    pub templates_dir: Option<PathBuf>,
    /// Database connection.
    pub database: DatabaseSettings,
    /// Web door (webhooks, My Account, health, metrics).
    pub web: WebSettings,
    /// Discord bot.
    pub discord: DiscordSettings,
    /// plex.tv client.
    pub plex: PlexSettings,
    /// Outgoing email.
    pub email: EmailSettings,
    /// Durable job queue.
    pub jobs: JobSettings,
    /// Payment providers.
    pub payments: PaymentSettings,
    /// What this process logs and how.
    pub log: LogSettings,
    /// The parts of Usher this process runs (`usher run --roles` overrides it).
    pub roles: Vec<Role>,
}

/// Logging settings. The level filter comes from the `USHER_LOG` environment variable.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSettings {
    /// `text` (one line per event; colour only on a terminal) or `json` (one object per line).
    pub format: LogFormat,
}

/// How log lines are written.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines, coloured only when standard error is a terminal.
    #[default]
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// A part of Usher one process can run. Several processes may share one PostgreSQL database;
/// exactly one of them may run [`Role::Bot`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The web door: webhooks, My Account, `/healthz`, `/metrics`.
    Web,
    /// The job workers (invites, removals, emails, DMs).
    Jobs,
    /// The Discord bot (gateway and slash commands). One process only.
    Bot,
    /// The periodic tick that queues hourly work; idempotent per period, so two are harmless.
    Scheduler,
}

impl Role {
    /// Every role, the default of `usher run`.
    pub const ALL: [Self; 4] = [Self::Web, Self::Jobs, Self::Bot, Self::Scheduler];

    /// The name used in the configuration and on the command line.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Web => "web",
            Self::Jobs => "jobs",
            Self::Bot => "bot",
            Self::Scheduler => "scheduler",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|r| r.as_str() == s.trim())
            .ok_or_else(|| format!("`{s}` is not a role: use web, jobs, bot or scheduler"))
    }
}

/// Database connection settings.
#[derive(Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseSettings {
    /// `postgres://…` for PostgreSQL, `sqlite://…` for another SQLite file; unset means
    /// `data_dir/usher.db`.
    #[serde(serialize_with = "mask_url")]
    pub url: Option<SecretString>,
    /// Upper bound of pooled connections.
    pub max_connections: u32,
}

/// Web door settings.
#[derive(Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebSettings {
    /// Address to listen on.
    pub addr: SocketAddr,
}

/// Discord bot settings. The bot stays off while `token` is unset.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct DiscordSettings {
    /// Bot token.
    #[serde(serialize_with = "mask_opt")]
    pub token: Option<SecretString>,
    /// Guilds to register commands in; empty means global registration.
    pub guild_ids: Vec<u64>,
    /// Discord users who are Usher admins (guild administrators always are).
    pub admin_user_ids: Vec<u64>,
    /// Discord roles whose members are Usher admins (in the home guilds only).
    pub admin_role_ids: Vec<u64>,
    /// With the setting `registration` at `role`: members holding one of these roles may `/join`.
    pub registration_role_ids: Vec<u64>,
    /// Channel where admin alerts go (no server has room, a token was revoked…); none: log only.
    pub alert_channel_id: Option<u64>,
    /// Channel where the bot mentions a subscriber whose DMs are closed; none: the recovery board
    /// alone shows it.
    pub fallback_channel_id: Option<u64>,
    /// Guild where subscribers get the subscriber roles.
    pub subscriber_guild_id: Option<u64>,
    /// Roles given to subscribers while their subscription is active and taken when it ends
    /// (the bot needs Manage Roles, and its own role above these).
    pub subscriber_role_ids: Vec<u64>,
    /// Base URL of Discord's API, for tests against a local fake only. Unset in production: the
    /// bot then talks to discord.com with Discord's rate limits honoured.
    pub api_base_url: Option<String>,
}

/// plex.tv client settings.
#[derive(Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct PlexSettings {
    /// Base URL of plex.tv (tests point it at a local fake).
    pub base_url: Url,
    /// Requests per second allowed per owner Plex account.
    pub requests_per_second: f64,
    /// People plex.tv lets one owner account share with, the owner and Plex Home members
    /// included (about 100; friends are account-wide).
    pub seats_per_account: u32,
}

/// Outgoing email settings. Without `smtp`, mail is written to the outbox folder.
#[derive(Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct EmailSettings {
    /// Sender, e.g. `Usher <usher@example.com>`.
    pub from: String,
    /// Folder for mail when no SMTP relay is configured; default `data_dir/outbox`.
    pub outbox_dir: Option<PathBuf>,
    /// SMTP relay.
    pub smtp: Option<SmtpSettings>,
}

/// SMTP relay settings.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpSettings {
    /// Relay host name.
    pub host: String,
    /// Port; default by `tls`: 465 for `tls`, 587 for `starttls`, 25 for `none`.
    pub port: Option<u16>,
    /// Login user.
    #[serde(default)]
    pub username: Option<String>,
    /// Login password.
    #[serde(default, serialize_with = "mask_opt")]
    pub password: Option<SecretString>,
    /// `tls` (implicit TLS), `starttls` or `none` (local relays only).
    #[serde(default)]
    pub tls: SmtpTls,
}

/// How the SMTP connection is secured.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Implicit TLS (port 465).
    Tls,
    /// STARTTLS upgrade (port 587).
    #[default]
    Starttls,
    /// Plain text; only for a relay on the same machine.
    None,
}

/// Job queue settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct JobSettings {
    /// Concurrent job workers in this process.
    pub workers: usize,
    /// Seconds a claimed job stays leased before another worker may take it over.
    pub lease_secs: u64,
    /// Attempts before a failing job is marked dead.
    pub max_attempts: u32,
    /// First retry delay in seconds; doubles with each attempt (with jitter).
    pub backoff_base_secs: u64,
    /// Longest retry delay in seconds.
    pub backoff_max_secs: u64,
    /// Milliseconds between polls when no job was signalled.
    pub poll_interval_ms: u64,
    /// Seconds a shutdown waits for running jobs before releasing them.
    pub shutdown_grace_secs: u64,
    /// Seconds a job may keep waiting without spending attempts (plex.tv rate-limiting it, a
    /// person still signing in to Plex), counted from when it was queued; then it is dead.
    pub max_wait_secs: u64,
}

/// Payment providers. A provider whose table is absent is disabled.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct PaymentSettings {
    /// Stripe (cards; Checkout Sessions and signed webhooks).
    pub stripe: Option<StripeSettings>,
    /// PayPal (subscriptions; webhooks verified by PayPal).
    pub paypal: Option<PayPalSettings>,
    /// Plisio (crypto invoices; signed JSON callbacks).
    pub plisio: Option<PlisioSettings>,
}

/// Stripe settings.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StripeSettings {
    /// Secret API key (`sk_live_…`, `sk_test_…` or a restricted `rk_…`).
    #[serde(serialize_with = "mask")]
    pub secret_key: SecretString,
    /// Signing secret of the webhook endpoint (`whsec_…`).
    #[serde(serialize_with = "mask")]
    pub webhook_secret: SecretString,
    /// Base URL of the Stripe API (tests point it at a local fake).
    #[serde(default = "default_stripe_api")]
    pub api_base_url: Url,
}

/// PayPal settings.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PayPalSettings {
    /// REST app client id.
    pub client_id: String,
    /// REST app secret.
    #[serde(serialize_with = "mask")]
    pub client_secret: SecretString,
    /// Id of the webhook configured in the app (deliveries are verified against it).
    pub webhook_id: String,
    /// Base URL of the PayPal API: `https://api-m.sandbox.paypal.com` for the sandbox.
    #[serde(default = "default_paypal_api")]
    pub api_base_url: Url,
}

/// Plisio settings.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PlisioSettings {
    /// The shop's secret key: authenticates API calls and signs callbacks.
    #[serde(serialize_with = "mask")]
    pub secret_key: SecretString,
    /// Base URL of the Plisio API (tests point it at a local fake).
    #[serde(default = "default_plisio_api")]
    pub api_base_url: Url,
}

fn default_stripe_api() -> Url {
    Url::parse("https://api.stripe.com").expect("constant URL")
}

fn default_paypal_api() -> Url {
    Url::parse("https://api-m.paypal.com").expect("constant URL")
}

fn default_plisio_api() -> Url {
    Url::parse("https://api.plisio.net").expect("constant URL")
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./usher-data"),
            secret_key: None,
            public_url: None,
            templates_dir: None,
            database: DatabaseSettings::default(),
            web: WebSettings::default(),
            discord: DiscordSettings::default(),
            plex: PlexSettings::default(),
            email: EmailSettings::default(),
            jobs: JobSettings::default(),
            payments: PaymentSettings::default(),
            log: LogSettings::default(),
            roles: Role::ALL.to_vec(),
        }
    }
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self {
            url: None,
            max_connections: 8,
        }
    }
}

impl Default for WebSettings {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
        }
    }
}

impl Default for PlexSettings {
    fn default() -> Self {
        Self {
            base_url: Url::parse("https://plex.tv").expect("constant URL"),
            requests_per_second: 2.0,
            seats_per_account: 100,
        }
    }
}

impl Default for EmailSettings {
    fn default() -> Self {
        Self {
            from: "Usher <usher@localhost>".into(),
            outbox_dir: None,
            smtp: None,
        }
    }
}

impl Default for JobSettings {
    fn default() -> Self {
        Self {
            workers: 4,
            lease_secs: 300,
            max_attempts: 10,
            backoff_base_secs: 10,
            backoff_max_secs: 6 * 3600,
            poll_interval_ms: 1000,
            shutdown_grace_secs: 10,
            max_wait_secs: 24 * 3600,
        }
    }
}

/// Environment variables with the `USHER_` prefix that are not configuration keys.
const NOT_CONFIG_ENV: &[&str] = &["config", "log"];

impl Settings {
    /// Loads defaults, then `file` (when it exists, or fails when it was asked for explicitly),
    /// then the environment, and checks the result.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut figment = Figment::new();
        match file {
            Some(path) if !path.exists() => {
                return Err(ConfigError::Invalid {
                    key: "--config",
                    message: format!("the file {} does not exist", path.display()),
                });
            }
            Some(path) => figment = figment.merge(Toml::file_exact(path)),
            None => figment = figment.merge(Toml::file("usher.toml")),
        }
        let env = Env::prefixed("USHER_").split("__").filter(|key| {
            let key = key.as_str().to_ascii_lowercase();
            !NOT_CONFIG_ENV.contains(&key.as_str()) && !key.starts_with("test_")
        });
        let settings: Settings = figment
            .merge(env)
            .extract()
            .map_err(|e| ConfigError::Parse(describe(e)))?;
        settings.check()?;
        Ok(settings)
    }

    /// Cross-field and range checks, run once at load.
    pub fn check(&self) -> Result<(), ConfigError> {
        let invalid = |key, message: &str| {
            Err(ConfigError::Invalid {
                key,
                message: message.into(),
            })
        };
        if let Some(url) = &self.database.url {
            let url = url.expose_secret();
            if !(url.starts_with("postgres://")
                || url.starts_with("postgresql://")
                || url.starts_with("sqlite:"))
            {
                return invalid(
                    "database.url",
                    "must start with postgres://, postgresql:// or sqlite:",
                );
            }
        }
        if self.database.max_connections == 0 {
            return invalid("database.max_connections", "must be at least 1");
        }
        if let Some(url) = &self.public_url
            && !matches!(url.scheme(), "http" | "https")
        {
            return invalid("public_url", "must be an http:// or https:// URL");
        }
        if let Some(url) = &self.public_url
            && url.path() != "/"
        {
            // My Account's forms and cookie, and the webhooks, live at the site root.
            return invalid(
                "public_url",
                "must be the site root without a path (e.g. https://usher.example.com): My Account and the webhooks are served at /account and /webhooks",
            );
        }
        if !self.discord.subscriber_role_ids.is_empty()
            && self.discord.subscriber_guild_id.is_none()
        {
            return invalid(
                "discord.subscriber_guild_id",
                "must name the guild of discord.subscriber_role_ids",
            );
        }
        if !(self.plex.requests_per_second.is_finite() && self.plex.requests_per_second > 0.0) {
            return invalid("plex.requests_per_second", "must be a number above 0");
        }
        if self.email.from.parse::<lettre::message::Mailbox>().is_err() {
            return invalid(
                "email.from",
                "must be an address like `Usher <usher@example.com>`",
            );
        }
        if let Some(smtp) = &self.email.smtp
            && smtp.host.trim().is_empty()
        {
            return invalid("email.smtp.host", "must not be empty");
        }
        if self.roles.is_empty() {
            return invalid("roles", "name at least one of web, jobs, bot and scheduler");
        }
        if self.jobs.workers == 0 {
            return invalid("jobs.workers", "must be at least 1");
        }
        if self.jobs.lease_secs == 0 {
            return invalid("jobs.lease_secs", "must be at least 1");
        }
        if self.jobs.max_attempts == 0 {
            return invalid("jobs.max_attempts", "must be at least 1");
        }
        if self.jobs.backoff_base_secs > self.jobs.backoff_max_secs {
            return invalid(
                "jobs.backoff_base_secs",
                "must not exceed jobs.backoff_max_secs",
            );
        }
        self.check_payments()
    }

    fn check_payments(&self) -> Result<(), ConfigError> {
        let invalid = |key, message: &str| {
            Err(ConfigError::Invalid {
                key,
                message: message.into(),
            })
        };
        let http = |url: &Url| matches!(url.scheme(), "http" | "https");
        if let Some(stripe) = &self.payments.stripe {
            let key = stripe.secret_key.expose_secret();
            if !(key.starts_with("sk_") || key.starts_with("rk_")) {
                return invalid(
                    "payments.stripe.secret_key",
                    "must be a Stripe secret key (sk_…) or restricted key (rk_…)",
                );
            }
            if !stripe.webhook_secret.expose_secret().starts_with("whsec_") {
                return invalid(
                    "payments.stripe.webhook_secret",
                    "must be the endpoint's signing secret (whsec_…)",
                );
            }
            if !http(&stripe.api_base_url) {
                return invalid(
                    "payments.stripe.api_base_url",
                    "must be an http:// or https:// URL",
                );
            }
        }
        if let Some(paypal) = &self.payments.paypal {
            if paypal.client_id.trim().is_empty() {
                return invalid("payments.paypal.client_id", "must not be empty");
            }
            if paypal.client_secret.expose_secret().trim().is_empty() {
                return invalid("payments.paypal.client_secret", "must not be empty");
            }
            if paypal.webhook_id.trim().is_empty() {
                return invalid("payments.paypal.webhook_id", "must not be empty");
            }
            if !http(&paypal.api_base_url) {
                return invalid(
                    "payments.paypal.api_base_url",
                    "must be an http:// or https:// URL",
                );
            }
        }
        if let Some(plisio) = &self.payments.plisio {
            if plisio.secret_key.expose_secret().trim().is_empty() {
                return invalid("payments.plisio.secret_key", "must not be empty");
            }
            if !http(&plisio.api_base_url) {
                return invalid(
                    "payments.plisio.api_base_url",
                    "must be an http:// or https:// URL",
                );
            }
        }
        Ok(())
    }

    /// Where mail goes when no SMTP relay is configured.
    pub fn outbox_dir(&self) -> PathBuf {
        self.email
            .outbox_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("outbox"))
    }

    /// The public base URL for links.
    pub fn public_url(&self) -> Url {
        self.public_url.clone().unwrap_or_else(|| {
            Url::parse(&format!("http://{}", self.web.addr)).expect("socket address forms a URL")
        })
    }

    /// A link to `path` (e.g. `account/login`) under the public base URL (the site root).
    pub fn public_link(&self, path: &str) -> Url {
        self.public_url()
            .join(path.trim_start_matches('/'))
            .expect("a relative path joins onto an http(s) URL")
    }

    /// The effective configuration as TOML, secrets masked.
    pub fn to_masked_toml(&self) -> String {
        toml::to_string_pretty(self).expect("settings serialise to TOML")
    }
}

/// One line per problem: the dotted key as written in `usher.toml`, what is wrong, and where the
/// value came from (file or environment variable).
fn describe(error: figment::Error) -> String {
    error
        .into_iter()
        .map(|e| {
            let key = e.path.join(".").to_ascii_lowercase();
            let source = e
                .metadata
                .as_ref()
                .map(|m| m.name.to_string())
                .unwrap_or_default();
            let what = e.kind.to_string();
            match (key.is_empty(), source.is_empty()) {
                (true, true) => what,
                (true, false) => format!("{what} (in {source})"),
                (false, true) => format!("`{key}`: {what}"),
                (false, false) => format!("`{key}`: {what} (in {source})"),
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

const MASK: &str = "********";

fn mask<S: Serializer>(_secret: &SecretString, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(MASK)
}

#[allow(clippy::ref_option)] // serde's serialize_with hands us `&Option<T>`.
fn mask_opt<S: Serializer>(secret: &Option<SecretString>, s: S) -> Result<S::Ok, S::Error> {
    match secret {
        Some(_) => s.serialize_str(MASK),
        None => s.serialize_none(),
    }
}

#[allow(clippy::ref_option)] // serde's serialize_with hands us `&Option<T>`.
fn mask_url<S: Serializer>(secret: &Option<SecretString>, s: S) -> Result<S::Ok, S::Error> {
    match secret {
        Some(url) => s.serialize_str(&mask_url_password(url.expose_secret())),
        None => s.serialize_none(),
    }
}

/// Hides the password (and any query string, which may carry one) of a connection URL.
pub fn mask_url_password(raw: &str) -> String {
    match Url::parse(raw) {
        Ok(mut url) => {
            if url.password().is_some() {
                let _ = url.set_password(Some(MASK));
            }
            if url.query().is_some() {
                url.set_query(Some(MASK));
            }
            url.to_string()
        }
        Err(_) => MASK.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masked_output_never_contains_a_secret() {
        let settings = Settings {
            secret_key: Some("k3y-value-that-must-not-show".to_string().into()),
            database: DatabaseSettings {
                url: Some(
                    "postgres://usher:hunter2@db.example/usher"
                        .to_string()
                        .into(),
                ),
                max_connections: 4,
            },
            discord: DiscordSettings {
                token: Some("discord-token-xyz".to_string().into()),
                ..DiscordSettings::default()
            },
            ..Settings::default()
        };
        let out = settings.to_masked_toml();
        for secret in ["k3y-value", "hunter2", "discord-token-xyz"] {
            assert!(!out.contains(secret), "{secret} leaked in:\n{out}");
        }
        assert!(
            out.contains("postgres://usher:********@db.example/usher"),
            "{out}"
        );
        assert!(out.contains("[web]"), "{out}");
    }

    fn payments() -> PaymentSettings {
        let secret = |text: &str| SecretString::from(text.to_owned());
        PaymentSettings {
            stripe: Some(StripeSettings {
                secret_key: secret("sk_test_stripe-key-must-not-show"),
                webhook_secret: secret("whsec_hook-secret-must-not-show"),
                api_base_url: default_stripe_api(),
            }),
            paypal: Some(PayPalSettings {
                client_id: "paypal-client-id".into(),
                client_secret: secret("paypal-secret-must-not-show"),
                webhook_id: "8PT597110X687430LKGECATA".into(),
                api_base_url: default_paypal_api(),
            }),
            plisio: Some(PlisioSettings {
                secret_key: secret("plisio-key-must-not-show"),
                api_base_url: default_plisio_api(),
            }),
        }
    }

    #[test]
    fn payment_secrets_are_masked_and_the_rest_printed() {
        let settings = Settings {
            payments: payments(),
            ..Settings::default()
        };
        settings.check().unwrap();
        let out = settings.to_masked_toml();
        assert!(!out.contains("must-not-show"), "{out}");
        for shown in [
            "[payments.stripe]",
            "paypal-client-id",
            "8PT597110X687430LKGECATA",
            "https://api.plisio.net/",
        ] {
            assert!(out.contains(shown), "{shown} missing in:\n{out}");
        }
        let debug = format!("{settings:?}");
        assert!(!debug.contains("must-not-show"), "{debug}");
    }

    #[test]
    fn payment_providers_are_off_unless_configured_and_urls_default() {
        let settings: Settings = toml::from_str(
            "[payments.stripe]\nsecret_key = \"sk_test_1\"\nwebhook_secret = \"whsec_1\"\n",
        )
        .unwrap();
        let stripe = settings.payments.stripe.as_ref().unwrap();
        assert_eq!(stripe.api_base_url.as_str(), "https://api.stripe.com/");
        assert!(settings.payments.paypal.is_none() && settings.payments.plisio.is_none());
        assert!(Settings::default().payments.stripe.is_none());
        let err = toml::from_str::<Settings>("[payments.plisio]\nsecret_key = \"k\"\nkey = 1\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("key"), "{err}");
    }

    #[test]
    fn a_stripe_webhook_secret_in_the_key_field_names_the_key() {
        let mut payments = payments();
        payments.stripe.as_mut().unwrap().secret_key = SecretString::from("whsec_x".to_owned());
        let settings = Settings {
            payments,
            ..Settings::default()
        };
        let err = settings.check().unwrap_err().to_string();
        assert!(err.contains("payments.stripe.secret_key"), "{err}");
        assert!(!err.contains("whsec_x"), "{err}");
    }

    #[test]
    fn bad_values_name_their_key() {
        let settings = Settings {
            jobs: JobSettings {
                workers: 0,
                ..JobSettings::default()
            },
            ..Settings::default()
        };
        let err = settings.check().unwrap_err().to_string();
        assert!(err.contains("jobs.workers"), "{err}");
    }

    #[test]
    fn the_example_file_parses_to_the_defaults_it_documents() {
        let example: Settings = toml::from_str(include_str!("../usher.example.toml")).unwrap();
        example.check().unwrap();
        assert_eq!(
            example.to_masked_toml(),
            Settings::default().to_masked_toml()
        );
    }

    #[test]
    fn roles_parse_by_name_and_refuse_others() {
        assert_eq!("jobs".parse::<Role>(), Ok(Role::Jobs));
        assert!(
            "gateway"
                .parse::<Role>()
                .unwrap_err()
                .contains("web, jobs, bot or scheduler")
        );
        let settings: Settings =
            toml::from_str("roles = [\"web\"]\n[log]\nformat = \"json\"\n").unwrap();
        assert_eq!(settings.roles, [Role::Web]);
        assert_eq!(settings.log.format, LogFormat::Json);
        let none = Settings {
            roles: Vec::new(),
            ..Settings::default()
        };
        assert!(none.check().unwrap_err().to_string().contains("`roles`"));
    }

    #[test]
    fn subscriber_roles_need_their_guild() {
        let mut settings = Settings::default();
        settings.discord.subscriber_role_ids = vec![5];
        let err = settings.check().unwrap_err().to_string();
        assert!(err.contains("discord.subscriber_guild_id"), "{err}");
        settings.discord.subscriber_guild_id = Some(7);
        settings.check().unwrap();
    }
}
