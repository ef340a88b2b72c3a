//! The guild permissions in `bot::PERMISSIONS` (and so in the invite link) are exactly what
//! Usher's own Discord calls need: in a guild where `@everyone` may do nothing, a bot holding
//! those permissions makes every call, and without any one of them some call is refused.

use poise::serenity_prelude::Permissions;
use usher::fakes::discord::{FakeDiscord, FakeUser};
use usher::integrations::discord::{DiscordRest, OutgoingMessage};

const GUILD: u64 = 700_000_000_000_000_001;
const ROLE: u64 = 700_000_000_000_000_002;
const MEMBER: u64 = 700_000_000_000_000_003;

/// Every call Usher makes in a guild: give a role, take it, post an alert, post a DM fallback.
async fn every_guild_call(rest: &DiscordRest, alert: u64, fallback: u64) -> Vec<String> {
    let message = OutgoingMessage {
        content: "a line for the admins".into(),
        ..OutgoingMessage::default()
    };
    let mut refused = Vec::new();
    if let Err(err) = rest.add_role(GUILD, MEMBER, ROLE).await {
        refused.push(format!("add role: {err}"));
    }
    if let Err(err) = rest.remove_role(GUILD, MEMBER, ROLE).await {
        refused.push(format!("remove role: {err}"));
    }
    if let Err(err) = rest.post(alert, &message).await {
        refused.push(format!("alert: {err}"));
    }
    if let Err(err) = rest.post(fallback, &message).await {
        refused.push(format!("fallback: {err}"));
    }
    refused
}

#[tokio::test]
async fn the_invite_permissions_are_exactly_what_the_calls_need() {
    let discord = FakeDiscord::start().await;
    discord.set_everyone_permissions(GUILD, 0);
    discord.add_guild_role(GUILD, ROLE);
    discord.add_member(GUILD, &FakeUser::new(MEMBER, "ana"));
    let alert = discord.add_guild_channel(GUILD, "usher-alerts");
    let fallback = discord.add_guild_channel(GUILD, "recovery-help");
    let rest = DiscordRest::new(&discord.token().into(), Some(&discord.api_base()));

    discord.set_bot_permissions(GUILD, usher::bot::PERMISSIONS.bits());
    assert_eq!(
        every_guild_call(&rest, alert, fallback).await,
        Vec::<String>::new(),
        "the invite's permissions suffice"
    );
    assert_eq!(discord.channel_messages(alert).len(), 1);

    for (name, bit) in usher::bot::PERMISSIONS.iter_names() {
        discord.set_bot_permissions(GUILD, (usher::bot::PERMISSIONS - bit).bits());
        let refused = every_guild_call(&rest, alert, fallback).await;
        assert!(
            !refused.is_empty(),
            "{name} is in the invite but no call needs it"
        );
    }
    assert!(
        !usher::bot::PERMISSIONS.contains(Permissions::ADMINISTRATOR),
        "administrator would hide what the calls need"
    );
}
