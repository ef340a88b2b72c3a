//! `/admin import`: adopt the people an owner already shares with. `plex` reads plex.tv and
//! shows what it would add (per server and plan, the first names, who has no plan, who is left
//! out and why, seats) with a Confirm button; the click checks admin rights again, applies exactly
//! the previewed import and edits the reply with its progress.
// The group root is never run (Discord only invokes leaves), but poise needs it async.
#![allow(clippy::unused_async)]

use poise::serenity_prelude as serenity;

use crate::app::App;
use std::fmt::Write as _;

use crate::bot::{Context, Error, Refusal, reply_failure};
use crate::domain::{OwnerAccountId, PlanId, ServerId};
use crate::services::import::{self, ImportProgress, PlexImportOptions};
use crate::services::import_csv;

use super::admin_user::standing;
use super::common::{
    ConfirmClick, admin_actor, autocomplete_owner, autocomplete_plan, autocomplete_server,
    confirm_click, confirm_row, parse_id,
};

/// Prefix of an import's Confirm button; the signed confirmation follows.
const IMPORT_CONFIRM: &str = "usher:im-ok:";
/// An import's Cancel button.
const IMPORT_CANCEL: &str = "usher:im-no";

/// Import people an owner already shares with: from plex.tv or a CSV file.
#[poise::command(slash_command, subcommands("import_plex", "import_csv"))]
pub async fn import(_ctx: Context<'_>) -> Result<(), Error> {
    Ok(())
}

/// Imports the users of your Plex servers from plex.tv: shows what it adds, then asks to confirm.
#[poise::command(slash_command, rename = "plex")]
#[allow(clippy::too_many_arguments)] // one per option of the command
pub async fn import_plex(
    ctx: Context<'_>,
    #[description = "Only this owner Plex account's servers"]
    #[autocomplete = "autocomplete_owner"]
    owner_account: Option<String>,
    #[description = "Only this server"]
    #[autocomplete = "autocomplete_server"]
    server: Option<String>,
    #[description = "Plan of people whose libraries match no plan"]
    #[autocomplete = "autocomplete_plan"]
    default_plan: Option<String>,
    #[description = "They never expire"] permanent: Option<bool>,
    #[description = "They are paid this many days from now"] days: Option<i64>,
    #[description = "They are paid until this date (2026-12-31)"] until: Option<String>,
) -> Result<(), Error> {
    let options = PlexImportOptions {
        owner: owner_account
            .map(|raw| parse_id::<OwnerAccountId>(&raw, "owner account"))
            .transpose()?,
        server: server
            .map(|raw| parse_id::<ServerId>(&raw, "server"))
            .transpose()?,
        default_plan: default_plan
            .map(|raw| parse_id::<PlanId>(&raw, "plan"))
            .transpose()?,
        standing: standing(days, until.as_deref(), permanent)?,
    };
    ctx.defer_ephemeral().await?;
    let actor = admin_actor(ctx.author().id)?;
    let preview = import::preview_plex_import(ctx.data(), &actor, &options).await?;
    show_preview(ctx, &preview, "").await
}

/// The largest CSV file taken (5 MB).
const MAX_CSV_BYTES: u32 = 5 * 1024 * 1024;

/// Imports people from a CSV file: checks every row, shows what it adds, then asks to confirm.
#[poise::command(slash_command, rename = "csv")]
pub async fn import_csv(
    ctx: Context<'_>,
    #[description = "The CSV (plex_email, discord_id, plan, paid_until, permanent, …)"]
    file: serenity::Attachment,
    #[description = "Import the good rows and list the bad ones"] skip_bad: Option<bool>,
) -> Result<(), Error> {
    if file.size > MAX_CSV_BYTES {
        return Err(Refusal::new("the file is larger than 5 MB; split it").into());
    }
    ctx.defer_ephemeral().await?;
    let bytes = file
        .download()
        .await
        .map_err(|e| Error::Unexpected(anyhow::Error::new(e).context("downloading the CSV")))?;
    let actor = admin_actor(ctx.author().id)?;
    let checked =
        import_csv::preview_csv_import(ctx.data(), &actor, &bytes, skip_bad.unwrap_or(false))
            .await?;
    let mut skipped = String::new();
    for problem in &checked.bad {
        let _ = writeln!(skipped, "skipped {problem}");
    }
    show_preview(ctx, &checked.preview, &skipped).await
}

