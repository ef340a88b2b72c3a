//! Server placement: which Plex server a subscriber's share lives on. Pure and deterministic.
//!
//! The rule it keeps (PRODUCT.md, "Server placement", in this order):
//! 1. Keep the current share or pending invite if its server carries every group of the plan and is
//!    still usable (enabled, owner neither removed nor banned). Room and `allow_new_subscriptions`
//!    do not matter for a share that already exists.
//! 2. Otherwise the candidates are enabled servers that allow new subscriptions, have room, carry
//!    every group of the plan and, for a trial plan, allow trials; never a server whose owner is
//!    removed or banned, and never one whose owner account has no seat left on plex.tv (about 100
//!    people per account, Home and friends made outside Usher included) unless the subscriber
//!    holds a seat there already (friends are account-wide).
//! 3. Prefer a server the subscriber used before (the most recent first), then the subscriber's
//!    chosen location (case-insensitive).
//! 4. Ties go to the fewest users, then the lowest id, so the same input always gives the same
//!    answer whatever order the servers come in.
//!
//! After a ban, [`place_cohort`] places the re-invites one after another and counts each against
//! its server, so the cohort spreads across the new servers and never overfills one. When nothing
//! fits, [`NoServerFits`] says why, server by server, for the admins.

use std::collections::BTreeSet;
use std::fmt;

use crate::domain::{LibraryGroupId, OwnerAccountId, PlanId, ServerId};

/// A server as placement sees it. Ids are unique within one call.
#[derive(Debug, Clone, PartialEq, Eq)]
#[expect(
    clippy::struct_excessive_bools,
    reason = "four independent switches mirroring the server and owner rows, not a state machine"
)]
pub struct ServerCandidate {
    /// The server.
    pub id: ServerId,
    /// The owner Plex account the server belongs to.
    pub owner: OwnerAccountId,
    /// False when the owner account is removed or banned.
    pub owner_usable: bool,
    /// Whether the admins have the server switched on.
    pub enabled: bool,
    /// Whether the server takes subscribers who have no share on it yet.
    pub allow_new_subscriptions: bool,
    /// Whether the server takes subscribers on trial plans.
    pub allow_trials: bool,
    /// The most shares (active and pending) the server may carry.
    pub max_users: u32,
    /// The shares (active and pending) it carries now.
    pub users: u32,
    /// Seats left on the owner account on plex.tv (its ceiling less everyone seated there).
    pub account_seats_free: u32,
    /// The library groups with at least one library on this server.
    pub groups: BTreeSet<LibraryGroupId>,
    /// Where the server is, as the admins named it.
    pub location: Option<String>,
}

/// What the subscriber's plan requires of a server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanNeeds {
    /// The plan, named in the error when nothing fits.
    pub plan: PlanId,
    /// Every library group the plan gives access to; a server must carry all of them.
    pub groups: BTreeSet<LibraryGroupId>,
    /// Whether it is a trial plan (only servers that allow trials take new ones).
    pub trial: bool,
}

/// What placement knows about the subscriber.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubscriberContext {
    /// The server of the current share or pending invite, if any.
    pub current: Option<ServerId>,
    /// Servers the subscriber used before, the most recent first.
    pub previous: Vec<ServerId>,
    /// The location the subscriber chose, if any.
    pub preferred_location: Option<String>,
    /// Owner accounts the subscriber holds a seat on already (a live share on one of their
    /// servers): another server of the same account costs no seat.
    pub seated_on: Vec<OwnerAccountId>,
}

/// Where the subscriber's share goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// The current share or pending invite stays where it is.
    Keep(ServerId),
    /// A new share on this server.
    Place(ServerId),
}

impl Placement {
    /// The chosen server, kept or new.
    pub const fn server(self) -> ServerId {
        match self {
            Self::Keep(id) | Self::Place(id) => id,
        }
    }
}

/// No server can take the subscriber: shown to the admins with the reasons.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no server has room for plan {plan}: {reasons}")]
pub struct NoServerFits {
    /// The plan that could not be placed.
    pub plan: PlanId,
    /// Why each server was passed over.
    pub reasons: NoFitReasons,
}

/// Why servers were passed over. Each server counts once, under the first reason that applies in
/// field order, so the counts add up to the number of servers considered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NoFitReasons {
    /// Servers whose owner account is removed or banned.
    pub owner_unusable: u32,
    /// Servers switched off.
    pub disabled: u32,
    /// Servers closed to new subscriptions.
    pub closed: u32,
    /// Servers lacking at least one library group of the plan.
    pub missing_groups: u32,
    /// Servers that do not allow trials, for a trial plan.
    pub trials_not_allowed: u32,
    /// Servers with no room left.
    pub full: u32,
    /// Servers whose owner account has no seat left on plex.tv.
    pub account_full: u32,
}

