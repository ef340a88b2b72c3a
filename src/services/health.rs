//! The Plex side of an installation checked against plex.tv, for `usher doctor`: each active
//! owner account's stored token still works, each of its servers is still among the account's
//! resources, and how many people its shares seat.
//!
//! Rule it keeps: read-only, here and on plex.tv; the stored tokens are opened only to be sent to
//! plex.tv and never leave this module.

use std::collections::HashSet;

use anyhow::Context as _;
use secrecy::SecretString;

use crate::app::App;
use crate::domain::OwnerAccountState;
use crate::integrations::plex::PlexError;
use crate::store::{owner_accounts, servers};

/// What plex.tv says about one owner account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnerHealth {
    /// The account's name.
    pub name: String,
    /// `Ok(plex_pass)` when plex.tv accepts the token, else what went wrong.
    pub token: Result<bool, String>,
    /// People seated by its shares (accepted or pending, across its servers), when known.
    pub seats: Option<usize>,
    /// Its servers in Usher.
    pub servers: Vec<ServerHealth>,
}

/// One server of an owner account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerHealth {
    /// Its name.
    pub name: String,
    /// Whether plex.tv still lists it among the account's servers (`None`: not asked).
    pub on_plex: Option<bool>,
    /// Usher's live shares on it.
    pub users: i64,
    /// Its capacity setting.
    pub max_users: i32,
}

/// Checks every active owner account against plex.tv.
pub async fn owner_accounts(app: &App) -> anyhow::Result<Vec<OwnerHealth>> {
    let (accounts, all_servers) = {
        let mut tx = app.db.read().await?;
        let accounts = owner_accounts::find_owner_accounts(&mut tx).await?;
        let all_servers = servers::find_servers(&mut tx).await?;
        tx.rollback().await?;
        (accounts, all_servers)
    };
    let mut report = Vec::new();
    for account in accounts
        .into_iter()
        .filter(|a| a.state == OwnerAccountState::Active)
    {
        let token = app
            .cipher
            .decrypt(&account.token_enc)
            .context("opening a stored owner token")?;
        let mut servers: Vec<ServerHealth> = all_servers
            .iter()
            .filter(|s| s.owner_account_id == account.id)
            .map(|s| ServerHealth {
                name: s.name.clone(),
                on_plex: None,
                users: s.users,
                max_users: s.max_users,
            })
            .collect();
        let machine_ids: Vec<&str> = all_servers
            .iter()
            .filter(|s| s.owner_account_id == account.id)
            .map(|s| s.machine_id.as_str())
            .collect();
        let (token_state, seats) = match app.plex.account(&token).await {
            Ok(found) => {
                let owned = app.plex.owned_servers(&token).await;
                if let Ok(owned) = &owned {
                    for (server, machine) in servers.iter_mut().zip(&machine_ids) {
                        server.on_plex =
                            Some(owned.iter().any(|o| o.machine_identifier == *machine));
                    }
                }
                let machines: Vec<String> = owned
                    .map(|o| o.into_iter().map(|s| s.machine_identifier).collect())
                    .unwrap_or_default();
                (
                    Ok(found.plex_pass),
                    seats(app, &token, &machines).await.ok(),
                )
            }
            Err(PlexError::Unauthorized) => (Err("plex.tv refuses its token".to_owned()), None),
            Err(err) => (Err(format!("plex.tv did not answer ({err})")), None),
        };
        report.push(OwnerHealth {
            name: account.name,
            token: token_state,
            seats,
            servers,
        });
    }
    Ok(report)
}

/// People with an accepted share or a pending invite on any of `machines`.
async fn seats(app: &App, token: &SecretString, machines: &[String]) -> Result<usize, PlexError> {
    let mut people = HashSet::new();
    for machine in machines {
        let accepted = app.plex.accepted_shares(token, machine).await?;
        let pending = app.plex.pending_invites(token, machine).await?;
        for share in accepted.into_iter().chain(pending) {
            let who = share
                .invited_id
                .map(|id| id.to_string())
                .or(share.invited_email.map(|e| e.to_lowercase()))
                .or(share.invited_username);
            if let Some(who) = who {
                people.insert(who);
            }
        }
    }
    Ok(people.len())
}
