//! Guilds as the fake holds them: roles with positions and permission bits (`@everyone`, the
//! bot's own managed role, the roles a test adds), channel permission overwrites, and Discord's
//! permission arithmetic over them.
//!
//! Rule kept: the same arithmetic Discord documents ("Permissions: Permission Overwrites"): base
//! permissions are `@everyone`'s OR every role's, everything for the owner or an administrator;
//! in a channel the `@everyone` overwrite applies, then the member's roles' overwrites together,
//! then the member's own; without View Channel nothing else counts. A role may be changed only
//! by a member with Manage Roles whose highest role is above it.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

/// Permission bits the fake checks (Discord's values).
pub mod bits {
    /// Administrator: every permission, overwrites ignored.
    pub const ADMINISTRATOR: u64 = 1 << 3;
    /// View Channel (Read Messages).
    pub const VIEW_CHANNEL: u64 = 1 << 10;
    /// Send Messages.
    pub const SEND_MESSAGES: u64 = 1 << 11;
    /// Manage Roles.
    pub const MANAGE_ROLES: u64 = 1 << 28;
    /// Every permission bit Discord defines today.
    pub const ALL: u64 = (1 << 51) - 1;
}

/// What an owner grants the bot by opening Usher's invite URL: Manage Roles, View Channel, Send
/// Messages. Tests change it with `FakeDiscord::set_bot_permissions`.
pub const INVITED_BOT_PERMISSIONS: u64 =
    bits::MANAGE_ROLES | bits::VIEW_CHANNEL | bits::SEND_MESSAGES;

/// Where the bot's managed role sits; roles the tests add sit below it unless locked above.
const BOT_ROLE_POSITION: i64 = 10;

#[derive(Debug, Clone)]
pub(super) struct Role {
    pub(super) name: String,
    pub(super) position: i64,
    pub(super) permissions: u64,
    /// A bot's own role, made by the invite.
    pub(super) managed: bool,
}

/// A permission overwrite on a channel: for a role (`kind` 0) or a member (`kind` 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Overwrite {
    pub(super) id: u64,
    pub(super) kind: u8,
    pub(super) allow: u64,
    pub(super) deny: u64,
}

impl Overwrite {
    pub(super) fn json(&self) -> Value {
        json!({
            "id": self.id.to_string(),
            "type": self.kind,
            "allow": self.allow.to_string(),
            "deny": self.deny.to_string(),
        })
    }
}

#[derive(Debug, Clone)]
pub(super) struct Guild {
    pub(super) name: String,
    pub(super) owner_id: u64,
    /// Every role, `@everyone` (the guild's own id) included.
    pub(super) roles: BTreeMap<u64, Role>,
    /// The bot's managed role.
    pub(super) bot_role: u64,
}

impl Guild {
    /// A guild whose `@everyone` has Discord's usual permissions and whose bot was invited with
    /// `bot_permissions`.
    pub(super) fn new(id: u64, owner_id: u64, bot_role: u64, bot_permissions: u64) -> Self {
        let mut roles = BTreeMap::new();
        roles.insert(
            id,
            Role {
                name: "@everyone".into(),
                position: 0,
                permissions: super::wire::DEFAULT_MEMBER_PERMISSIONS,
                managed: false,
            },
        );
        roles.insert(
            bot_role,
            Role {
                name: "Usher".into(),
                position: BOT_ROLE_POSITION,
                permissions: bot_permissions,
                managed: true,
            },
        );
        Self {
            name: format!("Guild {id}"),
            owner_id,
            roles,
            bot_role,
        }
    }

    /// A role the tests add: no permissions, below the bot's role.
    pub(super) fn add_role(&mut self, id: u64) {
        self.roles.entry(id).or_insert_with(|| Role {
            name: format!("role-{id}"),
            position: 1,
            permissions: 0,
            managed: false,
        });
    }

    /// Moves `role` above the bot's highest role; false when the guild has no such role.
    pub(super) fn lock_role(&mut self, role: u64) -> bool {
        let top = self.roles.values().map(|r| r.position).max().unwrap_or(0);
        match self.roles.get_mut(&role) {
            Some(r) => {
                r.position = top + 1;
                true
            }
            None => false,
        }
    }

    /// The guild-wide permissions of a member holding `roles` (`@everyone` implied).
    pub(super) fn base_permissions(&self, guild_id: u64, user: u64, roles: &BTreeSet<u64>) -> u64 {
        if user == self.owner_id {
            return bits::ALL;
        }
        let mut permissions = self.roles.get(&guild_id).map_or(0, |r| r.permissions);
        for role in roles {
            permissions |= self.roles.get(role).map_or(0, |r| r.permissions);
        }
        if permissions & bits::ADMINISTRATOR != 0 {
            bits::ALL
        } else {
            permissions
        }
    }

