//! Runtime settings the admins change from Discord, typed. Stored in the `setting` table so every
//! Usher process sharing the database sees the same value.

use crate::app::App;
use crate::domain::Actor;
use crate::store::{Tx, audit, settings};

/// Key of "Plex account change processing" (off by default).
const PLEX_ACCOUNT_CHANGE: &str = "plex_account_change_processing";

/// Whether subscribers may change their Plex account now.
pub async fn plex_account_change_enabled(tx: &mut Tx) -> Result<bool, sqlx::Error> {
    Ok(settings::find_setting(tx, PLEX_ACCOUNT_CHANGE)
        .await?
        .as_deref()
        == Some("on"))
}

/// Turns "Plex account change processing" on or off.
pub async fn set_plex_account_change(
    app: &App,
    actor: &Actor,
    enabled: bool,
) -> Result<(), sqlx::Error> {
    let now = app.clock.now();
    let value = if enabled { "on" } else { "off" };
    let mut tx = app.db.begin().await?;
    settings::upsert_setting(&mut tx, PLEX_ACCOUNT_CHANGE, value, now).await?;
    let detail = serde_json::json!({ "setting": PLEX_ACCOUNT_CHANGE, "value": value });
    audit::insert_audit(&mut tx, actor, None, "setting.set", &detail, now).await?;
    tx.commit().await
}

/// Whether "Plex account change processing" is on.
pub async fn plex_account_change(app: &App) -> anyhow::Result<bool> {
    let mut tx = app.db.read().await?;
    let on = plex_account_change_enabled(&mut tx).await?;
    tx.rollback().await?;
    Ok(on)
}