/// Shows a preview with its Confirm and Cancel buttons (or that nobody is new).
async fn show_preview(
    ctx: Context<'_>,
    preview: &import::ImportPreview,
    before: &str,
) -> Result<(), Error> {
    let mut description = format!("{before}{}", preview.lines().join("\n"));
    if description.chars().count() > 3900 {
        description = description.chars().take(3900).collect::<String>() + "\n…";
    }
    let embed = serenity::CreateEmbed::new()
        .title(format!("Import {} people?", preview.new_people))
        .description(description)
        .footer(serenity::CreateEmbedFooter::new(format!(
            "This confirmation works for {} minutes, once. Nothing is written until you confirm.",
            import::PREVIEW_MINUTES
        )))
        .color(0x0034_98DB);
    if preview.new_people == 0 {
        ctx.send(
            poise::CreateReply::default()
                .content("Nobody new to import.")
                .embed(embed)
                .ephemeral(true),
        )
        .await?;
        return Ok(());
    }
    let buttons = confirm_row(
        IMPORT_CONFIRM,
        &preview.token,
        format!("Import {}", preview.new_people),
        serenity::ButtonStyle::Primary,
        IMPORT_CANCEL,
    )?;
    ctx.send(
        poise::CreateReply::default()
            .embed(embed)
            .components(vec![buttons])
            .ephemeral(true),
    )
    .await?;
    Ok(())
}

/// Answers an import's Confirm and Cancel buttons; false for other ids.
pub async fn on_click(
    ctx: &serenity::Context,
    app: &App,
    click: &serenity::ComponentInteraction,
) -> Result<bool, Error> {
    let confirm = match confirm_click(ctx, app, click, IMPORT_CONFIRM, IMPORT_CANCEL).await? {
        ConfirmClick::NotOurs => return Ok(false),
        ConfirmClick::Refused => return Ok(true),
        ConfirmClick::Confirm(token) => Some(token),
        ConfirmClick::Cancel => None,
    };
    let update = |text: String| {
        serenity::CreateInteractionResponse::UpdateMessage(
            serenity::CreateInteractionResponseMessage::new()
                .content(text)
                .embeds(Vec::new())
                .components(Vec::new()),
        )
    };
    let Some(token) = confirm else {
        click
            .create_response(&ctx.http, update("Cancelled: nothing was imported.".into()))
            .await?;
        return Ok(true);
    };
    click
        .create_response(&ctx.http, update("Importing…".into()))
        .await?;
    // Progress goes to the reply from a task of its own: the import never waits on Discord.
    let (progress_tx, mut progress_rx) = tokio::sync::watch::channel(None::<ImportProgress>);
    let http = ctx.http.clone();
    let editing = click.clone();
    let editor = tokio::spawn(async move {
        while progress_rx.changed().await.is_ok() {
            let Some(progress) = *progress_rx.borrow_and_update() else {
                continue;
            };
            let text = format!("Importing… {} of {}", progress.done, progress.total);
            let edit = serenity::EditInteractionResponse::new().content(text);
            if let Err(err) = editing.edit_response(&http, edit).await {
                tracing::debug!(error = %err, "could not show the import's progress");
            }
        }
    });
    let result = async {
        let actor = admin_actor(click.user.id)?;
        let report = move |progress: ImportProgress| {
            progress_tx.send_replace(Some(progress));
        };
        Ok::<_, Error>(import::confirm_import(app, &actor, token, &report).await?)
    }
    .await;
    let _ = editor.await;
    let text = match result {
        Ok(done) => format!(
            "Imported {} people with {} Plex shares{}. They are unclaimed until they run `/plex link`.",
            done.added,
            done.shares,
            if done.skipped > 0 {
                format!(
                    "; {} joined Usher meanwhile and were left as they are",
                    done.skipped
                )
            } else {
                String::new()
            }
        ),
        Err(err) => reply_failure(&err),
    };
    click
        .edit_response(
            &ctx.http,
            serenity::EditInteractionResponse::new().content(text),
        )
        .await?;
    Ok(true)
}
