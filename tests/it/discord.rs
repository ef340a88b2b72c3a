//! The real bot (serenity 0.12 + poise 0.7) against the fake Discord: gateway session, command
//! registration, a slash command answered, and DMs recorded or refused as Discord refuses them.

use std::time::{Duration, Instant};

use poise::serenity_prelude as serenity;
use serde_json::Value;
use usher::fakes::discord::{FakeDiscord, FakeUser, ReplyKind, codes};

use crate::helpers::{Backend, TestApp};

const GUILD: u64 = 1_200_000_000_000_000_001;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn help_answers_ephemerally_through_the_real_bot() {
    let discord = FakeDiscord::start().await;
    let app = TestApp::spawn_with(Backend::Sqlite, |s| s.discord.guild_ids = vec![GUILD]).await;
    let started = Instant::now();
    let bot = app.start_bot(&discord);
    assert!(
        discord.wait_registered(Duration::from_secs(20)).await,
        "the bot never registered its commands; calls: {:#?}; bot: {:?}",
        discord.calls(),
        bot.is_finished()
    );
    eprintln!(
        "bot ready and registered after {:?}; calls: {:?}",
        started.elapsed(),
        discord.calls()
    );
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
    let replies = handle.responses();
    assert_eq!(replies.len(), 1);
    assert_eq!(replies[0].kind, ReplyKind::Callback(4));
    let original = handle
        .original()
        .expect("a type 4 callback creates the original message");
    assert_eq!(original["content"].as_str(), Some(content));

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