    /// A member's permissions in a channel with these overwrites.
    pub(super) fn channel_permissions(
        &self,
        guild_id: u64,
        user: u64,
        roles: &BTreeSet<u64>,
        overwrites: &[Overwrite],
    ) -> u64 {
        let base = self.base_permissions(guild_id, user, roles);
        if base & bits::ADMINISTRATOR != 0 || user == self.owner_id {
            return bits::ALL;
        }
        let mut permissions = base;
        if let Some(everyone) = overwrites.iter().find(|o| o.kind == 0 && o.id == guild_id) {
            permissions = (permissions & !everyone.deny) | everyone.allow;
        }
        let (mut allow, mut deny) = (0, 0);
        for o in overwrites
            .iter()
            .filter(|o| o.kind == 0 && o.id != guild_id && roles.contains(&o.id))
        {
            allow |= o.allow;
            deny |= o.deny;
        }
        permissions = (permissions & !deny) | allow;
        if let Some(member) = overwrites.iter().find(|o| o.kind == 1 && o.id == user) {
            permissions = (permissions & !member.deny) | member.allow;
        }
        if permissions & bits::VIEW_CHANNEL == 0 {
            0
        } else {
            permissions
        }
    }

    /// The position of the member's highest role (`@everyone` is 0).
    pub(super) fn highest_position(&self, roles: &BTreeSet<u64>) -> i64 {
        roles
            .iter()
            .filter_map(|r| self.roles.get(r))
            .map(|r| r.position)
            .max()
            .unwrap_or(0)
    }

    /// A role object as `GET /guilds/{id}/roles` lists it (serenity 0.12.5 wants `colors`).
    pub(super) fn role_json(id: u64, role: &Role, bot_user_id: u64) -> Value {
        let mut value = json!({
            "id": id.to_string(),
            "name": role.name,
            "color": 0,
            "colors": {"primary_color": 0, "secondary_color": null, "tertiary_color": null},
            "hoist": false,
            "icon": null,
            "unicode_emoji": null,
            "position": role.position,
            "permissions": role.permissions.to_string(),
            "managed": role.managed,
            "mentionable": false,
            "flags": 0,
        });
        if role.managed {
            value["tags"] = json!({"bot_id": bot_user_id.to_string()});
        }
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GUILD: u64 = 100;
    const BOT_ROLE: u64 = 200;
    const BOT: u64 = 300;

    fn guild() -> Guild {
        let mut g = Guild::new(GUILD, 1, BOT_ROLE, INVITED_BOT_PERMISSIONS);
        g.roles.get_mut(&GUILD).unwrap().permissions = 0;
        g
    }

    #[test]
    fn overwrites_apply_everyone_then_roles_then_the_member() {
        let g = guild();
        let roles = BTreeSet::from([BOT_ROLE]);
        let send = bits::VIEW_CHANNEL | bits::SEND_MESSAGES;
        assert_eq!(g.channel_permissions(GUILD, BOT, &roles, &[]) & send, send);
        let deny_role = Overwrite {
            id: BOT_ROLE,
            kind: 0,
            allow: 0,
            deny: bits::SEND_MESSAGES,
        };
        assert_eq!(
            g.channel_permissions(GUILD, BOT, &roles, std::slice::from_ref(&deny_role)) & send,
            bits::VIEW_CHANNEL
        );
        let allow_member = Overwrite {
            id: BOT,
            kind: 1,
            allow: bits::SEND_MESSAGES,
            deny: 0,
        };
        assert_eq!(
            g.channel_permissions(GUILD, BOT, &roles, &[deny_role, allow_member]) & send,
            send,
            "the member's own overwrite wins"
        );
        let hide = Overwrite {
            id: GUILD,
            kind: 0,
            allow: 0,
            deny: bits::VIEW_CHANNEL,
        };
        let hide_role = Overwrite {
            id: BOT_ROLE,
            kind: 0,
            allow: 0,
            deny: bits::VIEW_CHANNEL,
        };
        assert_eq!(
            g.channel_permissions(GUILD, BOT, &roles, &[hide, hide_role]),
            0
        );
    }

    #[test]
    fn administrators_and_owners_have_everything() {
        let mut g = guild();
        g.roles.get_mut(&BOT_ROLE).unwrap().permissions = bits::ADMINISTRATOR;
        let roles = BTreeSet::from([BOT_ROLE]);
        let hide = Overwrite {
            id: BOT_ROLE,
            kind: 0,
            allow: 0,
            deny: bits::ALL,
        };
        assert_eq!(
            g.channel_permissions(GUILD, BOT, &roles, &[hide]),
            bits::ALL
        );
        assert_eq!(g.base_permissions(GUILD, 1, &BTreeSet::new()), bits::ALL);
    }

    #[test]
    fn a_locked_role_sits_above_the_bot() {
        let mut g = guild();
        g.add_role(7);
        let bot = BTreeSet::from([BOT_ROLE]);
        assert!(g.highest_position(&bot) > g.roles[&7].position);
        assert!(g.lock_role(7));
        assert!(g.highest_position(&bot) < g.roles[&7].position);
        assert!(!g.lock_role(8));
    }
}