impl NoFitReasons {
    fn count(&mut self, exclusion: Exclusion) {
        let counter = match exclusion {
            Exclusion::OwnerUnusable => &mut self.owner_unusable,
            Exclusion::Disabled => &mut self.disabled,
            Exclusion::Closed => &mut self.closed,
            Exclusion::MissingGroups => &mut self.missing_groups,
            Exclusion::TrialsNotAllowed => &mut self.trials_not_allowed,
            Exclusion::Full => &mut self.full,
            Exclusion::AccountFull => &mut self.account_full,
        };
        *counter += 1;
    }
}

impl fmt::Display for NoFitReasons {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts = [
            (self.owner_unusable, "owner removed or banned"),
            (self.disabled, "disabled"),
            (self.closed, "closed to new subscriptions"),
            (self.missing_groups, "missing library groups"),
            (self.trials_not_allowed, "trials not allowed"),
            (self.full, "full"),
            (self.account_full, "owner account out of Plex seats"),
        ];
        let mut any = false;
        for (count, reason) in parts.into_iter().filter(|(count, _)| *count > 0) {
            if any {
                f.write_str(", ")?;
            }
            write!(f, "{count} {reason}")?;
            any = true;
        }
        if !any {
            f.write_str("no servers are configured")?;
        }
        Ok(())
    }
}

/// Why one server cannot take a new subscriber, in the order [`NoFitReasons`] counts them.
#[derive(Debug, Clone, Copy)]
enum Exclusion {
    OwnerUnusable,
    Disabled,
    Closed,
    MissingGroups,
    TrialsNotAllowed,
    Full,
    AccountFull,
}

impl ServerCandidate {
    /// Rule 1's test: may an existing share on this server stay?
    fn keeps(&self, needs: &PlanNeeds) -> bool {
        self.owner_usable && self.enabled && needs.groups.is_subset(&self.groups)
    }

    /// Rule 2's test: `None` when the server may take a new subscriber on this plan.
    fn exclusion(&self, needs: &PlanNeeds, ctx: &SubscriberContext) -> Option<Exclusion> {
        if !self.owner_usable {
            Some(Exclusion::OwnerUnusable)
        } else if !self.enabled {
            Some(Exclusion::Disabled)
        } else if !self.allow_new_subscriptions {
            Some(Exclusion::Closed)
        } else if !needs.groups.is_subset(&self.groups) {
            Some(Exclusion::MissingGroups)
        } else if needs.trial && !self.allow_trials {
            Some(Exclusion::TrialsNotAllowed)
        } else if self.users >= self.max_users {
            Some(Exclusion::Full)
        } else if self.account_seats_free == 0 && !ctx.seated_on.contains(&self.owner) {
            Some(Exclusion::AccountFull)
        } else {
            None
        }
    }

    /// Rules 3 and 4 as one sort key: the smallest key wins.
    fn rank(&self, ctx: &SubscriberContext) -> (usize, bool, u32, ServerId) {
        let recency = ctx
            .previous
            .iter()
            .position(|id| *id == self.id)
            .unwrap_or(usize::MAX);
        let elsewhere = !matches!(
            (&self.location, &ctx.preferred_location),
            (Some(here), Some(wanted)) if same_location(here, wanted)
        );
        (recency, elsewhere, self.users, self.id)
    }
}

fn same_location(a: &str, b: &str) -> bool {
    a.chars()
        .flat_map(char::to_lowercase)
        .eq(b.chars().flat_map(char::to_lowercase))
}

/// Whether a subscriber whose trial turns into `needs` (a paid plan) may stay on `server`: it
/// would take a new subscriber on that plan, room aside (they hold a place there already).
pub fn converts_in_place(server: &ServerCandidate, needs: &PlanNeeds) -> bool {
    server.owner_usable
        && server.enabled
        && server.allow_new_subscriptions
        && needs.groups.is_subset(&server.groups)
}

/// Chooses the server for one subscriber on one plan.
pub fn place_one(
    servers: &[ServerCandidate],
    ctx: &SubscriberContext,
    needs: &PlanNeeds,
) -> Result<Placement, NoServerFits> {
    if let Some(current) = ctx.current
        && servers.iter().any(|s| s.id == current && s.keeps(needs))
    {
        return Ok(Placement::Keep(current));
    }

    let mut reasons = NoFitReasons::default();
    let mut best: Option<&ServerCandidate> = None;
    for server in servers {
        match server.exclusion(needs, ctx) {
            Some(exclusion) => reasons.count(exclusion),
            None if best.is_none_or(|b| server.rank(ctx) < b.rank(ctx)) => best = Some(server),
            None => {}
        }
    }
    best.map(|s| Placement::Place(s.id)).ok_or(NoServerFits {
        plan: needs.plan,
        reasons,
    })
}

