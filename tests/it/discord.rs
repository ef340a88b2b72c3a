//! The real bot (serenity 0.12 + poise 0.7) against the fake Discord: gateway session, command
//! registration, a slash command answered, and DMs recorded or refused as Discord refuses them.

use std::time::{Duration, Instant};

use poise::serenity_prelude as serenity;
use serde_json::Value;
use usher::fakes::discord::{FakeDiscord, FakeUser, Options, ReplyKind, codes};

use crate::helpers::{Backend, TestApp};

const GUILD: u64 = 1_200_000_000_000_000_001;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn help_answers_ephemerally_through_the_real_bot() {
    // A short heartbeat interval, so the session's heartbeats are exercised too.
    let discord = FakeDiscord::start_with(Options {
        heartbeat_interval_ms: 100,
        ..Options::default()
    })
    .await;
    let app = TestApp::spawn_with_discord(Backend::Sqlite, &discord, |s| {
        s.discord.guild_ids = vec![GUILD];
    })
    .await;
    let started = Instant::now();
    let bot = app.start_bot();
    assert!(
        discord.wait_registered(Duration::from_secs(20)).await,
        "the bot never registered its commands; calls: {:#?}; bot: {:?}",
        discord.calls(),
        bot.is_finished()
    );
    eprintln!("bot ready and registered after {:?}", started.elapsed());
    assert_eq!(discord.identifies(), 1);
    let commands = discord.registered_commands(Some(GUILD));
    let names: Vec<&str> = commands.iter().filter_map(|c| c["name"].as_str()).collect();
    assert!(names.contains(&"help"), "{names:?}");
    assert!(discord.registered_commands(None).is_empty());

    let alice = FakeUser::new(1_100_000_000_000_000_001, "alice");
    let handle = discord.slash(&alice, Some(GUILD), "help", Value::Null);
    let callback = handle.response().await;
    assert_eq!(callback.kind, 4, "{callback:?}");
    assert_eq!(callback.data["flags"].as_u64(), Some(64), "{callback:?}");
    let content = callback.data["content"].as_str().unwrap_or_default();
    assert!(content.contains("`/help`"), "{content}");
    assert!(content.contains("`/plex change-account`"), "{content}");
    assert!(
        !content.contains("/admin"),
        "admin commands are not listed to members: {content}"
    );
    let replies = handle.responses();
    assert_eq!(replies.len(), 1);
    assert_eq!(replies[0].kind, ReplyKind::Callback(4));
    let original = handle
        .original()
        .expect("a type 4 callback creates the original message");
    assert_eq!(original["content"].as_str(), Some(content));

    // Serenity heartbeats on the session and the fake acknowledges.
    assert!(
        discord.wait_heartbeats(2, Duration::from_secs(5)).await,
        "serenity's heartbeats were not acknowledged: {} seen",
        discord.heartbeats()
    );

    // Discord asks for a reconnect: serenity resumes the session and keeps answering.
    discord.request_reconnect();
    let again = discord.slash(&alice, Some(GUILD), "help", Value::Null);
    assert_eq!(again.response().await.kind, 4);
    assert_eq!(
        discord.resumes(),
        1,
        "{} connections",
        discord.gateway_connections()
    );
    assert_eq!(discord.identifies(), 1);

    assert!(
        discord.unknown_calls().is_empty(),
        "{:#?}",
        discord.unknown_calls()
    );
    assert!(
        discord.calls().iter().all(|c| c.status < 400),
        "{:#?}",
        discord.calls()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dms_are_recorded_and_closed_dms_fail_with_50007() {
    let discord = FakeDiscord::start().await;
    let http = serenity::HttpBuilder::new(discord.token())
        .proxy(discord.api_base())
        .ratelimiter_disabled(true)
        .build();
    let bob = FakeUser::new(1_100_000_000_000_000_002, "bob");
    let carol = FakeUser::new(1_100_000_000_000_000_003, "carol");
    discord.add_user(&bob);
    discord.add_user(&carol);

    let channel = serenity::UserId::new(bob.id)
        .create_dm_channel(&http)
        .await
        .expect("DM channel opens");
    assert_eq!(discord.dm_channel_of(bob.id), Some(channel.id.get()));
    let sent = channel
        .send_message(
            &http,
            serenity::CreateMessage::new()
                .content("Your invite is ready")
                .add_file(serenity::CreateAttachment::bytes(
                    b"a,b\n1,2\n".to_vec(),
                    "plan.csv",
                )),
        )
        .await
        .expect("DM sent");
    assert_eq!(sent.content, "Your invite is ready");
    assert_eq!(sent.attachments[0].filename, "plan.csv");
    let received = discord
        .wait_for_dm(bob.id, Duration::from_secs(5))
        .await
        .expect("the DM is recorded");
    assert_eq!(received.content, "Your invite is ready");
    assert_eq!(received.attachments[0].filename, "plan.csv");
    assert_eq!(received.attachments[0].bytes, b"a,b\n1,2\n");
    assert_eq!(discord.messages_to(bob.id).len(), 1);

    discord.fail_dms_to(carol.id);
    let channel = serenity::UserId::new(carol.id)
        .create_dm_channel(&http)
        .await
        .expect("opening the channel still works");
    let err = channel
        .say(&http, "Your plan expires tomorrow")
        .await
        .expect_err("carol's DMs are closed");
    let serenity::Error::Http(serenity::HttpError::UnsuccessfulRequest(response)) = err else {
        panic!("expected Discord's error response, got {err:?}");
    };
    assert_eq!(response.status_code.as_u16(), 403);
    assert_eq!(
        i64::try_from(response.error.code).ok(),
        Some(codes::CANNOT_MESSAGE_USER),
        "{response:?}"
    );
    assert!(discord.messages_to(carol.id).is_empty());
    assert!(
        discord
            .wait_for_dm(carol.id, Duration::from_millis(50))
            .await
            .is_none()
    );

    // A wrong token is refused like Discord refuses it.
    let intruder = serenity::HttpBuilder::new("not-the-token")
        .proxy(discord.api_base())
        .ratelimiter_disabled(true)
        .build();
    let err = intruder.get_current_user().await.expect_err("bad token");
    let serenity::Error::Http(serenity::HttpError::UnsuccessfulRequest(response)) = err else {
        panic!("expected Discord's error response, got {err:?}");
    };
    assert_eq!(response.status_code.as_u16(), 401);
}

/// Acts as the bot through serenity's own `Http` and models: every payload the fake delivers
/// must deserialize into serenity's `Interaction`, and every reply route must accept serenity's
/// requests and return what serenity parses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_interaction_kind_round_trips_through_serenity() {
    let discord = FakeDiscord::start().await;
    let http = serenity::HttpBuilder::new(discord.token())
        .proxy(discord.api_base())
        .ratelimiter_disabled(true)
        .application_id(serenity::ApplicationId::new(discord.application_id()))
        .build();
    let plan = serenity::CreateCommand::new("plan")
        .description("Plans")
        .add_option(
            serenity::CreateCommandOption::new(
                serenity::CommandOptionType::SubCommand,
                "show",
                "Show a plan",
            )
            .add_sub_option(
                serenity::CreateCommandOption::new(
                    serenity::CommandOptionType::String,
                    "name",
                    "The plan",
                )
                .required(true)
                .set_autocomplete(true),
            ),
        );
    let registered = serenity::Command::set_global_commands(&http, vec![plan])
        .await
        .expect("bulk overwrite");
    assert_eq!(registered[0].name, "plan");
    let dave = FakeUser::new(1_100_000_000_000_000_004, "dave").with_roles(&[77]);
    let last_interaction = || {
        let (event, data) = discord.dispatched().pop().expect("a dispatch");
        assert_eq!(event, "INTERACTION_CREATE");
        serde_json::from_value::<serenity::Interaction>(data.clone())
            .unwrap_or_else(|err| panic!("serenity refuses {data}: {err}"))
    };

    // Slash command with a subcommand, in a guild; deferred, edited, followed up.
    let handle = discord.slash(
        &dave,
        Some(GUILD),
        "plan",
        serde_json::json!([{"type": 1, "name": "show", "options": [
            {"type": 3, "name": "name", "value": "gold"}
        ]}]),
    );
    let serenity::Interaction::Command(command) = last_interaction() else {
        panic!("not a command");
    };
    assert_eq!(command.data.id, registered[0].id);
    assert_eq!(command.user.id.get(), dave.id);
    let member = command
        .member
        .as_ref()
        .expect("guild interactions carry a member");
    assert_eq!(member.roles, vec![serenity::RoleId::new(77)]);
    let permissions = member
        .permissions
        .expect("interaction members carry permissions");
    assert!(permissions.use_application_commands() && !permissions.administrator());
    let serenity::ResolvedValue::SubCommand(sub) = &command.data.options()[0].value else {
        panic!("no subcommand: {:?}", command.data.options());
    };
    assert!(matches!(
        sub[0].value,
        serenity::ResolvedValue::String("gold")
    ));
    command.defer_ephemeral(&http).await.expect("defer");
    assert_eq!(handle.response().await.kind, 5);
    let edited = command
        .edit_response(
            &http,
            serenity::EditInteractionResponse::new()
                .content("Gold: 10/month")
                .components(vec![serenity::CreateActionRow::Buttons(vec![
                    serenity::CreateButton::new("buy:gold").label("Buy"),
                ])]),
        )
        .await
        .expect("edit original");
    assert_eq!(edited.content, "Gold: 10/month");
    assert_eq!(handle.next_message().await.kind, ReplyKind::EditOriginal);
    command
        .create_followup(
            &http,
            serenity::CreateInteractionResponseFollowup::new()
                .content("Also: silver")
                .ephemeral(true),
        )
        .await
        .expect("followup");
    let followup = handle.next_message().await;
    assert_eq!(followup.kind, ReplyKind::Followup);
    assert_eq!(followup.content(), Some("Also: silver"));
    let again = command
        .create_response(&http, serenity::CreateInteractionResponse::Acknowledge)
        .await
        .expect_err("an interaction is acknowledged once");
    let serenity::Error::Http(serenity::HttpError::UnsuccessfulRequest(response)) = again else {
        panic!("{again:?}");
    };
    assert_eq!(
        i64::try_from(response.error.code).ok(),
        Some(codes::ALREADY_ACKNOWLEDGED)
    );

    // The button on the edited message, clicked: opens a modal.
    let click = discord.click(&dave, Some(GUILD), "buy:gold", None);
    let serenity::Interaction::Component(component) = last_interaction() else {
        panic!("not a component interaction");
    };
    assert_eq!(component.data.custom_id, "buy:gold");
    assert_eq!(component.message.id, edited.id);
    component
        .create_response(
            &http,
            serenity::CreateInteractionResponse::Modal(
                serenity::CreateModal::new("buy:gold:form", "Buy gold").components(vec![
                    serenity::CreateActionRow::InputText(serenity::CreateInputText::new(
                        serenity::InputTextStyle::Short,
                        "Email",
                        "email",
                    )),
                ]),
            ),
        )
        .await
        .expect("modal");
    let modal = click.response().await;
    assert_eq!(modal.kind, 9);
    assert_eq!(modal.data["custom_id"], "buy:gold:form");

    // The modal submitted, in a DM this time.
    let submit = discord.submit_modal(&dave, None, "buy:gold:form", &[("email", "d@example.com")]);
    let serenity::Interaction::Modal(modal) = last_interaction() else {
        panic!("not a modal submit");
    };
    let serenity::ActionRowComponent::InputText(input) = &modal.data.components[0].components[0]
    else {
        panic!("not a text input");
    };
    assert_eq!(input.value.as_deref(), Some("d@example.com"));
    assert_eq!(modal.user.id.get(), dave.id);
    modal
        .create_response(
            &http,
            serenity::CreateInteractionResponse::Message(
                serenity::CreateInteractionResponseMessage::new().content("Thanks"),
            ),
        )
        .await
        .expect("reply");
    assert_eq!(submit.response().await.data["content"], "Thanks");

    // Autocomplete on the focused option.
    let typing = discord.autocomplete(
        &dave,
        Some(GUILD),
        "plan",
        serde_json::json!([{"type": 1, "name": "show", "options": [
            {"type": 3, "name": "name", "value": "go", "focused": true}
        ]}]),
    );
    let serenity::Interaction::Autocomplete(auto) = last_interaction() else {
        panic!("not an autocomplete");
    };
    assert_eq!(auto.data.autocomplete().expect("focused").value, "go");
    auto.create_response(
        &http,
        serenity::CreateInteractionResponse::Autocomplete(
            serenity::CreateAutocompleteResponse::new().add_string_choice("gold", "gold"),
        ),
    )
    .await
    .expect("choices");
    let choices = typing.response().await;
    assert_eq!(choices.kind, 8);
    assert_eq!(choices.data["choices"][0]["value"], "gold");

    assert!(
        discord.unknown_calls().is_empty(),
        "{:#?}",
        discord.unknown_calls()
    );
}
