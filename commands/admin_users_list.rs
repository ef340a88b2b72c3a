//! `/admin users list`: subscribers matching a filter (expiring, expired, unclaimed, trial,
//! waiting for room, flagged, a plan, a server), 20 a page, soonest paid end first, the total in
//! the title, with Previous/Next buttons that keep working after a restart (the filter and page
//! travel in the button's id; the click checks admin rights again).

use std::fmt::Write as _;

use poise::serenity_prelude as serenity;

use crate::app::App;
use crate::bot::{Context, Error, Refusal, reply_failure};
use crate::domain::{PlanId, PlexEmail, ServerId};
use crate::services::members;
use crate::store::subscribers::MemberFilter;

use super::common::{autocomplete_plan, autocomplete_server, ephemeral, is_admin, parse_id};

/// Prefix of a listing's page buttons: `usher:ul:<filter>:<page>`.
const LIST_PAGE: &str = "usher:ul:";

/// Which subscribers `/admin users list` shows.
#[derive(Debug, Clone, Copy, poise::ChoiceParameter)]
pub enum ListChoice {
    /// Everyone.
    #[name = "everyone"]
    Everyone,
    /// Paid time ends within `days` (default 7).
    #[name = "expiring"]
    Expiring,
    /// Paid once, not now.
    #[name = "expired"]
    Expired,
    /// Imported, not claimed by a member yet.
    #[name = "unclaimed"]
    Unclaimed,
    /// On a trial now.
    #[name = "trial"]
    Trial,
    /// Waiting for a server with room.
    #[name = "waiting"]
    Waiting,
    /// Must change Plex account.
    #[name = "flagged"]
    Flagged,
}

/// A filter as a button carries it (short: custom ids hold 100 characters).
fn filter_code(filter: MemberFilter) -> String {
    match filter {
        MemberFilter::All => "all".into(),
        MemberFilter::ExpiringWithin(days) => format!("exp{days}"),
        MemberFilter::Expired => "expired".into(),
        MemberFilter::Unclaimed => "unclaimed".into(),
        MemberFilter::Trial => "trial".into(),
        MemberFilter::WaitingForRoom => "waiting".into(),
        MemberFilter::Flagged => "flagged".into(),
        MemberFilter::Plan(plan) => format!("plan{plan}"),
        MemberFilter::Server(server) => format!("server{server}"),
    }
}

fn filter_from_code(code: &str) -> Option<MemberFilter> {
    Some(match code {
        "all" => MemberFilter::All,
        "expired" => MemberFilter::Expired,
        "unclaimed" => MemberFilter::Unclaimed,
        "trial" => MemberFilter::Trial,
        "waiting" => MemberFilter::WaitingForRoom,
        "flagged" => MemberFilter::Flagged,
        other => {
            if let Some(days) = other.strip_prefix("exp") {
                MemberFilter::ExpiringWithin(days.parse().ok()?)
            } else if let Some(plan) = other.strip_prefix("plan") {
                MemberFilter::Plan(plan.parse().ok()?)
            } else {
                MemberFilter::Server(other.strip_prefix("server")?.parse().ok()?)
            }
        }
    })
}

/// A page of the listing: an embed titled with the total, and Previous/Next buttons.
async fn list_page(
    app: &App,
    filter: MemberFilter,
    page: i64,
) -> Result<(serenity::CreateEmbed, Vec<serenity::CreateActionRow>), Error> {
    let shown = members::list_members(app, filter, page).await?;
    let mut text = String::new();
    for line in &shown.lines {
        let who = line
            .discord_id
            .map_or_else(|| "unclaimed".to_owned(), |id| format!("<@{id}>"));
        let until = if line.permanent {
            "permanent".to_owned()
        } else {
            line.paid_until.map_or_else(
                || "never paid".to_owned(),
                |t| format!("<t:{}:d>", t.timestamp()),
            )
        };
        let _ = writeln!(
            text,
            "`{}` **{}** {who} · {} · {} · {until}{}",
            line.id,
            line.display_name,
            line.plex_email
                .as_ref()
                .map_or("no Plex account", PlexEmail::as_str),
            line.plan.as_deref().unwrap_or("no plan"),
            if line.requires_plex_change {
                " · flagged"
            } else {
                ""
            }
        );
    }
    if text.is_empty() {
        text = "Nobody matches.".into();
    }
    let embed = serenity::CreateEmbed::new()
        .title(format!(
            "{} subscribers · page {} of {}",
            shown.total,
            shown.page + 1,
            shown.pages
        ))
        .description(text);
    let code = filter_code(filter);
    let rows = vec![serenity::CreateActionRow::Buttons(vec![
        serenity::CreateButton::new(format!("{LIST_PAGE}{code}:{}", shown.page - 1))
            .label("Previous")
            .style(serenity::ButtonStyle::Secondary)
            .disabled(shown.page == 0),
        serenity::CreateButton::new(format!("{LIST_PAGE}{code}:{}", shown.page + 1))
            .label("Next")
            .style(serenity::ButtonStyle::Secondary)
            .disabled(shown.page + 1 >= shown.pages),
    ])];
    Ok((embed, rows))
}