/// Places many subscribers one after another (a cohort after a ban), counting each new share
/// against its server, and each newly seated person against the seats of its owner account, so
/// capacity holds across the cohort and "fewest users" spreads it. A kept share is already in its
/// server's `users` and is not counted again. Results follow `requests`.
pub fn place_cohort(
    servers: &[ServerCandidate],
    requests: &[(SubscriberContext, PlanNeeds)],
) -> Vec<Result<Placement, NoServerFits>> {
    let mut servers = servers.to_vec();
    let mut placements = Vec::with_capacity(requests.len());
    for (ctx, needs) in requests {
        let placement = place_one(&servers, ctx, needs);
        if let Ok(Placement::Place(id)) = placement
            && let Some(server) = servers.iter_mut().find(|s| s.id == id)
        {
            server.users += 1;
            let owner = server.owner;
            if !ctx.seated_on.contains(&owner) {
                for same in servers.iter_mut().filter(|s| s.owner == owner) {
                    same.account_seats_free = same.account_seats_free.saturating_sub(1);
                }
            }
        }
        placements.push(placement);
    }
    placements
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn groups(ids: &[i64]) -> BTreeSet<LibraryGroupId> {
        ids.iter().copied().map(LibraryGroupId::new).collect()
    }

    /// An enabled, open, empty server of 10 that allows trials and carries group 1.
    fn server(id: i64) -> ServerCandidate {
        ServerCandidate {
            id: ServerId::new(id),
            owner: OwnerAccountId::new(1),
            owner_usable: true,
            enabled: true,
            allow_new_subscriptions: true,
            allow_trials: true,
            max_users: 10,
            users: 0,
            account_seats_free: 1000,
            groups: groups(&[1]),
            location: None,
        }
    }

    fn plan(group_ids: &[i64]) -> PlanNeeds {
        PlanNeeds {
            plan: PlanId::new(7),
            groups: groups(group_ids),
            trial: false,
        }
    }

    fn trial_plan(group_ids: &[i64]) -> PlanNeeds {
        PlanNeeds {
            trial: true,
            ..plan(group_ids)
        }
    }

    fn newcomer() -> SubscriberContext {
        SubscriberContext::default()
    }

    fn on(current: i64) -> SubscriberContext {
        SubscriberContext {
            current: Some(ServerId::new(current)),
            ..SubscriberContext::default()
        }
    }

    fn place(id: i64) -> Placement {
        Placement::Place(ServerId::new(id))
    }

    fn keep(id: i64) -> Placement {
        Placement::Keep(ServerId::new(id))
    }

    fn reasons_of(result: Result<Placement, NoServerFits>) -> NoFitReasons {
        result.expect_err("expected no server to fit").reasons
    }

    // Rule 1: keep.

    #[test]
    fn the_current_server_is_kept_when_it_still_fits_the_plan() {
        let servers = [
            server(1),
            server(2),
            ServerCandidate {
                users: 5,
                ..server(3)
            },
        ];
        assert_eq!(place_one(&servers, &on(3), &plan(&[1])), Ok(keep(3)));
    }

    #[test]
    fn a_kept_share_needs_neither_room_nor_an_open_server() {
        let current = ServerCandidate {
            users: 12,
            max_users: 10,
            allow_new_subscriptions: false,
            ..server(1)
        };
        assert_eq!(
            place_one(&[current, server(2)], &on(1), &plan(&[1])),
            Ok(keep(1))
        );
    }

    #[test]
    fn a_kept_share_on_a_trial_plan_does_not_need_a_server_that_allows_trials() {
        let current = ServerCandidate {
            allow_trials: false,
            ..server(1)
        };
        assert_eq!(
            place_one(&[current, server(2)], &on(1), &trial_plan(&[1])),
            Ok(keep(1))
        );
    }

    #[test]
    fn the_current_server_is_left_when_it_lacks_a_group_of_the_plan() {
        let servers = [
            server(1),
            ServerCandidate {
                groups: groups(&[1, 2]),
                ..server(2)
            },
        ];
        assert_eq!(place_one(&servers, &on(1), &plan(&[1, 2])), Ok(place(2)));
    }

    #[test]
    fn the_current_server_is_left_when_it_is_disabled() {
        let servers = [
            ServerCandidate {
                enabled: false,
                ..server(1)
            },
            server(2),
        ];
        assert_eq!(place_one(&servers, &on(1), &plan(&[1])), Ok(place(2)));
    }

    #[test]
    fn the_current_server_is_left_when_its_owner_is_removed_or_banned() {
        let servers = [
            ServerCandidate {
                owner_usable: false,
                ..server(1)
            },
            server(2),
        ];
        assert_eq!(place_one(&servers, &on(1), &plan(&[1])), Ok(place(2)));
    }

    #[test]
    fn a_current_server_that_no_longer_exists_is_replaced_by_a_new_placement() {
        assert_eq!(place_one(&[server(2)], &on(9), &plan(&[1])), Ok(place(2)));
    }

    // Rule 2: candidates and every exclusion.

    #[test]
    fn a_server_whose_account_has_no_seat_left_takes_only_people_seated_there() {
        let servers = [
            ServerCandidate {
                account_seats_free: 0,
                ..server(1)
            },
            ServerCandidate {
                owner: OwnerAccountId::new(2),
                users: 5,
                ..server(2)
            },
        ];
        assert_eq!(
            place_one(&servers, &newcomer(), &plan(&[1])),
            Ok(place(2)),
            "a newcomer goes to the other account despite more users there"
        );
        let seated = SubscriberContext {
            seated_on: vec![OwnerAccountId::new(1)],
            ..newcomer()
        };
        assert_eq!(
            place_one(&servers, &seated, &plan(&[1])),
            Ok(place(1)),
            "someone seated on the account costs no new seat"
        );
        let reasons = reasons_of(place_one(&servers[..1], &newcomer(), &plan(&[1])));
        assert_eq!(
            reasons,
            NoFitReasons {
                account_full: 1,
                ..NoFitReasons::default()
            }
        );
    }

    #[test]
    fn a_cohort_counts_new_seats_against_every_server_of_the_account() {
        let servers = [
            ServerCandidate {
                account_seats_free: 1,
                ..server(1)
            },
            ServerCandidate {
                account_seats_free: 1,
                ..server(2)
            },
            ServerCandidate {
                owner: OwnerAccountId::new(2),
                ..server(3)
            },
        ];
        let requests: Vec<_> = (0..3).map(|_| (newcomer(), plan(&[1]))).collect();
        let placed: Vec<_> = place_cohort(&servers, &requests)
            .into_iter()
            .map(|r| r.unwrap().server())
            .collect();
        let on_account_one = placed.iter().filter(|s| s.get() <= 2).count();
        assert_eq!(on_account_one, 1, "one seat left on account 1: {placed:?}");
    }

    #[test]
    fn a_disabled_server_is_never_a_candidate() {
        let servers = [ServerCandidate {
            enabled: false,
            ..server(1)
        }];
        let reasons = reasons_of(place_one(&servers, &newcomer(), &plan(&[1])));
        assert_eq!(
            reasons,
            NoFitReasons {
                disabled: 1,
                ..NoFitReasons::default()
            }
        );
    }

    #[test]
    fn a_trial_converts_in_place_only_where_the_paid_plan_may_go() {
        let paid = plan(&[1]);
        // Full does not matter: the subscriber holds a place there already.
        let full = ServerCandidate {
            users: 10,
            ..server(1)
        };
        assert!(converts_in_place(&full, &paid));
        let no_trials = ServerCandidate {
            allow_trials: false,
            ..server(2)
        };
        assert!(converts_in_place(&no_trials, &paid));
        for unfit in [
            ServerCandidate {
                groups: groups(&[2]),
                ..server(3)
            },
            ServerCandidate {
                allow_new_subscriptions: false,
                ..server(4)
            },
            ServerCandidate {
                enabled: false,
                ..server(5)
            },
            ServerCandidate {
                owner_usable: false,
                ..server(6)
            },
        ] {
            assert!(!converts_in_place(&unfit, &paid), "{unfit:?}");
        }
    }

    #[test]
    fn a_server_closed_to_new_subscriptions_is_never_a_candidate() {
        let servers = [ServerCandidate {
            allow_new_subscriptions: false,
            ..server(1)
        }];
        let reasons = reasons_of(place_one(&servers, &newcomer(), &plan(&[1])));
        assert_eq!(
            reasons,
            NoFitReasons {
                closed: 1,
                ..NoFitReasons::default()
            }
        );
    }

    #[test]
    fn a_full_server_is_never_a_candidate() {
        let servers = [
            ServerCandidate {
                users: 10,
                ..server(1)
            },
            ServerCandidate {
                users: 11,
                ..server(2)
            },
        ];
        let reasons = reasons_of(place_one(&servers, &newcomer(), &plan(&[1])));
        assert_eq!(
            reasons,
            NoFitReasons {
                full: 2,
                ..NoFitReasons::default()
            }
        );
    }

    #[test]
    fn a_server_with_one_seat_left_is_still_a_candidate() {
        let servers = [ServerCandidate {
            users: 9,
            ..server(1)
        }];
        assert_eq!(place_one(&servers, &newcomer(), &plan(&[1])), Ok(place(1)));
    }

    #[test]
    fn a_server_missing_a_group_of_the_plan_is_never_a_candidate() {
        let servers = [
            server(1),
            ServerCandidate {
                groups: groups(&[1, 2, 3]),
                ..server(2)
            },
        ];
        assert_eq!(
            place_one(&servers, &newcomer(), &plan(&[1, 3])),
            Ok(place(2))
        );
        let reasons = reasons_of(place_one(&servers[..1], &newcomer(), &plan(&[1, 3])));
        assert_eq!(
            reasons,
            NoFitReasons {
                missing_groups: 1,
                ..NoFitReasons::default()
            }
        );
    }

    #[test]
    fn a_plan_without_groups_fits_any_open_server() {
        let bare = ServerCandidate {
            groups: BTreeSet::new(),
            ..server(1)
        };
        assert_eq!(place_one(&[bare], &newcomer(), &plan(&[])), Ok(place(1)));
    }

    #[test]
    fn a_trial_plan_only_goes_to_servers_that_allow_trials() {
        let servers = [
            ServerCandidate {
                allow_trials: false,
                ..server(1)
            },
            server(2),
        ];
        assert_eq!(
            place_one(&servers, &newcomer(), &trial_plan(&[1])),
            Ok(place(2))
        );
        let reasons = reasons_of(place_one(&servers[..1], &newcomer(), &trial_plan(&[1])));
        assert_eq!(
            reasons,
            NoFitReasons {
                trials_not_allowed: 1,
                ..NoFitReasons::default()
            }
        );
    }

    #[test]
    fn a_paid_plan_may_go_to_a_server_that_does_not_allow_trials() {
        let servers = [ServerCandidate {
            allow_trials: false,
            ..server(1)
        }];
        assert_eq!(place_one(&servers, &newcomer(), &plan(&[1])), Ok(place(1)));
    }

    #[test]
    fn a_server_whose_owner_is_removed_or_banned_is_never_a_candidate() {
        let servers = [ServerCandidate {
            owner_usable: false,
            ..server(1)
        }];
        let reasons = reasons_of(place_one(&servers, &newcomer(), &plan(&[1])));
        assert_eq!(
            reasons,
            NoFitReasons {
                owner_unusable: 1,
                ..NoFitReasons::default()
            }
        );
    }

    // Rule 3: preferences.

    #[test]
    fn a_server_used_before_beats_the_chosen_location_and_fewer_users() {
        let servers = [
            ServerCandidate {
                users: 8,
                location: Some("Berlin".into()),
                ..server(1)
            },
            ServerCandidate {
                location: Some("Paris".into()),
                ..server(2)
            },
        ];
        let ctx = SubscriberContext {
            previous: vec![ServerId::new(1)],
            preferred_location: Some("Paris".into()),
            ..newcomer()
        };
        assert_eq!(place_one(&servers, &ctx, &plan(&[1])), Ok(place(1)));
    }

    #[test]
    fn the_most_recently_used_server_wins_among_several_used_before() {
        let servers = [server(1), server(2), server(3)];
        let ctx = SubscriberContext {
            previous: vec![ServerId::new(3), ServerId::new(1)],
            ..newcomer()
        };
        assert_eq!(place_one(&servers, &ctx, &plan(&[1])), Ok(place(3)));
    }

    #[test]
    fn a_server_used_before_that_no_longer_qualifies_is_skipped_for_the_next_one() {
        let servers = [
            ServerCandidate {
                users: 10,
                ..server(1)
            },
            server(2),
            server(3),
        ];
        let ctx = SubscriberContext {
            previous: vec![ServerId::new(1), ServerId::new(3)],
            ..newcomer()
        };
        assert_eq!(place_one(&servers, &ctx, &plan(&[1])), Ok(place(3)));
    }

    #[test]
    fn the_chosen_location_matches_whatever_the_case_and_beats_fewer_users() {
        let servers = [
            ServerCandidate {
                location: Some("Berlin".into()),
                ..server(1)
            },
            ServerCandidate {
                users: 9,
                location: Some("ZÜRICH".into()),
                ..server(2)
            },
        ];
        let ctx = SubscriberContext {
            preferred_location: Some("zürich".into()),
            ..newcomer()
        };
        assert_eq!(place_one(&servers, &ctx, &plan(&[1])), Ok(place(2)));
    }

    #[test]
    fn an_unknown_location_falls_back_to_fewest_users() {
        let servers = [
            ServerCandidate {
                users: 3,
                location: Some("Berlin".into()),
                ..server(1)
            },
            ServerCandidate {
                users: 2,
                ..server(2)
            },
        ];
        let ctx = SubscriberContext {
            preferred_location: Some("Tokyo".into()),
            ..newcomer()
        };
        assert_eq!(place_one(&servers, &ctx, &plan(&[1])), Ok(place(2)));
    }

    // Rule 4: ties.

    #[test]
    fn a_tie_goes_to_the_server_with_fewest_users() {
        let servers = [
            ServerCandidate {
                users: 4,
                ..server(1)
            },
            ServerCandidate {
                users: 2,
                ..server(2)
            },
            ServerCandidate {
                users: 3,
                ..server(3)
            },
        ];
        assert_eq!(place_one(&servers, &newcomer(), &plan(&[1])), Ok(place(2)));
    }

    #[test]
    fn an_exact_tie_goes_to_the_lowest_id_whatever_the_order() {
        let servers = [server(5), server(3), server(4)];
        assert_eq!(place_one(&servers, &newcomer(), &plan(&[1])), Ok(place(3)));
    }

    // Nothing fits.

    #[test]
    fn when_nothing_fits_each_server_counts_once_under_its_first_reason() {
        let servers = [
            ServerCandidate {
                owner_usable: false,
                enabled: false,
                ..server(1)
            },
            ServerCandidate {
                enabled: false,
                users: 10,
                ..server(2)
            },
            ServerCandidate {
                allow_new_subscriptions: false,
                ..server(3)
            },
            ServerCandidate {
                groups: groups(&[2]),
                ..server(4)
            },
            ServerCandidate {
                allow_trials: false,
                ..server(5)
            },
            ServerCandidate {
                users: 10,
                ..server(6)
            },
        ];
        let err = place_one(&servers, &newcomer(), &trial_plan(&[1])).unwrap_err();
        assert_eq!(err.plan, PlanId::new(7));
        assert_eq!(
            err.reasons,
            NoFitReasons {
                owner_unusable: 1,
                disabled: 1,
                closed: 1,
                missing_groups: 1,
                trials_not_allowed: 1,
                full: 1,
                account_full: 0,
            }
        );
        assert_eq!(
            err.to_string(),
            "no server has room for plan 7: 1 owner removed or banned, 1 disabled, \
             1 closed to new subscriptions, 1 missing library groups, 1 trials not allowed, 1 full"
        );
    }

    #[test]
    fn the_message_leaves_out_reasons_that_did_not_occur() {
        let servers = [
            ServerCandidate {
                users: 10,
                ..server(1)
            },
            ServerCandidate {
                users: 10,
                ..server(2)
            },
            ServerCandidate {
                enabled: false,
                ..server(3)
            },
        ];
        let err = place_one(&servers, &newcomer(), &plan(&[1])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "no server has room for plan 7: 1 disabled, 2 full"
        );
    }

    #[test]
    fn with_no_servers_at_all_the_error_says_so() {
        let err = place_one(&[], &newcomer(), &plan(&[1])).unwrap_err();
        assert_eq!(err.reasons, NoFitReasons::default());
        assert_eq!(
            err.to_string(),
            "no server has room for plan 7: no servers are configured"
        );
    }

    // Cohorts.

    fn per_server(
        results: &[Result<Placement, NoServerFits>],
    ) -> std::collections::BTreeMap<i64, u32> {
        let mut counts = std::collections::BTreeMap::new();
        for placement in results.iter().flatten() {
            *counts.entry(placement.server().get()).or_default() += 1;
        }
        counts
    }

    #[test]
    fn a_cohort_of_fifty_spreads_evenly_over_three_empty_servers() {
        let servers: Vec<_> = (1..=3)
            .map(|id| ServerCandidate {
                max_users: 95,
                ..server(id)
            })
            .collect();
        let requests: Vec<_> = (0..50).map(|_| (newcomer(), plan(&[1]))).collect();
        let results = place_cohort(&servers, &requests);
        assert!(results.iter().all(|r| matches!(r, Ok(Placement::Place(_)))));
        let counts = per_server(&results);
        assert_eq!(counts.len(), 3);
        assert!(counts.values().all(|n| (16..=17).contains(n)), "{counts:?}");
        assert_eq!(counts.values().sum::<u32>(), 50);
    }

    #[test]
    fn a_cohort_fills_the_emptier_servers_first() {
        let servers = [
            ServerCandidate {
                users: 6,
                ..server(1)
            },
            ServerCandidate {
                users: 2,
                ..server(2)
            },
        ];
        let requests: Vec<_> = (0..6).map(|_| (newcomer(), plan(&[1]))).collect();
        let counts = per_server(&place_cohort(&servers, &requests));
        // 2+4 = 6 catches up with server 1, then they alternate: 1 each.
        assert_eq!(counts, [(1, 1), (2, 5)].into_iter().collect());
    }

    #[test]
    fn a_cohort_larger_than_the_room_left_gets_full_errors_for_the_rest() {
        let servers: Vec<_> = (1..=3)
            .map(|id| ServerCandidate {
                max_users: 5,
                ..server(id)
            })
            .collect();
        let requests: Vec<_> = (0..20).map(|_| (newcomer(), plan(&[1]))).collect();
        let results = place_cohort(&servers, &requests);
        assert!(results[..15].iter().all(Result::is_ok));
        for result in &results[15..] {
            let err = result.as_ref().unwrap_err();
            assert_eq!(
                err.reasons,
                NoFitReasons {
                    full: 3,
                    ..NoFitReasons::default()
                }
            );
        }
        assert!(per_server(&results).values().all(|n| *n == 5));
    }

    #[test]
    fn a_kept_share_in_a_cohort_does_not_take_a_second_seat() {
        let servers = [ServerCandidate {
            users: 1,
            max_users: 2,
            ..server(1)
        }];
        let requests = [
            (on(1), plan(&[1])),
            (newcomer(), plan(&[1])),
            (newcomer(), plan(&[1])),
        ];
        let results = place_cohort(&servers, &requests);
        assert_eq!(results[0], Ok(keep(1)));
        assert_eq!(results[1], Ok(place(1)));
        assert_eq!(reasons_of(results[2].clone()).full, 1);
    }

    #[test]
    fn an_empty_cohort_places_nobody() {
        assert!(place_cohort(&[server(1)], &[]).is_empty());
    }

    // Properties.

    const LOCATIONS: [&str; 5] = ["Paris", "PARIS", "Berlin", "Zürich", "zÜrich"];

    fn group_set(max: usize) -> impl Strategy<Value = BTreeSet<LibraryGroupId>> {
        prop::collection::btree_set((0i64..4).prop_map(LibraryGroupId::new), 0..=max)
    }

    fn location() -> impl Strategy<Value = Option<String>> {
        prop::option::of(prop::sample::select(&LOCATIONS[..]).prop_map(String::from))
    }

    fn server_id() -> impl Strategy<Value = ServerId> {
        (0i64..8).prop_map(ServerId::new)
    }

    fn any_server(id: i64) -> impl Strategy<Value = ServerCandidate> {
        let flags = (
            prop::bool::weighted(0.85),
            prop::bool::weighted(0.85),
            prop::bool::weighted(0.85),
            prop::bool::weighted(0.7),
        );
        (flags, 0u32..6, 0u32..5, group_set(4), location(), 0i64..3).prop_map(
            move |(
                (owner_usable, enabled, allow_new_subscriptions, allow_trials),
                max_users,
                users,
                groups,
                location,
                owner,
            )| {
                ServerCandidate {
                    id: ServerId::new(id),
                    owner: OwnerAccountId::new(owner),
                    owner_usable,
                    enabled,
                    allow_new_subscriptions,
                    allow_trials,
                    max_users,
                    users,
                    account_seats_free: 1000,
                    groups,
                    location,
                }
            },
        )
    }

    fn any_servers() -> impl Strategy<Value = Vec<ServerCandidate>> {
        (0i64..7).prop_flat_map(|n| (0..n).map(any_server).collect::<Vec<_>>())
    }

    fn any_request() -> impl Strategy<Value = (SubscriberContext, PlanNeeds)> {
        let ctx = (
            prop::option::of(server_id()),
            prop::collection::vec(server_id(), 0..4),
            location(),
        )
            .prop_map(
                |(current, previous, preferred_location)| SubscriberContext {
                    current,
                    previous,
                    preferred_location,
                    seated_on: Vec::new(),
                },
            );
        let needs =
            (0i64..3, group_set(2), any::<bool>()).prop_map(|(plan, groups, trial)| PlanNeeds {
                plan: PlanId::new(plan),
                groups,
                trial,
            });
        (ctx, needs)
    }

    fn any_requests() -> impl Strategy<Value = Vec<(SubscriberContext, PlanNeeds)>> {
        prop::collection::vec(any_request(), 0..25)
    }

    /// Rule 2 without the room check, which a cohort moves as it goes.
    fn open_to(server: &ServerCandidate, needs: &PlanNeeds) -> bool {
        server.owner_usable
            && server.enabled
            && server.allow_new_subscriptions
            && needs.groups.is_subset(&server.groups)
            && (!needs.trial || server.allow_trials)
    }

    fn takes_new(server: &ServerCandidate, needs: &PlanNeeds) -> bool {
        open_to(server, needs) && server.users < server.max_users
    }

    fn find(servers: &[ServerCandidate], id: ServerId) -> &ServerCandidate {
        servers
            .iter()
            .find(|s| s.id == id)
            .expect("placement chose a server not in the list")
    }

    fn servers_and_a_shuffle() -> impl Strategy<Value = [Vec<ServerCandidate>; 2]> {
        any_servers().prop_flat_map(|servers| {
            let original = servers.clone();
            Just(servers)
                .prop_shuffle()
                .prop_map(move |shuffled| [original.clone(), shuffled])
        })
    }

    fn counted(reasons: NoFitReasons) -> usize {
        let NoFitReasons {
            owner_unusable,
            disabled,
            closed,
            missing_groups,
            trials_not_allowed,
            full,
            account_full,
        } = reasons;
        [
            owner_unusable,
            disabled,
            closed,
            missing_groups,
            trials_not_allowed,
            full,
            account_full,
        ]
        .into_iter()
        .map(|n| usize::try_from(n).unwrap())
        .sum()
    }

    proptest! {
        #[test]
        fn a_placement_never_breaks_a_rule(
            servers in any_servers(),
            (ctx, needs) in any_request(),
        ) {
            let keepable = ctx
                .current
                .is_some_and(|current| servers.iter().any(|s| s.id == current && s.keeps(&needs)));
            match place_one(&servers, &ctx, &needs) {
                Ok(Placement::Keep(id)) => {
                    prop_assert_eq!(ctx.current, Some(id));
                    let chosen = find(&servers, id);
                    prop_assert!(chosen.owner_usable && chosen.enabled);
                    prop_assert!(needs.groups.is_subset(&chosen.groups));
                }
                Ok(Placement::Place(id)) => {
                    prop_assert!(!keepable);
                    let chosen = find(&servers, id);
                    prop_assert!(takes_new(chosen, &needs));
                }
                Err(err) => {
                    prop_assert!(!keepable);
                    prop_assert!(!servers.iter().any(|s| takes_new(s, &needs)));
                    prop_assert_eq!(err.plan, needs.plan);
                    prop_assert_eq!(counted(err.reasons), servers.len());
                }
            }
        }

        #[test]
        fn a_qualifying_server_used_before_is_never_passed_over(
            servers in any_servers(),
            (ctx, needs) in any_request(),
        ) {
            let earliest_previous = ctx.previous.iter().copied().find(|id| {
                servers.iter().any(|s| s.id == *id && takes_new(s, &needs))
            });
            if let (Ok(Placement::Place(id)), Some(expected)) =
                (place_one(&servers, &ctx, &needs), earliest_previous)
            {
                prop_assert_eq!(id, expected);
            }
        }

        #[test]
        fn a_cohort_never_breaks_a_rule_nor_overfills_a_server(
            servers in any_servers(),
            requests in any_requests(),
        ) {
            let results = place_cohort(&servers, &requests);
            prop_assert_eq!(results.len(), requests.len());
            let mut placed = std::collections::BTreeMap::<ServerId, u32>::new();
            for (result, (ctx, needs)) in results.iter().zip(&requests) {
                match result {
                    Ok(Placement::Keep(id)) => {
                        prop_assert_eq!(ctx.current, Some(*id));
                        prop_assert!(find(&servers, *id).keeps(needs));
                    }
                    Ok(Placement::Place(id)) => {
                        prop_assert!(open_to(find(&servers, *id), needs));
                        *placed.entry(*id).or_default() += 1;
                    }
                    Err(_) => {}
                }
            }
            for (id, count) in placed {
                let chosen = find(&servers, id);
                prop_assert!(chosen.users + count <= chosen.max_users);
            }
        }

        #[test]
        fn the_same_input_always_gives_the_same_placements_whatever_the_server_order(
            [servers, shuffled] in servers_and_a_shuffle(),
            requests in any_requests(),
        ) {
            let first = place_cohort(&servers, &requests);
            prop_assert_eq!(&first, &place_cohort(&servers, &requests));
            prop_assert_eq!(&first, &place_cohort(&shuffled, &requests));
            for (ctx, needs) in &requests {
                prop_assert_eq!(place_one(&servers, ctx, needs), place_one(&shuffled, ctx, needs));
            }
        }
    }
}
