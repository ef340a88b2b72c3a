//! [`App`]: everything a door, job or scheduler needs, built once from [`Settings`] and cloned
//! cheaply. There is no global state: tests build as many apps as they like, each on its own
//! database, clock and fakes.

use std::sync::Arc;

use anyhow::Context as _;

use crate::clock::SharedClock;
use crate::config::Settings;
use crate::crypto::{Cipher, SecretKey, Signer, SigningKey};
use crate::integrations::discord::DiscordRest;
use crate::integrations::email::Mailer;
use crate::integrations::payments::paypal::PayPalClient;
use crate::integrations::payments::plisio::PlisioClient;
use crate::integrations::payments::stripe::StripeClient;
use crate::integrations::plex::{PlexConfig, PlexTvClient};
use crate::jobs::Queue;
use crate::store::Db;
use crate::templates::Templates;

/// The running installation.
#[derive(Clone, Debug)]
pub struct App {
    /// Configuration, checked at load.
    pub settings: Arc<Settings>,
    /// The database.
    pub db: Db,
    /// The clock every service reads.
    pub clock: SharedClock,
    /// The durable job queue.
    pub queue: Queue,
    /// Signs and verifies links and lasting button ids.
    pub signer: Signer,
    /// Keyed digests (verification codes are stored as these).
    pub signing_key: SigningKey,
    /// Encrypts tokens and provider secrets at rest.
    pub cipher: Cipher,
    /// Every template, compiled at start.
    pub templates: Arc<Templates>,
    /// The plex.tv client (owner tokens are passed per call).
    pub plex: PlexTvClient,
    /// Outgoing mail (SMTP, or the outbox folder).
    pub mailer: Mailer,
    /// Discord's REST API for DMs and alerts; `None` when no bot token is configured.
    pub discord: Option<DiscordRest>,
    /// Payment providers; each `None` when not configured.
    pub payments: PaymentClients,
}

/// The configured payment providers' API clients.
#[derive(Clone, Debug, Default)]
pub struct PaymentClients {
    /// Stripe (Checkout Sessions).
    pub stripe: Option<StripeClient>,
    /// PayPal (subscriptions, webhook verification with a cached token).
    pub paypal: Option<PayPalClient>,
    /// Plisio (invoices).
    pub plisio: Option<PlisioClient>,
}

impl PaymentClients {
    fn from_settings(settings: &Settings) -> anyhow::Result<Self> {
        let p = &settings.payments;
        Ok(Self {
            stripe: p
                .stripe
                .as_ref()
                .map(|s| StripeClient::new(s.api_base_url.clone(), s.secret_key.clone()))
                .transpose()
                .map_err(|e| anyhow::anyhow!("building the Stripe client: {e}"))?,
            paypal: p
                .paypal
                .as_ref()
                .map(|s| {
                    PayPalClient::new(
                        s.api_base_url.clone(),
                        s.client_id.clone(),
                        s.client_secret.clone(),
                        s.webhook_id.clone(),
                    )
                })
                .transpose()
                .map_err(|e| anyhow::anyhow!("building the PayPal client: {e}"))?,
            plisio: p
                .plisio
                .as_ref()
                .map(|s| PlisioClient::new(s.api_base_url.clone(), s.secret_key.clone()))
                .transpose()
                .map_err(|e| anyhow::anyhow!("building the Plisio client: {e}"))?,
        })
    }
}

/// Settings-table key of the installation's stable `X-Plex-Client-Identifier`.
const PLEX_CLIENT_ID_KEY: &str = "plex_client_identifier";

impl App {
    /// Connects to the database, applies migrations and assembles the services.
    pub async fn build(settings: Settings, clock: SharedClock) -> anyhow::Result<Self> {
        let db = Db::connect(&settings).await?;
        db.migrate().await?;
        Self::assemble(settings, clock, db).await
    }

    /// Assembles an app over a database that is already migrated: loads (or creates) the secret
    /// key and compiles every template, so a bad key or a broken template fails here, at start.
    pub async fn assemble(settings: Settings, clock: SharedClock, db: Db) -> anyhow::Result<Self> {
        let key = if let Some(configured) = &settings.secret_key {
            SecretKey::from_config(configured).context("`secret_key`")?
        } else {
            crate::private_fs::ensure_private_dir(&settings.data_dir)?;
            SecretKey::load_or_create(&settings.data_dir.join("secret.key"))?
        };
        let templates =
            Templates::load(settings.templates_dir.as_deref()).context("loading templates")?;
        let plex = PlexTvClient::new(&PlexConfig {
            base_url: settings.plex.base_url.clone(),
            client_identifier: installation_id(&db, &clock).await?,
            product: "Usher".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            timeout: std::time::Duration::from_secs(30),
        })
        .context("building the plex.tv client")?;
        let mailer = Mailer::from_settings(&settings).context("setting up outgoing mail")?;
        let discord = settings
            .discord
            .token
            .as_ref()
            .map(|token| DiscordRest::new(token, settings.discord.api_base_url.as_deref()));
        let payments = PaymentClients::from_settings(&settings)?;
        let queue = Queue::new(
            db.clone(),
            Arc::clone(&clock),
            settings.jobs.clone(),
            settings.plex.requests_per_second,
        );
        Ok(Self {
            settings: Arc::new(settings),
            db,
            clock,
            queue,
            signer: key.signer(),
            signing_key: key.signing_key(),
            cipher: key.cipher(),
            templates: Arc::new(templates),
            plex,
            mailer,
            discord,
            payments,
        })
    }
}

/// The installation's stable client identifier: generated on first start, then always the same,
/// because plex.tv ties devices (and rate limits) to it.
async fn installation_id(db: &Db, clock: &SharedClock) -> anyhow::Result<String> {
    let mut tx = db.begin().await?;
    let fresh = uuid::Uuid::new_v4().to_string();
    let id = crate::store::settings::insert_setting_once(
        &mut tx,
        PLEX_CLIENT_ID_KEY,
        &fresh,
        clock.now(),
    )
    .await
    .context("reading the installation id")?;
    tx.commit().await?;
    Ok(id)
}