/// Lists subscribers, 20 a page, soonest paid end first (filters: state, plan, server).
#[poise::command(slash_command, rename = "list")]
pub async fn users_list(
    ctx: Context<'_>,
    #[description = "Who to list (everyone when left out)"] filter: Option<ListChoice>,
    #[description = "With `expiring`: within this many days (default 7)"] days: Option<i64>,
    #[description = "Only subscribers on this plan"]
    #[autocomplete = "autocomplete_plan"]
    plan: Option<String>,
    #[description = "Only subscribers with access to this server"]
    #[autocomplete = "autocomplete_server"]
    server: Option<String>,
) -> Result<(), Error> {
    let filter = match (filter, plan, server) {
        (None | Some(ListChoice::Everyone), None, None) => MemberFilter::All,
        (None, Some(plan), None) => MemberFilter::Plan(parse_id::<PlanId>(&plan, "plan")?),
        (None, None, Some(server)) => {
            MemberFilter::Server(parse_id::<ServerId>(&server, "server")?)
        }
        (Some(choice), None, None) => match choice {
            ListChoice::Everyone => MemberFilter::All,
            ListChoice::Expiring => {
                let days = days.unwrap_or(7);
                if days < 1 {
                    return Err(Refusal::new("days must be at least 1").into());
                }
                MemberFilter::ExpiringWithin(days)
            }
            ListChoice::Expired => MemberFilter::Expired,
            ListChoice::Unclaimed => MemberFilter::Unclaimed,
            ListChoice::Trial => MemberFilter::Trial,
            ListChoice::Waiting => MemberFilter::WaitingForRoom,
            ListChoice::Flagged => MemberFilter::Flagged,
        },
        _ => return Err(Refusal::new("pick one filter: a state, a plan or a server").into()),
    };
    let (embed, rows) = list_page(ctx.data(), filter, 0).await?;
    ctx.send(
        poise::CreateReply::default()
            .embed(embed)
            .components(rows)
            .ephemeral(true),
    )
    .await?;
    Ok(())
}

/// Answers the listing's page buttons; false for other ids.
pub async fn on_click(
    ctx: &serenity::Context,
    app: &App,
    click: &serenity::ComponentInteraction,
) -> Result<bool, Error> {
    let id = click.data.custom_id.as_str();
    let Some(rest) = id.strip_prefix(LIST_PAGE) else {
        return Ok(false);
    };
    if !is_admin(app, click.user.id, click.member.as_ref(), click.guild_id) {
        click
            .create_response(
                &ctx.http,
                ephemeral(super::not_admin_reason(app, click.guild_id)),
            )
            .await?;
        return Ok(true);
    }
    let parsed = rest
        .rsplit_once(':')
        .and_then(|(code, page)| Some((filter_from_code(code)?, page.parse::<i64>().ok()?)));
    let Some((filter, page)) = parsed else {
        click
            .create_response(&ctx.http, ephemeral("This button is not valid any more."))
            .await?;
        return Ok(true);
    };
    let update = match list_page(app, filter, page).await {
        Ok((embed, rows)) => serenity::CreateInteractionResponseMessage::new()
            .embed(embed)
            .components(rows),
        Err(err) => serenity::CreateInteractionResponseMessage::new().content(reply_failure(&err)),
    };
    click
        .create_response(
            &ctx.http,
            serenity::CreateInteractionResponse::UpdateMessage(update),
        )
        .await?;
    Ok(true)
}
